"""Granularity and a two-level hierarchy: how many clusters, and which clusters belong together.

``choose_k`` picks K among candidates by silhouette (separation in the clustering space) or by
stability (k-means on resamples agree with each other, measured by ARI). ``build_hierarchy``
groups leaf clusters into parents by agglomerating their centroids (cosine, average linkage);
the number of parents is chosen the same way, or handed in (the LLM's pairwise checks choose it
in ``llm.granularity``). Parent summaries feed any labeler, so both levels are named.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sklearn import metrics as skm

from clustering.cluster import order_by_size
from clustering.errors import ConfigError
from clustering.keywords import class_tfidf
from clustering.summarize import centroids, representatives
from clustering.types import NOISE, ClusterSummary

log = logging.getLogger(__name__)

SILHOUETTE_SAMPLE = 3000
N_RESAMPLES = 5
RESAMPLE_SHARE = 0.8
MIN_LEAVES_FOR_PARENTS = 4
"""With fewer leaf clusters every leaf is its own parent: there is nothing to group."""


@dataclass(frozen=True)
class KChoice:
    k: int
    scores: dict[int, float] = field(default_factory=dict)
    method: str = "silhouette"

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "method": self.method,
            "scores": {int(k): round(v, 4) for k, v in self.scores.items()},
        }


def kmeans_fit(random_state: int | None) -> Callable[[np.ndarray, int], np.ndarray]:
    def fit(X: np.ndarray, k: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, random_state=random_state, n_init=3).fit_predict(X)

    return fit


def choose_k(
    X: np.ndarray,
    candidates: Sequence[int],
    *,
    method: str = "silhouette",
    fit: Callable[[int], np.ndarray] | None = None,
    random_state: int | None = 42,
    n_resamples: int = N_RESAMPLES,
) -> KChoice:
    """The candidate K with the best score; ties go to the smaller K.

    ``fit(k)`` gives labels for all of ``X`` (k-means by default). ``stability`` fits k-means
    on ``n_resamples`` subsamples and scores the mean ARI between their predictions on ``X``.
    """
    X = np.asarray(X, dtype=np.float64)
    candidates = sorted({int(k) for k in candidates if 1 <= int(k) <= len(X)})
    if not candidates:
        raise ConfigError(f"no candidate K between 1 and {len(X)}")
    if len(candidates) == 1:
        return KChoice(candidates[0], {}, method)
    rng = np.random.default_rng(random_state)
    scores: dict[int, float] = {}
    if method == "silhouette":
        sample = np.arange(len(X))
        if len(X) > SILHOUETTE_SAMPLE:
            sample = np.sort(rng.choice(len(X), SILHOUETTE_SAMPLE, replace=False))
        for k in candidates:
            labels = fit(k) if fit is not None else kmeans_fit(random_state)(X, k)
            labels = np.asarray(labels)
            if len(np.unique(labels[sample])) < 2 or len(np.unique(labels[sample])) >= len(sample):
                scores[k] = -1.0
                continue
            scores[k] = float(skm.silhouette_score(X[sample], labels[sample]))
    elif method == "stability":
        from sklearn.cluster import KMeans

        size = max(2, int(RESAMPLE_SHARE * len(X)))
        for k in candidates:
            if k < 2:
                scores[k] = -1.0
                continue
            predictions = []
            for r in range(n_resamples):
                idx = rng.choice(len(X), size, replace=False)
                model = KMeans(n_clusters=min(k, size), random_state=r, n_init=1).fit(X[idx])
                predictions.append(model.predict(X))
            pairs = [
                skm.adjusted_rand_score(predictions[a], predictions[b])
                for a in range(len(predictions))
                for b in range(a + 1, len(predictions))
            ]
            scores[k] = float(np.mean(pairs))
    else:
        raise ConfigError(f"unknown K criterion {method!r}; use 'silhouette' or 'stability'")
    best = max(candidates, key=lambda k: (round(scores[k], 6), -k))
    log.info("chose K=%d by %s among %s", best, method, candidates)
    return KChoice(best, scores, method)


@dataclass(frozen=True)
class Hierarchy:
    """Parents of leaf clusters: ``parent_of[leaf] = parent`` (parents 0..P-1 by size)."""

    parent_of: dict[int, int]
    choice: KChoice

    @property
    def n_parents(self) -> int:
        return len(set(self.parent_of.values()))

    def parent_labels(self, leaf_labels: np.ndarray) -> np.ndarray:
        """Parent of every text (noise stays noise)."""
        return np.array([self.parent_of.get(int(c), NOISE) for c in leaf_labels], dtype=np.int64)

    def children(self, parent: int) -> list[int]:
        return sorted(c for c, p in self.parent_of.items() if p == parent)

    def to_dict(self) -> dict[str, Any]:
        return {
            "parent_of": {int(c): int(p) for c, p in self.parent_of.items()},
            "n_parents": self.n_parents,
            "choice": self.choice.to_dict(),
        }


def parent_candidates(n_leaves: int) -> list[int]:
    """Parent counts worth trying: 2 up to about half the leaves (at most 20)."""
    top = max(2, min(20, n_leaves // 2))
    return sorted(
        {k for k in (2, 3, 4, 5, 6, 8, 10, 12, 15, 20) if k <= top}
        | {min(top, max(2, round(math.sqrt(n_leaves))))}
    )


def cut_tree(leaf_centres: np.ndarray, n_parents: int) -> np.ndarray:
    """Average-linkage agglomeration of leaf centroids (cosine), cut at ``n_parents``."""
    from sklearn.cluster import AgglomerativeClustering

    if n_parents >= len(leaf_centres):
        return np.arange(len(leaf_centres))
    if n_parents <= 1:
        return np.zeros(len(leaf_centres), dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=n_parents, metric="cosine", linkage="average")
    return model.fit_predict(leaf_centres)


def leaf_partitions(
    vectors: np.ndarray, leaf_labels: np.ndarray, candidates: Sequence[int]
) -> tuple[list[int], dict[int, dict[int, int]]]:
    """For each candidate parent count, the map leaf -> parent (nested cuts of one tree)."""
    centres = centroids(vectors, leaf_labels)
    leaves = list(centres)
    matrix = np.vstack([centres[c] for c in leaves]) if leaves else np.zeros((0, vectors.shape[1]))
    result = {}
    for k in candidates:
        cut = cut_tree(matrix, k)
        result[int(k)] = {leaf: int(p) for leaf, p in zip(leaves, cut, strict=True)}
    return leaves, result


def build_hierarchy(
    vectors: np.ndarray,
    leaf_labels: np.ndarray,
    *,
    n_parents: int | None = None,
    method: str = "silhouette",
    random_state: int | None = 42,
) -> Hierarchy:
    """Group leaf clusters into ``n_parents`` parents, or a number chosen by ``method``
    (silhouette of the texts under the parent labels, or stability of k-means on centroids)."""
    leaf_labels = np.asarray(leaf_labels)
    leaves = sorted(int(c) for c in np.unique(leaf_labels) if c != NOISE)
    if len(leaves) < MIN_LEAVES_FOR_PARENTS and n_parents is None:
        return Hierarchy({c: i for i, c in enumerate(leaves)}, KChoice(len(leaves), {}, "none"))
    if n_parents is not None and n_parents < 1:
        raise ConfigError(f"n_parents must be at least 1, got {n_parents}")
    candidates = [n_parents] if n_parents is not None else parent_candidates(len(leaves))
    candidates = [min(k, len(leaves)) for k in candidates]
    _, partitions = leaf_partitions(vectors, leaf_labels, candidates)
    clustered = leaf_labels != NOISE
    X = vectors[clustered]
    if n_parents is not None:
        choice = KChoice(min(n_parents, len(leaves)), {}, "given")
    elif method == "stability":
        centres = centroids(vectors, leaf_labels)
        matrix = np.vstack([centres[c] for c in leaves])
        choice = choose_k(matrix, candidates, method="stability", random_state=random_state)
    else:

        def fit(k: int) -> np.ndarray:
            mapping = partitions[k]
            return np.array([mapping[int(c)] for c in leaf_labels[clustered]])

        choice = choose_k(X, candidates, method=method, fit=fit, random_state=random_state)
    return hierarchy_from_partition(partitions[choice.k], leaf_labels, choice)


def hierarchy_from_partition(
    mapping: dict[int, int], leaf_labels: np.ndarray, choice: KChoice
) -> Hierarchy:
    """Parents renumbered 0..P-1 by number of texts."""
    leaves = sorted(mapping)
    text_parents = np.array([mapping.get(int(c), NOISE) for c in leaf_labels], dtype=np.int64)
    ordered = order_by_size(text_parents)
    renumber = {}
    for leaf in leaves:
        hit = np.flatnonzero(np.asarray(leaf_labels) == leaf)
        if len(hit):
            renumber[leaf] = int(ordered[hit[0]])
    return Hierarchy(renumber, replace(choice, k=len(set(renumber.values()))))


def summarize_parents(
    texts: list[str],
    vectors: np.ndarray,
    leaf_labels: np.ndarray,
    hierarchy: Hierarchy,
    leaf_summaries: Sequence[ClusterSummary] = (),
    goal: str | None = None,
    n_representatives: int = 8,
) -> tuple[tuple[ClusterSummary, ...], tuple[ClusterSummary, ...]]:
    """Summaries of the parents (level 1), and the leaf summaries with ``parent_id`` set."""
    parents = hierarchy.parent_labels(np.asarray(leaf_labels))
    n = len(parents)
    centres = centroids(vectors, parents)
    keywords = class_tfidf(texts, parents)
    result = []
    for p, centre in centres.items():
        members = np.flatnonzero(parents == p)
        result.append(
            ClusterSummary(
                cluster_id=p,
                size=len(members),
                share=len(members) / n if n else 0.0,
                keywords=keywords.get(p, ()),
                representatives=tuple(
                    texts[i]
                    for i in representatives(texts, vectors, members, centre, n_representatives)
                ),
                goal=goal,
                neighbours=tuple(hierarchy.children(p)),
            )
        )
    leaves = tuple(
        replace(s, parent_id=hierarchy.parent_of.get(s.cluster_id)) for s in leaf_summaries
    )
    return tuple(result), leaves
