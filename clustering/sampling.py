"""Balanced samples: N texts spread evenly over clusters, and over the children within each
parent, so small clusters are seen as often as big ones (as in "Automatic Data Curation for
Self-Supervised Learning", which samples evenly across the clusters of a hierarchy).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from clustering.errors import ConfigError
from clustering.types import NOISE


def even_quotas(sizes: Mapping[int, int], n: int) -> dict[int, int]:
    """Split ``n`` over groups as evenly as their sizes allow (water-filling): a group smaller
    than its fair share gives all it has, the rest is shared among the others."""
    quotas = {g: 0 for g in sizes}
    left = n
    open_groups = sorted((g for g, s in sizes.items() if s > 0), key=lambda g: (sizes[g], g))
    while left > 0 and open_groups:
        share = left // len(open_groups)
        if share == 0:
            # Fewer texts left than groups: one more each to the largest groups.
            for g in sorted(open_groups, key=lambda g: (-(sizes[g] - quotas[g]), g))[:left]:
                quotas[g] += 1
            break
        for g in list(open_groups):
            take = min(share, sizes[g] - quotas[g])
            quotas[g] += take
            left -= take
            if quotas[g] >= sizes[g]:
                open_groups.remove(g)
    return quotas


def balanced_sample(
    labels: np.ndarray,
    n: int,
    *,
    parents: Mapping[int, int] | None = None,
    include_noise: bool = False,
    random_state: int | None = 42,
) -> np.ndarray:
    """Positions of up to ``n`` texts, even across clusters (or across parents first and then
    across the children of each parent), drawn at random within a cluster; sorted."""
    if n < 0:
        raise ConfigError(f"the sample size must be 0 or more, got {n}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(random_state)
    keep = np.ones(len(labels), bool) if include_noise else labels != NOISE
    ids, counts = np.unique(labels[keep], return_counts=True)
    sizes = {int(c): int(k) for c, k in zip(ids, counts, strict=True)}
    if parents:
        groups: dict[int, list[int]] = {}
        for c in sizes:
            groups.setdefault(int(parents.get(c, NOISE)), []).append(c)
        parent_quota = even_quotas({p: sum(sizes[c] for c in cs) for p, cs in groups.items()}, n)
        quotas: dict[int, int] = {}
        for p, cs in groups.items():
            quotas.update(even_quotas({c: sizes[c] for c in cs}, parent_quota[p]))
    else:
        quotas = even_quotas(sizes, n)
    chosen = [
        rng.choice(np.flatnonzero(keep & (labels == c)), q, replace=False)
        for c, q in quotas.items()
        if q
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
