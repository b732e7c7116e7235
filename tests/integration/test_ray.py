"""The Ray path on a local two-CPU Ray instance and a real corpus slice: embedding with Ray Data
actors and the assignment batches as Ray tasks give the single-process result for the same seed,
and land in the same kind of store."""

from __future__ import annotations

import numpy as np
import pytest

from clustering import PipelineConfig, read_corpus, sample_assign
from corpusmap import api, service, workflow
from corpusmap.request import RunRequest

ray = pytest.importorskip(
    "ray", reason="the Ray path needs the ray extra: pip install 'corpusmap[ray]'"
)

pytestmark = pytest.mark.slow  # a Ray instance takes a minute to start on 2 cores; CI runs it

SAMPLE_SIZE = 300
BATCH_SIZE = 100
"""600 texts, a 300-text sample and batches of 100: three Ray tasks per assignment pass."""


@pytest.fixture(scope="module")
def local_ray():
    from corpusmap import distributed

    resources = distributed.connect("local", num_cpus=2)
    yield resources
    ray.shutdown()


@pytest.fixture(scope="module")
def small_batches():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sample_assign, "ASSIGN_BATCH_SIZE", BATCH_SIZE)
        yield


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory, banking_slice_path, embedder, local_ray, small_batches):
    """The Ray run first (its actors embed, the driver stores the vectors), then the
    single-process run in the same store: it reads the same vectors from the cache, so any
    difference comes from the distributed assignment, not from float noise in embedding."""
    from corpusmap.distributed import RayBatchMapper, RayEmbedder
    from storage import Store

    store = Store.open(str(tmp_path_factory.mktemp("ray") / "runs.db"))
    corpus_id = store.add_corpus(read_corpus(banking_slice_path)).id
    config = PipelineConfig(sample_size=SAMPLE_SIZE, random_state=7)
    counting = CountingMapper(RayBatchMapper())
    request = RunRequest(corpus_id=corpus_id, pipeline=config, label_column="label")
    ray_id = workflow.execute(store, request, embedder=RayEmbedder(), batch_mapper=counting)
    local_id = workflow.execute(store, request, embedder=embedder)
    return store, local_id, ray_id, counting


class CountingMapper:
    """Counts the batches a mapper ran, to show the work really went out as several tasks."""

    def __init__(self, inner):
        self.inner = inner
        self.batches = 0

    def __call__(self, func, shared, batches):
        results = self.inner(func, shared, batches)
        self.batches += len(results)
        return results


def test_local_instance_has_the_two_cpus_asked_for(local_ray):
    assert local_ray["CPU"] == 2


def test_ray_run_equals_the_single_process_run(both_runs):
    store, local_id, ray_id, counting = both_runs
    local = store.load_assignments(local_id)
    distributed = store.load_assignments(ray_id)
    assert counting.batches == 2 * 3  # reduce and cluster, three batches each
    assert store.get_run(ray_id).status == store.get_run(local_id).status == "completed"
    ray_timings = store.get_run(ray_id).timings
    assert ray_timings["embed_embedded"] == ray_timings["embed_distinct"] > 500
    assert store.get_run(local_id).timings["embed_embedded"] == 0  # the Ray run's vectors
    assert len(distributed) == len(local) == 600
    assert distributed["cluster_id"].tolist() == local["cluster_id"].tolist()
    np.testing.assert_allclose(
        distributed[["x", "y"]].to_numpy(), local[["x", "y"]].to_numpy(), atol=1e-5
    )
    np.testing.assert_allclose(
        distributed["probability"].to_numpy(), local["probability"].to_numpy(), atol=1e-9
    )
    local_clusters = [(c.cluster_id, c.size, c.name) for c in store.load_clusters(local_id)]
    ray_clusters = [(c.cluster_id, c.size, c.name) for c in store.load_clusters(ray_id)]
    assert ray_clusters == local_clusters
    assert store.get_run(ray_id).metrics["nmi"] == store.get_run(local_id).metrics["nmi"] > 0.5


def test_ray_embeddings_match_local_ones(both_runs, embedder):
    """Actors run single-threaded on batches of their own, in bf16 on a CPU (as the local
    embedder does), so vectors agree to bf16 noise (cosine >= 0.996 seen), not bit for bit."""
    store, local_id, _, _ = both_runs
    texts = store.load_assignments(local_id)["text"].tolist()
    stored, counts = service.embed_texts(texts, embedder, store)
    assert counts["embedded"] == 0
    cosine = (stored * embedder.embed(texts)).sum(axis=1)
    assert cosine.min() > 0.99
    assert np.abs(cosine - 1).mean() < 0.005


def test_batch_mapper_keeps_submission_order(local_ray):
    from corpusmap.distributed import RayBatchMapper

    batches = [np.full(3, i, dtype=np.float64) for i in range(7)]
    results = RayBatchMapper(max_in_flight=2)(np.multiply, 10.0, iter(batches))
    assert [float(r[0]) for r in results] == [10.0 * i for i in range(7)]


def test_goal_driven_modes_embed_on_ray(tmp_path, banking_slice_path, embedder, local_ray):
    """``--ray`` with a mode: Ray's actors embed (the texts land in the cache under the local
    model's id), the mode runs here; a goal-conditioned embedding with Ray is refused up front."""
    from corpusmap import modes
    from corpusmap.errors import CorpusmapError
    from storage import Store

    store = Store.open(str(tmp_path / "modes.db"))
    options = modes.ModeOptions(mode="classify")
    handle = api.run(
        banking_slice_path,
        options=options,
        store=store,
        label_column="label",
        config=PipelineConfig(n_clusters=15),
        ray="local",
    )
    run = handle.info
    assert run.status == "completed" and run.mode == "classify"
    assert run.timings["embed_embedded"] == run.timings["embed_distinct"] > 590
    assert run.embedder == embedder.model_id
    assert run.metrics["nmi"] > 0.6
    with pytest.raises(CorpusmapError, match="--ray"):
        api.run(
            banking_slice_path,
            options=modes.ModeOptions(instruction="query: "),
            store=store,
            ray="local",
        )
