"""The goal-driven modes (issue 5) through the real package: quality, LLM plan, seconds.

    python -m bench.modes [--corpora NAME ...] [--quick] [--no-llm] [--llm-only]

Per corpus, one SQLite file in a temporary folder: the corpus is stored once (a CSV with
``text``, ``label`` and a ``seed`` column filled on a seeded 10% of rows) and embedded once
before the runs, so every run after that reads its vectors from the database's cache. Then
``corpusmap.api.run`` runs, all offline (``llm_budget=0``):

- ``cluster`` with automatic K and with the true K; the latter then gets the offline two-level
  hierarchy (``add_hierarchy``: what ``hierarchy=True`` adds; its parents and seconds);
- ``cluster`` + the 10% seed column, K given and automatic K (with the constraint report);
- ``propose`` and ``classify`` on embeddings alone, K given.

NMI / ARI / ACC are the run's own metrics (``label_column="label"``; outliers count as one
cluster). For the LLM modes, ``plan_llm`` gives the calls and tokens they would plan on
the whole corpus (default budget), per 1,000 texts. Last, the bundled local model
(``llm.local``: llama.cpp with SmolLM2-135M) runs ``propose`` and ``classify`` on a small seeded
AG News sample within ``--llm-budget`` and what they really used is recorded; each is run a
second time to show the call cache. Writes bench/results/modes.json and modes.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import socket
import sys
import tempfile
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DATASETS, LabelledCorpus, load_corpus

RESULTS = Path(__file__).parent / "results"
RANDOM_STATE = 42
SEED_SHARE = 0.10
SAMPLE_SIZES = {"ag_news_test": 3000, "stackoverflow": 3000, "20newsgroups": 2000}
"""Corpora run on a seeded random subsample (to keep a run within minutes on 2 cores)."""
QUICK_SIZE = 400
DEFAULT_CORPORA = ("banking77_test", "ag_news_test")
GOALS = {
    "banking77_test": "group by what the customer wants the bank to do",
    "ag_news_test": "group by the kind of event reported",
    "stackoverflow": "group by the technology the question is about",
    "20newsgroups": "group by the topic of the post",
}
LLM_CORPUS = "ag_news_test"
LLM_PER_CLASS = 30
LLM_BUDGET = 12
LLM_SETTINGS = {"timeout_s": 300.0, "max_in_flight": 1, "max_retries": 0, "max_tokens": 256}
"""A 135M model on 2 shared cores: one request at a time, a long time-out, no retries."""
LLM_CTX = 4096
"""The server's context: a proposal prompt of 20 AG News texts does not fit in 2,048 tokens."""

log = logging.getLogger(__name__)


# --- corpora ------------------------------------------------------------------------------------


def bench_corpus(name: str, quick: bool) -> tuple[LabelledCorpus, int]:
    """The corpus as benchmarked (a seeded subsample where ``SAMPLE_SIZES`` says so) and the
    size of the full file."""
    full = load_corpus(name)
    size = QUICK_SIZE if quick else SAMPLE_SIZES.get(name)
    if size is None or size >= len(full.texts):
        return full, len(full.texts)
    rng = np.random.default_rng(RANDOM_STATE)
    picked = np.sort(rng.choice(len(full.texts), size, replace=False))
    return (
        LabelledCorpus(name, [full.texts[i] for i in picked], [full.labels[i] for i in picked]),
        len(full.texts),
    )


def seed_values(labels: list[str], share: float = SEED_SHARE) -> list[str]:
    """The gold label on a seeded ``share`` of rows, empty elsewhere."""
    rng = np.random.default_rng(RANDOM_STATE)
    picked = set(rng.choice(len(labels), round(share * len(labels)), replace=False).tolist())
    return [label if i in picked else "" for i, label in enumerate(labels)]


def write_csv(path: Path, texts: list[str], labels: list[str], seeds: list[str] | None) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label", "seed"] if seeds is not None else ["text", "label"])
        for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
            writer.writerow([text, label, seeds[i]] if seeds is not None else [text, label])
    return path


def stored_texts(store: Any, path: Path) -> tuple[int, list[str]]:
    """Store the file as a run would and return its corpus id and the texts a run embeds."""
    from clustering import read_corpus

    info = store.add_corpus(read_corpus(path, text_column="text"))
    corpus = store.load_corpus(info.id)
    return info.id, [corpus.texts[i] for i in corpus.nonempty_index]


# --- runs ---------------------------------------------------------------------------------------


def run_spec(k_true: int, goal: str) -> list[tuple[str, Any, Any]]:
    """(name, ModeOptions, PipelineConfig) of every offline run, in order."""
    from clustering.pipeline import PipelineConfig
    from corpusmap.modes import ModeOptions

    auto = PipelineConfig(goal=goal)
    given = PipelineConfig(goal=goal, n_clusters=k_true)
    seeded = {"seed_label_column": "seed", "llm_budget": 0}
    return [
        ("cluster, auto K", ModeOptions(llm_budget=0), auto),
        ("cluster, K given", ModeOptions(llm_budget=0), given),
        ("cluster + 10% seeds, K given", ModeOptions(**seeded), given),
        ("cluster + 10% seeds, auto K", ModeOptions(**seeded), auto),
        ("propose, no LLM, K given", ModeOptions(mode="propose", llm_budget=0), given),
        ("classify, no LLM, K given", ModeOptions(mode="classify", llm_budget=0), given),
    ]


def warm_up(workdir: Path) -> None:
    """One small untimed run, so numba's compilation of UMAP and HDBSCAN is in no figure."""
    from corpusmap.api import run
    from corpusmap.modes import ModeOptions

    corpus = load_corpus("banking77_test")
    path = write_csv(workdir / "warm_up.csv", corpus.texts[:300], corpus.labels[:300], None)
    run(path, options=ModeOptions(llm_budget=0), text_column="text", db=str(workdir / "warm_up.db"))


def run_one(
    store: Any,
    path: Path,
    name: str,
    options: Any,
    config: Any,
    llm_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from clustering import pipeline
    from corpusmap.api import run

    # Seconds as a fresh process (the CLI) spends them: without this, runs after the first
    # would reuse the in-process memo of UMAP layouts that the app's re-cluster relies on.
    pipeline._reduction_memo.clear()
    start = time.perf_counter()
    handle = run(
        path,
        options=options,
        text_column="text",
        config=config,
        labeler="keywords",
        label_column="label",
        store=store,
        llm_overrides=llm_overrides,
    )
    seconds = time.perf_counter() - start
    info = handle.info
    metrics = info.metrics
    row: dict[str, Any] = {
        "run": name,
        "run_id": info.id,
        "mode": options.mode,
        "k_given": config.n_clusters,
        "status": info.status,
        "nmi": metrics.get("nmi"),
        "ari": metrics.get("ari"),
        "acc": metrics.get("acc"),
        "n_clusters": metrics.get("n_clusters"),
        "outliers": metrics.get("noise_share"),
        "seconds": round(seconds, 2),
        "timings": info.timings,
    }
    if info.constraints:
        row["constraints"] = info.constraints
    if info.novelty:
        row["novel_clusters"] = len(info.novelty.get("novel", []))
    if info.hierarchy:
        row["n_parents"] = info.hierarchy.get("n_parents")
    stats = metrics.get("mode_stats") or {}
    if stats:
        row["mode_stats"] = stats
    if info.llm_usage:
        row["llm_usage"] = info.llm_usage
    return row


def run_corpus(name: str, quick: bool, workdir: Path) -> dict[str, Any]:
    from clustering.cached_embedding import embed_texts
    from corpusmap import service
    from storage import Store

    corpus, full_size = bench_corpus(name, quick)
    k_true = corpus.n_classes
    goal = GOALS.get(name, "group by topic")
    path = write_csv(
        workdir / f"{name}.csv", corpus.texts, corpus.labels, seed_values(corpus.labels)
    )
    store = Store.open(str(workdir / f"{name}.sqlite"))
    _, texts = stored_texts(store, path)
    start = time.perf_counter()
    _, counts = embed_texts(texts, service.get_embedder(), store)
    embed_seconds = time.perf_counter() - start
    print(f"{name}: {len(texts):,} texts embedded in {embed_seconds:.1f} s", flush=True)

    runs = []
    for run_name, options, config in run_spec(k_true, goal):
        row = run_one(store, path, run_name, options, config)
        runs.append(row)
        print(f"  {line(row)}", flush=True)
    plain = next(r for r in runs if r["run"] == "cluster, K given")
    plain["hierarchy"] = timed_hierarchy(store, plain["run_id"])
    print(f"  hierarchy on {plain['run']}: {plain['hierarchy']}", flush=True)
    return {
        "dataset": name,
        "n": len(texts),
        "full_size": full_size,
        "classes": k_true,
        "goal": goal,
        "seed_share": SEED_SHARE,
        "embed_seconds": round(embed_seconds, 2),
        "embed_counts": counts,
        "runs": runs,
        "plans": plans(texts, k_true, goal),
    }


def timed_hierarchy(store: Any, run_id: int) -> dict[str, Any]:
    """Parents added to a stored run offline (what ``hierarchy=True`` adds to the run), timed."""
    from corpusmap.structure import add_hierarchy

    start = time.perf_counter()
    hierarchy = add_hierarchy(store, run_id, llm_budget=0)
    return {
        "n_parents": hierarchy.get("n_parents"),
        "method": (hierarchy.get("choice") or {}).get("method"),
        "seconds_added": round(time.perf_counter() - start, 2),
    }


def line(row: dict[str, Any]) -> str:
    return (
        f"{row['run']:30s} NMI {row['nmi']:.3f} ARI {row['ari']:.3f} ACC {row['acc']:.3f} "
        f"K {row['n_clusters']:3d} out {100 * row['outliers']:4.1f}% {row['seconds']:.1f}s"
    )


# --- LLM plans ----------------------------------------------------------------------------------


def has_keyphrases() -> bool:
    from corpusmap.modes import ModeOptions

    return "expand_keyphrases" in {f.name for f in fields(ModeOptions)}


def plans(texts: list[str], k_true: int, goal: str) -> list[dict[str, Any]]:
    """What the LLM modes would plan on these texts with the default budget, per 1,000 texts."""
    from clustering.pipeline import PipelineConfig
    from corpusmap.modes import ModeOptions
    from corpusmap.plan import plan_llm

    config = PipelineConfig(goal=goal, n_clusters=k_true)
    wanted: list[tuple[str, Any]] = [
        ("propose", ModeOptions(mode="propose")),
        ("classify", ModeOptions(mode="classify")),
    ]
    if has_keyphrases():
        wanted.append(("keyphrase expansion (cluster)", ModeOptions(expand_keyphrases=True)))
    out = []
    for what, options in wanted:
        plan = plan_llm(texts, options, config)
        per = 1000 / len(texts)
        out.append(
            {
                "what": what,
                "budget": options.llm_budget,
                "plan": plan,
                "calls_per_1000": round(plan["calls"] * per, 2),
                "prompt_tokens_per_1000": round(plan.get("prompt_tokens", 0) * per),
                "completion_tokens_per_1000": round(plan.get("completion_tokens", 0) * per),
            }
        )
    return out


# --- the local model --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def llm_sample(per_class: int) -> LabelledCorpus:
    """``per_class`` texts of each AG News class, drawn with a seeded generator."""
    full = load_corpus(LLM_CORPUS)
    rng = np.random.default_rng(RANDOM_STATE)
    labels = np.asarray(full.labels)
    picked: list[int] = []
    for label in sorted(set(full.labels)):
        picked += rng.choice(np.flatnonzero(labels == label), per_class, replace=False).tolist()
    picked.sort()
    return LabelledCorpus(
        f"{LLM_CORPUS}_{len(picked)}",
        [full.texts[i] for i in picked],
        [full.labels[i] for i in picked],
    )


def run_local_llm(per_class: int, budget: int, workdir: Path) -> dict[str, Any]:
    from clustering.pipeline import PipelineConfig
    from corpusmap.modes import ModeOptions
    from llm.local import local_model_path, serve_local_model
    from storage import Store

    sample = llm_sample(per_class)
    k_true = sample.n_classes
    goal = GOALS[LLM_CORPUS]
    path = write_csv(workdir / "llm_sample.csv", sample.texts, sample.labels, None)
    config = PipelineConfig(goal=goal, n_clusters=k_true)
    runs = []
    start = time.perf_counter()
    with serve_local_model(
        port=free_port(), n_ctx=LLM_CTX, n_threads=2, log_path=workdir / "llama.log"
    ) as server:
        startup = time.perf_counter() - start
        overrides = {"base_url": server.base_url, "model": server.model, **LLM_SETTINGS}
        for mode in ("propose", "classify"):
            # A database per mode: classify's first proposal call must not hit propose's cache.
            store = Store.open(str(workdir / f"llm_{mode}.sqlite"))
            options = ModeOptions(mode=mode, llm_budget=budget)
            for attempt in ("first", "again (cache)"):
                row = run_one(store, path, f"{mode}, {attempt}", options, config, overrides)
                row.update(usage_figures(row.get("llm_usage", {}), len(sample.texts)))
                runs.append(row)
                print(f"  {line(row)} calls {row['calls']} hits {row['cache_hits']}", flush=True)
    return {
        "dataset": sample.name,
        "n": len(sample.texts),
        "classes": k_true,
        "goal": goal,
        "budget": budget,
        "model": local_model_path().name,
        "server": {"n_ctx": LLM_CTX, "n_threads": 2, "startup_seconds": round(startup, 1)},
        "llm_settings": LLM_SETTINGS,
        "runs": runs,
    }


def usage_figures(usage: dict[str, Any], n: int) -> dict[str, Any]:
    tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    return {
        "calls": usage.get("calls", 0),
        "planned_calls": usage.get("plan", {}).get("calls", 0),
        "cache_hits": usage.get("cache_hits", 0),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "unanswered": usage.get("unanswered", 0),
        "failures": usage.get("failures", 0),
        "repairs": usage.get("repairs", 0),
        "llm_seconds": usage.get("seconds"),
        "tokens_per_1000": round(tokens * 1000 / n),
        "calls_per_1000": round(usage.get("calls", 0) * 1000 / n, 1),
    }


# --- the report ---------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    from corpusmap import service

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "versions": service.package_versions(),
    }


def fmt(value: Any, spec: str = ".3f") -> str:
    return "–" if value is None else format(value, spec)


def stage_text(timings: dict[str, Any]) -> str:
    stages = ("embed", "reduce", "cluster", "label")
    return " / ".join(fmt(timings.get(s), ".1f") for s in stages)


def write_report(report: dict[str, Any], stem: str = "modes") -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    m = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    lines = [
        "# Goal-driven modes (issue 5)",
        "",
        f"{m['date']}; {m['platform']}, {m['cpus']} CPUs (shared; load average at the start "
        f"{', '.join(map(str, m['load_average']))}); Python {m['python']}; {versions}.",
        "Produced by `python -m bench.modes`; every run goes through `corpusmap.api.run`",
        "on one SQLite file per corpus, all-MiniLM-L6-v2 vectors (in the precision `auto` chose for the machine) embedded once and read from",
        "the database's cache by every run. NMI / ARI / ACC are the run's metrics against `label`",
        "(outliers count as one cluster; seeded runs are scored on every row, seeds included). s:",
        "the whole `api.run` call; stages: its embed / reduce / cluster / label seconds (the",
        "hierarchy and keyword rules come after them).",
        "",
        "## Quality and seconds, no LLM",
        "",
        "| corpus | n | K | run | NMI | ARI | ACC | clusters | outliers | s | stages s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in report["corpora"]:
        size = f"{c['n']:,}" + (f" of {c['full_size']:,}" if c["full_size"] != c["n"] else "")
        for r in c["runs"]:
            lines.append(
                f"| {c['dataset']} | {size} | {c['classes']} | {r['run']} | {fmt(r['nmi'])} | "
                f"{fmt(r['ari'])} | {fmt(r['acc'])} | {r['n_clusters']} | "
                f"{100 * r['outliers']:.1f}% | {r['seconds']:.1f} | {stage_text(r['timings'])} |"
            )
    lines += [
        "",
        "| corpus | embed once s | hierarchy on K given: parents | s added | seeds | "
        "seeded K given: seeds together | must/cannot held | novel clusters |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for c in report["corpora"]:
        hier = next((r["hierarchy"] for r in c["runs"] if "hierarchy" in r), {})
        seeded = next((r for r in c["runs"] if r["run"] == "cluster + 10% seeds, K given"), {})
        cons = seeded.get("constraints", {})
        lines.append(
            f"| {c['dataset']} | {c['embed_seconds']:.1f} | {hier.get('n_parents', '–')} | "
            f"{fmt(hier.get('seconds_added'), '.1f')} | {cons.get('n_seeds', '–')} | "
            f"{cons.get('seeds_together', '–')}/{cons.get('seeds_total', '–')} | "
            f"{cons.get('must_link_held', '–')}/{cons.get('must_link_total', '–')}, "
            f"{cons.get('cannot_link_held', '–')}/{cons.get('cannot_link_total', '–')} | "
            f"{seeded.get('novel_clusters', '–')} |"
        )
    lines += [
        "",
        "## LLM plan on the whole corpus (default budget), per 1,000 texts",
        "",
        "`plan_llm` with K given and no `llm_budget` (propose plans 60 calls whatever the",
        "size; classify 60 + one per 15 texts; keyphrase expansion one per 16 distinct texts).",
        "",
        "| corpus | n | LLM step | calls | prompt tokens | completion tokens | calls / 1k | "
        "prompt tok / 1k | completion tok / 1k |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in report["corpora"]:
        for p in c["plans"]:
            plan = p["plan"]
            lines.append(
                f"| {c['dataset']} | {c['n']:,} | {p['what']} | {plan['calls']:,} | "
                f"{plan.get('prompt_tokens', 0):,} | {plan.get('completion_tokens', 0):,} | "
                f"{p['calls_per_1000']:g} | {p['prompt_tokens_per_1000']:,} | "
                f"{p['completion_tokens_per_1000']:,} |"
            )
    llm = report.get("local_llm")
    if llm:
        lines += [
            "",
            f"## Measured with the local model ({llm['model']}, llama.cpp, "
            f"{llm['server']['n_threads']} threads)",
            "",
            f"{llm['dataset']}: {llm['n']} AG News test texts ({llm['n'] // llm['classes']} per "
            f"class, seeded), K={llm['classes']}, `llm_budget={llm['budget']}`, goal "
            f"“{llm['goal']}”; llama.cpp context {llm['server']['n_ctx']}, `max_tokens` "
            f"{llm['llm_settings']['max_tokens']}, one request at a time. Each mode runs twice "
            "on its own database: the second run takes usable answers from the call cache and "
            "asks the failed ones again. Calls include repair calls (a second try after an "
            "unusable reply); the plan counts none, so tokens used can exceed the plan while "
            "calls stay within the budget. A 135M model is a demo: the figures are real usage, "
            "not the quality of the LLM modes.",
            "",
            "| run | calls used / planned | cache hits | prompt + completion tokens (planned) | "
            "tokens / 1k texts | failed | unanswered | repairs | fallback | LLM s | run s | "
            "clusters | NMI | ACC |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in llm["runs"]:
            fallback = (r.get("mode_stats") or {}).get("fallback") or "–"
            plan = r.get("llm_usage", {}).get("plan", {})
            lines.append(
                f"| {r['run']} | {r['calls']} / {r['planned_calls']} | {r['cache_hits']} | "
                f"{r['prompt_tokens']:,} + {r['completion_tokens']:,} "
                f"({plan.get('prompt_tokens', 0):,} + {plan.get('completion_tokens', 0):,}) | "
                f"{r['tokens_per_1000']:,} | {r['failures']} | {r['unanswered']} | "
                f"{r['repairs']} | {fallback} | {fmt(r['llm_seconds'], '.0f')} | "
                f"{r['seconds']:.0f} | {r['n_clusters']} | {fmt(r['nmi'])} | {fmt(r['acc'])} |"
            )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(DEFAULT_CORPORA), choices=DATASETS)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE} texts per corpus")
    parser.add_argument("--no-llm", action="store_true", help="skip the local-model runs")
    parser.add_argument("--llm-only", action="store_true", help="only the local-model runs")
    parser.add_argument("--llm-per-class", type=int, default=LLM_PER_CLASS)
    parser.add_argument("--llm-budget", type=int, default=LLM_BUDGET)
    parser.add_argument("--report", action="store_true", help="rewrite modes.md from modes.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    previous_path = RESULTS / "modes.json"
    previous = json.loads(previous_path.read_text()) if previous_path.exists() else {}
    if args.report:
        write_report(previous)
        return
    report: dict[str, Any] = {"machine": machine(), "corpora": []}
    with tempfile.TemporaryDirectory(prefix="corpusmap-bench-modes-") as tmp:
        workdir = Path(tmp)
        if not args.llm_only:
            warm_up(workdir)
            for name in args.corpora:
                report["corpora"].append(run_corpus(name, args.quick, workdir))
        if not args.no_llm:
            per_class = 6 if args.quick else args.llm_per_class
            budget = 4 if args.quick else args.llm_budget
            print(f"local model: {per_class} texts per class, budget {budget}", flush=True)
            report["local_llm"] = run_local_llm(per_class, budget, workdir)
    if args.quick:  # a smoke test of the script: never replaces the full results
        write_report(report, "modes.quick")
        return
    # What was not run this time keeps its last results, so one part can be re-run alone.
    if previous:
        done = {c["dataset"] for c in report["corpora"]}
        kept = [c for c in previous.get("corpora", []) if c["dataset"] not in done]
        report["corpora"] = sorted(
            kept + report["corpora"], key=lambda c: DATASETS.index(c["dataset"])
        )
        if "local_llm" not in report and "local_llm" in previous:
            report["local_llm"] = previous["local_llm"]
    write_report(report)


if __name__ == "__main__":
    main()
