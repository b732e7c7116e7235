"""The guard on an LLM's answers (issue 18): where a model that is wrong one time in four would
overrule an embedding that is right more often, the embedding's answer stands.

One mechanism, used by label-then-classify (``llm.classify``: the category of a text) and by
keyphrase expansion (``llm.keyphrases``: the group a text's keyphrases fall in):

1. ``calibration_pairs``: near-duplicate texts (mutual nearest neighbours by embedding, most
   alike first, identical texts left out: a model answers a repeated question alike, right or
   wrong) are almost surely of one group, so how often the LLM gives both texts of a pair one
   answer measures its consistency.
2. ``estimate_accuracy``: its accuracy ``q`` from that share ``s``, assuming its two mistakes on
   a pair are alike (a model errs towards the same confusable group): ``s = q² + (1 - q)²``.
   That assumption gives the lowest ``q`` for a given ``s``, so the guard errs towards the
   embedding. (``sqrt(s)``, two independent answers, was tried first: it rated a judge right
   half the time 0.71 and one right three times in four 0.79-0.86 over 15 pairs, above
   ``TRUST_ACCURACY``, and classify on AG News ended 0.04-0.10 NMI under its no-LLM run.)
3. ``anchor_texts``: consistency is not accuracy. A model that maps two confusable groups
   onto one answer agrees with itself on every pair, right or wrong (on Banking77 with few
   proposed categories a judge right half the time read 0.89). So a few texts the embedding
   is surest of (each the largest-margin text of its nearest category, categories the model
   named) go among the first texts asked: their answer is known from the embedding, and the
   share the model gets "right" there (``anchor_accuracy``) estimates its accuracy from below
   (where the embedding is wrong on an anchor, a right answer counts as wrong). The guard takes
   the lower of the two estimates (``lower_accuracy``).
4. ``guard_answers``: at ``TRUST_ACCURACY`` or more every answer stands (label-then-classify
   draws that line at 0.9: ``llm.classify_guard.CLUSTERS_TRUST_ACCURACY``). Under it, the LLM's
   agreement with the embedding's answer, by the embedding's margin, estimates the embedding's
   accuracy ``e(margin)`` (agreement / ``q``, made monotone), and where the two disagree the
   LLM's answer stands only where ``q > e(margin) + GUARD_SLACK``.
5. ``surest_agreement``: 15 pairs cannot tell a model right 3 times in 4 from one right 9 times
   in 10 (on AG News they read 0.84-0.89 and 0.84-0.89). Where the embedding's clusters are
   large, the texts it is surest of are almost surely right, so the LLM's agreement with it on
   the surest fifth of the texts it answered reads its accuracy from below, over many more
   answers than the pairs (a judge always right 0.94-0.97 on AG News, one right 3 times in 4
   0.61-0.72). Label-then-classify takes the lower of that and the pairs' estimate.
6. ``prototype_consistency``: with few texts per group (400 Banking77 texts, 5 an intent) the
   surest texts cannot read a model (a judge always right agrees with the clusters on them
   0.56-0.60), and a model right half the time whose confusions fall in one category reads
   0.89-0.93 on the pairs. What it cannot fake is embedding structure: a model right half
   the time splits each group's texts between two answers at random, so its answers' own
   prototypes (each answer's texts' mean, a text left out of its own) predict its answers far
   worse than the embedding's clusters' prototypes predict theirs on the same texts. The ratio
   of the two reads a judge right half the time 0.69-0.71 at budget 30 and one always right
   0.90 (1.01 at budget 20); label-then-classify takes the lower of that and the pairs' where
   the surest texts are not used.

Measured with simulated judges of known accuracy: ``bench.llm_value``,
``bench/results/llm_value.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

CALIBRATION_POOL = 2000
"""Texts among which the near-duplicate pairs are looked for (a seeded sample of larger
corpora: the search is quadratic)."""
GUARD_SLACK = 0.03
"""How much more accurate than the embedding the LLM must be estimated to be, where they
disagree, for its answer to stand."""
TRUST_ACCURACY = 0.8
"""From this estimated accuracy up, every LLM answer stands."""
GUARD_MIN_PAIRS = 5
"""Fewer answered calibration pairs than this and the guard keeps every LLM answer."""
ANCHOR_TEXTS = 0
"""Texts the embedding is surest of, asked among the first (step 3 of the module docstring);
none by default: they cost good models their gain. Measured with 15 (``bench.llm_value_seeds``,
400 texts, budgets 10-30, judge seeds 0-4 / 0-2; ``bench.llm_value``, 1,000 texts): on AG
News a judge right 3 times in 4 read 0.84 on the pairs for two seeds of three and ended up to
0.081 NMI under no LLM (5 of 9 runs under -0.01); with the anchors (0.60-0.73) 2 of 9. But
the anchors count the embedding's own mistakes on them against the model (a judge always
right reads 0.80 on AG News), so a judge right 9 times in 10 read 0.73 lost 0.017-0.029 of
its gain (400 texts); on 1,000 texts (judge seed 0; runs on other vectors, the encoder's auto
precision having chosen otherwise: no-LLM 0.540 / 0.799 against 0.563 / 0.790) AG News p = 0.9
gained +0.135 / +0.146 against +0.164 / +0.209 (budgets 50 / 200) and Banking77 p = 0.9 / 0.5
+0.091 / +0.003 against +0.115 / +0.041 (budget 200); on Banking77 400 at budgets 20-30 a
judge right half the time ended under -0.01 in 3 of 10 runs (none without). Taking the
anchors' category from the embedding's own clusters (the categories refined without answers)
read a judge always right 0.93 on AG News but let the 3-in-4 judge through again (5 of 9).
As the trigger of the fallback to the offline categories they dropped a judge right 3 times
in 4 on Banking77 with its +0.022 / +0.038 (budgets 20 / 30), so where used they only decide
which answers stand (``llm.classify``, step 5)."""
GUARD_MIN_ANCHORS = 5
"""Fewer answered anchors than this and the anchors give no estimate."""
SUREST_SHARE = 0.2
"""The share of the answered texts, the surest by the embedding's margin, on which
``surest_agreement`` reads the LLM's accuracy."""


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def calibration_pairs(
    vectors: np.ndarray,
    n_pairs: int,
    random_state: int,
    texts: Sequence[str] | None = None,
) -> list[tuple[int, int]]:
    """Up to ``n_pairs`` disjoint pairs of mutual nearest neighbours, the most similar first,
    among ``CALIBRATION_POOL`` texts; with ``texts``, pairs of one text twice are left out."""
    n = len(vectors)
    rng = np.random.default_rng(random_state)
    pool = (
        np.sort(rng.choice(n, CALIBRATION_POOL, replace=False))
        if n > CALIBRATION_POOL
        else np.arange(n)
    )
    X = vectors[pool] / np.maximum(np.linalg.norm(vectors[pool], axis=1, keepdims=True), 1e-12)
    sims = X @ X.T
    np.fill_diagonal(sims, -np.inf)
    best = np.argmax(sims, axis=1)
    mutual = [(a, int(b)) for a, b in enumerate(best) if a < b and best[b] == a]
    if texts is not None:
        mutual = [(a, b) for a, b in mutual if not _same_text(texts[pool[a]], texts[pool[b]])]
    mutual.sort(key=lambda ab: -sims[ab[0], ab[1]])
    return [(int(pool[a]), int(pool[b])) for a, b in mutual[:n_pairs]]


def accuracy_from_agreement(share: float) -> float:
    """``q`` with ``share = q² + (1 - q)²`` (step 2 of the module docstring); 0.5 at or under
    a share of 0.5."""
    return 0.5 * (1.0 + float(np.sqrt(max(0.0, 2.0 * share - 1.0))))


def estimate_accuracy(
    answers: dict[int, int], pairs: Sequence[tuple[int, int]], min_pairs: int = GUARD_MIN_PAIRS
) -> float | None:
    """The LLM's accuracy from the answered pairs whose two texts got one answer (``None`` with
    fewer than ``min_pairs`` answered)."""
    same = [answers[a] == answers[b] for a, b in pairs if a in answers and b in answers]
    if len(same) < min_pairs:
        return None
    return accuracy_from_agreement(float(np.mean(same)))


def anchor_texts(
    nearest: np.ndarray,
    margin: np.ndarray,
    n_anchors: int,
    eligible: Sequence[int] | None = None,
    exclude: Sequence[int] = (),
) -> np.ndarray:
    """Up to ``n_anchors`` texts the embedding is surest of, in rounds over the options: the
    largest-margin text of each option, then the second of each, and so on (so the anchors
    spread over options, and a few options still give enough), each round surest first; only
    texts whose nearest option is in ``eligible`` (all with ``None``), none of ``exclude``."""
    allowed = np.ones(len(nearest), dtype=bool)
    allowed[np.asarray(list(exclude), dtype=np.int64)] = False
    if eligible is not None:
        allowed &= np.isin(nearest, np.asarray(list(eligible), dtype=np.int64))
    ids = np.flatnonzero(allowed)
    rank: dict[int, int] = {}
    keyed = []
    for i in ids[np.argsort(-margin[ids], kind="stable")]:
        option = int(nearest[i])
        keyed.append((rank.get(option, 0), -float(margin[i]), int(i)))
        rank[option] = rank.get(option, 0) + 1
    picked = [i for *_, i in sorted(keyed)[:n_anchors]]
    return np.asarray(picked, dtype=np.int64)


def anchor_accuracy(
    answers: dict[int, int],
    anchors: Sequence[int] | np.ndarray,
    nearest: np.ndarray,
    min_anchors: int = GUARD_MIN_ANCHORS,
) -> float | None:
    """The share of the answered anchors given the embedding's answer (``None`` with fewer than
    ``min_anchors`` answered)."""
    hits = [answers[int(i)] == int(nearest[i]) for i in anchors if int(i) in answers]
    if len(hits) < min_anchors:
        return None
    return float(np.mean(hits))


def surest_agreement(
    answers: dict[int, int],
    nearest: np.ndarray,
    margin: np.ndarray,
    share: float = SUREST_SHARE,
    min_answers: int = GUARD_MIN_ANCHORS,
) -> float | None:
    """The share of the answered texts among the surest ``share`` of them (by ``margin``) that
    the LLM gave the embedding's answer ``nearest`` (``None`` with fewer than ``min_answers``
    such texts). From below: where the embedding is wrong on one of them, a right answer
    counts as wrong (step 5 of the module docstring)."""
    ids = np.fromiter(answers, dtype=np.int64, count=len(answers))
    if not len(ids):
        return None
    cut = np.quantile(margin[ids], 1.0 - share)
    surest = ids[margin[ids] >= cut]
    if len(surest) < min_answers:
        return None
    return float(np.mean([answers[int(i)] == int(nearest[i]) for i in surest]))


def prototype_consistency(
    answers: dict[int, int],
    vectors: np.ndarray,
    reference: np.ndarray,
    min_answers: int = GUARD_MIN_ANCHORS,
) -> float | None:
    """How well the LLM's answers follow the embedding, against how well the reference
    categories ``reference`` (each text's, e.g. the embedding's own clusters) do on the same
    texts (step 6 of the module docstring): the share of the answered texts whose answer is
    the nearest of the answers' prototypes (each category's answered texts' mean, the text
    itself left out), over the same share with the reference's category as the answer.
    ``None`` with fewer than ``min_answers`` answers (a "none fits" answer is not counted) or
    when the reference's share is 0."""
    ids = np.fromiter(answers, dtype=np.int64, count=len(answers))
    chosen = np.fromiter(answers.values(), dtype=np.int64, count=len(ids))
    ids = ids[chosen >= 0]
    chosen = chosen[chosen >= 0]
    if len(ids) < min_answers:
        return None
    X = np.asarray(vectors[ids], dtype=np.float64)
    X /= np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    reference_share = _left_out_hits(X, np.asarray(reference)[ids])
    if reference_share <= 0.0:
        return None
    return _left_out_hits(X, chosen) / reference_share


def _left_out_hits(X: np.ndarray, labels: np.ndarray) -> float:
    """The share of the rows of ``X`` (unit vectors) whose label is that of the nearest label
    mean, each row left out of its own label's mean (a label with no other row cannot be
    nearest)."""
    _, own = np.unique(labels, return_inverse=True)
    sums = np.zeros((int(own.max()) + 1, X.shape[1]))
    np.add.at(sums, own, X)
    counts = np.bincount(own)
    rows = np.arange(len(X))
    dots = X @ sums.T
    norms2 = np.broadcast_to(np.einsum("kd,kd->k", sums, sums), dots.shape).copy()
    # The own label's mean without the row: sum - x, |sum - x|^2 = |sum|^2 - 2 x.sum + |x|^2.
    self_dot = np.einsum("nd,nd->n", X, X)
    norms2[rows, own] += self_dot - 2.0 * dots[rows, own]
    dots[rows, own] -= self_dot
    sims = dots / np.sqrt(np.maximum(norms2, 1e-12))
    sims[rows, own] = np.where(counts[own] > 1, sims[rows, own], -np.inf)
    return float(np.mean(np.argmax(sims, axis=1) == own))


def lower_accuracy(*estimates: float | None) -> float | None:
    """The lowest of the estimates given (``None`` when there is none)."""
    known = [e for e in estimates if e is not None]
    return min(known) if known else None


def margins(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each text's best column of the similarities ``Z`` (texts × options) and its margin over
    the second best (10 with one option)."""
    nearest = np.argmax(Z, axis=1).astype(np.int64)
    top = np.sort(Z, axis=1)
    margin = top[:, -1] - top[:, -2] if Z.shape[1] > 1 else np.full(len(Z), 10.0)
    return nearest, margin


def guard_answers(
    answers: dict[int, int],
    nearest: np.ndarray,
    margin: np.ndarray,
    llm_accuracy: float,
    stats: dict[str, Any],
    trust: float | None = TRUST_ACCURACY,
) -> dict[int, int]:
    """The LLM's answers that stand (step 4 of the module docstring): all of them when its
    estimated accuracy is ``trust`` or more (never with ``trust=None``); else those that agree
    with the embedding and those where the LLM is estimated more accurate than the embedding at
    that text's margin. ``stats`` gets how many answers were dropped."""
    ids = np.fromiter(answers, dtype=np.int64, count=len(answers))
    if (trust is not None and llm_accuracy >= trust) or not len(ids):
        stats["guard_dropped"] = 0
        return answers
    chosen = np.fromiter(answers.values(), dtype=np.int64, count=len(ids))
    agree = chosen == nearest[ids]
    keep = agree | (
        llm_accuracy > embedding_accuracy(answers, nearest, margin, llm_accuracy) + GUARD_SLACK
    )
    stats["guard_dropped"] = int((~keep).sum())
    return {int(i): int(c) for i, c, k in zip(ids, chosen, keep, strict=True) if k}


def embedding_accuracy(
    answers: dict[int, int], nearest: np.ndarray, margin: np.ndarray, llm_accuracy: float
) -> np.ndarray:
    """The embedding's estimated accuracy at each answered text's margin (in ``answers``'
    order): the LLM's agreement with it by margin, made monotone, over ``llm_accuracy``."""
    from sklearn.isotonic import IsotonicRegression

    ids = np.fromiter(answers, dtype=np.int64, count=len(answers))
    chosen = np.fromiter(answers.values(), dtype=np.int64, count=len(ids))
    agree = (chosen == nearest[ids]).astype(float)
    # Agreement = q * e + (chance the two are wrong alike); agreement / q over-estimates e, so
    # the guard errs towards the embedding.
    fit = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    return np.minimum(
        1.0, fit.fit(margin[ids], agree).predict(margin[ids]) / max(llm_accuracy, 1e-6)
    )
