"""Explanation faithfulness: good explanations put texts back in their clusters, swapped ones
do not. The main test uses the real bundled embedder on real Banking77 queries."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.faithfulness import FaithfulnessError, explanation_faithfulness
from clustering.types import NOISE, ClusterLabel

INTENTS = {
    "card_arrival": (
        "Customers waiting for a new bank card that has not been delivered yet.",
        "The text asks where an ordered card is or when it will arrive.",
    ),
    "pin_blocked": (
        "Customers whose PIN is blocked or locked after wrong attempts.",
        "The text asks how to unblock or unlock a PIN.",
    ),
    "exchange_rate": (
        "Questions about the exchange rates the bank uses for foreign currencies.",
        "The text asks what exchange rate applies or how it is set.",
    ),
    "lost_or_stolen_phone": (
        "Customers whose mobile phone with the banking app was lost or stolen.",
        "The text says the phone is lost or stolen and asks what to do.",
    ),
}


def explanations(order: list[int]) -> list[ClusterLabel]:
    texts = list(INTENTS.values())
    return [ClusterLabel(c, f"cluster {c}", texts[j][0], texts[j][1]) for c, j in enumerate(order)]


@pytest.fixture(scope="module")
def banking_clusters(banking_rows, embedder):
    rows = [r for r in banking_rows if r["label"] in INTENTS]
    ids = {name: i for i, name in enumerate(INTENTS)}
    labels = np.array([ids[r["label"]] for r in rows])
    vectors = embedder.embed([r["text"] for r in rows])
    return vectors, labels


def test_good_explanations_beat_swapped_and_shuffled_ones(banking_clusters, embedder):
    vectors, labels = banking_clusters
    good = explanation_faithfulness(vectors, labels, explanations([0, 1, 2, 3]), embedder)
    swapped = explanation_faithfulness(vectors, labels, explanations([1, 0, 3, 2]), embedder)
    shuffled = explanation_faithfulness(vectors, labels, explanations([2, 3, 1, 0]), embedder)
    assert good.overall > 0.8
    assert swapped.overall < 0.2 and shuffled.overall < 0.2
    assert good.n_texts == len(labels) == 160
    assert set(good.per_cluster) == {0, 1, 2, 3}
    assert all(score > 0.6 for score in good.per_cluster.values())
    assert good.to_dict()["overall"] == round(good.overall, 4)
    assert good.model_id == embedder.model_id


class TableEmbedder:
    """Exact vectors for known texts: for arithmetic the real model would blur."""

    model_id = "table"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed(self, texts):
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def label(cluster_id: int, description: str) -> ClusterLabel:
    return ClusterLabel(cluster_id, "n", description, "")


def test_recall_per_cluster_and_overall_and_noise_left_out():
    embedder = TableEmbedder({"east": [1.0, 0.0], "north": [0.0, 1.0]})
    vectors = np.array([[1, 0.1], [1, -0.1], [0.1, 1], [0.9, 0.2], [0.7, 0.7], [1, 0]], np.float32)
    labels = np.array([0, 0, 1, 1, 1, NOISE])
    result = explanation_faithfulness(
        vectors, labels, [label(0, "east"), label(1, "north")], embedder
    )
    assert result.per_cluster[0] == 1.0
    assert result.per_cluster[1] == pytest.approx(1 / 3)  # (0.7, 0.7) ties: first explanation
    assert result.overall == pytest.approx(3 / 5)
    assert result.macro == pytest.approx((1 + 1 / 3) / 2)
    assert result.n_texts == 5


def test_a_cluster_without_explanation_scores_zero():
    embedder = TableEmbedder({"east": [1.0, 0.0]})
    vectors = np.array([[1, 0], [0, 1]], np.float32)
    result = explanation_faithfulness(vectors, np.array([0, 1]), [label(0, "east")], embedder)
    assert result.per_cluster == {0: 1.0, 1: 0.0}
    assert result.overall == 0.5


def test_all_noise_and_mismatched_inputs():
    embedder = TableEmbedder({"east": [1.0, 0.0]})
    result = explanation_faithfulness(
        np.ones((2, 2), np.float32), np.array([NOISE, NOISE]), [], embedder
    )
    assert (result.overall, result.per_cluster, result.n_texts) == (0.0, {}, 0)
    with pytest.raises(FaithfulnessError, match="aligned"):
        explanation_faithfulness(np.ones((3, 2)), np.array([0, 1]), [], embedder)
    with pytest.raises(FaithfulnessError, match="dimensions"):
        explanation_faithfulness(np.ones((1, 3)), np.array([0]), [label(0, "east")], embedder)
