"""The report plumbing of bench.llm_value (issue 18): a re-run of some modes replaces exactly
those rows, and the hierarchy bench's parent-level measures."""

from __future__ import annotations

import numpy as np

from bench.llm_value import replace_modes
from bench.llm_value_hierarchy import parents_of, sibling_purity


def run(mode: str, p: float, budget: int, nmi: float) -> dict:
    return {"mode": mode, "p": p, "budget": budget, "nmi": nmi, "gain_nmi": nmi - 0.5}


def test_a_rerun_replaces_its_modes_rows_and_baseline_only():
    report = {
        "corpora": [
            {
                "dataset": "c",
                "baselines": {"classify": {"nmi": 0.5}, "propose": {"nmi": 0.4}},
                "runs": [run("classify", 1.0, 50, 0.6), run("propose", 1.0, 50, 0.45)],
                "guard": [{"p": 1.0}],
            }
        ]
    }
    rerun = {
        "machine": {"date": "today"},
        "corpora": [
            {
                "dataset": "c",
                "baselines": {"classify": {"nmi": 0.52}},
                "runs": [run("classify", 1.0, 50, 0.7), run("classify", 0.9, 50, 0.65)],
            }
        ],
    }
    replace_modes(report, rerun)
    corpus = report["corpora"][0]
    assert corpus["baselines"] == {"classify": {"nmi": 0.52}, "propose": {"nmi": 0.4}}
    assert [(r["mode"], r["p"], r["nmi"]) for r in corpus["runs"]] == [
        ("classify", 1.0, 0.7),
        ("propose", 1.0, 0.45),
        ("classify", 0.9, 0.65),
    ]
    assert corpus["guard"] == [{"p": 1.0}]
    assert corpus["replaced"] == [{"modes": ["classify"], "date": "today"}]


def test_gold_parents_are_newsgroup_prefixes():
    labels = ["comp.graphics", "rec.autos", "alt.atheism", "soc.religion.christian"]
    assert parents_of(labels, merge_other=False) == ["comp", "rec", "alt", "soc"]
    assert parents_of(labels, merge_other=True) == ["comp", "rec", "other", "other"]


def test_sibling_purity_counts_leaf_pairs_under_one_parent():
    leaves = np.array([0, 0, 1, 1, 2, 2, 3])
    gold = ["a", "a", "a", "a", "b", "b", "b"]
    # Parent 0 holds leaves 0, 1 (both "a": pure), parent 1 holds 2 ("b") and 3 ("b").
    assert sibling_purity(leaves, {0: 0, 1: 0, 2: 1, 3: 1}, gold) == 1.0
    # Leaves 1 ("a") and 2 ("b") under one parent: one pair of one, impure.
    assert sibling_purity(leaves, {0: 0, 1: 1, 2: 1, 3: 2}, gold) == 0.0
    assert sibling_purity(leaves, {0: 0, 1: 0, 2: 0, 3: 1}, gold) == 1 / 3
