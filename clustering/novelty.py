"""Novel-class discovery: with labels known for some classes (seeds), which clusters hold a
known class and which are new (no labeled member at all)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clustering.constraints import FREE
from clustering.types import NOISE


@dataclass(frozen=True)
class Novelty:
    known: dict[int, str] = field(default_factory=dict)
    """Cluster id -> the seed class most of its seeds have."""
    novel: tuple[int, ...] = ()
    """Clusters with no seed: candidates for classes nobody labeled yet."""
    purity: dict[int, float] = field(default_factory=dict)
    """Share of a known cluster's seeds that carry its class."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "known": {int(c): name for c, name in self.known.items()},
            "novel": [int(c) for c in self.novel],
            "purity": {int(c): round(v, 4) for c, v in self.purity.items()},
        }


def find_novel_clusters(labels: np.ndarray, seeds: np.ndarray, classes: Sequence[str]) -> Novelty:
    """Known clusters (named by their majority seed class) and novel ones (no seed)."""
    labels, seeds = np.asarray(labels), np.asarray(seeds)
    known: dict[int, str] = {}
    purity: dict[int, float] = {}
    novel = []
    for c in sorted(int(x) for x in np.unique(labels) if x != NOISE):
        got = seeds[(labels == c) & (seeds != FREE)]
        if not len(got):
            novel.append(c)
            continue
        values, counts = np.unique(got, return_counts=True)
        best = int(values[np.argmax(counts)])
        known[c] = classes[best] if best < len(classes) else str(best)
        purity[c] = float(counts.max() / counts.sum())
    return Novelty(known, tuple(novel), purity)
