"""Cold start (issue #13): an exact neighbour search instead of pynndescent's per-process compile,
the 2-D map reuses the clustering space's neighbour graph, and UMAP's numba code is compiled once
per machine into the data folder."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from clustering.reduce import UMAPReducer, exact_cosine_knn, fit_space_and_map
from tests.conftest import REPO


def blobs(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 32))
    points = centres[np.arange(n) % 3] + 0.1 * rng.normal(size=(n, 32))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


N_APPROXIMATE = 4200
"""From 4,096 points UMAP takes a neighbour graph (corpusmap's exact search, else pynndescent's)
and keeps it; below, it computes every distance, which costs little and leaves no graph."""


@pytest.fixture(scope="module")
def space():
    reducer = UMAPReducer(n_components=5)
    reducer.fit_transform(blobs(N_APPROXIMATE))
    return reducer


def test_the_map_reuses_the_neighbour_graph_of_the_clustering_space(space):
    X = blobs(N_APPROXIMATE)
    indices, dists, _ = space.knn_
    assert indices.shape == dists.shape == (len(X), 15)
    shared = UMAPReducer(n_components=2, min_dist=0.1, precomputed_knn=space.knn_)
    coords = shared.fit_transform(X)
    assert coords.shape == (len(X), 2) and np.isfinite(coords).all()
    assert shared.model_.knn_indices is not None  # UMAP took the graph, searched no neighbours
    assert np.array_equal(shared.knn_[0], indices)
    # The three blobs stay apart on the map: each blob's points lie nearer their own centre.
    centres = np.array([coords[np.arange(len(X)) % 3 == b].mean(0) for b in range(3)])
    nearest = np.argmin(((coords[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == np.arange(len(X)) % 3).mean() > 0.95


def test_both_layouts_at_once_give_the_coordinates_of_one_after_the_other(space):
    """The space and the map laid out on two threads (the epoch without the GIL) must equal the
    layouts made one after the other from the same graph, to the bit: a run reproduces."""
    import umap.layouts

    from clustering import umap_nogil

    X = blobs(N_APPROXIMATE)
    first = space.fit_transform(X)
    coords = UMAPReducer(n_components=2, min_dist=0.1, precomputed_knn=space.knn_).fit_transform(X)
    together = UMAPReducer(n_components=5), UMAPReducer(n_components=2, min_dist=0.1)
    both = fit_space_and_map(X, *together)
    assert umap.layouts._nb_optimize_layout_euclidean_single_epoch is umap_nogil.epoch_without_gil
    assert np.array_equal(both[0], first) and np.array_equal(both[1], coords)
    assert np.array_equal(together[1].knn_[0], space.knn_[0])  # one graph for both


def test_a_graph_of_other_points_is_not_used_and_small_sets_have_none(space):
    other = UMAPReducer(n_components=2, precomputed_knn=space.knn_)
    assert other.fit_transform(blobs(200, seed=1)).shape == (200, 2)
    assert other.model_.knn_indices is None  # searched its own neighbours
    assert other.knn_ is None  # 200 points: every distance computed, no graph kept


def test_the_exact_neighbour_search_finds_every_true_neighbour_in_umaps_form():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(3)
    X = rng.normal(size=(5000, 24)).astype(np.float32)  # ~5 rows per block: many blocks
    indices, dists, index = exact_cosine_knn(X, 10)
    assert index is None and indices.shape == dists.shape == (len(X), 10)
    assert np.array_equal(indices[:, 0], np.arange(len(X))) and not dists[:, 0].any()
    true_dists, true_indices = (
        NearestNeighbors(n_neighbors=10, metric="cosine", algorithm="brute").fit(X).kneighbors(X)
    )
    assert np.array_equal(indices, true_indices)
    assert np.allclose(dists, true_dists, atol=1e-5)
    assert np.all(np.diff(dists, axis=1) >= 0)  # nearest first


def test_the_exact_search_is_chosen_by_size_at_the_rate_measured_once_per_machine(tmp_path):
    from clustering import reduce

    reduce._exact_knn_rates.clear()
    try:
        rate = reduce.exact_knn_rate(tmp_path)
        kept = tmp_path / "calibration.json"
        assert rate > 0 and kept.exists()
        # Kept per CPU: a second read (another process) takes the file, not a new measurement.
        reduce._exact_knn_rates.clear()
        kept.write_text(kept.read_text().replace(repr(rate), "1000000.0"))
        assert reduce.exact_knn_rate(tmp_path) == 1_000_000.0
        # At 1 M similarities/s a 20 s budget holds 4,472 points: the choice is the size's.
        assert reduce.exact_knn_allowed(4_400) and not reduce.exact_knn_allowed(4_500)
        assert not reduce.exact_knn_allowed(4_400, budget_s=0.0)
    finally:
        reduce._exact_knn_rates.clear()


def test_umap_takes_the_exact_graph_from_4096_points(space):
    exact = exact_cosine_knn(blobs(N_APPROXIMATE), 15)
    assert exact is not None
    assert np.array_equal(space.model_.knn_indices, exact[0])


@pytest.mark.slow  # two fresh processes, the first compiling UMAP's code: ~1 min
def test_umaps_compiled_code_is_kept_in_the_data_folder(tmp_path):
    env = {**os.environ, "CORPUSMAP_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("NUMBA_CACHE_DIR", None)
    script = (
        "import time, numpy as np; from clustering.reduce import UMAPReducer; "
        "from tests.unit.test_reduce_cache import blobs; t = time.perf_counter(); "
        "UMAPReducer(n_components=5).fit_transform(blobs()); print(time.perf_counter() - t)"
    )
    seconds = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        seconds.append(float(done.stdout.split()[-1]))
    assert any((tmp_path / "numba").rglob("*.nbi"))  # the index of a cached function
    assert seconds[1] < seconds[0] * 0.7, seconds  # loaded, not compiled again


def test_the_warm_up_compiles_the_layout_without_the_gil_for_umaps_types():
    """In a fresh process (the app's server), the warm-up on a few points leaves the epoch
    that runs without the GIL compiled for the very types a run of 4,096+ texts passes it: the
    run's two layouts then add no second signature."""
    script = (
        "from clustering import umap_nogil; "
        "from clustering.reduce import UMAPReducer, fit_space_and_map, warm_up_layouts; "
        "from tests.unit.test_reduce_cache import N_APPROXIMATE, blobs; "
        "compiled = lambda: len(umap_nogil.epoch_without_gil.signatures); assert not compiled(); "
        "warm_up_layouts(blobs(64)); warmed = compiled(); "
        "fit_space_and_map(blobs(N_APPROXIMATE), UMAPReducer(5), UMAPReducer(2, min_dist=0.1)); "
        "print(warmed, compiled())"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["1", "1"]
