"""Small-budget ``classify`` over several judge seeds (issue 18's residual case).

    python -m bench.llm_value_seeds [--corpus NAME] [--n N] [--p P ...] [--budgets B ...]
                                    [--seeds S ...] [--anchors N] [--stem STEM]
                                    [--report [--merge STEM ...]]

A small budget classifies few texts, so one judge seed is one noisy draw: the rule "never
worse than the no-LLM run by more than 0.01 NMI" is checked here over several. Per judge seed,
p and budget, ``llm.classify.label_then_classify`` runs in-process on one seeded subsample's
vectors (the ``classify`` mode's own function, as ``corpusmap.strategies`` calls it), answered
by ``bench.judge.SimulatedJudge``; the budget-0 run is the baseline. Each row also carries the
guard's accuracy estimates (``guard_llm_accuracy``: the lower of the near-duplicate pairs' and
the anchors', ``llm.guard``). Writes bench/results/<stem>.json and <stem>.md (default stem
``llm_value.seeds``) after every run; ``--report --merge B ...`` rewrites the .md from the
.json with the rows of other stems (runs of the same texts, split over processes) added.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.llm_value import subsample
from bench.llm_value_report import RESULTS
from bench.modes import GOALS

DEFAULTS = {
    "corpus": "banking77_test",
    "n": 400,
    "p": (1.0, 0.9, 0.75, 0.6, 0.5),
    "budgets": (10, 20, 30),
    "seeds": (0, 1, 2, 3, 4),
}
STAT_KEYS = (
    "guard_llm_accuracy",
    "guard_pair_accuracy",
    "guard_anchor_accuracy",
    "guard_surest_accuracy",
    "guard_consistency_accuracy",
    "guard_used_accuracy",
    "guard_dropped",
    "guard",
    "llm_classified",
    "classify_skipped",
)


def classify_once(
    texts: list[str],
    gold: list[str],
    vectors: np.ndarray,
    embedder: Any,
    k: int,
    goal: str,
    budget: int,
    judge: Any | None,
    anchors: int | None = None,
) -> dict[str, Any]:
    from clustering.metrics import external_metrics
    from llm.asker import CallBudget, JSONAsker
    from llm.classify import ClassifyConfig, label_then_classify
    from llm.goal_prompts import GOAL_PROMPT_VERSION
    from llm.settings import LLMSettings

    asker = None
    if judge is not None and budget:
        asker = JSONAsker(
            LLMSettings(**judge.overrides()),
            prompt_version=GOAL_PROMPT_VERSION,
            budget=CallBudget(budget),
        )
    try:
        config = ClassifyConfig(goal=goal, n_clusters=k, budget=budget)
        if anchors is not None:
            config = replace(config, anchors=anchors)
        result = label_then_classify(texts, vectors, embedder, config, asker)
    finally:
        if asker is not None:
            asker.close()
    scores = external_metrics(gold, result.assignment.labels)
    row = {"nmi": round(scores["nmi"], 4), "acc": round(scores["acc"], 4)}
    row.update({key: result.stats[key] for key in STAT_KEYS if key in result.stats})
    return row


def measure(grid: dict[str, Any], save: Any = None) -> dict[str, Any]:
    """The grid's runs; ``save(report)`` after each, so a stopped run keeps what it measured."""
    from bench.judge import SimulatedJudge
    from corpusmap import service

    corpus = subsample(grid["corpus"], grid["n"])
    k = corpus.n_classes
    goal = GOALS.get(grid["corpus"], "group by topic")
    embedder = service.get_embedder()
    vectors = np.asarray(embedder.embed(corpus.texts))
    base = classify_once(corpus.texts, corpus.labels, vectors, embedder, k, goal, 0, None)
    print(f"{corpus.name}: K={k}, no LLM NMI {base['nmi']:.4f}", flush=True)
    rows: list[dict[str, Any]] = []
    report = {
        "corpus": corpus.name,
        "classes": k,
        "goal": goal,
        "baseline": base,
        "grid": {key: list(v) if isinstance(v, tuple) else v for key, v in grid.items()},
        "rows": rows,
        "written": "",
        "machine": f"{platform.platform()}, torch CPU capability {_capability()}",
    }
    for seed in grid["seeds"]:
        for p in grid["p"]:
            with SimulatedJudge(
                corpus.texts, corpus.labels, vectors, p, random_state=seed, embed=embedder.embed
            ) as judge:
                for budget in grid["budgets"]:
                    row = classify_once(
                        corpus.texts,
                        corpus.labels,
                        vectors,
                        embedder,
                        k,
                        goal,
                        budget,
                        judge,
                        grid.get("anchors"),
                    )
                    row = {"seed": seed, "p": p, "budget": budget, **row}
                    row["gain_nmi"] = round(row["nmi"] - base["nmi"], 4)
                    rows.append(row)
                    print(f"  {row}", flush=True)
                    report["written"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
                    if save is not None:
                        save(report)
    return report


def _capability() -> str:
    try:
        import torch

        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - a bench header, not a check
        return "unknown"


def summarise(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (p, budget): the mean, least and greatest gain over the seeds."""
    cells: dict[tuple[float, int], list[dict[str, Any]]] = {}
    for row in report["rows"]:
        cells.setdefault((row["p"], row["budget"]), []).append(row)
    out = []
    for (p, budget), rows in sorted(cells.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        gains = np.asarray([r["gain_nmi"] for r in rows])
        accuracy = [r["guard_llm_accuracy"] for r in rows if "guard_llm_accuracy" in r]
        by_pairs = [r["guard_pair_accuracy"] for r in rows if "guard_pair_accuracy" in r]
        by_anchors = [r["guard_anchor_accuracy"] for r in rows if "guard_anchor_accuracy" in r]
        surest = [r["guard_surest_accuracy"] for r in rows if "guard_surest_accuracy" in r]
        consistency = [
            r["guard_consistency_accuracy"] for r in rows if "guard_consistency_accuracy" in r
        ]
        out.append(
            {
                "p": p,
                "budget": budget,
                "seeds": len(rows),
                "mean": round(float(gains.mean()), 4),
                "least": round(float(gains.min()), 4),
                "most": round(float(gains.max()), 4),
                "under_bar": int((gains < -0.01).sum()),
                "q_mean": round(float(np.mean(accuracy)), 3) if accuracy else None,
                "q_pairs": round(float(np.mean(by_pairs)), 3) if by_pairs else None,
                "q_anchors": round(float(np.mean(by_anchors)), 3) if by_anchors else None,
                "q_surest": round(float(np.mean(surest)), 3) if surest else None,
                "q_consistency": round(float(np.mean(consistency)), 3) if consistency else None,
                "offline": sum(1 for r in rows if r.get("guard") == "offline"),
            }
        )
    return out


def _anchors(report: dict[str, Any]) -> int:
    from llm.guard import ANCHOR_TEXTS

    given = report["grid"].get("anchors")
    return ANCHOR_TEXTS if given is None else int(given)


def write_markdown(report: dict[str, Any], path: Path) -> None:
    lines = [
        f"# Small-budget classify over judge seeds ({report['corpus']})",
        "",
        f"{report['written']}; {report['machine']}. `python -m bench.llm_value_seeds`: "
        f"`llm.classify.label_then_classify` in-process, K = {report['classes']}, judge seeds "
        f"{report['grid']['seeds']}, anchor texts {_anchors(report)}; no-LLM NMI "
        f"{report['baseline']['nmi']:.4f}. Gain: NMI "
        "minus the no-LLM run; the bar is -0.01. q: the guard's estimated accuracy, from the "
        "near-duplicate pairs, from the anchors and from the surest texts "
        "(`llm.guard.surest_agreement`) and from the answers' prototypes "
        "(`llm.guard.prototype_consistency`; means over seeds); offline: seeds whose run "
        "fell back to the offline categories.",
        "",
        "| p | budget | seeds | mean gain | least | most | under -0.01 | q pairs | q anchors "
        "| q surest | q prototypes | offline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def q(value: float | None) -> str:
        return "–" if value is None else f"{value:.3f}"

    for c in summarise(report):
        lines.append(
            f"| {c['p']} | {c['budget']} | {c['seeds']} | {c['mean']:+.4f} | {c['least']:+.4f} "
            f"| {c['most']:+.4f} | {c['under_bar']} | {q(c['q_pairs'])} | {q(c['q_anchors'])} "
            f"| {q(c.get('q_surest'))} | {q(c.get('q_consistency'))} | {c['offline']} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=DEFAULTS["corpus"])
    parser.add_argument("--n", type=int, default=DEFAULTS["n"])
    parser.add_argument("--p", type=float, nargs="+", default=DEFAULTS["p"])
    parser.add_argument("--budgets", type=int, nargs="+", default=DEFAULTS["budgets"])
    parser.add_argument("--seeds", type=int, nargs="+", default=DEFAULTS["seeds"])
    parser.add_argument(
        "--anchors", type=int, default=None, help="anchor texts (default: ANCHOR_TEXTS)"
    )
    parser.add_argument("--stem", default="llm_value.seeds")
    parser.add_argument("--report", action="store_true", help="rewrite the .md from the .json")
    parser.add_argument(
        "--merge", nargs="+", default=(), help="with --report: add these stems' rows"
    )
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.report:
        report = json.loads((RESULTS / f"{args.stem}.json").read_text())
        for other in args.merge:
            more = json.loads((RESULTS / f"{other}.json").read_text())
            if more["baseline"]["nmi"] != report["baseline"]["nmi"]:
                raise SystemExit(f"{other}: another no-LLM run ({more['baseline']['nmi']})")
            have = {(r["seed"], r["p"], r["budget"]) for r in report["rows"]}
            report["rows"] += [
                r for r in more["rows"] if (r["seed"], r["p"], r["budget"]) not in have
            ]
            report.setdefault("merged", []).append(other)
        save(report, args.stem)
        return
    grid = {
        "corpus": args.corpus,
        "n": args.n,
        "p": tuple(args.p),
        "budgets": tuple(args.budgets),
        "seeds": tuple(args.seeds),
        "anchors": args.anchors,
    }
    measure(grid, lambda report: save(report, args.stem))
    print(f"wrote {RESULTS / (args.stem + '.md')}")


def save(report: dict[str, Any], stem: str) -> None:
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    write_markdown(report, RESULTS / f"{stem}.md")


if __name__ == "__main__":
    main()
