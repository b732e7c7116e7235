"""Issue 15's property: after any sequence of edits, every derived field equals a fresh
computation on the final assignment, ids stay unique and are never reused, and undo puts back
exactly the state before the edit.

A real run (1,000 Banking77 texts, the bundled MiniLM, UMAP + HDBSCAN, keyword rules and a
hierarchy) is built once per module; a seeded random sequence of 20 edits (rename, merge,
split, move, mark outliers, undo, redo) runs on it through ``corpusmap.edits``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import corpusmap
from clustering.faithfulness import explanation_faithfulness
from clustering.hierarchy import Hierarchy, KChoice, summarize_parents
from clustering.metrics import external_metrics, silhouette, summary_metrics
from clustering.rules import explain_clusters
from clustering.summarize import summarize_clusters
from clustering.types import NOISE, Assignment, ClusterLabel
from corpusmap import edits, service
from corpusmap.modes import ModeOptions
from corpusmap.report import render_report
from storage import Store

pytestmark = pytest.mark.slow

N_TEXTS = 1_000
N_EDITS = 20


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, banking_rows: list[dict]) -> dict:
    rng = np.random.default_rng(7)
    picked = rng.choice(len(banking_rows), N_TEXTS, replace=False)
    rows = [banking_rows[i] for i in sorted(picked)]
    folder = tmp_path_factory.mktemp("edits")
    path = folder / "banking1000.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    db = folder / "corpusmap.db"
    handle = corpusmap.run(
        str(path),
        db=str(db),
        label_column="label",
        options=ModeOptions(hierarchy=True, llm_budget=0),
    )
    run = handle.info
    assert run.status == "completed" and run.rules and run.hierarchy
    handle.store.close()
    return {"db": db, "run_id": handle.run_id, "folder": folder}


@pytest.fixture
def store(built: dict, tmp_path: Path):
    """A copy of the built run's database, so each test edits its own."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(built["db"]).read_bytes())
    s = Store.open(str(copy))
    yield s
    s.close()


def snapshot(store: Store, run_id: int) -> dict:
    """Everything an edit may change, as plain values."""
    run = store.get_run(run_id)
    return {
        "assignments": store.load_assignments(run_id).to_dict("list"),
        "clusters": [asdict(c) for c in store.load_clusters(run_id, level=None)],
        "rules": run.rules,
        "parent_rules": run.parent_rules,
        "metrics": run.metrics,
        "hierarchy": run.hierarchy,
    }


def random_edit(store: Store, run_id: int, rng: np.random.Generator, step: int):  # type: ignore[no-untyped-def]
    leaves = store.load_clusters(run_id)
    ids = [c.cluster_id for c in leaves]
    rows = store.load_assignments(run_id)
    kind = rng.choice(
        ["rename", "merge", "split", "move", "outliers", "undo", "redo"],
        p=[0.12, 0.18, 0.2, 0.18, 0.12, 0.14, 0.06],
    )
    if kind == "undo" and not edits.can_undo(store, run_id):
        kind = "split"
    if kind == "redo" and not edits.can_redo(store, run_id):
        kind = "move"
    if kind == "rename":
        return kind, edits.rename_cluster(store, run_id, int(rng.choice(ids)), name=f"Named {step}")
    if kind == "merge":
        a, b = (int(x) for x in rng.choice(ids, 2, replace=False))
        return kind, edits.merge_clusters(store, run_id, [a, b])
    if kind == "split":
        big = [c.cluster_id for c in leaves if c.size >= 6]
        return kind, edits.split_cluster(
            store, run_id, int(rng.choice(big)), int(rng.integers(2, 4))
        )
    if kind in ("move", "outliers"):
        target = NOISE if kind == "outliers" else int(rng.choice(ids))
        candidates = rows.loc[rows["cluster_id"] != target, "document_id"].to_numpy()
        docs = rng.choice(candidates, int(rng.integers(1, 6)), replace=False)
        return kind, edits.move_documents(store, run_id, docs.tolist(), target)
    if kind == "undo":
        return kind, edits.undo(store, run_id)
    return kind, edits.redo(store, run_id)


def test_random_edits_keep_every_derived_field_true(store: Store, built: dict) -> None:
    run_id = built["run_id"]
    rng = np.random.default_rng(15)
    initial = store.load_assignments(run_id).set_index("document_id")
    initial_members = {int(c): set(g.index) for c, g in initial.groupby("cluster_id")}
    ever = {c.cluster_id for c in store.load_clusters(run_id, level=None)}
    states = [snapshot(store, run_id)]  # state in force after each edit still done
    undone: list[dict] = []
    kinds = []
    for step in range(N_EDITS):
        before_ids = {c.cluster_id for c in store.load_clusters(run_id, level=None)}
        kind, info = random_edit(store, run_id, rng, step)
        kinds.append(kind)
        assert info.sentence, kind
        now = snapshot(store, run_id)
        ids = [c["cluster_id"] for c in now["clusters"]]
        assert len(ids) == len(set(ids)), "a cluster id is used twice"
        if kind == "undo":
            undone.append(states.pop())
            assert now == states[-1], "undo did not restore the exact previous state"
        elif kind == "redo":
            assert now == undone.pop(), "redo did not restore the exact state of the edit"
            states.append(now)
        else:
            undone.clear()
            states.append(now)
            created = set(ids) - before_ids
            assert not created & ever, f"{kind} reused ids {created & ever}"
            if kind == "split":
                assert len(created) >= 2 and info.payload["cluster"] not in ids
            if kind == "merge":
                assert info.payload["kept"] in ids
                assert not set(info.payload["clusters"][1:]) & set(ids)
        ever |= set(ids)
    assert {"merge", "split", "undo"} <= set(kinds), kinds

    fresh_equals_stored(store, run_id, initial, initial_members)


def fresh_equals_stored(
    store: Store, run_id: int, initial: pd.DataFrame, initial_members: dict[int, set]
) -> None:
    run = store.get_run(run_id)
    rows = store.load_assignments(run_id)
    texts = rows["text"].tolist()
    labels = rows["cluster_id"].to_numpy(np.int64)
    probabilities = rows["probability"].to_numpy()
    vectors = service.run_vectors(store, run, texts)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    leaves = {c.cluster_id: c for c in store.load_clusters(run_id)}
    parents = {c.cluster_id: c for c in store.load_clusters(run_id, level=1)}
    assert sorted(leaves) == sorted(int(c) for c in set(labels) - {NOISE})

    # Probabilities: the run's own where a cluster's members never changed, else the cosine to
    # the new centroid; members in (0, 1], outliers 0.
    members_now = rows.set_index("document_id")
    for c in leaves:
        mask = labels == c
        got = probabilities[mask]
        assert ((got > 0) & (got <= 1)).all()
        centre = vectors[mask].mean(axis=0)
        cosine = np.clip(vectors[mask] @ (centre / np.linalg.norm(centre)), 1e-3, 1.0)
        docs = set(rows.loc[mask, "document_id"])
        unchanged = docs == initial_members.get(c) and np.allclose(
            got, initial.loc[members_now.index[mask], "probability"].to_numpy()
        )
        assert unchanged or np.allclose(got, cosine, atol=1e-5), f"cluster {c}"
    assert (probabilities[labels == NOISE] == 0).all()

    # Sizes, keywords, representatives, nearest clusters.
    summaries = summarize_clusters(
        texts,
        vectors,
        Assignment(labels, probabilities),
        goal=run.goal or None,
        embedder=service.run_embedder(run),  # the run names clusters with its own encoder
    )
    for s in summaries:
        c = leaves[s.cluster_id]
        assert (c.size, c.share) == (s.size, pytest.approx(s.share))
        assert c.keywords == list(s.keywords)
        assert c.representatives == list(s.representatives)
        assert c.extra["neighbours"] == list(s.neighbours)
        assert c.labeler != "keywords" or c.edited or c.name == edits_keyword_name(s)

    # Keyword rules of leaves and parents.
    fresh_rules = {c: r.to_dict() for c, r in explain_clusters(texts, labels).items()}
    assert run.rules == fresh_rules
    parent_of = {c: leaf.parent_id for c, leaf in leaves.items()}
    assert set(parent_of.values()) <= set(parents)
    hierarchy = Hierarchy(parent_of, KChoice(len(parents)))
    parent_labels = hierarchy.parent_labels(labels)
    fresh_parent_rules = {c: r.to_dict() for c, r in explain_clusters(texts, parent_labels).items()}
    assert run.parent_rules == fresh_parent_rules
    fresh_parents, _ = summarize_parents(
        texts, vectors, labels, hierarchy, summaries, goal=run.goal or None
    )
    for p in fresh_parents:
        assert parents[p.cluster_id].size == p.size
        assert parents[p.cluster_id].keywords == list(p.keywords)
    assert run.hierarchy["n_parents"] == len(parents)

    # Faithfulness, per cluster and overall.
    explained = [
        ClusterLabel(c.cluster_id, c.name, c.description, c.inclusion_criterion)
        for c in leaves.values()
    ]
    faith = explanation_faithfulness(vectors, labels, explained, service.run_embedder(run))
    for c, value in faith.per_cluster.items():
        assert leaves[c].faithfulness == pytest.approx(value)
    assert run.metrics["faithfulness"] == pytest.approx(faith.overall)

    # Metrics against the gold column, counts, silhouette.
    corpus = store.load_corpus(run.corpus_id)
    truth = corpus.frame["label"].iloc[rows["position"]].astype(str).tolist()
    for key, value in {**external_metrics(truth, labels), **summary_metrics(labels)}.items():
        assert run.metrics[key] == pytest.approx(value), key
    assert run.metrics["silhouette"] == pytest.approx(
        silhouette(vectors, labels)["silhouette"], abs=1e-5
    )

    # What every reader shows: the cluster table (CLI show/export, API), the labeled corpus,
    # the HTML report.
    table = service.cluster_table(store, run_id).set_index("cluster_id")
    for c, rule in fresh_rules.items():
        assert table.loc[c, "rule"] == rule["rule"]
        assert table.loc[c, "rule_precision"] == pytest.approx(rule["rule_precision"])
        assert table.loc[c, "size"] == leaves[c].size
        assert table.loc[c, "parent_id"] == leaves[c].parent_id
    frame = service.labeled_frame(store, run_id)
    positions = rows["position"].to_numpy()
    assert np.allclose(frame["cluster_probability"].to_numpy()[positions], probabilities)
    assert (frame["cluster_id"].to_numpy()[positions] == labels).all()
    report = render_report(store, run_id)
    for key in ("nmi", "acc", "faithfulness"):
        assert f"<td>{run.metrics[key]:.3f}</td>" in report
    for c, rule in fresh_rules.items():
        assert escape(rule["rule"]) in report
        assert f"{leaves[c].size:,} texts" in report
    assert f"keyword rules: {len(fresh_rules)} clusters" in report


def edits_keyword_name(summary) -> str:  # type: ignore[no-untyped-def]
    from clustering.labels import KeywordLabeler

    return KeywordLabeler().label([summary])[0].name


def test_split_then_undo_restores_exactly_and_ids_are_not_reused(store: Store, built: dict) -> None:
    run_id = built["run_id"]
    before = snapshot(store, run_id)
    biggest = max(store.load_clusters(run_id), key=lambda c: c.size)
    info = edits.split_cluster(store, run_id, biggest.cluster_id, 2)
    first_parts = set(info.payload["new"])
    assert info.sentence.startswith(
        f"Split #{biggest.cluster_id} '{biggest.name}' ({biggest.size:,} texts) into #"
    )
    edits.undo(store, run_id)
    assert snapshot(store, run_id) == before
    again = edits.split_cluster(store, run_id, biggest.cluster_id, 2)
    assert not set(again.payload["new"]) & first_parts  # never reused, even after an undo
    with pytest.raises(edits.EditError, match="no undone edit"):
        edits.redo(store, run_id)  # a new edit after an undo ends the redo chain


def test_python_api_edits_and_reads_the_new_state(store: Store, built: dict) -> None:
    run_id = built["run_id"]
    handle = corpusmap.open_run(run_id, db=store.url)
    before = handle.frame().copy()
    biggest = max(store.load_clusters(run_id), key=lambda c: c.size)
    sentence = handle.split(biggest.cluster_id, 2)
    assert sentence.startswith(f"Split #{biggest.cluster_id} ")
    after = handle.frame()  # read again, not the cached frame of the earlier state
    assert biggest.cluster_id not in set(after["cluster_id"])
    assert handle.clusters()["cluster_id"].tolist() == [
        c.cluster_id for c in store.load_clusters(run_id)
    ]
    assert handle.undo() == sentence
    assert handle.frame().equals(before)
    assert handle.edit_log() == [f"{sentence} (undone)"]
    assert handle.redo() == sentence
    handle.store.close()
