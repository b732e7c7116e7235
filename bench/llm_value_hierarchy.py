"""What the hierarchy's LLM pairwise checks are worth, on a corpus with gold parents (issue 18).

    python -m bench.llm_value_hierarchy [--corpus 20newsgroups_3k] [--p P ...] [--seeds N]

20 Newsgroups carries gold parents in its label names (``comp.*``, ``rec.*``, ``sci.*``,
``talk.*``; ``alt``, ``misc`` and ``soc`` one group each, or merged into one, "other"). On the
3,000-post subset of ``bench.data`` (cached embeddings and UMAP space, ``bench.compare``), the
leaves are the cluster mode's clusters (K given: 20, and K chosen by the clusterer), and
``corpusmap.structure.choose_hierarchy`` groups them into parents: offline (the number of
parents by silhouette) and with the LLM's pairwise "same group?" checks
(``llm.granularity``, at most ``corpusmap.plan.MAX_PAIR_CALLS`` calls) answered by
``bench.judge.SimulatedJudge`` at each p. The pairs question is a parent-level question, so
the judge's gold labels are the parents (a text is perceived as its parent with probability p,
else as the nearest other parent by centroid); it sees only the texts in each prompt.

Measures, against the gold parents: NMI of every clustered text's parent (7 prefixes, and 5 with
alt/misc/soc as one), and sibling purity (the share of leaf pairs under one parent whose
majority gold parents are the same). The judge is run with ``--seeds`` seeds and the figures
averaged. Writes bench/results/llm_value_hierarchy.json; ``bench.llm_value``'s report puts its
table into llm_value.md.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import Counter
from typing import Any

import numpy as np

from bench.llm_value_report import RESULTS
from bench.modes import machine

CORPUS = "20newsgroups_3k"
GOAL = "group these newsgroup posts by broad subject area"
P_VALUES = (1.0, 0.9, 0.75)
JUDGE_SEEDS = 3
OTHER_PREFIXES = ("alt", "misc", "soc")
STEM = "llm_value_hierarchy"

log = logging.getLogger(__name__)


def parents_of(labels: list[str], merge_other: bool) -> list[str]:
    """The gold parent of each newsgroup label: its prefix (``alt``/``misc``/``soc`` as
    "other" with ``merge_other``)."""
    prefixes = [label.split(".")[0] for label in labels]
    if merge_other:
        return ["other" if p in OTHER_PREFIXES else p for p in prefixes]
    return prefixes


def sibling_purity(leaf_labels: np.ndarray, parent_of: dict[int, int], gold: list[str]) -> float:
    """Among pairs of leaves under one parent, the share whose majority gold parents agree
    (1.0 when no parent has two leaves)."""
    majority = {}
    for leaf in parent_of:
        hit = np.flatnonzero(leaf_labels == leaf)
        if len(hit):
            majority[leaf] = Counter(gold[i] for i in hit).most_common(1)[0][0]
    leaves = sorted(majority)
    pairs = [
        (a, b)
        for i, a in enumerate(leaves)
        for b in leaves[i + 1 :]
        if parent_of[a] == parent_of[b]
    ]
    if not pairs:
        return 1.0
    return float(np.mean([majority[a] == majority[b] for a, b in pairs]))


def score(
    hierarchy: Any, leaf_labels: np.ndarray, gold7: list[str], gold5: list[str]
) -> dict[str, Any]:
    from sklearn.metrics import normalized_mutual_info_score as nmi

    from clustering.types import NOISE

    parents = hierarchy.parent_labels(leaf_labels)
    kept = parents != NOISE
    g7 = np.asarray(gold7)[kept]
    g5 = np.asarray(gold5)[kept]
    return {
        "n_parents": hierarchy.n_parents,
        "nmi_7": round(float(nmi(g7, parents[kept])), 4),
        "nmi_5": round(float(nmi(g5, parents[kept])), 4),
        "purity_7": round(sibling_purity(leaf_labels, hierarchy.parent_of, gold7), 4),
        "purity_5": round(sibling_purity(leaf_labels, hierarchy.parent_of, gold5), 4),
        "method": hierarchy.choice.method,
    }


def run(corpus_name: str, p_values: tuple[float, ...], seeds: int) -> dict[str, Any]:
    from bench.compare import cached_space
    from bench.data import cached_embeddings, load_corpus
    from bench.judge import SimulatedJudge
    from clustering.pipeline import PipelineConfig, fit_clusters
    from corpusmap import service
    from corpusmap.modes import ModeOptions
    from corpusmap.plan import MAX_PAIR_CALLS
    from corpusmap.structure import choose_hierarchy
    from llm.asker import CallBudget, JSONAsker
    from llm.goal_prompts import GOAL_PROMPT_VERSION
    from llm.settings import LLMSettings

    corpus = load_corpus(corpus_name)
    vectors = cached_embeddings(corpus)
    space, _ = cached_space(corpus_name, vectors)
    gold7 = parents_of(corpus.labels, merge_other=False)
    gold5 = parents_of(corpus.labels, merge_other=True)
    embedder = service.get_embedder()
    options = ModeOptions(mode="cluster", hierarchy=True)
    rows: list[dict[str, Any]] = []
    for leaves_k in (corpus.n_classes, None):
        config = PipelineConfig(goal=GOAL, n_clusters=leaves_k)
        assignment, _ = fit_clusters(space, config)
        leaf_labels = assignment.labels
        n_leaves = len({int(c) for c in leaf_labels if c >= 0})
        leaves = "K given" if leaves_k else "K chosen"
        offline = choose_hierarchy(vectors, leaf_labels, corpus.texts, options, None, config)
        rows.append(
            {
                "leaves": leaves,
                "n_leaves": n_leaves,
                "p": None,
                "calls": 0,
                **score(offline, leaf_labels, gold7, gold5),
            }
        )
        given = choose_hierarchy(
            vectors,
            leaf_labels,
            corpus.texts,
            ModeOptions(mode="cluster", hierarchy=True, n_parents=len(set(gold7))),
            None,
            config,
        )
        rows.append(
            {
                "leaves": leaves,
                "n_leaves": n_leaves,
                "p": "gold count",
                "calls": 0,
                **score(given, leaf_labels, gold7, gold5),
            }
        )
        print(f"{leaves} ({n_leaves} leaves): offline {rows[-2]}; 7 given {rows[-1]}", flush=True)
        for p in p_values:
            per_seed = []
            for seed in range(seeds):
                with SimulatedJudge(
                    corpus.texts, gold7, vectors, p, random_state=seed, embed=embedder.embed
                ) as judge:
                    asker = JSONAsker(
                        LLMSettings(**judge.overrides()),
                        prompt_version=GOAL_PROMPT_VERSION,
                        budget=CallBudget(MAX_PAIR_CALLS),
                    )
                    try:
                        checked = choose_hierarchy(
                            vectors, leaf_labels, corpus.texts, options, asker, config
                        )
                    finally:
                        asker.close()
                    per_seed.append(
                        {"calls": judge.calls, **score(checked, leaf_labels, gold7, gold5)}
                    )
            row = {"leaves": leaves, "n_leaves": n_leaves, "p": p, "seeds": per_seed}
            for key in ("calls", "n_parents", "nmi_7", "nmi_5", "purity_7", "purity_5"):
                row[key] = round(float(np.mean([s[key] for s in per_seed])), 4)
            rows.append(row)
            print(f"  p={p}: {row}", flush=True)
    return {
        "machine": machine(),
        "corpus": corpus_name,
        "n": len(corpus.texts),
        "gold_parents": {"7": len(set(gold7)), "5": len(set(gold5))},
        "goal": GOAL,
        "judge_seeds": seeds,
        "max_calls": MAX_PAIR_CALLS,
        "rows": rows,
    }


def hierarchy_table(report: dict[str, Any]) -> list[str]:
    """Markdown lines of the table (for ``bench.llm_value_report``)."""
    lines = [
        "| leaves | p | calls | parents | NMI (7 gold parents) | NMI (5) "
        "| sibling purity (7) | sibling purity (5) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        p = (
            "no LLM"
            if r["p"] is None
            else ("no LLM, 7 parents given" if r["p"] == "gold count" else f"{r['p']:g}")
        )
        lines.append(
            f"| {r['leaves']} ({r['n_leaves']}) | {p} | {r['calls']:g} | {r['n_parents']:.3g} "
            f"| {r['nmi_7']:.3f} | {r['nmi_5']:.3f} | {r['purity_7']:.3f} | {r['purity_5']:.3f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", default=CORPUS)
    parser.add_argument("--p", type=float, nargs="+", default=list(P_VALUES))
    parser.add_argument("--seeds", type=int, default=JUDGE_SEEDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = run(args.corpus, tuple(args.p), args.seeds)
    (RESULTS / f"{STEM}.json").write_text(json.dumps(report, indent=1))
    print("\n".join(hierarchy_table(report)))


if __name__ == "__main__":
    main()
