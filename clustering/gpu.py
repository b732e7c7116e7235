"""cuML's UMAP and HDBSCAN on a GPU when ``cuml`` is importable; umap-learn and hdbscan otherwise.

cuML is an optional extra (``pip install cuml-cu12`` from NVIDIA's index, matching the CUDA
driver); nothing here imports it unless it is installed and a CUDA device answers. Set
``CORPUSMAP_BACKEND=cpu`` to keep the CPU packages on a GPU machine (``cuml`` forces cuML).

Both backends give estimators with the same surface: ``fit_transform``/``transform`` for the
reducers, ``fit`` then ``labels_``/``probabilities_`` and :func:`approximate_predict` for
HDBSCAN, so the sample-and-assign path (``clustering.sample_assign``) never asks which it got.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from functools import lru_cache
from typing import Any

import numpy as np

from clustering.errors import ConfigError

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cpu", "cuml")
BACKEND_ENV = "CORPUSMAP_BACKEND"


@lru_cache(maxsize=1)
def cuml_available() -> bool:
    """True when cuML imports and sees at least one CUDA device."""
    if importlib.util.find_spec("cuml") is None:
        return False
    try:
        import cupy

        count = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as err:  # no driver, no device, broken CUDA install: all mean "no GPU"
        log.info("cuml is installed but no CUDA device answers (%s): using the CPU", err)
        return False
    return count > 0


def resolve_backend(backend: str | None = None) -> str:
    """``auto`` (the default, or ``$CORPUSMAP_BACKEND``) picks ``cuml`` when it can run."""
    chosen = (backend or os.environ.get(BACKEND_ENV) or "auto").lower()
    if chosen not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {chosen!r}")
    if chosen == "auto":
        return "cuml" if cuml_available() else "cpu"
    if chosen == "cuml" and not cuml_available():
        raise ConfigError(
            "the cuml backend needs RAPIDS cuML and a CUDA GPU: pip install cuml-cu12 "
            "--extra-index-url=https://pypi.nvidia.com, or use --backend cpu"
        )
    return chosen


def make_umap(
    backend: str,
    *,
    n_components: int,
    n_neighbors: int,
    min_dist: float,
    random_state: int | None,
    metric: str = "cosine",
) -> Any:
    """An unfitted UMAP of the backend; cosine metric, seeded."""
    if backend == "cuml":
        from cuml.manifold import UMAP as CumlUMAP

        return CumlUMAP(
            n_components=n_components,
            n_neighbors=n_neighbors,
            min_dist=min_dist,
            metric=metric,
            random_state=random_state,
            output_type="numpy",
        )
    import umap

    return umap.UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=random_state,
        low_memory=True,
    )


def fit_transform(model: Any, X: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # "n_jobs overridden to 1 by setting random_state": expected, we want determinism.
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        return np.asarray(model.fit_transform(np.asarray(X, dtype=np.float32)), dtype=np.float32)


def transform(model: Any, X: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
        return np.asarray(model.transform(np.asarray(X, dtype=np.float32)), dtype=np.float32)


def approximate_predict(model: Any, X: np.ndarray, backend: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw HDBSCAN labels (as in ``model.labels_``) and strengths of new points."""
    if backend == "cuml":
        from cuml.cluster.hdbscan import approximate_predict as cuml_predict

        labels, strengths = cuml_predict(model, np.asarray(X, dtype=np.float32))
    else:
        import hdbscan

        labels, strengths = hdbscan.approximate_predict(model, np.asarray(X, dtype=np.float64))
    return np.asarray(labels, dtype=np.int64), np.asarray(strengths, dtype=np.float64)
