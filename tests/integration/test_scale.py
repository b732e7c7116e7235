"""The sample-and-assign path on real Banking77 vectors: UMAP and HDBSCAN fitted on a sample,
the rest assigned in batches, duplicates kept with their twins; and the GPU backend's fallback."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from clustering import PipelineConfig, gpu, run_pipeline
from clustering.errors import ConfigError
from clustering.metrics import external_metrics
from clustering.sample_assign import (
    SampledStages,
    choose_sample,
    map_sample,
    sampled_stages,
)
from clustering.types import NOISE
from corpusmap.request import stored_request

pytestmark = pytest.mark.slow  # 1,200 texts through several sampled runs; CI runs it

N_TEXTS = 1200
N_DUPLICATES = 150
SAMPLE = 500
BATCH = 300


@pytest.fixture(scope="module")
def corpus(banking_rows, embedder):
    """1,200 distinct Banking77 queries plus 150 repeated ones, with their vectors and labels."""
    rng = np.random.default_rng(0)
    rows = [banking_rows[i] for i in sorted(rng.choice(len(banking_rows), N_TEXTS, replace=False))]
    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows]
    vectors = embedder.embed(texts)
    repeat = rng.choice(N_TEXTS, N_DUPLICATES, replace=False)
    texts += [texts[i] for i in repeat]
    labels += [labels[i] for i in repeat]
    vectors = np.vstack([vectors, vectors[repeat]])
    return texts, labels, vectors, repeat


def _stages(texts, config, **kwargs):
    stages = SampledStages(texts, config, batch_size=BATCH, **kwargs)
    assert stages.n_distinct == N_TEXTS
    return stages


@pytest.fixture(scope="module")
def sampled(corpus):
    texts, _, vectors, _ = corpus
    stages = _stages(texts, PipelineConfig(sample_size=SAMPLE))
    space, coords = stages.reduce(vectors)
    return stages, space, coords, stages.cluster(space)


def test_every_row_gets_a_cluster_and_a_place_on_the_map(corpus, sampled):
    texts, labels, _, _ = corpus
    stages, space, coords, assignment = sampled
    assert space.shape == (len(texts), 5) and coords.shape == (len(texts), 2)
    assert np.isfinite(space).all() and np.isfinite(coords).all()
    assert len(assignment.labels) == len(texts)
    assert 5 <= assignment.n_clusters <= 77
    assert assignment.noise_share < 0.4
    assert ((assignment.probabilities >= 0) & (assignment.probabilities <= 1)).all()
    assert external_metrics(labels, assignment.labels)["nmi"] > 0.6
    assert stages.detail == {
        "sampled": True,
        "distinct": N_TEXTS,
        "sample": SAMPLE,
        "assigned": N_TEXTS - SAMPLE,
        "backend": "cpu",
    }


def test_assigned_texts_use_the_clusters_found_on_the_sample(sampled):
    stages, _, _, assignment = sampled
    fitted_ids = set(stages.clusterer_.ordered.values())
    rows = stages.distinct_rows
    in_sample = set(assignment.labels[rows[stages.sample]]) - {NOISE}
    assigned = set(assignment.labels[rows[stages.rest]]) - {NOISE}
    assert in_sample == fitted_ids
    assert assigned <= fitted_ids
    assert fitted_ids == set(range(len(fitted_ids)))  # 0..K-1, ordered by size on the sample


def test_duplicates_get_the_cluster_and_coordinates_of_their_twin(corpus, sampled):
    _, _, _, repeat = corpus
    _, space, coords, assignment = sampled
    copies = np.arange(N_TEXTS, N_TEXTS + N_DUPLICATES)
    assert (assignment.labels[copies] == assignment.labels[repeat]).all()
    np.testing.assert_array_equal(coords[copies], coords[repeat])
    np.testing.assert_array_equal(space[copies], space[repeat])


def test_same_seed_same_result(corpus, sampled):
    texts, _, vectors, _ = corpus
    _, _, coords, assignment = sampled
    again = _stages(texts, PipelineConfig(sample_size=SAMPLE))
    space2, coords2 = again.reduce(vectors)
    np.testing.assert_array_equal(again.cluster(space2).labels, assignment.labels)
    np.testing.assert_array_equal(coords2, coords)


def test_run_pipeline_takes_the_sampled_path_above_sample_size(corpus, embedder):
    texts, labels, vectors, _ = corpus
    result = run_pipeline(
        texts, embedder, PipelineConfig(sample_size=SAMPLE), vectors=vectors, truth=labels
    )
    reduce = next(t for t in result.timings if t.stage == "reduce")
    assert reduce.detail["sampled"] is True and reduce.detail["sample"] == SAMPLE
    assert len(result.assignment.labels) == len(result.coords) == len(texts)
    assert result.summaries and result.labels and result.metrics["nmi"] > 0.6


def test_small_corpora_keep_the_whole_fit(corpus):
    texts, _, _, _ = corpus
    assert sampled_stages(texts, PipelineConfig(sample_size=None)) is None
    assert sampled_stages(texts, PipelineConfig(sample_size=5000)) is None
    # More rows than the sample size but not more distinct texts: every distinct text is fitted
    # once, nothing is left to assign, duplicates are broadcast.
    stages = sampled_stages(texts, PipelineConfig(sample_size=N_TEXTS))
    assert stages is not None and len(stages.sample) == N_TEXTS and len(stages.rest) == 0


def test_kmeans_assigns_every_text_to_the_nearest_centre(corpus):
    texts, _, vectors, _ = corpus
    stages = _stages(texts, PipelineConfig(sample_size=SAMPLE, n_clusters=12))
    assignment = stages.cluster(stages.reduce(vectors)[0])
    assert set(assignment.labels) == set(range(12))
    assert stages.clusterer_.kind == "kmeans"


def test_reassign_outliers_leaves_no_noise(corpus):
    texts, _, vectors, _ = corpus
    stages = _stages(texts, PipelineConfig(sample_size=SAMPLE, reassign_outliers=True))
    assignment = stages.cluster(stages.reduce(vectors)[0])
    assert (assignment.labels != NOISE).all()


def test_min_cluster_size_is_scaled_to_the_sample(corpus):
    texts, _, _, _ = corpus
    stages = _stages(texts, PipelineConfig(sample_size=SAMPLE, min_cluster_size=24))
    assert stages._min_cluster_size(SAMPLE) == 10  # 24 * 500 / 1200


def test_choose_sample_is_seeded_sorted_and_distinct():
    a = choose_sample(10_000, 300, 42)
    assert np.array_equal(a, choose_sample(10_000, 300, 42))
    assert len(set(a.tolist())) == 300 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, choose_sample(10_000, 300, 43))
    assert np.array_equal(choose_sample(5, 300, 42), np.arange(5))


def test_map_sample_keeps_small_clusters_visible():
    labels = np.concatenate([np.zeros(50_000), np.ones(30), np.full(5, 2), np.full(1000, NOISE)])
    chosen = map_sample(labels.astype(np.int64), size=2_000)
    assert len(chosen) <= 2_000 + 3 * 20
    assert (np.diff(chosen) > 0).all()
    picked = labels[chosen]
    assert (picked == 1).sum() >= 20 and (picked == 2).sum() == 5 and (picked == NOISE).sum() >= 20
    assert np.array_equal(map_sample(np.zeros(10, dtype=np.int64)), np.arange(10))


def test_bad_sample_size_is_refused():
    with pytest.raises(ConfigError, match="sample_size"):
        PipelineConfig(sample_size=10).validate()


def test_gpu_backend_falls_back_to_the_cpu_without_cuml(monkeypatch):
    if gpu.cuml_available():
        pytest.skip("cuML and a GPU are here: the fallback cannot be seen")
    monkeypatch.delenv(gpu.BACKEND_ENV, raising=False)
    assert gpu.resolve_backend() == "cpu"
    assert gpu.resolve_backend("auto") == "cpu"
    with pytest.raises(ConfigError, match="cuml"):
        gpu.resolve_backend("cuml")
    monkeypatch.setenv(gpu.BACKEND_ENV, "cuml")
    with pytest.raises(ConfigError, match="pip install cuml"):
        gpu.resolve_backend()
    with pytest.raises(ConfigError, match="backend must be"):
        gpu.resolve_backend("tpu")


def test_cli_run_with_a_sample_size(banking_slice_path, tmp_path):
    from corpusmap.cli import main

    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(banking_slice_path),
            "--out",
            str(out),
            "--sample-size",
            "300",
            "--db",
            str(tmp_path / "cli.db"),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    from storage import Store

    run = Store.open(str(tmp_path / "cli.db")).get_run(json.loads(result.stdout)["run_id"])
    assert stored_request(run).pipeline.sample_size == 300
    assert run.status == "completed"
    assert len(pd.read_csv(out)) == 600


def test_a_few_distinct_texts_in_many_rows():
    texts = [f"text number {i % 7}" for i in range(400)]
    vectors = (
        np.random.default_rng(0)
        .normal(size=(7, 16))
        .astype(np.float32)[[i % 7 for i in range(400)]]
    )
    stages = sampled_stages(texts, PipelineConfig(sample_size=100))
    assert stages is not None and stages.n_distinct == 7
    space, coords = stages.reduce(vectors)
    assignment = stages.cluster(space)
    assert space.shape == (400, 5) and coords.shape == (400, 2)
    assert len(set(assignment.labels.tolist())) == 1
