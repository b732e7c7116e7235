"""The goal-driven modes from the app (issue 5): the Run page's controls for every mode, its LLM
budget before the run, then Explore's hierarchy and rules and Export's balanced sample, on 303
real Banking77 texts, the real model, a temporary SQLite file and, for the LLM, the scripted
OpenAI-compatible server (an oracle that knows the gold labels)."""

from __future__ import annotations

import io
from collections import Counter

import pandas as pd
import pytest

from corpusmap import downloads
from corpusmap.request import stored_request
from tests.support.goal_replies import GoalOracle
from tests.support.openai_server import ScriptedOpenAIServer
from tests.ui.conftest import app_with_corpus, assert_clean, click, open_app, start_run, widget
from ui import keys, resources

SEED_SHARE = 10
"""Every 10th text of the eight first intents carries a typed seed label; two intents none."""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, small_rows: list[dict]):
    with app_with_corpus(tmp_path_factory.mktemp("modes_app"), small_rows):
        yield {"rows": small_rows, "store": resources.store()}


def run_page():
    at = open_app("run")
    assert_clean(at)
    return at


def shown_text(at) -> str:
    return "\n".join(
        [t.value for t in at.text] + [c.value for c in at.caption] + [i.value for i in at.info]
    )


def test_seeded_cluster_run_keeps_pairs_and_names_known_clusters(corpus) -> None:
    rows = corpus["rows"]
    intents = sorted({r["label"] for r in rows})
    seeded_intents = intents[:8]
    typed = {
        i: r["label"]
        for i, r in enumerate(rows)
        if r["label"] in seeded_intents and i % SEED_SHARE == 0
    }
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(r["label"], []).append(i)
    must = [(by_label[lab][1], by_label[lab][-1]) for lab in intents[:5]]
    cannot = [(by_label[intents[i]][2], by_label[intents[i + 1]][2]) for i in range(4)]

    at = run_page()
    at.session_state[keys.SEED_LABELS] = dict(typed)
    at.run()
    widget(at.file_uploader, "Must-link pairs (CSV)").set_value(
        ("ml.csv", ("a,b\n" + "".join(f"{a},{b}\n" for a, b in must)).encode(), "text/csv")
    )
    widget(at.file_uploader, "Cannot-link pairs (CSV)").set_value(
        ("cl.csv", "".join(f"{a},{b}\n" for a, b in cannot).encode(), "text/csv")
    )
    at.run()
    assert_clean(at)
    assert f"{len(typed)} texts labelled by hand" in shown_text(at)
    assert f"Must-link pairs: {len(must)} pairs." in shown_text(at)
    widget(at.selectbox, "Ground-truth column (optional)").set_value("label")
    run_id = start_run(at)

    run = corpus["store"].get_run(run_id)
    assert run.status == "completed" and run.mode == "cluster"
    assert len(stored_request(run).options.seed_labels) == len(typed)
    report = run.constraints
    assert report["must_link_held"] == report["must_link_total"] == len(must)
    assert report["cannot_link_held"] == report["cannot_link_total"] == len(cannot)
    assert "constraints held: must-link 5/5" in shown_text(at)
    # Clusters holding seeds are named after their seed class; the rest are marked new.
    known = run.novelty["known"]
    assert set(known.values()) <= set(seeded_intents) and len(set(known.values())) >= 6
    names = {c.cluster_id: c.name for c in corpus["store"].load_clusters(run_id)}
    assert all(names[int(c)] == lab for c, lab in known.items())
    assert run.metrics["nmi"] > 0.6


def test_a_bad_pair_file_is_reported_and_blocks_the_run(corpus) -> None:
    at = run_page()
    widget(at.file_uploader, "Must-link pairs (CSV)").set_value(
        ("bad.csv", b"a,b\n0,1\n2,x\n", "text/csv")
    )
    at.run()
    assert any("line 3" in e.value for e in at.error)
    assert widget(at.button, "Start run").disabled


def test_propose_mode_shows_its_budget_and_keeps_to_it(corpus) -> None:
    rows = corpus["rows"]
    oracle = GoalOracle({r["text"]: r["label"] for r in rows})
    with ScriptedOpenAIServer(default=oracle) as server:
        at = run_page()
        widget(at.radio, "Mode").set_value("propose")
        widget(at.radio, "Name clusters with").set_value("llm")
        at.run()
        widget(at.text_input, "Endpoint").set_value(server.base_url)
        widget(at.text_input, "Model").set_value("scripted")
        widget(at.number_input, "LLM call budget (empty = planned)").set_value(6)
        widget(at.text_area, "Goal (optional)").set_value("what the customer wants the bank to do")
        widget(at.selectbox, "Ground-truth column (optional)").set_value("label")
        at.run()
        assert_clean(at)
        plan = next(i.value for i in at.info if "LLM budget" in i.value)
        assert "up to 6 calls" in plan
        run_id = start_run(at)
        requests = len(server.chat_requests)

    run = corpus["store"].get_run(run_id)
    assert run.status == "completed" and run.mode == "propose"
    usage = run.llm_usage
    assert 1 <= usage["calls"] <= 6 and requests <= 6 + usage.get("retries", 0)
    assert "propose" in oracle.kinds
    assert "LLM used:" in shown_text(at)
    # The oracle proposes the gold intents: the run finds them.
    assert run.metrics["nmi"] > 0.6


def test_classify_with_categories_then_hierarchy_rules_and_sample(corpus) -> None:
    rows = corpus["rows"]
    intents = sorted({r["label"] for r in rows})
    at = run_page()
    widget(at.radio, "Mode").set_value("classify")
    at.run()
    widget(at.text_area, "Your categories (optional, one per line)").set_value(
        "\n".join(lab.replace("_", " ") for lab in intents)
    )
    widget(at.toggle, "Group clusters into parents").set_value(True)
    at.run()
    widget(at.number_input, "Parents (0 = automatic)").set_value(3)
    widget(at.selectbox, "Ground-truth column (optional)").set_value("label")
    at.run()
    assert "embeddings alone" in shown_text(at)
    run_id = start_run(at)
    store = corpus["store"]
    run = store.get_run(run_id)
    assert run.status == "completed" and run.mode == "classify"
    assert not run.llm_usage or not run.llm_usage.get("calls")
    assert {c.name for c in store.load_clusters(run_id)} <= {
        lab.replace("_", " ") for lab in intents
    }
    assert len(store.load_clusters(run_id, level=1)) == 3
    assert run.metrics["nmi"] > 0.5

    # Explore: the hierarchy tab, each cluster's parent and keyword rule.
    at.switch_page("pages/explore.py").run()
    assert_clean(at)
    tables = [d.value for d in at.dataframe]
    tree = next(t for t in tables if "parent_name" in t.columns and "children" in t.columns)
    assert len(tree) == 3 and sum(len(c) for c in tree["children"]) == len(
        store.load_clusters(run_id)
    )
    clusters = next(t for t in tables if "rule" in t.columns)
    assert clusters["rule_precision"].notna().any()
    assert "**Keyword rule**" in [m.value for m in at.markdown]
    assert "**Parent**" in [m.value for m in at.markdown]

    # Export: the balanced sample spreads evenly over parents, then over their clusters.
    sample = pd.read_csv(io.BytesIO(downloads.balanced_sample_bytes(store, run_id, 60, "csv")))
    assert len(sample) == 60 and "parent_id" in sample.columns
    per_parent = Counter(sample["parent_id"])
    assert max(per_parent.values()) - min(per_parent.values()) <= 1
    at.switch_page("pages/export.py").run()
    assert_clean(at)
    assert widget(at.toggle, "Even across parents first, then their clusters").value
    # The HTML report carries the hierarchy and each cluster's rule and parent.
    report = downloads.report_bytes(store, run_id).decode()
    assert "<h2>Hierarchy</h2>" in report and report.count("Parent: ") == len(
        store.load_clusters(run_id)
    )
    assert "Keyword rule:" in report and "<td>classify</td>" in report


def test_explore_adds_a_hierarchy_and_rules_to_a_plain_run(corpus) -> None:
    store = corpus["store"]
    at = run_page()
    widget(at.toggle, "Keyword rules").set_value(False)
    at.run()
    run_id = start_run(at)
    assert not store.get_run(run_id).rules
    at.switch_page("pages/explore.py").run()
    click(at, "Add keyword rules")
    assert store.get_run(run_id).rules
    widget(at.number_input, "Parents (0 = automatic)").set_value(2)
    click(at, "Build a hierarchy")
    assert len(store.load_clusters(run_id, level=1)) == 2
    assert any("parent_name" in d.value.columns for d in at.dataframe)


def test_goal_conditioned_vectors_from_the_run_page(corpus) -> None:
    rows = corpus["rows"]
    store = corpus["store"]
    # Expansion needs an LLM: with keyword labels the form says so and will not start.
    at = run_page()
    widget(at.toggle, "LLM keyphrase expansion").set_value(True)
    at.run()
    assert any("keyphrase" in e.value.lower() for e in at.error)
    assert widget(at.button, "Start run").disabled

    oracle = GoalOracle({r["text"]: r["label"] for r in rows})
    with ScriptedOpenAIServer(default=oracle) as server:
        at = run_page()
        widget(at.text_area, "Goal (optional)").set_value("what the customer wants the bank to do")
        widget(at.text_area, "Instruction prefix (optional)").set_value("Task: {goal}\nText: ")
        widget(at.toggle, "LLM keyphrase expansion").set_value(True)
        widget(at.radio, "Name clusters with").set_value("llm")
        at.run()
        widget(at.text_input, "Endpoint").set_value(server.base_url)
        widget(at.text_input, "Model").set_value("scripted")
        widget(at.selectbox, "Ground-truth column (optional)").set_value("label")
        at.run()
        assert_clean(at)
        plan = next(i.value for i in at.info if "LLM budget" in i.value)
        n_calls = -(-len({r["text"] for r in rows}) // 16)
        assert f"keyphrase {n_calls}" in plan
        run_id = start_run(at)
    run = store.get_run(run_id)
    assert run.status == "completed"
    assert "prefix=Task: what the customer wants the bank to do\nText: " in run.embedder
    assert "|keyphrases=" in run.embedder
    expansion = run.llm_usage["keyphrases"]
    assert expansion["calls"] == n_calls and expansion["expanded"] == len({r["text"] for r in rows})
    assert oracle.kinds.count("keyphrases") == n_calls
    assert "keyphrases:" in shown_text(at)
    # The oracle's keyphrases name each text's intent: the clusters follow the intents.
    assert run.metrics["nmi"] > 0.8
