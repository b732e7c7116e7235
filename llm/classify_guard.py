"""The category prototypes of ``llm.classify`` and the guard that weighs the LLM's answers
against the embedding's own clusters (issue 18; step 4 of ``llm.classify``'s docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clustering.cover import Candidate, similarity_z
from llm.guard import guard_answers, margins, prototype_consistency, surest_agreement

REFINE_STEPS = 10
"""k-means steps that move the category prototypes onto the texts (``refine_prototypes``). One
step left the embedded names too near the prototypes: 90 of 1,000 AG News texts classified by
a judge right every time (p = 1.0) ended 0.029 NMI under the no-LLM run (0.511 against 0.540),
and right 9 times in 10, 0.044 under; with 3 steps +0.025 and +0.001, with 10 +0.034 and
+0.012; Banking77 (K = 77) moved by 0.001 or less (``bench.llm_value``, issue 18)."""
MIN_MEMBERS = 3
"""A category with fewer members keeps its embedded name as its prototype; from this many up,
the prototype is its members' mean alone (``refine_prototypes``)."""


def refine_prototypes(
    Z: np.ndarray,
    vectors: np.ndarray,
    categories: Sequence[Candidate],
    answers: dict[int, int],
    steps: int = REFINE_STEPS,
) -> np.ndarray:
    """Similarities to prototypes moved onto the texts: each category's members' mean (the
    LLM's answers held fixed, the other texts by nearest prototype), a few k-means steps from
    the categories; a category with fewer than ``MIN_MEMBERS`` members keeps its vector.

    An embedded name is a poor centre of its texts (on AG News the names alone place the texts
    at NMI 0.30-0.32 against 0.64 for k-means), so it is only the starting point. Adding it to
    every prototype, as before (name + mean, equal weights), pulled the texts the LLM did not
    classify towards the names: 90 of 400 AG News texts classified by a judge right 9 times in
    10 ended 0.038 NMI under the no-LLM run; with the mean alone 0.001 under, and +0.043 for a
    judge always right (was +0.029); 1,000 AG News texts, budget 50: +0.284 -> +0.330 (p = 1.0),
    +0.156 -> +0.203 (p = 0.9); Banking77 within +0.01 (issue 18)."""
    fixed = np.fromiter(answers, dtype=np.int64, count=len(answers))
    fixed_to = np.fromiter(answers.values(), dtype=np.int64, count=len(answers))
    base = np.vstack([np.asarray(c.vector, dtype=np.float64) for c in categories])
    base /= np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
    for _ in range(steps):
        nearest = np.argmax(Z, axis=1)
        nearest[fixed] = fixed_to
        prototypes = base.copy()
        for j in range(len(base)):
            members = np.flatnonzero(nearest == j)
            if len(members) >= MIN_MEMBERS:
                prototypes[j] = vectors[members].mean(axis=0)
        prototypes /= np.maximum(np.linalg.norm(prototypes, axis=1, keepdims=True), 1e-12)
        Z = similarity_z(vectors, prototypes)
    return Z


CLUSTERS_TRUST_ACCURACY = 0.9
"""From this estimated accuracy up (the lower of the pairs' and the surest texts'), every answer
stands in ``guard_by_clusters``. Measured (``bench.llm_value_seeds``, AG News 400, judge seeds
0-2, budgets 10/20/30): with no such line a judge always right lost answers where the clusters
are sure and wrong (+0.061 / +0.222 / +0.335 -> +0.049 / +0.189 / +0.297; 1,000 texts,
budgets 50 / 200: +0.295 / +0.437 -> +0.266 / +0.379); with ``llm.guard.TRUST_ACCURACY``
(0.8) as the line, a judge right 9 times in 10 (surest texts 0.78-0.89) kept its wrong answers
where the clusters are surer (+0.016 / +0.095 / +0.121 against +0.012 / +0.121 / +0.195);
at 0.9 both keep the better figure and a judge right 3 times in 4 is held as well."""
SUREST_MIN_TEXTS = 20
"""Texts per category from which the embedding's surest texts also read the LLM's accuracy
(``guard_by_clusters``): with 400 AG News texts (100 a category) a judge always right agreed
with the embedding's clusters on the surest fifth of its answers 0.94-0.97, but with 400
Banking77 texts (5 an intent) 0.56-0.60, so there it would read every model as poor; under
it the answers' prototypes read the LLM instead (``llm.guard.prototype_consistency``)."""


def guard_by_clusters(
    Z: np.ndarray,
    vectors: np.ndarray,
    categories: Sequence[Candidate],
    answers: dict[int, int],
    accuracy: float,
    stats: dict[str, Any],
) -> dict[int, int]:
    """The LLM's answers that stand (step 4 of ``llm.classify``'s docstring), weighed against the
    embedding's own clusters: the categories' prototypes moved onto their texts without the
    answers (``refine_prototypes``), which is what the run would be without the LLM; under
    ``CLUSTERS_TRUST_ACCURACY`` (``llm.guard.guard_answers``). With
    ``SUREST_MIN_TEXTS`` texts or more per category the accuracy used is also at most the
    LLM's agreement with those clusters on the surest of the texts it answered
    (``llm.guard.surest_agreement``); with fewer, at most how well the answers' own prototypes
    predict them, over how well the clusters' predict theirs on the same texts
    (``llm.guard.prototype_consistency``): on 400 Banking77 texts, budget 30, a judge right
    half the time whose pairs read 0.887 (judge seed 4) kept every answer and ended 0.0135
    NMI under no LLM; read 0.70 that way it ends -0.0077 (``bench/results/llm_value.md``).

    Measured with ``bench.llm_value_seeds`` (400 texts, budgets 10/20/30, issue 18): weighed
    against the embedded category names (a poor reference: on AG News they place the texts at
    NMI 0.30-0.32) and only under ``TRUST_ACCURACY``, a judge right 3 times in 4 whose pairs
    read 0.84-0.89 kept every answer and ended up to 0.081 NMI under no LLM (5 of 9 runs under
    -0.01); against the clusters at every accuracy, 1 of 9 (-0.026); with the surest texts as
    well, none, and a judge right 9 times in 10 gained +0.012 / +0.121 / +0.195 against
    +0.027 / +0.105 / +0.121 before. Banking77: see ``bench/results/llm_value.md``."""
    reference = refine_prototypes(Z, vectors, categories, {})
    ref_nearest, ref_margin = margins(reference)
    if len(vectors) >= SUREST_MIN_TEXTS * len(categories):
        surest = surest_agreement(answers, ref_nearest, ref_margin)
        if surest is not None:
            stats["guard_surest_accuracy"] = round(surest, 4)
            accuracy = min(accuracy, surest)
    else:
        consistent = prototype_consistency(answers, vectors, ref_nearest)
        if consistent is not None:
            stats["guard_consistency_accuracy"] = round(consistent, 4)
            accuracy = min(accuracy, consistent)
    stats["guard_used_accuracy"] = round(accuracy, 4)
    return guard_answers(
        answers, ref_nearest, ref_margin, accuracy, stats, trust=CLUSTERS_TRUST_ACCURACY
    )
