"""The Edit page after issue 15: a split in the app, then every page and the report show the
figures a fresh computation gives for the new clusters; Undo puts back the exact state before.
Also the small fixes: run warnings on Explore, search greys the map in place, the Run form
keeps the goal and ground-truth column (pre-filled with a column named ``label``)."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from html import escape
from pathlib import Path

import numpy as np
import pytest

import corpusmap
from clustering.faithfulness import explanation_faithfulness
from clustering.metrics import external_metrics
from clustering.rules import explain_clusters
from clustering.types import ClusterLabel
from corpusmap import explore, service
from corpusmap.report import render_report
from corpusmap.views import outcome_lines
from storage import Store
from tests.ui.conftest import assert_clean, click, metric, open_app, widget
from ui import keys

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, small_rows: list[dict]) -> dict:
    folder = tmp_path_factory.mktemp("edit_page")
    path = folder / "banking.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in small_rows) + "\n", encoding="utf-8")
    handle = corpusmap.run(str(path), db=str(folder / "built.db"), label_column="label")
    handle.store.save_run_warnings(handle.run_id, ["3 text(s) are longer than the model's window"])
    handle.store.close()
    return {"db": folder / "built.db", "run_id": handle.run_id}


@pytest.fixture
def app(built: dict, app_db: Path):  # type: ignore[no-untyped-def]
    """The app on a copy of the built run's database, the run chosen."""
    app_db.write_bytes(Path(built["db"]).read_bytes())
    store = Store.open(str(app_db))
    yield store, built["run_id"]
    store.close()


def open_page(run_id: int, page: str):  # type: ignore[no-untyped-def]
    at = open_app()
    at.session_state[keys.RUN_ID] = run_id
    at.switch_page(f"pages/{page}.py").run()
    assert_clean(at)
    return at


def decoded(values: object) -> np.ndarray:
    """A plotly array as sent to the browser: a list, or base64 binary with its dtype."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


def state(store: Store, run_id: int) -> dict:
    run = store.get_run(run_id)
    return {
        "assignments": store.load_assignments(run_id).to_dict("list"),
        "clusters": [asdict(c) for c in store.load_clusters(run_id, level=None)],
        "rules": run.rules,
        "metrics": run.metrics,
    }


def test_split_in_the_app_then_every_figure_is_fresh_and_undo_restores(app) -> None:  # type: ignore[no-untyped-def]
    store, run_id = app
    before = state(store, run_id)
    biggest = max(store.load_clusters(run_id), key=lambda c: c.size)
    at = open_page(run_id, "edit")
    widget(at.selectbox, "Cluster to split").set_value(biggest.cluster_id)
    at.run()
    click(at, "Split")
    assert (
        f"Split #{biggest.cluster_id} '{biggest.name}' ({biggest.size:,} texts) into #"
        in at.success[0].value
    )

    run = store.get_run(run_id)
    rows = store.load_assignments(run_id)
    texts, labels = rows["text"].tolist(), rows["cluster_id"].to_numpy(np.int64)
    assert biggest.cluster_id not in set(labels)
    fresh_rules = {c: r.to_dict() for c, r in explain_clusters(texts, labels).items()}
    assert run.rules == fresh_rules
    vectors = service.run_vectors(store, run, texts)
    clusters = store.load_clusters(run_id)
    explained = [
        ClusterLabel(c.cluster_id, c.name, c.description, c.inclusion_criterion) for c in clusters
    ]
    faith = explanation_faithfulness(vectors, labels, explained, service.run_embedder(run))
    truth = (
        store.load_corpus(run.corpus_id).frame["label"].iloc[rows["position"]].astype(str).tolist()
    )
    gold = external_metrics(truth, labels)

    # Explore: the headline figures and each part's own rule.
    at = open_page(run_id, "explore")
    assert metric(at, "Clusters") == str(len(clusters))
    assert metric(at, "Faithfulness") == f"{faith.overall:.2f}"
    for part in (
        c for c in clusters if c.cluster_id not in {x["cluster_id"] for x in before["clusters"]}
    ):
        widget(at.selectbox, "Cluster").set_value(part.cluster_id)
        at.run()
        shown = [t.value for t in at.text]
        assert explore.rule_text(run, part.cluster_id) in shown
        assert fresh_rules[part.cluster_id]["rule"] in explore.rule_text(run, part.cluster_id)
    # Evaluation and the report agree with the fresh figures.
    at = open_page(run_id, "evaluation")
    assert float(metric(at, "NMI")) == pytest.approx(gold["nmi"], abs=1e-3)
    report = render_report(store, run_id)
    assert f"<td>{gold['nmi']:.3f}</td>" in report and f"<td>{faith.overall:.3f}</td>" in report
    for rule in fresh_rules.values():
        assert escape(rule["rule"]) in report

    at = open_page(run_id, "edit")
    click(at, "Undo")
    assert at.success[0].value.startswith("Undid: Split")
    assert state(store, run_id) == before
    assert widget(at.button, "Redo").disabled is False


def test_the_coarser_grain_offered_is_one_edit_and_undo_takes_it_back(app) -> None:  # type: ignore[no-untyped-def]
    """The run's offered grain (``metrics["coarse"]``) as the Edit page's button: each group's
    clusters merged into its largest, the offer withdrawn and the granularity sentence marked as
    the run's before the edit, the Run summary saying so; Undo puts back the exact state.
    (Whether a run offers a grain is the pipeline's, tested in test_granularity; this small run
    may not, so the offer is written as the pipeline writes it: cluster -> group.)"""
    store, run_id = app
    run = store.get_run(run_id)
    ids = sorted(c.cluster_id for c in store.load_clusters(run_id))
    coarse = run.metrics.get("coarse") or {
        "k": 2,
        "variance_ratio_share": 0.9,
        "parent_of": {c: int(i >= len(ids) // 2) for i, c in enumerate(ids)},
    }
    store.save_metrics(run_id, {**run.metrics, "granularity": "9 clusters.", "coarse": coarse})
    before = state(store, run_id)
    groups: dict[int, list[int]] = {}
    for cluster, group in coarse["parent_of"].items():
        groups.setdefault(int(group), []).append(int(cluster))
    sizes = {c.cluster_id: c.size for c in store.load_clusters(run_id)}
    largest = {max(members, key=lambda c: (sizes[c], -c)) for members in groups.values()}

    at = open_page(run_id, "edit")
    click(at, f"Take the coarser grain ({coarse['k']} groups)")
    assert at.success[0].value.startswith(f"Took the coarser grain offered, {len(groups)} clusters")
    after = {c.cluster_id for c in store.load_clusters(run_id)}
    assert after == largest
    run = store.get_run(run_id)
    assert "coarse" not in run.metrics and run.metrics["granularity_edited"] is True
    assert "As computed, before the edits since: 9 clusters." in outcome_lines(run)
    assert store.list_edits(run_id)[-1].kind == "coarse_grain"
    assert not [b for b in at.button if b.label.startswith("Take the coarser grain")]
    # The selectors name the merged clusters by their new names, not their names before.
    names = {c.cluster_id: c.name for c in store.load_clusters(run_id)}
    shown = widget(at.selectbox, "Cluster").options
    assert sorted(shown) == sorted(f"{c}: {n}" for c, n in names.items()), (shown, names)

    click(at, "Undo")
    assert at.success[0].value.startswith("Undid: Took the coarser grain offered")
    assert state(store, run_id) == before


def test_explore_shows_warnings_and_search_greys_in_place(app) -> None:  # type: ignore[no-untyped-def]
    store, run_id = app
    at = open_page(run_id, "explore")
    assert any("longer than the model" in w.value for w in at.warning)
    widget(at.text_input, "Search texts").set_value("card")
    at.run()
    assert_clean(at)
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    sizes = [len(decoded(t["x"])) for t in traces]
    assert sum(sizes) == store.count_assignments(run_id)  # nothing hidden
    assert traces[0]["name"] == "not matching" and 0 < sizes[0] < sum(sizes)


def test_run_form_prefills_label_and_remembers_goal(app) -> None:  # type: ignore[no-untyped-def]
    at = open_app("run")
    assert widget(at.selectbox, "Ground-truth column (optional)").value == "label"
    widget(at.selectbox, "Ground-truth column (optional)").set_value("(none)")
    widget(at.text_area, "Goal (optional)").set_value("what the customer wants")
    at.run()
    at.switch_page("pages/history.py").run()
    at.switch_page("pages/run.py").run()
    assert_clean(at)
    assert widget(at.text_area, "Goal (optional)").value == "what the customer wants"
    assert widget(at.selectbox, "Ground-truth column (optional)").value == "(none)"
