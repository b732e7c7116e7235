"""Dimension reduction: UMAP (cosine, seeded) to a clustering space and to 2-D for the map."""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)

UMAP_MIN_SAMPLES = 16
"""Below this many points UMAP's spectral layout is unreliable: PCA stands in."""


class IdentityReducer:
    """Skips reduction: clustering runs on the vectors as they are."""

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float32)


class PCAReducer:
    """Principal components; the fallback for tiny corpora and a cheap 2-D layout."""

    def __init__(self, n_components: int = 2, random_state: int | None = 42) -> None:
        self.n_components = n_components
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n, d = X.shape
        out = np.zeros((n, self.n_components), dtype=np.float32)
        k = min(self.n_components, n - 1, d)
        if k <= 0:
            return out
        from sklearn.decomposition import PCA

        out[:, :k] = PCA(n_components=k, random_state=self.random_state).fit_transform(X)
        return out


class UMAPReducer:
    """UMAP with cosine distance, seeded so the same input gives the same layout."""

    def __init__(
        self,
        n_components: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        metric: str = "cosine",
        random_state: int | None = 42,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        if n < UMAP_MIN_SAMPLES:
            log.info("%d points: too few for UMAP, using PCA", n)
            return PCAReducer(self.n_components, self.random_state).fit_transform(X)
        self.model_ = make_umap(
            n_components=self.n_components,
            n_neighbors=min(self.n_neighbors, n - 1),
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
        )
        with warnings.catch_warnings():
            # "n_jobs overridden to 1 by setting random_state": expected, we want determinism.
            warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
            return np.asarray(self.model_.fit_transform(X), dtype=np.float32)


def make_umap(**params: object) -> object:
    import umap

    return umap.UMAP(low_memory=True, **params)
