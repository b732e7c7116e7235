"""How firm the automatic cut is, and which cut the resamples support (``clustering.granularity``
step 2; measurements in that module's notes, issue 14).

``resampled_curves`` re-clusters ``N_RESAMPLES`` random subsets by steps 1-2 (HDBSCAN
micro-clusters, Ward, variance ratio); ``consensus_k`` chooses the full data's cut from their
curves, and ``stable_cut`` moves it to a coarser cut when the resamples reproduce that one
clearly better (``cut_stability``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from clustering.granularity import CORE_DIST_JOBS, SECOND_CUT_SHARE, second_cut
from clustering.types import NOISE
from clustering.ward import (
    WardMerges,
    best_cut,
    calinski_harabasz_path,
    cut_merges,
    cuts_of_merges,
    nearest_centroid_labels,
    ward_merges,
)

N_RESAMPLES = 6
"""Random subsets re-clustered (steps 1-2) to see how firm the cut is (issue 14)."""
RESAMPLE_SHARE = 0.8
MIN_RESAMPLE = 50
K_RULE = "median"
"""How the resamples choose the cut (``consensus_k``). AG News 4k, 5 UMAP seeds, micro-clusters
at 0.6x: ``full`` K 3,3,4,3,4 (NMI mean 0.596), ``median`` 3,3,3,3,3 (0.604), as ``mean``."""
STABLE_SHARE: float | None = 0.9
"""``stable_cut``: the coarser cuts weighed against the variance ratio's keep at least this share
of the best ratio (None: the ratio's cut stands)."""
SECTION_SHARE: float | None = 0.05
"""``stable_cut`` at the section grain: the coarsest cut the resamples reproduce as well as the
chosen one (within ``SECTION_SLACK``) is preferred to it when every cluster it joins holds at
least this share of the points (None: never). Measured in ``clustering.granularity``'s
notes ("Sections with sub-topics")."""
SECTION_SLACK = 0.01
"""... "as well": the coarser cut's mean adjusted Rand at most this much below the chosen one's."""


@dataclass(frozen=True)
class ResampledFit:
    """Steps 1-2 on one random subset: its rows, their micro-cluster partition (noise given the
    nearest micro-cluster), its Ward tree and variance-ratio curve, and the K it ends with."""

    index: np.ndarray
    provisional: np.ndarray
    merges: WardMerges
    scores: dict[int, float]
    k: int


def resampled_curves(
    X: np.ndarray,
    min_cluster_size: int,
    min_samples: int | None,
    *,
    n_resamples: int = N_RESAMPLES,
    share: float = RESAMPLE_SHARE,
    random_state: int | None = 0,
    method: str = "eom",
    second: float | None = SECOND_CUT_SHARE,
    stable: float | None = STABLE_SHARE,
) -> list[ResampledFit]:
    """Steps 1-2 on ``n_resamples`` random ``share`` of the points: each resample's Ward tree,
    variance-ratio curve, and the K it ends with by the full data's rule: its own best cut,
    moved by ``stable_cut`` (the other resamples as references, on the points they share),
    then ``second_cut``. Their range is the run's ``k_spread``."""
    import hdbscan

    rng = np.random.default_rng(random_state)
    m = max(MIN_RESAMPLE, int(share * len(X)))
    if m >= len(X):
        return []
    size = max(2, round(min_cluster_size * share))
    trees = []
    for _ in range(n_resamples):
        idx = np.sort(rng.choice(len(X), m, replace=False))
        micro = hdbscan.HDBSCAN(
            min_cluster_size=size,
            min_samples=min(min_samples, m - 1) if min_samples else None,
            cluster_selection_method=method,
            core_dist_n_jobs=CORE_DIST_JOBS,
        ).fit(X[idx])
        labels = np.asarray(micro.labels_, dtype=np.int64)
        if (labels != NOISE).any():
            provisional = nearest_centroid_labels(X[idx], labels)
            merges = ward_merges(X[idx], provisional)
            scores = calinski_harabasz_path(merges)
            if scores:
                trees.append(ResampledFit(idx, provisional, merges, scores, best_cut(scores)))
    fits = []
    for i, tree in enumerate(trees):
        others = trees[:i] + trees[i + 1 :]
        k = stable_cut_of(tree.provisional, tree.merges, tree.k, others, stable, tree.index).k
        cut = cut_merges(tree.provisional, tree.merges, k)
        moved = k != tree.k  # as the full data's cut in ``merge_micro_clusters``
        cut, _ = second_cut(
            X[tree.index], tree.provisional, cut, tree.scores, k, second, moved=moved
        )
        fits.append(replace(tree, k=len(np.unique(cut))))
    return fits


def consensus_k(full: dict[int, float], curves: list[dict[int, float]], rule: str = K_RULE) -> int:
    """The cut of the full data's tree: ``median`` of the cuts the resamples (and the full data)
    chose, ``mean`` the best cut of the curves averaged (each scaled to its max), or ``full`` the
    full data's best cut (the resamples then only measure the spread)."""
    if not full:
        return 0
    if not curves or rule == "full":
        return best_cut(full)
    if rule == "median":
        ks = sorted([best_cut(c) for c in curves if c] + [best_cut(full)])
        k = ks[len(ks) // 2]
    else:
        total: dict[int, list[float]] = {}
        for curve in [full, *curves]:
            top = max(v for v in curve.values() if math.isfinite(v)) if curve else 1.0
            for key, v in curve.items():
                total.setdefault(key, []).append(v / top if top > 0 else 0.0)
        mean = {
            key: float(np.sum(v)) / (len(curves) + 1) for key, v in total.items() if key in full
        }
        k = best_cut(mean)
    return min(max(k, 2), max(full))


def cut_stability(
    provisional: np.ndarray,
    merges: WardMerges,
    fits: list[ResampledFit],
    ks: list[int],
    index: np.ndarray | None = None,
) -> dict[int, tuple[float, float]]:
    """How reproducible each cut ``k`` of a tree is: the mean and standard deviation over the
    resampled fits of the adjusted Rand index between its cut and the resample's own tree cut
    at ``k``, on the points both hold. ``provisional`` labels the rows ``index`` of the data
    (None: all rows, so every resample's points)."""
    shared: list[tuple[Any, Any]] = []  # (my rows, the resample's rows) both hold
    for f in fits:
        if index is None:
            shared.append((f.index, slice(None)))
        else:
            _, mine, theirs = np.intersect1d(index, f.index, return_indices=True)
            shared.append((mine, theirs))
    full = cuts_of_merges(provisional, merges, ks)
    theirs_cuts = [
        cuts_of_merges(f.provisional, f.merges, [k for k in ks if k <= f.merges.n_start])
        for f in fits
    ]
    out: dict[int, tuple[float, float]] = {}
    for k in ks:
        agree = [
            adjusted_rand(full[k][mine], cuts[k][theirs])
            for cuts, (mine, theirs) in zip(theirs_cuts, shared, strict=True)
            if k in cuts
        ]
        if agree:
            out[k] = (float(np.mean(agree)), float(np.std(agree)))
    return out


def adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    """The adjusted Rand index of two labelings (sklearn's ``adjusted_rand_score``, without its
    input checks: they took 95 % of ``stable_cut``'s time, 916 calls on CLINC150)."""
    a = np.unique(a, return_inverse=True)[1].ravel()
    b = np.unique(b, return_inverse=True)[1].ravel()
    n = len(a)
    if n < 2:
        return 1.0
    table = np.bincount(a * (int(b.max()) + 1) + b).astype(np.float64)
    pairs = float((table * (table - 1)).sum() / 2)
    rows = np.bincount(a).astype(np.float64)
    cols = np.bincount(b).astype(np.float64)
    pairs_a = float((rows * (rows - 1)).sum() / 2)
    pairs_b = float((cols * (cols - 1)).sum() / 2)
    expected = pairs_a * pairs_b / (n * (n - 1) / 2)
    top = (pairs_a + pairs_b) / 2
    if top == expected:  # one cluster each, or every point alone in both
        return 1.0
    return (pairs - expected) / (top - expected)


class StableCut(NamedTuple):
    """What ``stable_cut`` decided: the cut, the mean agreement with the resamples of each cut
    it weighed (empty when nothing was compared), and whether the section rule moved it."""

    k: int
    agreement: dict[int, float]
    section: bool = False


def stable_cut(
    X: np.ndarray,
    micro: np.ndarray,
    k: int,
    fits: list[ResampledFit],
    share: float | None = STABLE_SHARE,
    section_share: float | None = SECTION_SHARE,
) -> StableCut:
    """Step 2's cut moved to a coarser one the resamples reproduce better: among the cuts no
    finer than ``k`` that keep ``share`` of the best variance ratio, the finest whose mean
    agreement with the resamples (``cut_stability``) is within one standard deviation of the
    most reproducible cut's. BBC News: the ratio's 9-10 sub-section clusters agree 0.87-0.99
    over resamples, 6-8 agree 0.99-1.00. At the section grain (``section_share``) the coarsest
    cut reproduced as well as that one is taken instead: two sections whose sub-topics lie
    apart (AG News's World and Sports, Sports in two lobes) are cut at 2 and 3 equally firmly,
    and the extra cut is a sub-topic's. A cut joining smaller clusters is not taken: at a fine
    grain the coarser cuts are as firm because they are the sources' (mix_3src), and a small
    stray cluster is not a sub-topic."""
    if share is None or not fits or k < 3:
        return StableCut(k, {})
    X = np.asarray(X, dtype=np.float64)
    provisional = nearest_centroid_labels(X, np.asarray(micro, dtype=np.int64))
    merges = ward_merges(X, provisional)
    return stable_cut_of(provisional, merges, k, fits, share, section_share=section_share)


def stable_cut_of(
    provisional: np.ndarray,
    merges: WardMerges,
    k: int,
    fits: list[ResampledFit],
    share: float | None = STABLE_SHARE,
    index: np.ndarray | None = None,
    section_share: float | None = SECTION_SHARE,
) -> StableCut:
    """``stable_cut`` on a ready tree (``provisional`` labels rows ``index``, None: all)."""
    if share is None or not fits or k < 3:
        return StableCut(k, {})
    scores = {g: v for g, v in calinski_harabasz_path(merges).items() if math.isfinite(v)}
    if k not in scores:
        return StableCut(k, {})
    top = max(scores.values())
    ks = sorted({k} | {g for g, v in scores.items() if g < k and v >= share * top})
    if len(ks) < 2:
        return StableCut(k, {})
    agreement = cut_stability(provisional, merges, fits, ks, index)
    if k not in agreement:
        return StableCut(k, {})
    best = max(agreement, key=lambda g: (agreement[g][0], g))
    bar = agreement[best][0] - agreement[best][1]
    chosen = max(g for g, (mean, _) in agreement.items() if mean >= bar)
    means = {g: round(mean, 4) for g, (mean, _) in agreement.items()}
    floor = agreement[chosen][0] - SECTION_SLACK
    coarser = [g for g, (mean, _) in agreement.items() if g < chosen and mean >= floor]
    if section_share is None or not coarser:
        return StableCut(chosen, means)
    cuts = cuts_of_merges(provisional, merges, [*coarser, chosen])
    joining = [g for g in coarser if joins_sections(cuts[chosen], cuts[g], section_share)]
    if not joining:
        return StableCut(chosen, means)
    return StableCut(min(joining), means, section=True)


def joins_sections(fine: np.ndarray, coarse: np.ndarray, share: float) -> bool:
    """Whether every cluster of ``fine`` that ``coarse`` joins to another holds at least
    ``share`` of the points (``coarse`` is a coarser cut of the same tree)."""
    pairs = np.unique(np.stack([coarse, fine]), axis=1)
    groups, parts = np.unique(pairs[0], return_counts=True)
    joined = np.isin(pairs[0], groups[parts > 1])
    sizes = dict(zip(*np.unique(fine, return_counts=True), strict=True))
    return all(sizes[c] >= share * len(fine) for c in pairs[1][joined])
