"""Dimension reduction: UMAP (cosine, seeded) to a clustering space and to 2-D for the map."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from clustering.embed import data_folder

log = logging.getLogger(__name__)

UMAP_MIN_SAMPLES = 16
"""Below this many points UMAP's spectral layout is unreliable: PCA stands in."""


UMAP_EXACT_BELOW = 4096
"""umap-learn searches neighbours exactly below this many points, with pynndescent above."""
EXACT_KNN_BUDGET_S = 20.0
"""Longest an exact neighbour search may be expected to take before pynndescent does the search
instead. pynndescent compiles its search anew in every process (its functions are built per
metric, so numba's disk cache cannot keep them): 31 s measured on 2 cores for a search that then
takes 1.3 s on 20,000 vectors. The exact search is one matrix product and one top-k per block
(5 s for 20,000 vectors with numpy's argpartition on 2 quiet cores; torch's topk ranks 10x
faster), finds every true neighbour (pynndescent: 97.7% of them) and is deterministic."""
EXACT_KNN_BLOCK_ENTRIES = 1 << 25
"""Similarities held at once by the exact search (128 MB of float32)."""
EXACT_KNN_RATE = "exact_knn_topk"
"""The exact search's measured rate, kept with the encoder's calibrations (``calibration.json``
in the data folder's ``models/``) under this name."""
_exact_knn_rates: dict[str, float] = {}


def exact_knn_allowed(n: int, budget_s: float | None = None) -> bool:
    """Whether the exact search of ``n`` points is expected within ``budget_s`` (default
    ``EXACT_KNN_BUDGET_S``) at this machine's rate (``exact_knn_rate``): a function of the size
    and the machine, never of how busy the machine is during a run, so a run reproduces."""
    budget = EXACT_KNN_BUDGET_S if budget_s is None else budget_s
    return n * n <= budget * exact_knn_rate()


def exact_knn_rate(folder: Path | None = None) -> float:
    """Similarities per second the exact search computes and ranks on this machine (all of
    torch's threads): measured once per machine (~0.5 s, the faster of two blocks of 2,048 x
    8,192) and kept in ``folder`` (default the data folder's ``models/``) by the encoder's
    ``CalibrationCache``."""
    import time

    import torch

    from clustering.precision import Calibration, CalibrationCache, read_cpu_info

    store = CalibrationCache(folder or data_folder() / "models")
    versions = f"torch={torch.__version__}|threads={torch.get_num_threads()}"
    key = store.key(read_cpu_info(), EXACT_KNN_RATE, versions)
    if key in _exact_knn_rates:
        return _exact_knn_rates[key]

    def measure() -> Calibration:
        X = np.random.default_rng(0).normal(size=(8192, 384)).astype(np.float32)
        unit = torch.from_numpy(X / np.linalg.norm(X, axis=1, keepdims=True))
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            _rank_block(unit, 0, 2048, 15)
            seconds.append(time.perf_counter() - start)
        rate = 2048 * 8192 / max(min(seconds), 1e-9)
        log.info("exact neighbour search ranks %.0f M similarities/s here", rate / 1e6)
        return Calibration({EXACT_KNN_RATE: rate}, seconds=round(sum(seconds), 2))

    rate = store.get_or_measure(key, measure).rates.get(EXACT_KNN_RATE, 0.0)
    _exact_knn_rates[key] = rate
    return rate


def _rank_block(unit: Any, first: int, block: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest rows (indices, cosine distances, nearest first) of rows ``first`` to
    ``first + block`` of ``unit`` (a torch tensor of unit rows), each row its own nearest.
    torch's ``topk`` ranks on every thread, 10x numpy's single-threaded ``argpartition``."""
    import torch

    similarity = unit[first : first + block] @ unit.T
    rows = torch.arange(similarity.shape[0])
    similarity[rows, rows + first] = float("inf")
    top_similarity, top = torch.topk(similarity, k, dim=1)  # sorted, nearest first
    distances = (1.0 - top_similarity).clamp_(0.0, 2.0)
    return top.numpy().astype(np.int32), distances.numpy()


def exact_cosine_knn(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, None]:
    """The ``k`` nearest neighbours of every row by cosine distance, each row its own first, in
    UMAP's ``precomputed_knn`` form (indices, distances, no search index): one matrix product
    and one top-k per block of rows, each on all of torch's threads."""
    import time

    import torch

    n = len(X)
    unit = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), np.float32(1e-12))
    tensor = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
    block = max(1, min(n, EXACT_KNN_BLOCK_ENTRIES // max(n, 1)))
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, n, block):
            rows = slice(first, first + block)
            indices[rows], distances[rows] = _rank_block(tensor, first, block, k)
    distances[:, 0] = 0.0
    log.info("exact neighbour search of %d points in %.1f s", n, time.perf_counter() - start)
    return indices, distances, None


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

    From ``UMAP_EXACT_BELOW`` points on, the neighbours come from ``exact_cosine_knn`` where this
    machine's rate puts it within ``EXACT_KNN_BUDGET_S`` (pynndescent's otherwise). After
    ``fit_transform``, ``knn_`` holds the nearest-neighbour graph it used (indices,
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

    def neighbour_graph(self, X: np.ndarray) -> tuple[Any, ...] | None:
        """The graph this reducer lays ``X`` out from: the precomputed one where it fits ``X``,
        the exact search's where that is allowed, else None (UMAP searches itself)."""
        n = len(X)
        knn = self.precomputed_knn
        if knn is not None and (len(knn[0]) != n or knn[0].shape[1] < min(self.n_neighbors, n - 1)):
            knn = None  # another set of points, or too few neighbours: search again
        if (
            knn is None
            and self.metric == "cosine"
            and n >= UMAP_EXACT_BELOW
            and exact_knn_allowed(n)
        ):
            knn = exact_cosine_knn(np.asarray(X, dtype=np.float32), min(self.n_neighbors, n - 1))
        return knn

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        self.knn_: tuple[Any, ...] | None = None
        if n < UMAP_MIN_SAMPLES:
            log.info("%d points: too few for UMAP, using PCA", n)
            return PCAReducer(self.n_components, self.random_state).fit_transform(X)
        knn = self.neighbour_graph(X)
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


def fit_space_and_map(
    X: np.ndarray, space: UMAPReducer, map_: UMAPReducer
) -> tuple[np.ndarray, np.ndarray]:
    """Both layouts of the same points, from one neighbour graph.

    Where the graph is known before the layouts (the exact search), and the machine has two
    cores, the two are laid out at once on two threads (``clustering.umap_nogil``: the layout
    epoch runs without the GIL), with the same coordinates as one after the other. Otherwise the
    map takes the space's graph once the space is laid out."""
    X = np.asarray(X, dtype=np.float32)
    knn = space.neighbour_graph(X) if len(X) >= UMAP_MIN_SAMPLES else None
    space.precomputed_knn = knn
    if knn is None or (os.cpu_count() or 1) < 2 or not enable_layout_threads():
        coords_space = space.fit_transform(X)
        map_.precomputed_knn = space.knn_
        return coords_space, map_.fit_transform(X)
    from concurrent.futures import ThreadPoolExecutor

    map_.precomputed_knn = knn
    with ThreadPoolExecutor(max_workers=2) as pool:
        laid_out = pool.submit(space.fit_transform, X)
        coords = map_.fit_transform(X)  # here, while the pool's thread lays out the space
        return laid_out.result(), coords


def warm_up_layouts(X: np.ndarray) -> None:
    """Compile (or load from the numba cache) what a run of 4,096 texts or more lays out with, on
    a few points: the two layouts at once from a precomputed graph (the first such run on a new
    machine otherwise compiles it, ~20 s on 2 cores)."""
    X = np.asarray(X, dtype=np.float32)
    if len(X) < UMAP_MIN_SAMPLES:
        return
    knn = exact_cosine_knn(X, min(15, len(X) - 1))
    fit_space_and_map(
        X, UMAPReducer(n_components=5, precomputed_knn=knn), UMAPReducer(2, min_dist=0.1)
    )


def enable_layout_threads() -> bool:
    """Whether two UMAP layouts can run at once (``clustering.umap_nogil``)."""
    enable_numba_cache()
    from clustering import umap_nogil

    return umap_nogil.install()


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
