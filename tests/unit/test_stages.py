"""Keywords, summaries, keyword labels and metrics on small seeded data."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.keywords import class_tfidf
from clustering.labels import KeywordLabeler, keyword_name
from clustering.metrics import clustering_accuracy, external_metrics, silhouette
from clustering.summarize import representatives, summarize_clusters
from clustering.types import NOISE, Assignment

TEXTS = [
    "card payment declined at the shop",
    "my card payment was declined",
    "declined card payment again",
    "reset my pin code",
    "how to reset the pin",
    "forgot pin need reset",
    "random noise words",
]
LABELS = np.array([0, 0, 0, 1, 1, 1, NOISE])


def unit_vectors(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_class_tfidf_finds_each_clusters_own_words():
    keywords = class_tfidf(TEXTS, LABELS)
    assert set(keywords) == {0, 1}
    assert {"card payment", "declined"} & set(keywords[0][:3])
    assert "pin" in " ".join(keywords[1][:3])
    assert not set(keywords[0]) & {"pin", "reset"}


def test_class_tfidf_survives_stop_words_only_and_no_clusters():
    only_stop_words = class_tfidf(["the and of", "is it"], np.array([0, 0]))
    assert only_stop_words[0] and set(" ".join(only_stop_words[0]).split()) <= {
        "the",
        "and",
        "of",
        "is",
        "it",
    }
    assert class_tfidf(["a"], np.array([NOISE])) == {}


def test_keyword_name_and_fallback():
    assert keyword_name(("card", "payment"), 3) == "Card · Payment"
    assert keyword_name((), 3) == "Cluster 3"
    assert (
        keyword_name(("card", "arrived", "card arrived", "new", "new card"), 0)
        == "Card arrived · New card"
    )
    assert (
        keyword_name(("pin", "change pin", "card pin", "unblock"), 0)
        == "Change pin · Card pin · Unblock"
    )


def test_summaries_sizes_shares_neighbours_and_deduplicated_representatives():
    vectors = unit_vectors(len(TEXTS))
    texts = TEXTS[:-1] + [TEXTS[0]]  # a duplicate of text 0, in noise
    summaries = summarize_clusters(texts, vectors, Assignment(LABELS, np.ones(7)), goal="g")
    assert [s.cluster_id for s in summaries] == [0, 1]
    assert [s.size for s in summaries] == [3, 3]
    assert summaries[0].share == pytest.approx(3 / 7)
    assert summaries[0].neighbours == (1,) and summaries[1].neighbours == (0,)
    assert summaries[0].goal == "g"
    assert len(set(summaries[0].representatives)) == len(summaries[0].representatives)


def test_representatives_skip_duplicates_and_start_at_the_centre():
    texts = ["same", "same", "other", "third"]
    vectors = np.array([[1, 0], [1, 0], [0.8, 0.6], [0.6, 0.8]], dtype=float)
    chosen = representatives(texts, vectors, np.arange(4), np.array([1.0, 0.0]), n=3)
    assert chosen[0] == 0 and 1 not in chosen and len(chosen) == 3


def test_keyword_labeler_labels_every_cluster_offline():
    vectors = unit_vectors(len(TEXTS))
    summaries = summarize_clusters(TEXTS, vectors, Assignment(LABELS, np.ones(7)))
    labels = KeywordLabeler().label(summaries)
    assert [lab.cluster_id for lab in labels] == [0, 1]
    assert all(
        lab.status == "keywords" and lab.name and lab.description.endswith(".") for lab in labels
    )
    assert "pin" in labels[1].name.lower()


def test_accuracy_uses_the_best_matching():
    truth = ["a", "a", "b", "b", "c"]
    assert clustering_accuracy(truth, [1, 1, 0, 0, 2]) == 1.0
    assert clustering_accuracy(truth, [0, 0, 0, 0, 0]) == pytest.approx(0.4)


def test_external_metrics_count_noise_as_its_own_cluster():
    truth = ["a"] * 4 + ["b"] * 4
    perfect = external_metrics(truth, [0] * 4 + [1] * 4)
    assert perfect == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0), "acc": 1.0}
    noisy = external_metrics(truth, [0, 0, -1, -1, 1, 1, -1, -1])
    assert noisy["nmi"] < 0.9 and noisy["acc"] < 1.0


def test_silhouette_overall_and_per_cluster():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 0.1, (20, 2)), rng.normal(5, 0.1, (20, 2))])
    labels = np.array([0] * 20 + [1] * 20)
    result = silhouette(X, labels)
    assert result["silhouette"] > 0.9 and set(result["silhouette_per_cluster"]) == {0, 1}
    assert silhouette(X, np.zeros(40, dtype=int))["silhouette"] is None


def test_reductions_are_memoised_per_vectors_and_parameters(monkeypatch):
    from clustering import pipeline

    calls = []
    real = pipeline._reduce

    def counting(vectors, config):
        calls.append(config.n_neighbors)
        return real(vectors, config)

    monkeypatch.setattr(pipeline, "_reduce", counting)
    vectors = unit_vectors(12).astype(np.float32)
    config = pipeline.PipelineConfig()
    first = pipeline.reduce_vectors(vectors, config)
    again = pipeline.reduce_vectors(vectors, pipeline.PipelineConfig(min_cluster_size=3))
    assert len(calls) == 1 and np.array_equal(first[0], again[0])
    pipeline.reduce_vectors(vectors, pipeline.PipelineConfig(n_neighbors=5))
    pipeline.reduce_vectors(vectors + 0.01, config)
    assert len(calls) == 3
