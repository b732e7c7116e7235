"""The pipeline on both databases (SQLite file, PostgreSQL schema): a run stored and read back,
a failed run resumed from its stored stage, run warnings, and the same rows either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clustering import PipelineConfig, read_corpus_bytes
from clustering.labels import KeywordLabeler
from corpusmap import service, workflow
from corpusmap.modes import ModeOptions
from corpusmap.request import RunRequest
from tests.reliability.conftest import topic_texts

CONFIG = PipelineConfig(n_clusters=3)


def stored_corpus(store, texts=None):
    data = pd.DataFrame({"text": texts or topic_texts(), "n": range(len(texts or topic_texts()))})
    return store.add_corpus(read_corpus_bytes(data.to_csv(index=False).encode(), "t.csv"))


def cluster(store, corpus_id, **parts):
    return workflow.execute(store, RunRequest(corpus_id=corpus_id, pipeline=CONFIG), **parts)


class CrashingLabeler(KeywordLabeler):
    """Fails like a killed labeling stage: after the clusters are stored."""

    def label(self, summaries):
        raise KeyboardInterrupt


def test_a_run_is_stored_and_read_back(store, embedder):
    info = stored_corpus(store)
    run_id = cluster(store, info.id, embedder=embedder)
    run = store.get_run(run_id)
    assert run.status == "completed" and run.metrics["n_clusters"] == 3
    assert run.owner and run.heartbeat_at is not None and run.warnings == []
    frame = service.labeled_frame(store, run_id)
    assert frame["text"].tolist() == topic_texts() and frame["n"].tolist() == [
        str(i) for i in range(15)
    ]
    assert sorted(service.cluster_table(store, run_id)["size"]) == [5, 5, 5]
    counts = store.table_counts()
    assert (
        counts["documents"],
        counts["embeddings"],
        counts["assignments"],
        counts["clusters"],
    ) == (15, 15, 15, 3)


def test_a_crashed_labeling_stage_is_resumed_not_redone(store, embedder):
    info = stored_corpus(store)
    with pytest.raises(KeyboardInterrupt):
        cluster(store, info.id, embedder=embedder, labeler=CrashingLabeler())
    crashed = store.get_run(1)
    assert (crashed.status, crashed.stage) == ("failed", "summarize")
    before = store.load_assignments(crashed.id)
    embedded = store.count_embeddings()

    class CountingEmbedder:
        model_id = embedder.model_id
        cache_key = embedder.cache_key
        seen: list[str] = []

        def embed(self, texts):
            CountingEmbedder.seen.extend(texts)  # label texts for faithfulness, never the corpus
            return embedder.embed(texts)

    run_id = cluster(store, info.id, embedder=CountingEmbedder())
    assert run_id == crashed.id
    run = store.get_run(run_id)
    assert run.status == "completed" and run.error == ""
    assert any("continued interrupted run" in w for w in run.warnings)
    assert not set(CountingEmbedder.seen) & set(topic_texts())
    assert store.count_embeddings() == embedded
    pd.testing.assert_frame_equal(store.load_assignments(run_id), before)
    for stage in ("embed", "reduce", "cluster"):
        assert run.timings[stage] == crashed.timings[stage]
    assert all(c.name and c.label_status == "keywords" for c in store.load_clusters(run_id))
    assert store.table_counts()["runs"] == 1 and store.table_counts()["clusters"] == 3
    assert run.metrics["n_clusters"] == 3 and "silhouette" in run.metrics


def test_a_completed_run_is_never_resumed(store, embedder):
    info = stored_corpus(store)
    first = cluster(store, info.id, embedder=embedder)
    second = cluster(store, info.id, embedder=embedder)
    assert first != second
    assert np.array_equal(
        store.load_assignments(first)["cluster_id"], store.load_assignments(second)["cluster_id"]
    )


def test_a_live_run_of_another_process_is_left_alone(store, embedder):
    info = stored_corpus(store)
    settings = {
        "config": RunRequest(corpus_id=info.id, pipeline=CONFIG).resume_key(),
        "embedder": embedder.model_id,
        "labeler": "keywords",
        "mode": "cluster",
        "goal": "",
        "label_column": "",
    }
    live = store.create_run(info.id, seed=42, owner=service.process_owner(), **settings)
    dead = store.create_run(info.id, seed=42, owner="elsewhere:1", **settings)  # no heartbeat
    store._update_run(dead, heartbeat_at=None)
    assert service.claim_unfinished_run(store, info.id, settings).id == dead
    assert service.claim_unfinished_run(store, info.id, settings) is None  # dead is ours now
    assert store.get_run(live).owner == service.process_owner()
    run_id = cluster(store, info.id, embedder=embedder, labeler=KeywordLabeler())
    assert run_id not in (live,)


def test_long_texts_warn_on_the_run(store, embedder):
    texts = [*topic_texts()[:14], "word " * 2_000]
    info = stored_corpus(store, texts)
    run = store.get_run(cluster(store, info.id, embedder=embedder))
    assert len(run.warnings) == 1 and "longer than the embedding model's window" in run.warnings[0]


class FailsOnParents(KeywordLabeler):
    """Names the clusters, then fails when asked to name the hierarchy's parents."""

    def __init__(self) -> None:
        self.calls = 0

    def label(self, summaries):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("the labeler went away while naming the parents")
        return super().label(summaries)


def test_a_run_is_completed_only_with_every_output_it_asked_for(store, embedder):
    info = stored_corpus(store)
    request = RunRequest(
        corpus_id=info.id, pipeline=CONFIG, options=ModeOptions(hierarchy=True, n_parents=2)
    )
    with pytest.raises(RuntimeError, match="parents"):
        workflow.execute(store, request, embedder=embedder, labeler=FailsOnParents())
    failed = store.get_run(1)
    assert failed.status == "failed" and failed.stage != "done"
    assert "parents" in failed.error
    # The same request again finishes the run: now every output is there, and only then done.
    run_id = workflow.execute(store, request, embedder=embedder)
    run = store.get_run(run_id)
    assert run_id == failed.id and run.status == "completed"
    leaves = store.load_clusters(run_id)
    assert len(store.load_clusters(run_id, level=1)) == 2
    assert all(c.parent_id is not None for c in leaves)
    assert set(run.rules) == {c.cluster_id for c in leaves}
