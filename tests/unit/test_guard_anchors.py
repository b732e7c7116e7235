"""Anchor texts of the LLM guard (llm.guard, issue 18): texts the embedding is surest of, whose
answer is known from the embedding, estimate a model's accuracy where near-duplicate pairs only
measure its consistency."""

from __future__ import annotations

import numpy as np

from llm.guard import (
    accuracy_from_agreement,
    anchor_accuracy,
    anchor_texts,
    estimate_accuracy,
    guard_answers,
    lower_accuracy,
    prototype_consistency,
    surest_agreement,
)


def test_anchors_go_in_rounds_over_options_surest_first():
    nearest = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    margin = np.array([0.9, 0.8, 0.1, 0.5, 0.6, 0.7, 0.2, 0.3])
    # The largest-margin text of each option first, surest first; then the second of each.
    assert anchor_texts(nearest, margin, 2).tolist() == [0, 5]
    assert anchor_texts(nearest, margin, 5).tolist() == [0, 5, 4, 1, 3]
    assert len(anchor_texts(nearest, margin, 20)) == len(nearest)


def test_anchors_keep_to_eligible_options_and_leave_out_excluded_texts():
    nearest = np.array([0, 0, 1, 1, 2])
    margin = np.array([0.9, 0.8, 0.7, 0.6, 0.95])
    # Option 2 is a keyword category (not named by the model); text 0 is a calibration pair's.
    anchors = anchor_texts(nearest, margin, 5, eligible=[0, 1], exclude=[0])
    assert anchors.tolist() == [1, 2, 3]
    assert anchor_texts(nearest, margin, 5, eligible=[]).tolist() == []


def test_a_model_consistent_but_wrong_reads_high_on_pairs_and_low_on_anchors():
    """A model that answers every text of two confusable groups with one category agrees with
    itself on every pair; the anchors, whose answer the embedding knows, show it wrong."""
    nearest = np.array([0, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    pairs = [(0, 1), (2, 3), (4, 6), (5, 7), (8, 10)]
    answers = {i: 0 for i in range(12)}  # every text put in category 0
    from_pairs = estimate_accuracy(answers, pairs)
    from_anchors = anchor_accuracy(answers, list(range(12)), nearest)
    assert from_pairs == 1.0
    assert from_anchors == 0.5
    assert lower_accuracy(from_pairs, from_anchors) == 0.5


def test_anchor_accuracy_needs_enough_answered_anchors_and_lower_skips_missing():
    nearest = np.array([0, 1, 2, 3, 4, 5])
    answers = {0: 0, 1: 1, 2: 9, 3: 3}
    assert anchor_accuracy(answers, [0, 1, 2, 3, 4, 5], nearest) is None  # 4 answered < 5
    assert anchor_accuracy(answers, [0, 1, 2, 3], nearest, min_anchors=4) == 0.75
    assert lower_accuracy(None, 0.9) == 0.9
    assert lower_accuracy(None, None) is None
    assert lower_accuracy(accuracy_from_agreement(1.0), 0.75) == 0.75


def test_surest_agreement_reads_the_surest_fifth_of_the_answers():
    nearest = np.zeros(100, dtype=np.int64)
    margin = np.arange(100, dtype=float)
    # The 20 surest texts (margins 80-99): 15 given the embedding's answer, 5 another; the
    # less sure texts all disagree and must not count.
    answers = {i: (0 if i >= 85 else 1) for i in range(100)}
    assert surest_agreement(answers, nearest, margin) == 0.75
    assert surest_agreement({i: 0 for i in range(10)}, nearest, margin) is None
    assert surest_agreement({}, nearest, margin) is None


def test_guard_answers_without_a_trust_line_weighs_even_a_model_read_as_good():
    nearest = np.zeros(60, dtype=np.int64)
    margin = np.linspace(0.0, 3.0, 60)
    # The model agrees with the embedding on every text but the surest one.
    answers = {i: 0 for i in range(59)} | {59: 1}
    kept = guard_answers(answers, nearest, margin, 0.85, {})
    assert 59 in kept, "at or over TRUST_ACCURACY every answer stands"
    stats: dict = {}
    weighed = guard_answers(answers, nearest, margin, 0.85, stats, trust=None)
    assert 59 not in weighed and stats["guard_dropped"] == 1


def test_prototype_consistency_reads_answers_split_at_random_under_the_references():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(6, 16))
    group = np.repeat(np.arange(6), 20)
    vectors = centres[group] + 0.3 * rng.normal(size=(120, 16))
    followed = {i: int(group[i]) for i in range(120)}
    assert prototype_consistency(followed, vectors, group) == 1.0
    # Half the answers moved to the next group, as a model right half the time that always
    # errs towards one confusable group: the answers' own prototypes predict them far worse.
    split = {i: int(group[i] + (i % 2)) % 6 for i in range(120)}
    consistency = prototype_consistency(split, vectors, group)
    assert consistency is not None and consistency < 0.75
    assert prototype_consistency({0: 0, 1: 0}, vectors, group) is None
    assert prototype_consistency({i: -1 for i in range(120)}, vectors, group) is None
