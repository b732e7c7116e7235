"""Dimension reduction: UMAP (cosine, seeded) to a clustering space and to 2-D for the map."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from clustering.embed import data_folder

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
    """UMAP with cosine distance, seeded so the same input gives the same layout.

    After ``fit_transform``, ``knn_`` holds the nearest-neighbour graph it built (indices,
    distances, search index), which a second reducer of the same points takes as
    ``precomputed_knn``: the 2-D map then reuses the clustering space's graph instead of a second
    nearest-neighbour search, the costliest step of a fit after the layout itself.
    """

    def __init__(
        self,
        n_components: int = 5,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        metric: str = "cosine",
        random_state: int | None = 42,
        precomputed_knn: tuple[Any, ...] | None = None,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.random_state = random_state
        self.precomputed_knn = precomputed_knn

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        self.knn_: tuple[Any, ...] | None = None
        if n < UMAP_MIN_SAMPLES:
            log.info("%d points: too few for UMAP, using PCA", n)
            return PCAReducer(self.n_components, self.random_state).fit_transform(X)
        knn = self.precomputed_knn
        if knn is not None and (len(knn[0]) != n or knn[0].shape[1] < min(self.n_neighbors, n - 1)):
            knn = None  # another set of points, or too few neighbours: search again
        self.model_ = make_umap(
            n_components=self.n_components,
            n_neighbors=min(self.n_neighbors, n - 1),
            min_dist=self.min_dist,
            metric=self.metric,
            random_state=self.random_state,
            # Copies: UMAP marks disconnected neighbours in place.
            precomputed_knn=(knn[0].copy(), knn[1].copy(), *knn[2:]) if knn else (None, None, None),
        )
        with warnings.catch_warnings():
            # "n_jobs overridden to 1 by setting random_state": expected, we want determinism.
            warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
            # A precomputed graph leaves UMAP unable to transform new points: we never do.
            warnings.filterwarnings("ignore", message=".*precomputed.*", category=UserWarning)
            out = np.asarray(self.model_.fit_transform(X), dtype=np.float32)
        indices = getattr(self.model_, "_knn_indices", None)
        dists = getattr(self.model_, "_knn_dists", None)
        self.knn_ = (
            (indices, dists, getattr(self.model_, "_knn_search_index", None))
            if indices is not None and dists is not None
            else None
        )
        return out


def make_umap(**params: Any) -> Any:
    enable_numba_cache()
    import umap

    return umap.UMAP(low_memory=True, **params)


_numba_cache_enabled = False


def enable_numba_cache(folder: str | Path | None = None) -> int:
    """Keep UMAP's compiled numba code on disk, so a new process loads it instead of compiling
    it again (~30 s on 2 cores). pynndescent's functions are declared ``cache=True`` already;
    umap-learn's mostly are not, so their dispatchers get the cache numba gives ``cache=True``
    (``enable_caching``), in ``folder`` (default ``$CORPUSMAP_HOME/numba``; ``NUMBA_CACHE_DIR``
    wins where set). Returns the number of functions that gained a cache; idempotent."""
    global _numba_cache_enabled
    if _numba_cache_enabled:
        return 0
    _numba_cache_enabled = True
    from numba.core import config
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    if not config.CACHE_DIR:  # type: ignore[attr-defined]
        config.CACHE_DIR = str(Path(folder) if folder else data_folder() / "numba")  # type: ignore[attr-defined]
    import umap.layouts
    import umap.umap_
    import umap.utils

    count = 0
    for module in (umap.umap_, umap.layouts, umap.utils):
        for value in vars(module).values():
            if isinstance(value, Dispatcher) and isinstance(
                getattr(value, "_cache", None), NullCache
            ):
                value.enable_caching()
                count += 1
    log.info("numba cache in %s for %d umap functions", config.CACHE_DIR, count)  # type: ignore[attr-defined]
    return count
