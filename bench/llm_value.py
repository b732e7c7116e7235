"""What the LLM modes are worth, measured with simulated judges of known accuracy (issue 18).

    python -m bench.llm_value [--quick] [--corpora NAME ...] [--n N] [--p P ...] [--budgets B ...]
                              [--modes MODE ...] [--stem STEM] [--report [--merge STEM ...]]

No capable model is reachable here, so ``bench.judge.SimulatedJudge`` answers corpusmap's own
prompts from the gold labels of the texts in each prompt: right with probability ``p``, else
with the confusable class (nearest other class by centroid). Per corpus (a seeded subsample,
K given = its number of classes), one SQLite file holds the corpus and its vectors, and every
run goes through ``corpusmap.api.run``:

- ``classify`` (label-then-classify), ``propose`` (propose/assign/select) and ``keyphrases``
  (the cluster mode with LLM keyphrase expansion; it needs one call per 16 texts, so smaller
  budgets cannot run it) at every budget, the budget-0 run of the same mode being the
  baseline of its gain; a larger budget for which the mode plans the same calls
  (``corpusmap.plan.plan_llm``) reuses the smaller budget's run;
- ``classify`` once more per (p, budget) with the guard off, in-process
  (``llm.classify.label_then_classify`` on the same vectors, no storage): what the guard is
  worth; and keyphrase expansion in-process, clustered with the guard
  (``llm.keyphrases.guard_expansion``) on and off and without expansion;
- the LLM labeler on the clusters of the K-given cluster run, per p: the faithfulness of the
  LLM's explanations, of the keyword ones, and of what ``clustering.faithfulness.
  prefer_faithful`` shows, with how many clusters kept the keyword label.

Pairwise hierarchy checks are measured apart, on a corpus with gold parents
(``bench.llm_value_hierarchy``, 20 Newsgroups); the report includes its table. Writes bench/results/llm_value.json, llm_value.md and
llm_value.png (gain in NMI against judge calls, one line per p; matplotlib, the bench extra).
``--quick`` writes llm_value.quick.* instead and never replaces the full results. ``--modes``
runs only those modes (no guard or labeler rows); ``--stem`` names the files (one process per
corpus, then ``--report --stem A --merge B`` joins them; ``--report --replace C`` puts the
modes C ran in place of the same corpus and modes' runs); ``<stem>.notes.md``, written by hand,
goes into the report after its first paragraph.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import LabelledCorpus, load_corpus
from bench.judge import SimulatedJudge
from bench.llm_value_report import MODES, RESULTS, write_report
from bench.modes import GOALS, machine, write_csv

RANDOM_STATE = 42
DEFAULT_CORPORA = ("banking77_test", "ag_news_test")
FULL = {"n": 1000, "p": (1.0, 0.9, 0.75, 0.6, 0.5), "budgets": (0, 50, 200, 1000)}
QUICK = {"n": 400, "p": (1.0, 0.9, 0.75, 0.6, 0.5), "budgets": (0, 10, 30)}
JUDGE_SEED = 0

log = logging.getLogger(__name__)


def subsample(name: str, n: int) -> LabelledCorpus:
    full = load_corpus(name)
    if n >= len(full.texts):
        return full
    rng = np.random.default_rng(RANDOM_STATE)
    picked = np.sort(rng.choice(len(full.texts), n, replace=False))
    return LabelledCorpus(
        f"{name}_{n}", [full.texts[i] for i in picked], [full.labels[i] for i in picked]
    )


def mode_options(mode: str, budget: int) -> Any:
    from corpusmap.modes import ModeOptions

    if mode == "keyphrases":
        return ModeOptions(mode="cluster", llm_budget=budget, expand_keyphrases=budget > 0)
    return ModeOptions(mode=mode, llm_budget=budget)


def plan_calls(texts: list[str], mode: str, budget: int, config: Any) -> int:
    """The most calls the mode plans with ``budget`` (``corpusmap.plan.plan_llm``)."""
    from corpusmap.plan import plan_llm

    return int(plan_llm(texts, mode_options(mode, budget), config)["calls"])


def keyphrase_calls_needed(n: int) -> int:
    from llm.keyphrases import keyphrase_calls

    return keyphrase_calls(n)


def run_one(
    store: Any, path: Path, mode: str, budget: int, config: Any, judge: SimulatedJudge | None
) -> dict[str, Any]:
    from corpusmap import api

    before = judge.usage() if judge is not None else {}
    start = time.perf_counter()
    handle = api.run(
        path,
        options=mode_options(mode, budget),
        text_column="text",
        config=config,
        labeler="keywords",
        label_column="label",
        store=store,
        # A model name per run: no run is answered from another run's stored calls.
        llm_overrides=judge.overrides(model=f"{judge.model}-{mode}-{budget}")
        if judge is not None and budget
        else None,
    )
    after = judge.usage() if judge is not None else {}
    metrics = handle.info.metrics
    return {
        "mode": mode,
        "budget": budget,
        "nmi": metrics.get("nmi"),
        "ari": metrics.get("ari"),
        "acc": metrics.get("acc"),
        "n_clusters": metrics.get("n_clusters"),
        "calls": after.get("calls", 0) - before.get("calls", 0),
        "refused": after.get("refused", 0) - before.get("refused", 0),
        "tokens": (after.get("prompt_tokens", 0) + after.get("completion_tokens", 0))
        - (before.get("prompt_tokens", 0) + before.get("completion_tokens", 0)),
        "mode_stats": metrics.get("mode_stats") or {},
        "seconds": round(time.perf_counter() - start, 1),
    }


def classify_guard_off(
    texts: list[str],
    gold: list[str],
    vectors: np.ndarray,
    embedder: Any,
    k: int,
    goal: str,
    budget: int,
    judge: SimulatedJudge,
) -> dict[str, Any]:
    """``label_then_classify`` in-process with the guard on and off (same judge, same vectors)."""
    from clustering.metrics import external_metrics
    from llm.asker import CallBudget, JSONAsker
    from llm.classify import ClassifyConfig, label_then_classify
    from llm.goal_prompts import GOAL_PROMPT_VERSION
    from llm.settings import LLMSettings

    settings = LLMSettings(**judge.overrides())
    row: dict[str, Any] = {"budget": budget}
    for guard in (True, False):
        asker = JSONAsker(settings, prompt_version=GOAL_PROMPT_VERSION, budget=CallBudget(budget))
        try:
            config = ClassifyConfig(goal=goal, n_clusters=k, budget=budget, guard=guard)
            result = label_then_classify(texts, vectors, embedder, config, asker)
        finally:
            asker.close()
        scores = external_metrics(gold, result.assignment.labels)
        key = "on" if guard else "off"
        row[f"nmi_{key}"] = scores["nmi"]
        row[f"acc_{key}"] = scores["acc"]
        row[f"dropped_{key}"] = result.stats.get("guard_dropped", 0)
        row[f"fallback_{key}"] = result.stats.get("guard") == "offline"
        row[f"llm_accuracy_{key}"] = result.stats.get("guard_llm_accuracy")
    return row


def keyphrases_guard_off(
    texts: list[str],
    gold: list[str],
    vectors: np.ndarray,
    embedder: Any,
    config: Any,
    judge: SimulatedJudge,
) -> dict[str, Any]:
    """Keyphrase expansion in-process, every text expanded by ``judge``, clustered by the cluster
    mode's stages (reduce, fit) with the guard (``llm.keyphrases.guard_expansion``) on and off,
    and without expansion."""
    from clustering.metrics import external_metrics
    from clustering.pipeline import fit_clusters, reduce_vectors
    from llm.keyphrases import KeyphraseEmbedder, keyphrase_asker
    from llm.settings import LLMSettings

    asker = keyphrase_asker(LLMSettings(**judge.overrides(model=f"{judge.model}-guard")))
    expander = KeyphraseEmbedder(embedder, asker, config.goal)
    try:
        expanded = expander.embed(texts)
    finally:
        asker.close()
    guarded, stats = expander.guard(texts, expanded, config.n_clusters, config.random_state)
    row: dict[str, Any] = {"guard": stats}
    for key, space_of in (("none", vectors), ("on", guarded), ("off", expanded)):
        space, _ = reduce_vectors(space_of, config)
        assignment, _ = fit_clusters(space, config)
        row[f"nmi_{key}"] = external_metrics(gold, assignment.labels)["nmi"]
    return row


def labeler_value(
    store: Any,
    run_id: int,
    vectors: np.ndarray,
    embedder: Any,
    goal: str,
    judge: SimulatedJudge,
) -> dict[str, Any]:
    """The LLM labeler on a stored run's clusters, and what ``prefer_faithful`` shows."""
    from clustering.faithfulness import explanation_faithfulness, prefer_faithful
    from clustering.labels import KeywordLabeler
    from clustering.summarize import summarize_clusters
    from clustering.types import Assignment
    from llm.labeler import LLMLabeler
    from llm.settings import LLMSettings

    rows = store.load_assignments(run_id)
    texts = rows["text"].tolist()
    labels = rows["cluster_id"].to_numpy(np.int64)
    assignment = Assignment(labels, rows["probability"].to_numpy())
    summaries = summarize_clusters(texts, vectors, assignment, goal=goal)
    before = judge.usage()
    labeler = LLMLabeler(LLMSettings(**judge.overrides()))
    try:
        llm_labels = labeler.label(summaries)
    finally:
        labeler.close()
    after = judge.usage()
    keyword_labels = KeywordLabeler().label(summaries)
    choice = prefer_faithful(vectors, labels, llm_labels, keyword_labels, embedder)
    shown = explanation_faithfulness(vectors, labels, choice.labels, embedder)
    return {
        "clusters": len(summaries),
        "calls": after["calls"] - before["calls"],
        "faithfulness_llm": round(choice.llm.overall, 4),
        "faithfulness_keywords": round(choice.keywords.overall, 4),
        "faithfulness_shown": round(shown.overall, 4),
        "kept_keywords": choice.kept_keywords,
        "names": [lab.name for lab in choice.labels[:3]],
    }


def run_corpus(name: str, grid: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from clustering.cached_embedding import embed_texts
    from clustering.pipeline import PipelineConfig
    from corpusmap import service
    from storage import Store

    corpus = subsample(name, grid["n"])
    k = corpus.n_classes
    goal = GOALS.get(name, "group by topic")
    path = write_csv(workdir / f"{name}.csv", corpus.texts, corpus.labels, None)
    store = Store.open(str(workdir / f"{name}.sqlite"))
    embedder = service.get_embedder()
    vectors, _ = embed_texts(corpus.texts, embedder, store)
    config = PipelineConfig(goal=goal, n_clusters=k)
    print(f"{name}: {len(corpus.texts)} texts, K={k}", flush=True)

    baselines = {}
    modes = grid.get("modes", MODES)
    extras = set(modes) == set(MODES)  # guard on/off and the labeler: with every mode only
    for mode in modes:
        baselines[mode] = run_one(store, path, mode, 0, config, None)
        print(f"  {mode} no LLM: NMI {baselines[mode]['nmi']:.3f}", flush=True)
    cluster_run = _latest_run(store, "cluster") if extras else 0
    needed = keyphrase_calls_needed(len(corpus.texts))
    runs: list[dict[str, Any]] = []
    guard: list[dict[str, Any]] = []
    keyphrase_guard: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for p in grid["p"]:
        with SimulatedJudge(
            corpus.texts, corpus.labels, vectors, p, random_state=JUDGE_SEED, embed=embedder.embed
        ) as judge:
            for mode in modes:
                last: dict[str, Any] | None = None
                for budget in grid["budgets"]:
                    if budget == 0:
                        continue
                    if mode == "keyphrases" and budget < needed:
                        runs.append({"p": p, "mode": mode, "budget": budget, "skipped": needed})
                        continue
                    if last is not None and plan_calls(corpus.texts, mode, budget, config) == (
                        plan_calls(corpus.texts, mode, last["budget"], config)
                    ):
                        # The mode plans the same calls as with the smaller budget: the same
                        # questions to the same seeded judge, so the same run.
                        row = {**last, "budget": budget, "same_as": last["budget"]}
                    else:
                        row = {"p": p, **run_one(store, path, mode, budget, config, judge)}
                        row["gain_nmi"] = round(row["nmi"] - baselines[mode]["nmi"], 4)
                        last = row
                    runs.append(row)
                    print(
                        f"  p={p} {mode} budget {budget}: NMI {row['nmi']:.3f} "
                        f"({row['gain_nmi']:+.3f}) ACC {row['acc']:.3f} calls {row['calls']}",
                        flush=True,
                    )
            if not extras:
                continue
            spent = max(r["calls"] for r in runs if r.get("mode") == "classify" and r.get("p") == p)
            covered = 0
            for budget in (b for b in grid["budgets"] if b):
                if covered >= spent:
                    break  # the smaller budget already classified every text
                covered = budget
                row = classify_guard_off(
                    corpus.texts, corpus.labels, vectors, embedder, k, goal, budget, judge
                )
                guard.append({"p": p, **row})
                print(f"  p={p} classify guard on/off: {row}", flush=True)
            row = keyphrases_guard_off(
                corpus.texts, corpus.labels, vectors, embedder, config, judge
            )
            keyphrase_guard.append({"p": p, **row})
            print(f"  p={p} keyphrase guard on/off: {row}", flush=True)
            label_row = {
                "p": p,
                **labeler_value(store, cluster_run, vectors, embedder, goal, judge),
            }
            labels.append(label_row)
            print(f"  p={p} labeler: {label_row}", flush=True)
    return {
        "dataset": name,
        "n": len(corpus.texts),
        "classes": k,
        "goal": goal,
        "keyphrase_calls_needed": needed,
        "baselines": baselines,
        "runs": runs,
        "guard": guard,
        "keyphrase_guard": keyphrase_guard,
        "labels": labels,
    }


def _latest_run(store: Any, mode: str) -> int:
    runs = [r for r in store.list_runs() if (r.mode or "cluster") == mode]
    return max(r.id for r in runs)


def replace_modes(report: dict[str, Any], rerun: dict[str, Any]) -> None:
    """The runs and baselines of the modes ``rerun`` ran (``--modes``) replace ``report``'s
    for the same corpus; other modes, the guard and labeler rows stay."""
    for new in rerun["corpora"]:
        old = next(c for c in report["corpora"] if c["dataset"] == new["dataset"])
        modes = set(new["baselines"])
        old["baselines"] = {**old["baselines"], **new["baselines"]}
        kept = [r for r in old["runs"] if r.get("mode") not in modes]
        old["runs"] = kept + [r for r in new["runs"] if r.get("mode") in modes]
        old["runs"].sort(key=lambda r: (-r["p"], MODES.index(r["mode"]), r["budget"]))
        old.setdefault("replaced", []).append(
            {"modes": sorted(modes), "date": rerun["machine"].get("date")}
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(DEFAULT_CORPORA))
    parser.add_argument("--quick", action="store_true", help=f"the quick grid: {QUICK}")
    parser.add_argument("--n", type=int, help="texts per corpus")
    parser.add_argument("--p", type=float, nargs="+", help="judge accuracies")
    parser.add_argument("--budgets", type=int, nargs="+", help="call budgets (0 is added)")
    parser.add_argument("--modes", nargs="+", choices=MODES, help="only these modes")
    parser.add_argument("--report", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument("--stem", help="results file name (default llm_value[.quick])")
    parser.add_argument(
        "--merge", nargs="+", help="with --report: the corpora of these result stems, in order"
    )
    parser.add_argument(
        "--replace",
        nargs="+",
        help="with --report: these stems' runs and baselines replace the same corpus and modes'",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    stem = args.stem or ("llm_value.quick" if args.quick else "llm_value")
    if args.report:
        report = json.loads((RESULTS / f"{stem}.json").read_text())
        for other in args.merge or ():
            report["corpora"] += json.loads((RESULTS / f"{other}.json").read_text())["corpora"]
        for other in args.replace or ():
            replace_modes(report, json.loads((RESULTS / f"{other}.json").read_text()))
        write_report(report, stem)
        return
    grid = dict(QUICK if args.quick else FULL)
    if args.n:
        grid["n"] = args.n
    if args.p:
        grid["p"] = tuple(args.p)
    if args.budgets:
        grid["budgets"] = tuple(sorted({0, *args.budgets}))
    if args.modes:
        grid["modes"] = tuple(args.modes)
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "grid": grid}
    report["corpora"] = []
    with tempfile.TemporaryDirectory(prefix="corpusmap-llm-value-") as tmp:
        for name in args.corpora:
            report["corpora"].append(run_corpus(name, grid, Path(tmp)))
    write_report(report, stem)


if __name__ == "__main__":
    main()
