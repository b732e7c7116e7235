"""What a run reports about its granularity (``metrics``): how firm K is over the resampled fits,
the grains the data supports, the coarser grain offered beside the chosen cut, and a sentence
saying which cut the default picked and why (``clustering.granularity``; issue 14).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from clustering.granularity import TWO_WAY_MIN_SHARE, Granularity
from clustering.resampling import K_RULE, SECTION_SHARE, STABLE_SHARE
from clustering.types import NOISE

COARSER_GRAIN = 1.5
"""The first cut is offered as a coarser grain when the second cut multiplied K by this."""
GRAIN_SHARE = 0.8
"""A second local maximum of the variance ratio is offered as another grain from this share of
the best ratio on."""
GRAIN_WINDOW = 0.2
"""A local maximum has no higher ratio within this share of its K on either side."""


def k_spread(info: Granularity) -> dict[str, Any]:
    """How firm the automatic K is, for the run's metrics: the K kept, and the lowest and highest
    K the resampled fits chose (``metrics["k_spread"]``)."""
    ks = [info.n_clusters, *info.resampled_k]
    return {
        "k": info.n_clusters,
        "min": min(ks),
        "max": max(ks),
        "resamples": len(info.resampled_k),
        "resampled_k": list(info.resampled_k),
    }


def k_spread_sentence(spread: dict[str, Any]) -> str:
    """ "9 clusters; 7–10 across 6 resampled fits" (or "the same in all 6 ...")."""
    k = spread["k"]
    head = f"{k} cluster{'s' if k != 1 else ''}"
    if not spread.get("resamples"):
        return head
    if spread["min"] == spread["max"]:
        return f"{head}; the same in all {spread['resamples']} resampled fits"
    return f"{head}; {spread['min']}–{spread['max']} across {spread['resamples']} resampled fits"


def grains(scores: dict[int, float], share: float = GRAIN_SHARE) -> list[int]:
    """Cuts that stand out on the variance-ratio curve, best first: local maxima (no higher
    ratio within ``GRAIN_WINDOW`` of their K on either side) scoring at least ``share`` of
    the best. Two of them mean the data supports two grains (sources and their topics)."""
    ks = sorted(k for k, v in scores.items() if math.isfinite(v))
    if not ks:
        return []
    top = max(scores[k] for k in ks)
    found = []
    for k in ks:
        window = max(1, round(GRAIN_WINDOW * k))
        near = [scores[j] for j in ks if abs(j - k) <= window]
        if scores[k] >= max(near) and scores[k] >= share * top:
            found.append(k)
    return sorted(found, key=lambda k: -scores[k])


def renumber_coarse(info: Granularity, raw: np.ndarray, ordered: np.ndarray) -> Granularity:
    """``info.coarse_of`` in the cluster ids of ``ordered`` (``raw`` renumbered by
    ``order_by_size``), the coarse groups numbered 0, 1, ... by decreasing size."""
    if not info.coarse_of:
        return info
    keep = np.asarray(raw) != NOISE
    final = dict(
        zip(np.asarray(raw)[keep].tolist(), np.asarray(ordered)[keep].tolist(), strict=True)
    )
    ids, counts = np.unique(np.asarray(raw)[keep], return_counts=True)
    size = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    totals: dict[int, int] = {}
    for cluster, group in info.coarse_of:
        totals[group] = totals.get(group, 0) + size.get(cluster, 0)
    rank = {g: i for i, g in enumerate(sorted(totals, key=lambda g: (-totals[g], g)))}
    pairs = sorted((final[c], rank[g]) for c, g in info.coarse_of if c in final)
    return replace(info, coarse_of=tuple(pairs))


def coarse_labels(labels: np.ndarray, info: Granularity) -> np.ndarray | None:
    """Each point's group at the offered coarser grain (noise stays -1); None when none."""
    if not info.coarse_of:
        return None
    parent = dict(info.coarse_of)
    return np.array([parent.get(int(c), NOISE) for c in labels], dtype=np.int64)


def granularity_metrics(info: Granularity) -> dict[str, Any]:
    """For the run's metrics: ``k_spread``, the ``grains`` the data supports and a sentence
    saying which the default picked and why (``granularity``)."""
    spread = k_spread(info)
    found = grains(info.scores)
    k = info.first_cut or info.n_clusters
    if K_RULE == "median" and spread["resamples"]:
        how = (
            "the median of the cuts with the highest variance ratio (Calinski-Harabasz) over "
            f"the full data and {spread['resamples']} resampled fits"
        )
    else:
        how = "the cut with the highest variance ratio (Calinski-Harabasz)"
    why = f"{k_spread_sentence(spread)}. "
    tree = f"the Ward tree over {info.n_micro} HDBSCAN micro-clusters"
    moved = bool(info.ratio_cut and info.stability)
    if moved:
        agree = info.stability
        rands = (
            f"(adjusted Rand {agree.get(k, 0):.2f} against {agree.get(info.ratio_cut, 0):.2f} at "
            f"{info.ratio_cut})"
        )
        why += (
            f"The cut at {info.ratio_cut}, {how} of {tree}, moved to {k}: among the cuts keeping "
            f"{STABLE_SHARE:.0%} of the best ratio, {k} is "
        )
        if info.section_cut:
            why += (
                f"the coarsest the resampled fits reproduce as well as the finer ones {rands}; "
                f"its clusters are section-size (every cluster it joins holds {SECTION_SHARE:.0%} "
                "of the texts or more), where the coarser of two equally firm cuts is kept."
            )
        else:
            why += (
                "the finest the resampled fits reproduce about as well as the most reproducible "
                f"one {rands}."
            )
    elif info.recut:
        why += f"{k} clusters chosen as {how} of {tree}."
    else:
        why += f"Chosen as {how} of {tree}."
    separate = info.recut - info.two_way
    if separate:
        one = separate == 1
        why += (
            f" {separate} of the {k} {'was' if one else 'were'} cut again at "
            f"{'its' if one else 'their'} own best variance ratio, {'its' if one else 'their'} "
            "groups being as separate as the clusters themselves."
        )
    if info.two_way:
        one = info.two_way == 1
        why += (
            f" {info.two_way} of the {k}, holding {TWO_WAY_MIN_SHARE:.0%} of the texts or more, "
            f"{'was' if one else 'were'} cut in two: {'its' if one else 'their'} own tree "
            "separates best into two lobes (two topics joined, not a topic with sub-topics)."
        )
    facts: dict[str, Any] = {"k_spread": spread, "grains": found}
    if info.stability:
        facts["cut_stability"] = {int(g): v for g, v in info.stability.items()}
    if info.n_clusters >= COARSER_GRAIN * k:
        if info.coarse_k != k:  # else said with the offered grain below
            why += f" A coarser grain of {k} clusters: ask for {k}, or see the hierarchy's parents."
    else:
        others = [g for g in found if g not in (k, info.coarse_k, info.ratio_cut)]
        if others and info.scores.get(k):
            g = others[0]
            grain = "coarser" if g < k else "finer"
            why += (
                f" A {grain} grain of {g} clusters also stands out (variance ratio "
                f"{info.scores[g] / info.scores[k]:.2f} of the chosen cut): ask for {g} clusters, "
                f"or see the hierarchy's {'parents' if g < k else 'leaves'}."
            )
    if info.coarse_k and info.scores.get(k):
        share = info.scores[info.coarse_k] / info.scores[k]
        n_clusters = info.n_clusters
        if info.coarse_k == k:
            why += (
                f" Coarser grain offered: the first cut's {k} clusters, as {k} groups of the "
                f"{n_clusters} (take it with `corpusmap edit RUN coarser` or on the Edit page)."
            )
        else:
            why += (
                f" Coarser grain offered: {info.coarse_k} groups of the {n_clusters} clusters "
                f"(whole clusters joined along the same tree), keeping {share:.0%} of the chosen "
                f"cut's variance ratio; the default stays at {n_clusters} because its cut "
                f"separates best{' of those the resamples reproduce' if moved else ''}. Take it "
                "with `corpusmap edit RUN coarser` or on the Edit page."
            )
        facts["coarse"] = {
            "k": info.coarse_k,
            "variance_ratio_share": round(share, 4),
            "parent_of": dict(info.coarse_of),
        }
    facts["granularity"] = why
    return facts
