"""Run → stored → reloaded → exported, on a real SQLite file with the real bundled model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clustering import PipelineConfig, read_corpus
from corpusmap import api, service, workflow
from corpusmap.export import write_table
from corpusmap.request import RunRequest, stored_request


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, banking_slice_path, embedder):
    from storage import Store

    db = tmp_path_factory.mktemp("db") / "runs.db"
    store = Store.open(str(db))
    handle = api.run(banking_slice_path, store=store, label_column="label")
    return store, handle


def test_run_is_stored_with_config_versions_timings_and_metrics(first_run):
    store, handle = first_run
    run = store.get_run(handle.run_id)
    assert run.status == "completed" and run.stage == "done"
    assert stored_request(run).pipeline.random_state == 42 and run.seed == 42
    assert run.embedder == "all-MiniLM-L6-v2"
    assert run.versions["torch"] and run.versions["hdbscan"]
    assert {"embed", "reduce", "cluster", "summarize", "label"} <= set(run.timings)
    assert run.metrics["nmi"] > 0.6 and 0 <= run.metrics["noise_share"] < 0.5
    assert 0 < run.metrics["faithfulness"] <= 1
    clusters = store.load_clusters(handle.run_id)
    assert len(clusters) == run.metrics["n_clusters"] >= 5
    assert all(c.name and c.keywords and c.representatives for c in clusters)
    assert sum(c.size for c in clusters) == round((1 - run.metrics["noise_share"]) * 600)


def test_export_holds_every_input_row_in_order(first_run, banking_slice_path, tmp_path):
    store, handle = first_run
    out = write_table(handle.frame(), tmp_path / "out.csv")
    exported = pd.read_csv(out)
    original = pd.read_json(banking_slice_path, lines=True)
    assert len(exported) == len(original)
    assert exported["text"].tolist() == original["text"].tolist()
    assert exported["label"].tolist() == original["label"].tolist()
    assert {"cluster_id", "cluster_label", "cluster_description", "cluster_probability"} <= set(
        exported.columns
    )
    clustered = exported[exported.cluster_id >= 0]
    assert (clustered.cluster_label != "").all()


def test_reexport_from_a_reopened_store_equals_the_first_export(first_run, tmp_path):
    from storage import Store

    store, handle = first_run
    first = write_table(handle.frame(), tmp_path / "a.jsonl").read_bytes()
    reopened = Store.open(store.url)
    again = write_table(
        service.labeled_frame(reopened, handle.run_id), tmp_path / "b.jsonl"
    ).read_bytes()
    assert first == again


def test_second_run_reuses_the_corpus_and_embeds_nothing(first_run, banking_slice_path):
    store, handle = first_run
    embedded_before = store.count_embeddings()
    config = PipelineConfig(min_cluster_size=25)
    corpus = read_corpus(banking_slice_path)
    info = store.add_corpus(corpus)
    assert info.id == handle.corpus_info.id
    run_id = workflow.execute(store, RunRequest(corpus_id=info.id, pipeline=config))
    run = store.get_run(run_id)
    assert run.timings["embed_embedded"] == 0
    assert run.timings["embed_cache_hits"] == 600 - corpus.n_duplicates
    assert store.count_embeddings() == embedded_before
    assert stored_request(run).pipeline.min_cluster_size == 25


def test_same_input_and_seed_give_the_same_clusters(first_run):
    store, handle = first_run
    run_id = workflow.execute(store, RunRequest(corpus_id=handle.corpus_info.id))
    a = store.load_assignments(handle.run_id)["cluster_id"].to_numpy()
    b = store.load_assignments(run_id)["cluster_id"].to_numpy()
    assert np.array_equal(a, b)
