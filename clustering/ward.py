"""Ward's agglomeration over whole clusters and the variance ratio of every cut of it
(``clustering.granularity`` step 2; a Ward merge cost is exactly the rise in within-cluster sum
of squares, so the Calinski-Harabasz ratio of every cut comes from the merge costs alone)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clustering.types import NOISE


@dataclass(frozen=True)
class WardMerges:
    """The full Ward agglomeration of k clusters: ``pairs[i]`` is the i-th merge (the second id
    is folded into the first) and ``costs[i]`` its rise in within-cluster sum of squares."""

    ids: np.ndarray
    pairs: np.ndarray
    costs: np.ndarray
    within: float
    """Within-cluster sum of squares of the k starting clusters."""
    total: float
    """Total sum of squares of the clustered points around their mean."""
    n_points: int

    @property
    def n_start(self) -> int:
        return len(self.ids)


def ward_merges(X: np.ndarray, labels: np.ndarray) -> WardMerges:
    """Ward's agglomeration over the clusters of ``labels`` (noise ignored), each weighted by its
    size, by the Lance-Williams update on centroids: exact Ward between the whole clusters."""
    X = np.asarray(X, dtype=np.float64)
    keep = labels != NOISE
    ids, inverse, sizes = np.unique(labels[keep], return_inverse=True, return_counts=True)
    k = len(ids)
    points = X[keep]
    if k == 0:
        return WardMerges(ids, np.zeros((0, 2), np.int64), np.zeros(0), 0.0, 0.0, 0)
    sums = np.zeros((k, X.shape[1]))
    np.add.at(sums, inverse, points)
    centroids = sums / sizes[:, None]
    within = float(((points - centroids[inverse]) ** 2).sum())
    total = float(((points - points.mean(axis=0)) ** 2).sum())

    n = sizes.astype(np.float64)
    alive = np.ones(k, dtype=bool)
    cost = _ward_cost(centroids, n, centroids, n)
    np.fill_diagonal(cost, np.inf)
    pairs = np.zeros((max(k - 1, 0), 2), dtype=np.int64)
    costs = np.zeros(max(k - 1, 0))
    for step in range(k - 1):
        i, j = divmod(int(np.argmin(cost)), k)
        i, j = min(i, j), max(i, j)
        pairs[step] = (i, j)
        costs[step] = cost[i, j]
        centroids[i] = (n[i] * centroids[i] + n[j] * centroids[j]) / (n[i] + n[j])
        n[i] += n[j]
        alive[j] = False
        cost[j, :] = np.inf
        cost[:, j] = np.inf
        row = _ward_cost(centroids[i : i + 1], n[i : i + 1], centroids, n)[0]
        row[~alive] = np.inf
        row[i] = np.inf
        cost[i, :] = row
        cost[:, i] = row
    return WardMerges(ids, pairs, costs, within, total, int(keep.sum()))


def _ward_cost(a: np.ndarray, na: np.ndarray, b: np.ndarray, nb: np.ndarray) -> np.ndarray:
    """Rise in within-cluster sum of squares when clusters a and b merge: na nb/(na+nb) |a-b|^2."""
    d = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return d * (na[:, None] * nb[None, :]) / (na[:, None] + nb[None, :])


def calinski_harabasz_path(merges: WardMerges) -> dict[int, float]:
    """Calinski-Harabasz ratio of every cut K (2..k) of the agglomeration, from merge costs."""
    k0, n = merges.n_start, merges.n_points
    scores: dict[int, float] = {}
    within = merges.within
    for k in range(k0, 1, -1):
        if k < n:
            between = max(merges.total - within, 0.0)
            scores[k] = (between / (k - 1)) / (within / (n - k)) if within > 0 else math.inf
        step = k0 - k
        if step < len(merges.costs):
            within += float(merges.costs[step])
    return scores


def cut_merges(labels: np.ndarray, merges: WardMerges, n_clusters: int) -> np.ndarray:
    """``labels`` with the first ``k - n_clusters`` merges applied; noise stays noise."""
    return cuts_of_merges(labels, merges, [n_clusters])[n_clusters]


def cuts_of_merges(
    labels: np.ndarray, merges: WardMerges, ks: list[int] | tuple[int, ...]
) -> dict[int, np.ndarray]:
    """``cut_merges`` at every K of ``ks`` in one pass over the merges (union-find; a merged
    group keeps the id of its first cluster). Labels that are noise or not in the tree are -1."""
    k0 = merges.n_start
    labels = np.asarray(labels, dtype=np.int64)
    pos = np.searchsorted(merges.ids, labels) if k0 else np.zeros(len(labels), dtype=np.int64)
    pos = np.minimum(pos, max(k0 - 1, 0))
    known = (labels != NOISE) & (merges.ids[pos] == labels) if k0 else np.zeros(len(labels), bool)
    parent = list(range(k0))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    out: dict[int, np.ndarray] = {}
    step = 0
    for k in sorted(set(ks), reverse=True):
        while step < min(len(merges.pairs), max(0, k0 - k)):
            i, j = merges.pairs[step]
            parent[find(int(j))] = find(int(i))
            step += 1
        roots = np.array([find(x) for x in range(k0)], dtype=np.int64)
        cut = np.full(len(labels), NOISE, dtype=np.int64)
        if k0:
            cut[known] = merges.ids[roots[pos[known]]]
        out[k] = cut
    return out


def choose_n_clusters(merges: WardMerges) -> int:
    """The cut with the highest Calinski-Harabasz ratio (1 when there is nothing to cut)."""
    scores = calinski_harabasz_path(merges)
    if not scores:
        return merges.n_start
    return max(scores, key=lambda k: (scores[k], k))


def nearest_centroid_labels(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``labels`` with every noise point given the cluster of the nearest centroid."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    noise = labels == NOISE
    if not noise.any() or noise.all():
        return labels
    ids = np.unique(labels[~noise])
    centroids = np.vstack([X[labels == c].mean(axis=0) for c in ids])
    nearest = np.empty(int(noise.sum()), dtype=np.int64)
    points = X[noise]
    for start in range(0, len(points), 4096):  # bounded memory: 4096 x k distances at a time
        block = points[start : start + 4096]
        d = ((block[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
        nearest[start : start + len(block)] = np.argmin(d, axis=1)
    labels[noise] = ids[nearest]
    return labels


def best_cut(scores: dict[int, float]) -> int:
    return max(scores, key=lambda k: (scores[k], k))
