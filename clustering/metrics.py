"""Quality of a clustering: against gold labels (NMI, ARI, Hungarian accuracy) or, with none,
silhouette in the clustering space. Noise (-1) counts as a cluster of its own everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm

from clustering.types import NOISE

SILHOUETTE_SAMPLE = 10_000


def clustering_accuracy(
    truth: Sequence[Any] | np.ndarray, predicted: Sequence[int] | np.ndarray
) -> float:
    """Best one-to-one matching of clusters to classes (Hungarian), as a share of texts."""
    truth_ids, t = np.unique(np.asarray(truth, dtype=str), return_inverse=True)
    pred_ids, p = np.unique(np.asarray(predicted), return_inverse=True)
    table = np.zeros((len(pred_ids), len(truth_ids)), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / max(len(t), 1))


def external_metrics(
    truth: Sequence[Any], predicted: Sequence[int] | np.ndarray
) -> dict[str, float]:
    truth_arr = np.asarray(truth, dtype=str)
    pred = np.asarray(predicted)
    return {
        "nmi": float(skm.normalized_mutual_info_score(truth_arr, pred)),
        "ari": float(skm.adjusted_rand_score(truth_arr, pred)),
        "acc": clustering_accuracy(truth_arr, pred),
    }


def silhouette(X: np.ndarray, labels: np.ndarray, random_state: int = 0) -> dict[str, Any]:
    """Overall and per-cluster silhouette of the clustered (non-noise) points, on a sample."""
    labels = np.asarray(labels)
    keep = labels != NOISE
    ids = np.unique(labels[keep])
    if len(ids) < 2 or keep.sum() <= len(ids):
        return {"silhouette": None, "silhouette_per_cluster": {}}
    idx = np.flatnonzero(keep)
    if len(idx) > SILHOUETTE_SAMPLE:
        idx = np.sort(
            np.random.default_rng(random_state).choice(idx, SILHOUETTE_SAMPLE, replace=False)
        )
    values = skm.silhouette_samples(X[idx], labels[idx])
    per = {int(c): float(values[labels[idx] == c].mean()) for c in np.unique(labels[idx])}
    return {"silhouette": float(values.mean()), "silhouette_per_cluster": per}


def summary_metrics(labels: np.ndarray) -> dict[str, Any]:
    labels = np.asarray(labels)
    return {
        "n_clusters": int(len(np.unique(labels[labels != NOISE]))),
        "noise_share": float(np.mean(labels == NOISE)) if len(labels) else 0.0,
    }
