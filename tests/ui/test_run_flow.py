"""From upload to export on 303 real texts with the real model and a temporary SQLite file:
the Run page (background run, progress), Explore, Export, History, Evaluation, then Edit."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from corpusmap import downloads
from storage import Store
from tests.ui.conftest import (
    INJECTION_TEXTS,
    app_with_corpus,
    assert_clean,
    click,
    metric,
    open_app,
    start_run,
    wait_for_jobs,
    widget,
)
from ui import keys, resources


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory, small_rows: list[dict]):
    """A corpus uploaded and run through the pages; yields the store and the run id."""
    with app_with_corpus(tmp_path_factory.mktemp("flow"), small_rows) as at:
        at.switch_page("pages/run.py").run()
        assert_clean(at)
        widget(at.selectbox, "Ground-truth column (optional)").set_value("label")
        run_id = start_run(at)
        yield {"store": resources.store(), "run_id": run_id, "run_page": at, "rows": small_rows}


def test_run_finishes_and_reports_each_stage(flow) -> None:
    at = flow["run_page"]
    assert f"Run {flow['run_id']} finished" in at.success[0].value
    stages = next(d.value for d in at.dataframe if "state" in d.value.columns)
    assert stages["state"].tolist() == ["done"] * 6
    assert stages["seconds"].notna().all()
    assert "300" in stages["detail"].iloc[0] or "303" in stages["detail"].iloc[0]
    run = flow["store"].get_run(flow["run_id"])
    assert run.status == "completed"
    assert {"embed", "reduce", "cluster", "summarize", "label", "metrics"} <= set(run.timings)
    assert run.label_column == "label" and run.metrics["nmi"] > 0.5


def test_run_page_estimates_llm_calls_before_starting(flow) -> None:
    at = open_app("run")
    widget(at.radio, "Name clusters with").set_value("llm")
    widget(at.radio, "Number of clusters").set_value("Fixed K (k-means)")
    at.run()
    widget(at.number_input, "K").set_value(12)
    at.run()
    assert_clean(at)
    estimate = next(i.value for i in at.info if "Estimate" in i.value)
    assert "12 LLM calls" in estimate and "prompt" in estimate and "$" in estimate
    assert any("API key: none found" in c.value for c in at.caption)


def test_llm_without_endpoint_is_a_clear_error(flow) -> None:
    at = open_app("run")
    widget(at.radio, "Name clusters with").set_value("llm")
    at.run()
    assert "Cannot start the run" in at.error[0].value
    assert "OPENAI" in at.error[0].value
    assert widget(at.button, "Start run").disabled


def test_a_run_completes_without_its_page(flow) -> None:
    """A second run (fixed K) is started and its AppTest dropped: the run still completes."""
    at = open_app("run")
    widget(at.radio, "Number of clusters").set_value("Fixed K (k-means)")
    at.run()
    widget(at.number_input, "K").set_value(8)
    at.run()
    click(at, "Start run")
    job_id = at.session_state[keys.JOB_ID]
    del at
    wait_for_jobs()
    job = resources.run_registry().get(job_id)
    run = flow["store"].get_run(job.run_id)
    assert run.status == "completed" and run.metrics["n_clusters"] == 8
    flow["second_run_id"] = run.id


def test_explore_shows_map_table_and_cluster_panel(flow) -> None:
    at = open_app()
    at.session_state[keys.RUN_ID] = flow["run_id"]
    at.switch_page("pages/explore.py").run()
    assert_clean(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    figure = json.loads(charts[0].proto.spec)
    assert all(t["type"] == "scattergl" for t in figure["data"])
    n_clusters = int(metric(at, "Clusters"))
    assert len([t for t in figure["data"] if t["name"] != "outliers"]) == n_clusters
    table = at.dataframe[0].value
    assert len(table) == n_clusters and table["name"].str.len().gt(0).all()
    assert any("Representative texts" in m.value for m in at.markdown)
    widget(at.text_input, "Search texts").set_value("card")
    at.run()
    assert_clean(at)
    assert any("texts match" in c.value for c in at.caption)


def test_explore_hover_and_markdown_are_escaped(flow) -> None:
    store: Store = flow["store"]
    at = open_app()
    at.session_state[keys.RUN_ID] = flow["run_id"]
    at.switch_page("pages/explore.py").run()
    figure = at.get("plotly_chart")[0].proto.spec
    assert "<script>" not in figure and "&lt;script&gt;" in figure
    # Show the cluster holding the injection texts and search for one of them.
    points = store.load_assignments(flow["run_id"])
    cid = int(points.loc[points["text"] == INJECTION_TEXTS[0], "cluster_id"].iloc[0])
    if cid >= 0:
        widget(at.selectbox, "Cluster").set_value(cid)
        at.run()
        assert_clean(at)
    rendered = "\n".join(m.value for m in at.markdown)
    assert "<script>" not in rendered and "<b>" not in rendered
    # Corpus texts and labels are shown verbatim, as plain text elements.
    shown = "\n".join(t.value for t in at.text)
    if cid >= 0:
        cluster = next(c for c in store.load_clusters(flow["run_id"]) if c.cluster_id == cid)
        assert cluster.name in shown
        assert all(" ".join(rep.split())[:60] in shown for rep in cluster.representatives)


def test_export_offers_every_format_with_cluster_columns(flow) -> None:
    at = open_app()
    at.session_state[keys.RUN_ID] = flow["run_id"]
    at.switch_page("pages/export.py").run()
    assert_clean(at)
    labels = [b.label for b in at.get("download_button")]
    # labeled corpus, cluster table, balanced sample, report
    assert labels == [
        "CSV",
        "JSONL",
        "PARQUET",
        "XLSX",
        "CSV",
        "XLSX",
        "CSV",
        "XLSX",
        "HTML report",
    ]
    store, run_id, n = flow["store"], flow["run_id"], len(flow["rows"])
    readers = {
        "csv": lambda b: pd.read_csv(io.BytesIO(b)),
        "jsonl": lambda b: pd.read_json(io.BytesIO(b), lines=True),
        "parquet": lambda b: pd.read_parquet(io.BytesIO(b)),
        "xlsx": lambda b: pd.read_excel(io.BytesIO(b)),
    }
    for fmt in downloads.CORPUS_FORMATS:
        frame = readers[fmt](downloads.labeled_corpus_bytes(store, run_id, fmt))
        assert len(frame) == n, fmt
        assert {
            "text",
            "label",
            "cluster_id",
            "cluster_label",
            "cluster_description",
            "cluster_probability",
        } <= set(frame.columns)
    clusters = pd.read_csv(io.BytesIO(downloads.cluster_table_bytes(store, run_id, "csv")))
    assert len(clusters) == store.get_run(run_id).metrics["n_clusters"]
    # Runs from the app get keyword rules: each beside its cluster's explanation.
    assert {"rule", "rule_precision", "rule_recall", "description"} <= set(clusters.columns)
    assert clusters["rule_precision"].between(0, 1).any()


def test_html_report_is_self_contained_and_escaped(flow, tmp_path: Path) -> None:
    html = downloads.report_bytes(flow["store"], flow["run_id"]).decode()
    # plotly.js is inline: no script is fetched from anywhere.
    assert not re.search(r"<script[^>]+src=", html)
    assert "Plotly.newPlot" in html and len(html) > 1_000_000
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned" in html or "\\u003cscript" in html
    for cluster in flow["store"].load_clusters(flow["run_id"])[:3]:
        assert cluster.description.replace("&", "&amp;").replace("<", "&lt;")[:40] in html


def test_history_lists_compares_and_deletes(flow) -> None:
    store: Store = flow["store"]
    first, second = flow["run_id"], flow["second_run_id"]
    at = open_app("history")
    assert set(at.dataframe[0].value["run"]) >= {first, second}
    nmi = float(metric(at, "NMI"))
    assert 0.2 < nmi <= 1.0
    assert int(metric(at, "Texts in both").replace(",", "")) == len(flow["rows"])
    widget(at.selectbox, "Run").set_value(second)
    at.run()
    click(at, "Delete…")
    click(at, "Yes, delete")
    assert "deleted" in at.success[0].value
    assert second not in [r.id for r in store.list_runs()]


def test_evaluation_scores_against_the_label_column(flow) -> None:
    at = open_app()
    at.session_state[keys.RUN_ID] = flow["run_id"]
    at.switch_page("pages/evaluation.py").run()
    assert_clean(at)
    assert widget(at.selectbox, "Ground-truth column").value == "label"
    run = flow["store"].get_run(flow["run_id"])
    assert float(metric(at, "NMI")) == pytest.approx(run.metrics["nmi"], abs=1e-3)
    assert 0 < float(metric(at, "ACC")) <= 1
    crosstab = at.dataframe[-1].value
    assert crosstab.to_numpy().sum() == len(flow["rows"])


def open_edit(flow):  # type: ignore[no-untyped-def]
    at = open_app()
    at.session_state[keys.RUN_ID] = flow["run_id"]
    at.switch_page("pages/edit.py").run()
    assert_clean(at)
    return at


def test_edit_rename_is_stored_and_logged(flow) -> None:
    store: Store = flow["store"]
    at = open_edit(flow)
    cid = widget(at.selectbox, "Cluster").value
    at.text_input[0].set_value("Card delivery")  # the Rename tab's name field
    at.text_area[0].set_value("Customers ask when their card arrives.")
    click(at, "Save")
    renamed = {c.cluster_id: c for c in store.load_clusters(flow["run_id"])}[cid]
    assert renamed.name == "Card delivery" and renamed.edited
    # After Save the selector shows the new name (issue 15), not the one before.
    assert widget(at.selectbox, "Cluster").value == cid
    assert f"{cid}: Card delivery" in widget(at.selectbox, "Cluster").options
    last = store.list_edits(flow["run_id"])[-1]
    assert last.kind == "rename" and last.sentence.startswith(f"Renamed #{cid} ")
    assert last.sentence in at.success[0].value


def test_edit_merge_split_move_outliers_and_relabel(flow) -> None:
    store: Store = flow["store"]
    run_id = flow["run_id"]
    before = store.get_run(run_id).metrics["n_clusters"]
    at = open_edit(flow)
    ids = [int(o.split(":")[0]) for o in widget(at.selectbox, "Cluster").options]
    kept, retired = ids[-1], ids[-2]
    widget(at.multiselect, "Clusters to merge (two or more)").set_value([kept, retired])
    at.run()
    click(at, "Merge")
    assert "Merged" in at.success[0].value
    after_merge = {c.cluster_id for c in store.load_clusters(run_id)}
    assert len(after_merge) == before - 1 and kept in after_merge and retired not in after_merge

    target = ids[0]
    widget(at.selectbox, "Cluster to split").set_value(target)
    at.run()
    click(at, "Split")
    assert f"Split #{target} " in at.success[0].value
    after_split = {c.cluster_id for c in store.load_clusters(run_id)}
    new = after_split - after_merge
    # The parts get ids never used in this run; the split cluster's id is retired.
    assert len(new) == 2 and min(new) > max(ids) and target not in after_split
    assert after_split - new == after_merge - {target}

    source = widget(at.selectbox, "Texts from").value
    docs = store.load_assignments(run_id)
    chosen = docs.loc[docs["cluster_id"] == source, "document_id"].head(2).tolist()
    from corpusmap import edits

    edits.move_documents(store, run_id, chosen[:1], -1)  # the page's action, also tested below
    assert (
        int(store.load_assignments(run_id).set_index("document_id").loc[chosen[0], "cluster_id"])
        == -1
    )

    kinds = [e.kind for e in store.list_edits(run_id)]
    assert {"merge", "split", "mark_outliers"} <= set(kinds)
    # A keyword-named run: names follow the new keywords, nothing is left stale.
    assert not any(c.stale for c in store.load_clusters(run_id))
    at = open_edit(flow)
    widget(at.radio, "Clusters").set_value("all")
    at.run()
    n = len(store.load_clusters(run_id))
    click(at, f"Relabel {n} cluster(s)")
    assert "Relabelled" in at.success[0].value
    assert store.list_edits(run_id)[-1].kind == "relabel"
    click(at, "Undo")
    assert "Undid: Relabelled" in at.success[0].value
    assert store.list_edits(run_id)[-1].undone
