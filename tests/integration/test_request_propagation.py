"""Every setting of a run reaches the stored run and changes what its stage does, whichever entry
built the request: the CLI, the Python API or the app (issue 12).

Two requests carry a non-default value for every field they can hold together: ``AUTO`` (the
automatic clustering, sampled, with a hierarchy) and ``CLASSIFY`` (a goal-driven mode with the
user's own categories). Each entry runs both on the same 300 Banking77 texts, and the table
``CHECKS`` says, per field, what the stored run must show. Fields that need a service these
runs do not start are covered where it is started, named in ``ELSEWHERE``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from clustering import PipelineConfig
from clustering.types import NOISE
from corpusmap import api
from corpusmap.cli import main
from corpusmap.modes import ModeOptions
from corpusmap.request import EmbeddingSpec, RunRequest, stored_request
from storage import RunInfo, Store

pytestmark = pytest.mark.slow  # six real runs (UMAP, HDBSCAN, the model); CI runs them

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "banking77_test.jsonl.gz"
GOAL = "what the customer wants the bank to do"
CATEGORIES = ("card not working", "transfer money", "top up", "exchange rate")

AUTO = RunRequest(
    text_column="body",
    label_column="label",
    name="auto run",
    pipeline=PipelineConfig(
        min_cluster_size=12,
        random_state=7,
        reassign_outliers=True,
        goal=GOAL,
        sample_size=200,
    ),
    options=ModeOptions(hierarchy=True, n_parents=3, rules=False),
    embedding=EmbeddingSpec(precision="fp32"),
)
CLASSIFY = RunRequest(
    text_column="body",
    name="classify run",
    pipeline=PipelineConfig(n_clusters=4, goal=GOAL),
    options=ModeOptions(mode="classify", categories=CATEGORIES),
)

Check = Callable[[RunInfo, Store, pd.DataFrame], bool]
CHECKS: dict[str, tuple[RunRequest, Check]] = {
    "text_column": (
        AUTO,
        lambda run, store, a: store.get_corpus(run.corpus_id).text_column == "body",
    ),
    "label_column": (AUTO, lambda run, store, a: run.metrics.get("nmi", 0) > 0.3),
    "name": (AUTO, lambda run, store, a: run.name == "auto run"),
    "pipeline.goal": (AUTO, lambda run, store, a: run.goal == GOAL),
    "pipeline.random_state": (AUTO, lambda run, store, a: run.seed == 7),
    "pipeline.reassign_outliers": (
        AUTO,
        lambda run, store, a: not (a["cluster_id"] == NOISE).any(),
    ),
    "pipeline.sample_size": (AUTO, lambda run, store, a: run.metrics["sampled"]["sample"] == 200),
    "pipeline.min_cluster_size": (
        AUTO,
        lambda run, store, a: a["cluster_id"].value_counts().min() >= 12 * 200 // 300,
    ),
    "options.hierarchy": (
        AUTO,
        lambda run, store, a: len(store.load_clusters(run.id, level=1)) > 0,
    ),
    "options.n_parents": (
        AUTO,
        lambda run, store, a: len(store.load_clusters(run.id, level=1)) == 3,
    ),
    "options.rules": (AUTO, lambda run, store, a: run.rules == {}),
    "embedding.precision": (
        AUTO,
        lambda run, store, a: stored_request(run).embedding.precision == "fp32",
    ),
    "pipeline.n_clusters": (CLASSIFY, lambda run, store, a: run.metrics["n_clusters"] == 4),
    "options.mode": (CLASSIFY, lambda run, store, a: run.mode == "classify"),
    "options.categories": (
        CLASSIFY,
        lambda run, store, a: {c.name for c in store.load_clusters(run.id)} <= set(CATEGORIES),
    ),
}
ELSEWHERE = {
    "source": "every run here reads a file",
    "corpus_id": "the app runs on a stored corpus (tests/ui/test_run_request_app.py)",
    "sheet": "tests/reliability/test_bad_inputs.py (XLSX sheets)",
    "labeler": "tests/integration/test_llm_cache.py, tests/integration/test_modes.py",
    "llm": "tests/integration/test_modes.py (the scripted endpoint)",
    "ray": "tests/integration/test_ray.py",
    "embedding.model": "tests/integration/test_goal_embeddings.py (another model id)",
    "options.seed_label_column": "tests/integration/test_modes.py, test_crash_modes.py",
    "options.seed_labels": "tests/ui/test_modes_app.py",
    "options.llm_budget": "tests/integration/test_modes.py (calls within the budget)",
    "options.must_link": "tests/integration/test_modes.py",
    "options.cannot_link": "tests/integration/test_modes.py",
    "options.selection": "tests/integration/test_modes.py (propose, greedy and milp)",
    "options.k_method": "tests/unit/test_modes_core.py (stability)",
    "options.instruction": "tests/integration/test_goal_embeddings.py",
    "options.expand_keyphrases": "tests/integration/test_goal_embeddings.py",
    "pipeline.min_samples": "tests/unit/test_stages.py",
    "pipeline.cluster_selection_method": "tests/unit/test_stages.py",
    "pipeline.merge_clusters": "tests/unit/test_granularity.py",
    "pipeline.n_neighbors": "tests/unit/test_stages.py",
    "pipeline.n_components": "tests/unit/test_stages.py",
    "pipeline.min_dist": "tests/unit/test_stages.py",
    "pipeline.n_representatives": "tests/unit/test_stages.py",
}


def every_field() -> set[str]:
    names = set()
    for f in dataclasses.fields(RunRequest):
        if f.name in ("pipeline", "options", "embedding"):
            inner = {"pipeline": PipelineConfig, "options": ModeOptions, "embedding": EmbeddingSpec}
            names |= {f"{f.name}.{g.name}" for g in dataclasses.fields(inner[f.name])}
        else:
            names.add(f.name)
    return names


def test_the_table_names_every_field_of_a_request():
    assert set(CHECKS) | set(ELSEWHERE) == every_field()
    assert not set(CHECKS) & set(ELSEWHERE)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in gzip.open(DATA, "rt", encoding="utf-8")]
    intents = sorted({r["label"] for r in rows})[::8][:10]  # ten intents, 30 texts each
    rows = [r for intent in intents for r in [r for r in rows if r["label"] == intent][:30]]
    frame = pd.DataFrame(
        {
            "note": ["x"] * len(rows),
            "body": [r["text"] for r in rows],
            "label": [r["label"] for r in rows],
        }
    )
    path = tmp_path_factory.mktemp("propagation") / "tickets.csv"
    frame.to_csv(path, index=False)
    return path


def cli_args(request: RunRequest) -> list[str]:
    config, options = request.pipeline, request.options
    args = ["--text-column", request.text_column or "", "--name", request.name]
    if request.label_column:
        args += ["--label-column", request.label_column]
    if config.goal:
        args += ["--goal", config.goal]
    if config.n_clusters:
        args += ["--n-clusters", str(config.n_clusters)]
    if config.min_cluster_size:
        args += ["--min-cluster-size", str(config.min_cluster_size)]
    args += ["--seed", str(config.random_state), "--sample-size", str(config.sample_size)]
    if config.reassign_outliers:
        args.append("--reassign-outliers")
    args += ["--mode", options.mode, "--precision", request.embedding.precision]
    if options.hierarchy:
        args += ["--hierarchy", "--n-parents", str(options.n_parents)]
    if not options.rules:
        args.append("--no-rules")
    for category in options.categories:
        args += ["--category", category]
    if options.llm_budget is not None:
        args += ["--llm-budget", str(options.llm_budget)]
    return args


def run_cli(request: RunRequest, corpus: Path, db: Path) -> int:
    result = CliRunner().invoke(
        main,
        ["run", str(corpus), "--out", str(db.with_suffix(".csv")), "--db", str(db), "--json", "-q"]
        + cli_args(request),
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])["run_id"]


def run_api(request: RunRequest, corpus: Path, db: Path) -> int:
    return api.run(request=dataclasses.replace(request, source=str(corpus)), db=str(db)).run_id


@pytest.fixture(scope="module", params=["cli", "api"])
def runs(request, corpus, tmp_path_factory) -> dict[int, tuple[Store, RunInfo]]:
    db = tmp_path_factory.mktemp(request.param) / "runs.db"
    entry = run_cli if request.param == "cli" else run_api
    done = {}
    for wanted in (AUTO, CLASSIFY):
        run_id = entry(wanted, corpus, db)
        store = Store.open(str(db))
        done[id(wanted)] = (store, store.get_run(run_id))
    return done


@pytest.mark.parametrize("field", sorted(CHECKS))
def test_each_setting_reaches_the_stored_run_and_its_stage(runs, field):
    wanted, check = CHECKS[field]
    store, run = runs[id(wanted)]
    stored = stored_request(run)
    assert dataclasses.replace(stored, corpus_id=None, source=None) == dataclasses.replace(
        wanted, corpus_id=None, source=None
    )
    assignments = store.load_assignments(run.id)
    assert run.status == "completed"
    assert check(run, store, assignments), field
    assert np.isfinite(assignments["probability"]).all()
