"""Every mode end to end on real corpora (issue 5): stored runs on a real SQLite file, the real
bundled embedder, the scripted OpenAI-compatible server (an oracle that knows the gold labels)
and the embedding-only fallbacks; budgets counted at the server; constraints checked."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from clustering.constraints import Constraints, cluster_with_constraints, seeds_from_values
from clustering.metrics import external_metrics
from clustering.pipeline import PipelineConfig, cluster_space
from clustering.reduce import UMAPReducer
from corpusmap import api, modes
from corpusmap.cli import main
from corpusmap.llm_session import llm_settings_from
from corpusmap.request import stored_request
from corpusmap.structure import add_hierarchy
from corpusmap.views import balanced_sample_frame, hierarchy_table, rule_table
from tests.conftest import read_jsonl_gz
from tests.support.goal_replies import GoalOracle
from tests.support.openai_server import ScriptedOpenAIServer

PER_CLASS = 60
SEED_EVERY = 16
"""Rows i with i % 16 < 3 are seeds: classes alternate World, Sports, Business, Sci/Tech, so
World, Sports and Business get 15 seeds each and Sci/Tech none."""
AG_CLASSES = ("World", "Sports", "Business", "Sci/Tech")


@pytest.fixture(scope="module")
def ag_rows(shared_data):
    """240 AG News items (60 per class, interleaved); 45 carry a seed label; row 3 is empty
    (never clustered, still exported)."""
    rows = read_jsonl_gz("ag_news_test.jsonl.gz", 3000)
    by_class = {c: [r for r in rows if r["label"] == c][:PER_CLASS] for c in AG_CLASSES}
    picked = [by_class[c][i] for i in range(PER_CLASS) for c in AG_CLASSES]
    for i, r in enumerate(picked):
        # Sci/Tech gets no seed: it must come out as a novel cluster.
        r["seed"] = r["label"] if i % SEED_EVERY < 3 and r["label"] != "Sci/Tech" else ""
    picked[3] = {**picked[3], "text": "   ", "seed": ""}
    return picked


@pytest.fixture(scope="module")
def ag_path(tmp_path_factory, ag_rows):
    path = tmp_path_factory.mktemp("modes") / "ag240.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ag_rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def module_store(tmp_path_factory):
    from storage import Store

    store = Store.open(str(tmp_path_factory.mktemp("db") / "modes.db"))
    yield store
    store.close()


@pytest.fixture(scope="module")
def oracle_server(ag_rows):
    oracle = GoalOracle({r["text"]: r["label"] for r in ag_rows if r["text"].strip()})
    with ScriptedOpenAIServer(default=oracle) as server:
        yield server


def overrides(server):
    return {"base_url": server.base_url, "model": "scripted", "max_in_flight": 2}


def write_pairs(path, pairs):
    path.write_text("row_a,row_b\n" + "".join(f"{a},{b}\n" for a, b in pairs), encoding="utf-8")
    return path


# --- semi-supervised cluster mode -------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_run(tmp_path_factory, ag_path, ag_rows, module_store, embedder):
    # Pairs plain clustering may break: same class far apart in the file, different classes
    # next to each other; row 3 (empty) is named in one pair and must be ignored.
    folder = tmp_path_factory.mktemp("pairs")
    must = [(0, 4), (1, 5), (2, 6), (8, 12), (3, 7)]
    cannot = [(0, 1), (1, 2), (4, 5), (9, 10)]
    options = modes.ModeOptions(
        seed_label_column="seed",
        must_link=modes.pairs_from_file(write_pairs(folder / "ml.csv", must)),
        cannot_link=modes.pairs_from_file(write_pairs(folder / "cl.csv", cannot)),
        hierarchy=True,
    )
    handle = api.run(
        ag_path,
        options=options,
        store=module_store,
        label_column="label",
        config=PipelineConfig(n_clusters=4),
    )
    return handle, must, cannot


def test_seeded_run_keeps_its_constraints_and_finds_the_unseeded_class(seeded_run, ag_rows):
    handle, must, cannot = seeded_run
    run = handle.info
    assert run.status == "completed" and run.mode == "cluster"
    assert stored_request(run).options.seed_label_column == "seed"
    report = run.constraints
    assert report["must_link_total"] == len(must) - 1  # the pair with the empty row is dropped
    assert report["must_link_held"] == report["must_link_total"]
    assert report["cannot_link_held"] == report["cannot_link_total"] == len(cannot)
    assert report["seeds_together"] == report["seeds_total"] == sum(1 for r in ag_rows if r["seed"])
    assert run.metrics["nmi"] > 0.4
    frame = handle.frame()
    assert len(frame) == len(ag_rows) and frame.loc[3, "cluster_id"] == -1
    for a, b in must:
        if a != 3 and b != 3:
            assert frame.loc[a, "cluster_id"] == frame.loc[b, "cluster_id"]
    for a, b in cannot:
        assert frame.loc[a, "cluster_id"] != frame.loc[b, "cluster_id"]
    # Known clusters carry their seed class's name; the one without seeds is novel.
    novelty = run.novelty
    assert set(novelty["known"].values()) == {"World", "Sports", "Business"}
    assert len(novelty["novel"]) == 1
    names = {c.cluster_id: c.name for c in handle.store.load_clusters(handle.run_id)}
    for cid, name in novelty["known"].items():
        assert names[int(cid)] == name
    novel = frame[frame.cluster_id == int(novelty["novel"][0])]
    assert (novel["label"] == "Sci/Tech").mean() > 0.5


def test_hierarchy_rules_and_balanced_sample_of_a_stored_run(seeded_run):
    handle, _, _ = seeded_run
    store, run_id = handle.store, handle.run_id
    leaves = store.load_clusters(run_id)
    parents = store.load_clusters(run_id, level=1)
    assert 1 <= len(parents) < len(leaves) or len(leaves) < 4
    assert all(c.parent_id in {p.cluster_id for p in parents} for c in leaves)
    assert all(p.name for p in parents) and sum(p.size for p in parents) == sum(
        c.size for c in leaves
    )
    table = hierarchy_table(store, run_id)
    assert sorted(sum(table["children"].tolist(), [])) == sorted(c.cluster_id for c in leaves)
    rules = rule_table(store, run_id)
    assert len(rules) == len(leaves) and rules["rule"].str.len().gt(0).all()
    assert rules["rule_precision"].between(0, 1).all() and rules["rule_recall"].between(0, 1).all()
    sample = balanced_sample_frame(store, run_id, 40)
    assert len(sample) == 40 and (sample["cluster_id"] >= 0).all()
    counts = sample["cluster_id"].value_counts()
    assert counts.max() - counts.min() <= 20


# --- propose and classify with the oracle LLM and without an LLM ---------------------------


@pytest.mark.parametrize("mode", ["propose", "classify"])
def test_llm_modes_store_runs_within_the_budget(
    mode, ag_path, module_store, oracle_server, embedder
):
    before = len(oracle_server.chat_requests)
    plans = []
    options = modes.ModeOptions(mode=mode, llm_budget=10)
    handle = api.run(
        ag_path,
        options=options,
        store=module_store,
        label_column="label",
        config=PipelineConfig(
            goal="group by the kind of event reported",
            n_clusters=4,
            # Classify puts every text in a category: the setting would not apply there.
            reassign_outliers=mode == "propose",
        ),
        llm_overrides=overrides(oracle_server),
        on_plan=plans.append,
    )
    sent = len(oracle_server.chat_requests) - before
    run = handle.info
    assert run.status == "completed" and run.mode == mode
    assert plans and plans[0]["calls"] <= 10 and 0 < sent <= 10
    usage = run.llm_usage
    assert usage["budget"] == {"max_calls": 10, "used": sent} and usage["calls"] == sent
    assert usage["plan"]["calls"] == plans[0]["calls"]
    stored_calls = module_store.list_llm_calls(handle.run_id)
    assert len(stored_calls) == sent
    clusters = module_store.load_clusters(handle.run_id)
    assert {c.name for c in clusters} <= set(AG_CLASSES)
    assert len(clusters) == run.metrics["n_clusters"] <= 4
    assert run.metrics["acc"] > 0.6 and run.rules
    frame = handle.frame()
    assert len(frame) == PER_CLASS * 4 and frame.loc[3, "cluster_id"] == -1


def test_a_hierarchy_added_later_adds_to_the_runs_llm_usage(ag_path, module_store, oracle_server):
    # Eight clusters named by the LLM labeler (the oracle has no labels: they fail, counted).
    handle = api.run(
        ag_path,
        options=modes.ModeOptions(),
        store=module_store,
        labeler="llm",
        config=PipelineConfig(goal="group by the kind of event reported", n_clusters=8),
        llm_overrides=overrides(oracle_server),
    )
    before = handle.info.llm_usage
    add_hierarchy(
        module_store,
        handle.run_id,
        llm_settings=llm_settings_from(overrides(oracle_server)),
        llm_budget=2,
    )
    usage = handle.info.llm_usage
    assert 1 <= usage["hierarchy"]["calls"] <= 2
    assert usage["calls"] == before["calls"] + usage["hierarchy"]["calls"]
    assert usage["labeler"] == before["labeler"]
    assert handle.info.hierarchy["choice"]["method"] == "llm_pairs"


@pytest.mark.parametrize("mode", ["propose", "classify"])
def test_llm_modes_without_an_llm_run_on_embeddings(
    mode, ag_path, module_store, embedder, monkeypatch
):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    handle = api.run(
        ag_path,
        options=modes.ModeOptions(mode=mode),
        store=module_store,
        label_column="label",
        config=PipelineConfig(n_clusters=4),
    )
    run = handle.info
    assert run.status == "completed" and run.labeler == "keywords"
    assert run.metrics["mode_stats"]["fallback"] == "no_llm"
    assert not module_store.list_llm_calls(handle.run_id)
    assert run.metrics["n_clusters"] >= 2 and run.metrics["nmi"] > 0.2


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_classify_prints_the_budget_before_and_the_usage_after(
    ag_path, oracle_server, tmp_path, embedder
):
    before = len(oracle_server.chat_requests)
    db = tmp_path / "cli.db"
    result = CliRunner().invoke(
        main,
        [
            "run",
            str(ag_path),
            "--out",
            str(tmp_path / "out.csv"),
            "--db",
            str(db),
            "--mode",
            "classify",
            "--goal",
            "group by the kind of event reported",
            "--n-clusters",
            "4",
            "--llm-budget",
            "6",
            "--llm-base-url",
            oracle_server.base_url,
            "--llm-model",
            "scripted",
            "--label-column",
            "label",
            "--hierarchy",
            "--sample-out",
            str(tmp_path / "sample.csv"),
            "--sample-n",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    sent = len(oracle_server.chat_requests) - before
    assert 0 < sent <= 6
    assert "LLM budget: up to 6 calls" in result.output
    assert f"LLM used: {sent} of 6 planned calls" in result.output
    assert "hierarchy:" in result.output and "keyword rules:" in result.output
    assert (tmp_path / "sample.csv").exists()


def test_cli_rejects_seeds_outside_cluster_mode_and_a_missing_seed_column(ag_path, tmp_path):
    runner = CliRunner()
    args = ["run", str(ag_path), "--out", str(tmp_path / "o.csv"), "--db", str(tmp_path / "x.db")]
    bad = runner.invoke(main, [*args, "--mode", "propose", "--seed-label-column", "seed"])
    assert bad.exit_code == 2 and "--mode cluster only" in bad.output
    missing = runner.invoke(main, [*args, "--seed-label-column", "nope"])
    assert missing.exit_code == 2 and "no seed label column 'nope'" in missing.output


# --- semi-supervised beats unsupervised on Banking77 ----------------------------------------


def semi_vs_unsupervised(rows, embedder, share=0.10, random_state=0):
    """NMI/ACC of 10% seeds against k-means on the same vectors and against the pipeline's
    fixed-K path (UMAP to 5-d, then k-means), all with the true K."""
    texts = [r["text"] for r in rows]
    truth = [r["label"] for r in rows]
    k = len(set(truth))
    vectors = embedder.embed(texts)
    pick = np.random.default_rng(random_state).random(len(rows)) < share
    seeds, classes = seeds_from_values([t if p else "" for t, p in zip(truth, pick, strict=True)])
    semi, _, _ = cluster_with_constraints(vectors, Constraints(seeds, classes), n_clusters=k)
    config = PipelineConfig(n_clusters=k)
    reducer = UMAPReducer(n_components=config.n_components, random_state=config.random_state)
    return {
        "semi": external_metrics(truth, semi.labels),
        "kmeans": external_metrics(truth, cluster_space(vectors, config).labels),
        "umap_kmeans": external_metrics(
            truth, cluster_space(reducer.fit_transform(vectors), config).labels
        ),
    }


@pytest.mark.slow
def test_ten_percent_seeds_beat_unsupervised_nmi_on_banking77(banking_rows, embedder):
    # Measured: semi 0.850, UMAP + k-means 0.831, k-means 0.791. (On a 20-intent slice the
    # seeds do not win: 0.880 against 0.882 and 0.914; with few classes UMAP does more.)
    got = semi_vs_unsupervised(banking_rows, embedder)
    print(f"banking77 10% seeds: {got}")
    for baseline in ("kmeans", "umap_kmeans"):
        assert got["semi"]["nmi"] > got[baseline]["nmi"], got
        assert got["semi"]["acc"] > got[baseline]["acc"], got
