"""Clusterers: HDBSCAN with merging (automatic number of clusters, the default), plain HDBSCAN,
and k-means (a fixed K).

All return an ``Assignment`` whose ids run 0..K-1 by decreasing cluster size, noise -1.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from clustering.errors import ConfigError
from clustering.grains import renumber_coarse
from clustering.granularity import (
    CORE_DIST_JOBS,
    MICRO_MIN_SAMPLES,
    MICRO_SIZE_FACTOR,
    Granularity,
    merge_micro_clusters,
    variance_ratio_curve,
)
from clustering.resampling import K_RULE, N_RESAMPLES, consensus_k, resampled_curves, stable_cut
from clustering.types import NOISE, Assignment

log = logging.getLogger(__name__)

MIN_CLUSTERABLE = 3
"""Fewer texts than this form a single cluster: there is nothing to separate."""


def default_min_cluster_size(n: int) -> int:
    """Grows slowly with N: 5 for a few hundred texts, ~15 at 3k, ~40 at 20k, ~100 at 100k."""
    return int(max(5, min(500, round(0.3 * math.sqrt(max(n, 1))))))


def micro_min_cluster_size(n: int) -> int:
    """The micro-clusters' ``min_cluster_size`` when none is given: ``MICRO_SIZE_FACTOR`` times
    plain HDBSCAN's, since the merge step puts over-segmented groups back together."""
    return int(max(5, round(MICRO_SIZE_FACTOR * default_min_cluster_size(n))))


def order_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..K-1 by decreasing size (ties by first appearance); noise stays -1."""
    labels = np.asarray(labels, dtype=np.int64)
    ids, first, counts = np.unique(labels[labels != NOISE], return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda i: (-counts[i], first[i]))
    mapping = {int(ids[i]): new for new, i in enumerate(order)}
    return np.array([mapping.get(int(x), NOISE) for x in labels], dtype=np.int64)


def single_cluster(n: int) -> Assignment:
    return Assignment(labels=np.zeros(n, dtype=np.int64), probabilities=np.ones(n))


class HDBSCANClusterer:
    """Density clustering with the ``hdbscan`` package (chosen over sklearn's and fast_hdbscan:
    fastest up to 50k here with no compile cost, and it has ``approximate_predict``)."""

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int | None = None,
        cluster_selection_method: str = "eom",
        cluster_selection_epsilon: float = 0.0,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon

    def fit_predict(self, X: np.ndarray) -> Assignment:
        n = len(X)
        if n < MIN_CLUSTERABLE:
            self.min_cluster_size_ = n
            return single_cluster(n)
        size = self.min_cluster_size or default_min_cluster_size(n)
        if size < 2:
            raise ConfigError(f"min_cluster_size must be at least 2, got {size}")
        size = min(size, n)
        import hdbscan

        self.model_ = hdbscan.HDBSCAN(
            min_cluster_size=size,
            min_samples=min(self.min_samples, n - 1) if self.min_samples else None,
            cluster_selection_method=self.cluster_selection_method,
            cluster_selection_epsilon=self.cluster_selection_epsilon,
            prediction_data=True,
            core_dist_n_jobs=CORE_DIST_JOBS,
        ).fit(np.asarray(X, dtype=np.float64))
        labels = order_by_size(self.model_.labels_)
        self.min_cluster_size_ = size
        return Assignment(labels=labels, probabilities=np.asarray(self.model_.probabilities_))


class MergedHDBSCANClusterer:
    """HDBSCAN micro-clusters merged by Ward's method to the cut with the best variance ratio,
    with confident noise attached (``clustering.granularity``): the automatic-K default.

    ``n_resamples`` random subsets are clustered the same way to measure how firm the cut is
    (``granularity_.resampled_k``) and, by ``k_rule``, to choose it; 0 skips them."""

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int | None = MICRO_MIN_SAMPLES,
        cluster_selection_method: str = "eom",
        n_resamples: int = N_RESAMPLES,
        k_rule: str = K_RULE,
        random_state: int | None = 0,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.n_resamples = n_resamples
        self.k_rule = k_rule
        self.random_state = random_state

    def fit_predict(self, X: np.ndarray) -> Assignment:
        n = len(X)
        if n < MIN_CLUSTERABLE:
            return single_cluster(n)
        micro = HDBSCANClusterer(
            min_cluster_size=self.min_cluster_size or micro_min_cluster_size(n),
            min_samples=self.min_samples,
            cluster_selection_method=self.cluster_selection_method,
        )
        found = micro.fit_predict(X)
        self.min_cluster_size_ = micro.min_cluster_size_
        if found.n_clusters == 0:
            self.granularity_ = Granularity(0, 0, 1.0, 1.0, {})
            return found
        k: int | None = None
        resampled: tuple[int, ...] = ()
        ratio_cut, stability, section = 0, dict[int, float](), False
        if self.n_resamples:
            fits = resampled_curves(
                np.asarray(X, dtype=np.float64),
                micro.min_cluster_size_,
                self.min_samples,
                n_resamples=self.n_resamples,
                random_state=self.random_state,
                method=self.cluster_selection_method,
            )
            full = variance_ratio_curve(np.asarray(X, dtype=np.float64), found.labels)[1]
            k = consensus_k(full, [f.scores for f in fits], self.k_rule) if full else None
            resampled = tuple(f.k for f in fits)
            if k:
                k_ratio = k
                k, stability, section = stable_cut(X, found.labels, k, fits)
                ratio_cut = k_ratio if k != k_ratio else 0
        labels, confidence, self.granularity_ = merge_micro_clusters(
            X,
            found.labels,
            n_clusters=k,
            resampled_k=resampled,
            ratio_cut=ratio_cut,
            stability=stability,
            section_cut=section,
        )
        probabilities = np.where(found.labels == NOISE, confidence, found.probabilities)
        probabilities = np.where(labels == NOISE, 0.0, probabilities)
        ordered = order_by_size(labels)
        self.granularity_ = renumber_coarse(self.granularity_, labels, ordered)
        # For assigning new points (sampled fits): HDBSCAN's raw label -> final cluster id.
        self.model_ = micro.model_
        raw = np.asarray(micro.model_.labels_)
        self.micro_to_cluster_ = {
            int(r): int(o) for r, o in zip(raw, ordered, strict=True) if r != NOISE and o != NOISE
        }
        return Assignment(labels=ordered, probabilities=probabilities)


class KMeansClusterer:
    """k-means with a fixed K; every text gets a cluster (no noise)."""

    def __init__(self, n_clusters: int, random_state: int | None = 42, n_init: int = 10) -> None:
        self.n_clusters = n_clusters
        self.random_state = random_state
        self.n_init = n_init

    def fit_predict(self, X: np.ndarray) -> Assignment:
        if self.n_clusters < 1:
            raise ConfigError(f"n_clusters must be at least 1, got {self.n_clusters}")
        n = len(X)
        if n == 0:
            return Assignment(np.zeros(0, dtype=np.int64), np.zeros(0))
        k = min(self.n_clusters, n)
        if k < self.n_clusters:
            log.warning("asked for %d clusters but only %d texts: using %d", self.n_clusters, n, k)
        from sklearn.cluster import KMeans

        self.model_ = KMeans(n_clusters=k, random_state=self.random_state, n_init=self.n_init)
        raw = self.model_.fit_predict(np.asarray(X, dtype=np.float64))
        distances = self.model_.transform(np.asarray(X, dtype=np.float64))
        return Assignment(labels=order_by_size(raw), probabilities=soft_confidence(distances))


def soft_confidence(distances: np.ndarray) -> np.ndarray:
    """How clearly each point belongs to its nearest centre: 1 - d1/d2, in [0, 1]."""
    if distances.shape[1] < 2:
        return np.ones(len(distances))
    part = np.sort(distances, axis=1)[:, :2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(part[:, 1] > 0, part[:, 0] / part[:, 1], 0.0)
    return np.clip(1.0 - ratio, 0.0, 1.0)


def reassign_outliers(X: np.ndarray, assignment: Assignment) -> Assignment:
    """Give every noise point the cluster of the nearest centroid (probability kept at 0)."""
    labels = assignment.labels.copy()
    noise = labels == NOISE
    if not noise.any() or noise.all():
        return assignment
    ids = np.unique(labels[~noise])
    centroids = np.vstack([X[labels == c].mean(axis=0) for c in ids])
    d = ((X[noise, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    labels[noise] = ids[np.argmin(d, axis=1)]
    log.info("reassigned %d outliers (%.1f%%)", int(noise.sum()), 100 * noise.mean())
    return Assignment(labels=labels, probabilities=assignment.probabilities)
