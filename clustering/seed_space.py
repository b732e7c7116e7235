"""The space seeded clustering runs in (``constrained_space``): the seeds' discriminant axes
(LDA) when they cover the clusters asked for, a within-class whitening that keeps every
direction otherwise, UMAP's supervised mode, plain UMAP, or the raw vectors."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from clustering.errors import ConstraintError
from clustering.reduce import UMAP_MIN_SAMPLES, PCAReducer, make_umap

if TYPE_CHECKING:
    from clustering.constraints import Constraints

log = logging.getLogger(__name__)

FREE = -1
"""Seed id of a row without a seed label."""
TARGET_WEIGHT = 0.5
"""UMAP's ``target_weight``: 0 ignores the seeds, 1 keeps only them; 0.5 is its default."""
SPACES = ("auto", "lda", "whiten", "supervised_umap", "umap", "raw")
LDA_COVERAGE = 0.9
"""``auto`` projects on the seeds' discriminant axes (LDA) only when the seed classes are at
least this share of the clusters asked for: LDA keeps C-1 directions, so classes without seeds
would collapse (measured on Banking77 with 10 of 77 classes seeded: NMI 0.63 against 0.79 for
whitening)."""
WHITEN_ALPHA = 0.1
"""Ridge added to the within-class covariance before whitening, as a share of its mean eigenvalue."""


def _unit_rows(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def lda_space(vectors: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The seeds' linear discriminant axes (shrunk covariance), rows unit length."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    seeded = seeds != FREE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "variables are collinear": expected with few seeds
        model = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto")
        model.fit(vectors[seeded], seeds[seeded])
        return _unit_rows(np.asarray(model.transform(vectors), dtype=np.float64))


def whitened_space(
    vectors: np.ndarray, seeds: np.ndarray, alpha: float = WHITEN_ALPHA
) -> np.ndarray:
    """Every direction kept, each scaled down by how much seeds of one class spread along it
    (within-class whitening, Ledoit-Wolf shrunk), rows unit length."""
    from sklearn.covariance import ledoit_wolf

    seeded = np.flatnonzero(seeds != FREE)
    means = {
        int(s): vectors[seeded[seeds[seeded] == s]].mean(axis=0) for s in np.unique(seeds[seeded])
    }
    residuals = vectors[seeded] - np.vstack([means[int(s)] for s in seeds[seeded]])
    covariance, _ = ledoit_wolf(residuals)
    eigenvalues, basis = np.linalg.eigh(covariance)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    scale = (eigenvalues + alpha * max(float(eigenvalues.mean()), 1e-12)) ** -0.5
    return _unit_rows(vectors @ (basis * scale) @ basis.T)


def constrained_space(
    vectors: np.ndarray,
    constraints: Constraints,
    method: str = "auto",
    *,
    n_clusters: int | None = None,
    n_components: int = 5,
    n_neighbors: int = 15,
    random_state: int | None = 42,
) -> tuple[np.ndarray, str]:
    """The space constrained k-means runs in, and the method used (see ``SPACES``)."""
    from clustering.reduce import UMAPReducer

    if method not in SPACES:
        raise ConstraintError(f"unknown space {method!r}; use one of {', '.join(SPACES)}")
    X = np.asarray(vectors, dtype=np.float64)
    n_classes = constraints.n_seed_classes
    if method == "auto":
        if n_classes >= 2 and constraints.n_seeds > n_classes:
            covers = n_clusters is not None and n_classes >= LDA_COVERAGE * n_clusters
            method = "lda" if covers else "whiten"
        else:
            method = "umap"
    if method in ("lda", "whiten") and (n_classes < 2 or constraints.n_seeds <= n_classes):
        log.info(
            "too few seeds for %s (%d in %d classes): using UMAP",
            method,
            constraints.n_seeds,
            n_classes,
        )
        method = "umap"
    if method == "lda":
        try:
            return lda_space(X, constraints.seeds), method
        except np.linalg.LinAlgError as err:
            # A handful of seeds can leave the shrunk covariance singular: whitening needs no
            # inverse and keeps every direction.
            log.info(
                "LDA failed on %d seeds (%s): using within-class whitening",
                constraints.n_seeds,
                err,
            )
            method = "whiten"
    if method == "whiten":
        return whitened_space(X, constraints.seeds), method
    if method == "supervised_umap":
        space = supervised_reduce(
            X,
            constraints.seeds,
            n_components=n_components,
            n_neighbors=n_neighbors,
            random_state=random_state,
        )
        return np.asarray(space, dtype=np.float64), method
    if method == "umap":
        reducer = UMAPReducer(
            n_components=n_components, n_neighbors=n_neighbors, random_state=random_state
        )
        return np.asarray(reducer.fit_transform(X), dtype=np.float64), method
    return _unit_rows(X), method


def supervised_reduce(
    vectors: np.ndarray,
    seeds: np.ndarray,
    *,
    n_components: int = 5,
    n_neighbors: int = 15,
    min_dist: float = 0.0,
    random_state: int | None = 42,
    target_weight: float = TARGET_WEIGHT,
) -> np.ndarray:
    """UMAP's supervised mode: seed classes as a categorical target, -1 for free texts."""
    X = np.asarray(vectors, dtype=np.float32)
    n = len(X)
    if n < UMAP_MIN_SAMPLES:
        return PCAReducer(n_components, random_state).fit_transform(X)
    model: Any = make_umap(
        n_components=n_components,
        n_neighbors=min(n_neighbors, n - 1),
        min_dist=min_dist,
        metric="cosine",
        random_state=random_state,
        target_metric="categorical",
        target_weight=target_weight,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        return np.asarray(model.fit_transform(X, y=np.asarray(seeds, dtype=np.int64)), np.float32)
