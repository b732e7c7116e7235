"""The pure pieces of the goal-driven modes (issue 5) on seeded synthetic data: constraints,
granularity and hierarchy, keyword rules, balanced sampling, novelty, covering selection."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from clustering.constraints import (
    ConstrainedKMeans,
    ConstraintError,
    Constraints,
    constraint_report,
    must_link_groups,
    read_pairs,
    remap_pairs,
    seeds_from_values,
)
from clustering.cover import (
    assign_to_selected,
    membership,
    select_greedy,
    select_milp,
    similarity_z,
    uncertain_pairs,
)
from clustering.hierarchy import build_hierarchy, choose_k, summarize_parents
from clustering.metrics import external_metrics
from clustering.novelty import find_novel_clusters
from clustering.rules import explain_clusters
from clustering.sampling import balanced_sample, even_quotas
from clustering.types import NOISE


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(600, centers=6, n_features=8, cluster_std=2.5, random_state=0)
    return X, y


def pairs(*items):
    return np.asarray(items, dtype=np.int64).reshape(-1, 2)


# --- constraints ------------------------------------------------------------------------------


def test_seeds_from_a_partly_filled_column():
    seeds, classes = seeds_from_values(["a", "", None, float("nan"), "b", " a ", "  "])
    assert classes == ("a", "b")
    assert seeds.tolist() == [0, -1, -1, -1, 1, 0, -1]


def test_pair_files_take_a_header_and_reject_bad_rows(tmp_path):
    good = tmp_path / "ml.csv"
    good.write_text("a,b\n0,1\n5, 7\n\n", encoding="utf-8")
    assert read_pairs(good).tolist() == [[0, 1], [5, 7]]
    bad = tmp_path / "bad.csv"
    bad.write_text("0,1\nx,2\n", encoding="utf-8")
    with pytest.raises(ConstraintError, match="line 2"):
        read_pairs(bad)
    with pytest.raises(ConstraintError, match="no pair file"):
        read_pairs(tmp_path / "missing.csv")


def test_pairs_map_input_rows_to_clustered_positions():
    # Rows 1 and 3 had empty texts: positions skip them; pairs naming them are dropped.
    positions = {0: 0, 2: 1, 4: 2}
    assert remap_pairs(pairs((0, 2), (1, 4), (2, 4)), positions, 5).tolist() == [[0, 1], [1, 2]]
    with pytest.raises(ConstraintError, match="input has 5 rows"):
        remap_pairs(pairs((0, 9)), positions, 5)


def test_must_link_groups_are_connected_components():
    groups = must_link_groups(6, pairs((0, 1), (1, 2), (4, 5)))
    assert groups[0] == groups[1] == groups[2]
    assert groups[4] == groups[5] != groups[0]
    assert len(set(groups.tolist())) == 3


def test_constrained_kmeans_keeps_every_constraint_and_finds_the_seeded_classes(blobs):
    X, y = blobs
    rng = np.random.default_rng(1)
    seeds = np.where(rng.random(len(y)) < 0.1, y, -1)
    # Pairs that plain k-means would break: across and within true classes, picked at random.
    a, b = rng.integers(0, len(y), 40), rng.integers(0, len(y), 40)
    must = pairs(*[(i, j) for i, j in zip(a, b, strict=True) if y[i] == y[j] and i != j])
    cannot = pairs(*[(i, j) for i, j in zip(a, b, strict=True) if y[i] != y[j]])
    constraints = Constraints(seeds, tuple("abcdef"), must, cannot)
    model = ConstrainedKMeans(6, random_state=0)
    assignment = model.fit_predict(X, constraints)
    report = constraint_report(assignment.labels, constraints)
    assert report.must_link_held == report.must_link_total > 0
    assert report.cannot_link_held == report.cannot_link_total > 0
    assert report.seeds_together == report.seeds_total == constraints.n_seeds
    assert external_metrics(y, assignment.labels)["nmi"] > 0.9
    # Every seeded class owns one cluster.
    assert sorted(model.class_of_cluster_.values()) == sorted(set(seeds[seeds >= 0].tolist()))


def test_constraint_report_counts_broken_pairs():
    labels = np.array([0, 0, 1, 1, NOISE, NOISE])
    c = Constraints(
        np.array([0, 0, 0, -1, -1, -1]),
        ("a",),
        pairs((0, 1), (0, 2), (4, 5)),
        pairs((0, 1), (2, 4)),
    )
    report = constraint_report(labels, c)
    assert (report.must_link_held, report.must_link_total) == (1, 3)  # noise breaks a must-link
    assert (report.cannot_link_held, report.cannot_link_total) == (1, 2)
    assert (report.seeds_together, report.seeds_total) == (2, 3)
    assert 0 < report.satisfied_share < 1


def test_contradictory_constraints_fail_with_a_message_that_says_which():
    X = np.random.default_rng(0).normal(size=(10, 3))
    seeds = np.array([0, 1] + [-1] * 8)
    with pytest.raises(ConstraintError, match="two classes"):
        ConstrainedKMeans(2).fit_predict(X, Constraints(seeds, ("a", "b"), pairs((0, 1))))
    with pytest.raises(ConstraintError, match="must-linked .* and cannot-linked"):
        ConstrainedKMeans(2).fit_predict(
            X, Constraints(np.full(10, -1), (), pairs((2, 3), (3, 4)), pairs((2, 4)))
        )
    with pytest.raises(ConstraintError, match="outside"):
        ConstrainedKMeans(2).fit_predict(X, Constraints(np.full(10, -1), (), pairs((2, 30))))


def test_constrained_kmeans_on_tiny_and_all_zero_inputs():
    empty = ConstrainedKMeans(3).fit_predict(np.zeros((0, 4)), Constraints.none(0))
    assert len(empty.labels) == 0
    zeros = ConstrainedKMeans(3).fit_predict(np.zeros((5, 4)), Constraints.none(5))
    assert len(zeros.labels) == 5 and set(zeros.labels.tolist()) <= {0, 1, 2}


def test_novel_clusters_are_the_ones_without_seeds():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, NOISE])
    seeds = np.array([0, -1, 1, 1, -1, -1, -1, 0])
    novelty = find_novel_clusters(labels, seeds, ("x", "y"))
    assert novelty.novel == (2,)
    assert novelty.known == {0: "x", 1: "y"} or novelty.known == {0: "y", 1: "y"}
    assert novelty.purity[1] == 1.0 and novelty.purity[0] == 0.5


# --- granularity, hierarchy ---------------------------------------------------------------


def test_choose_k_finds_the_true_k_by_silhouette_and_by_stability(blobs):
    X, _ = blobs
    assert choose_k(X, [2, 3, 4, 6, 8, 10]).k == 6
    assert choose_k(X, [3, 4, 6, 8], method="stability").k == 6


def test_hierarchy_groups_leaves_of_the_same_super_blob():
    # Three super-groups, each of two nearby blobs: the parents are the super-groups.
    centres = np.array([[0, 0], [0, 3], [30, 0], [30, 3], [0, 30], [3, 30]], dtype=float)
    X, y = make_blobs(600, centers=centres, cluster_std=0.5, random_state=0)
    X = np.hstack([X, np.ones((len(X), 1)) * 5])  # off the origin: cosine sees the layout
    hierarchy = build_hierarchy(X, y)
    assert hierarchy.n_parents == 3
    assert hierarchy.parent_of[0] == hierarchy.parent_of[1]
    assert hierarchy.parent_of[2] == hierarchy.parent_of[3] != hierarchy.parent_of[0]
    texts = [f"text {i}" for i in range(len(y))]
    parents, leaves = summarize_parents(texts, X, y, hierarchy)
    assert sorted(p.cluster_id for p in parents) == [0, 1, 2]
    assert sum(p.size for p in parents) == len(y)
    assert build_hierarchy(X, y, n_parents=2).n_parents == 2


def test_few_leaves_make_one_parent_each():
    X = np.random.default_rng(0).normal(size=(30, 4))
    y = np.repeat([0, 1, 2], 10)
    assert build_hierarchy(X, y).n_parents == 3


# --- rules -------------------------------------------------------------------------------------


def test_rules_read_as_keywords_with_precision_and_recall():
    rng = np.random.default_rng(0)
    topics = {0: "refund money back", 1: "card arrived delivery", 2: "password login reset"}
    labels = rng.integers(0, 3, 300)
    texts = [f"{topics[c]} please {rng.choice(['now', 'today', 'soon'])}" for c in labels]
    rules = explain_clusters(texts, labels)
    assert set(rules) == {0, 1, 2}
    for c, rule in rules.items():
        assert rule.precision == pytest.approx(1.0) and rule.recall == pytest.approx(1.0)
        assert any(w in rule.text for w in topics[c].split())
    # Noise gets no rule; an empty vocabulary gives an empty rule, not an error.
    assert NOISE not in explain_clusters(texts, np.where(labels == 2, NOISE, labels))
    empty = explain_clusters(["!", "a", "?"], np.array([0, 1, 0]))
    assert all(r.text and r.precision == 0 for r in empty.values())


def test_a_cluster_named_by_any_of_several_words_gets_that_disjunction():
    # Cluster 0 is "visa or mastercard or amex" texts, each word alone in a third of them; the
    # other texts share the filler words. A depth-3 tree can only carve it with negations.
    rng = np.random.default_rng(1)
    brands = ["visa", "mastercard", "amex"]
    others = ["refund", "transfer", "pin", "fee", "limit", "statement"]
    texts, labels = [], []
    for i in range(360):
        if i % 3 == 0:
            texts.append(f"my {brands[i % 9 // 3]} card please {rng.choice(['now', 'today'])}")
            labels.append(0)
        else:
            texts.append(f"my {others[i % 6]} card please {rng.choice(['now', 'today'])}")
            labels.append(1 + i % 6 // 3)
    rule = explain_clusters(texts, np.array(labels))[0]
    assert rule.precision == pytest.approx(1.0) and rule.recall == pytest.approx(1.0)
    assert rule.text == " or ".join(f"“{w}”" for w in sorted(brands, key=rule.text.index))


# --- sampling ------------------------------------------------------------------------------


def test_even_quotas_fill_small_groups_first():
    assert even_quotas({0: 100, 1: 3, 2: 50}, 30) == {0: 14, 1: 3, 2: 13}
    assert sum(even_quotas({0: 5, 1: 5}, 100).values()) == 10
    assert even_quotas({0: 5, 1: 5, 2: 5}, 2) in (
        {0: 1, 1: 1, 2: 0},
        {0: 1, 1: 0, 2: 1},
        {0: 0, 1: 1, 2: 1},
    )


def test_balanced_sample_is_even_across_clusters_and_across_children_within_parents():
    labels = np.repeat([0, 1, 2, 3, NOISE], [500, 100, 30, 20, 50])
    flat = balanced_sample(labels, 40)
    assert np.bincount(labels[flat]).tolist() == [10, 10, 10, 10]
    assert NOISE not in labels[flat]
    # Parents {0,1} and {2,3}: 20 each, then split within.
    nested = balanced_sample(labels, 40, parents={0: 0, 1: 0, 2: 1, 3: 1})
    assert np.bincount(labels[nested]).tolist() == [10, 10, 10, 10]
    skewed = balanced_sample(labels, 60, parents={0: 0, 1: 0, 2: 0, 3: 1})
    assert np.bincount(labels[skewed]).tolist()[3] == 20
    assert len(np.unique(balanced_sample(labels, 10_000))) == 650


# --- covering ------------------------------------------------------------------------------


def test_membership_selection_and_assignment_recover_blobs_from_centroid_candidates(blobs):
    X, y = blobs
    # Candidates: the six true centroids plus two near-duplicates.
    centres = np.vstack([X[y == c].mean(axis=0) for c in range(6)])
    candidates = np.vstack([centres, centres[:2] * 1.01])
    Z = similarity_z(X, candidates)
    M = membership(Z)
    assert uncertain_pairs(Z)
    greedy = select_greedy(M, 6)
    milp = select_milp(M, 6)
    assert len(greedy.chosen) == len(milp.chosen) == 6
    assert milp.covered - 0.5 * milp.overlap >= greedy.covered - 0.5 * greedy.overlap - 1e-9
    assignment, mapping = assign_to_selected(Z, M, milp.chosen, reassign_outliers=True)
    assert external_metrics(y, assignment.labels)["acc"] > 0.8
    assert set(mapping.values()) <= set(milp.chosen)
    automatic = select_greedy(M)
    assert 2 <= len(automatic.chosen) <= 8


def test_rule_clauses_are_merged_and_kept_precise():
    from clustering.rules import merge_clauses, precise_leaves

    a, b = ("stocks", True), ("york", True)
    merged = merge_clauses([(a, b), (a, ("york", False)), (("oil", True), a)])
    assert merged == [(a,)]
    leaves = np.array([1, 1, 1, 2, 2, 2, 2, 3])
    target = np.array([1, 1, 0, 1, 0, 0, 0, 0], dtype=bool)
    assert precise_leaves(leaves, target) == {1}
    assert precise_leaves(leaves, np.zeros(8, dtype=bool)) == set()
