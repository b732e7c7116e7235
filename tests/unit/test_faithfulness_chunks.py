"""Faithfulness at scale (issue #13): texts are compared with the explanations in chunks, with
no normalised copy of the vectors, and the result is the same as in one piece."""

from __future__ import annotations

import numpy as np

import clustering.faithfulness as faithfulness
from clustering.faithfulness import explanation_faithfulness
from clustering.types import NOISE, ClusterLabel


class TableEmbedder:
    model_id = "table"
    cache_key = "table|precision=fp32"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed(self, texts):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_chunked_nearest_explanations_match_one_piece(monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    labels = rng.integers(-1, 4, size=1000)
    # Unnormalised rows of varied scale: scale must not change the nearest explanation.
    vectors = (centres[labels % 4] + rng.normal(size=(1000, 16))) * rng.uniform(0.1, 9, (1000, 1))
    table = {f"c{c}": centres[c] for c in range(4)}
    names = [ClusterLabel(c, "n", f"c{c}") for c in range(4)]
    whole = explanation_faithfulness(
        vectors.astype(np.float32), labels, names, TableEmbedder(table)
    )
    monkeypatch.setattr(faithfulness, "NEAREST_CHUNK", 7)
    chunked = explanation_faithfulness(
        vectors.astype(np.float32), labels, names, TableEmbedder(table)
    )
    assert chunked == whole
    assert whole.n_texts == int((labels != NOISE).sum())
    # By hand: the nearest centre by cosine, for the clustered rows.
    clustered = labels != NOISE
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = np.argmax(
        unit[clustered] @ (centres / np.linalg.norm(centres, axis=1)[:, None]).T, 1
    )
    assert whole.overall == float(np.mean(expected == labels[clustered]))
