"""Assign texts to candidate descriptions and select the K descriptions that cover the corpus
best: the embedding half of propose → assign → select (GoalEx, Wang et al. 2023).

A candidate is a description with a vector (the embedded description, or a centroid when the
candidates come from keywords). Similarities are z-scored per candidate, because descriptions
embed at different distances from texts; a text satisfies a candidate when its z-score is high
in absolute terms and close to its best candidate's. Pairs near that boundary are "uncertain":
the LLM may check them (``llm.goal``). Selection maximises coverage minus overlap, greedily or
as an integer programme (``scipy.optimize.milp``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clustering.cluster import order_by_size
from clustering.errors import ConfigError
from clustering.types import NOISE, Assignment

log = logging.getLogger(__name__)

Z_FLOOR = 0.75
"""A text satisfies a candidate only if its similarity is this many standard deviations above
the candidate's mean similarity over the corpus."""
Z_MARGIN = 0.75
"""... and within this many of the text's best candidate."""
Z_BAND = 0.5
"""Pairs this close to the decision boundary are uncertain (worth an LLM check)."""
TOP_PER_TEXT = 3
"""Only a text's best few candidates can be uncertain for it."""
OVERLAP_PENALTY = 0.5
"""Weight of texts covered twice against texts newly covered."""
MIN_GAIN_SHARE = 0.01
"""With K automatic, selection stops when the next candidate covers fewer new texts than this
share of the corpus."""
MAX_K = 50
MILP_TIME_LIMIT_S = 20.0


@dataclass(frozen=True)
class Candidate:
    name: str
    description: str
    vector: np.ndarray = field(repr=False, compare=False)
    source: str = "llm"
    """``llm`` (proposed by the model) or ``keywords`` (an offline centroid)."""


def similarity_z(vectors: np.ndarray, candidate_vectors: np.ndarray) -> np.ndarray:
    """Cosine similarity of every text to every candidate, z-scored per candidate."""
    S = _unit(vectors) @ _unit(candidate_vectors).T
    mean, std = S.mean(axis=0, keepdims=True), S.std(axis=0, keepdims=True)
    return (S - mean) / np.where(std > 0, std, 1.0)


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms > 0, norms, 1.0)


def boundary(Z: np.ndarray, floor: float = Z_FLOOR, margin: float = Z_MARGIN) -> np.ndarray:
    """The z-score each text needs, per text: high in itself and near its best."""
    return np.maximum(floor, Z.max(axis=1) - margin)


def membership(Z: np.ndarray, floor: float = Z_FLOOR, margin: float = Z_MARGIN) -> np.ndarray:
    """Boolean (texts × candidates): the text satisfies the candidate."""
    if Z.size == 0:
        return np.zeros(Z.shape, dtype=bool)
    return Z >= boundary(Z, floor, margin)[:, None]


def uncertain_pairs(
    Z: np.ndarray,
    floor: float = Z_FLOOR,
    margin: float = Z_MARGIN,
    band: float = Z_BAND,
    top: int = TOP_PER_TEXT,
) -> list[tuple[int, int]]:
    """(text, candidate) pairs near the boundary, most uncertain first."""
    if Z.size == 0:
        return []
    edge = boundary(Z, floor, margin)
    gap = np.abs(Z - edge[:, None])
    ranks = np.argsort(-Z, axis=1)[:, :top]
    pairs = [
        (int(i), int(c), float(gap[i, c]))
        for i in range(len(Z))
        for c in ranks[i]
        if gap[i, c] < band
    ]
    pairs.sort(key=lambda p: (p[2], p[0], p[1]))
    return [(i, c) for i, c, _ in pairs]


@dataclass(frozen=True)
class Selection:
    chosen: tuple[int, ...]
    """Candidate indices, in the order selected."""
    covered: int
    overlap: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": list(self.chosen),
            "covered": self.covered,
            "overlap": self.overlap,
            "method": self.method,
        }


def select_greedy(
    M: np.ndarray,
    k: int | None = None,
    *,
    penalty: float = OVERLAP_PENALTY,
    min_gain: float | None = None,
    max_k: int = MAX_K,
) -> Selection:
    """Pick candidates one at a time by new coverage minus ``penalty`` times overlap.

    With ``k`` given, exactly ``min(k, candidates)``; otherwise stop when the gain falls below
    ``min_gain`` texts (``MIN_GAIN_SHARE`` of the corpus by default) or at ``max_k``.
    """
    n, m = M.shape
    if min_gain is None:
        min_gain = max(1.0, MIN_GAIN_SHARE * n)
    limit = min(m, k if k is not None else max_k)
    counts = np.zeros(n, dtype=np.int64)
    chosen: list[int] = []
    for _ in range(limit):
        fresh = (M & (counts == 0)[:, None]).sum(axis=0)
        again = (M & (counts > 0)[:, None]).sum(axis=0)
        gain = fresh - penalty * again
        gain[chosen] = -np.inf
        best = int(np.argmax(gain))
        if k is None and gain[best] < min_gain:
            break
        chosen.append(best)
        counts += M[:, best]
    return _selection(M, chosen, "greedy")


def select_milp(
    M: np.ndarray,
    k: int,
    *,
    penalty: float = OVERLAP_PENALTY,
    time_limit_s: float = MILP_TIME_LIMIT_S,
) -> Selection:
    """Exactly ``k`` candidates maximising covered texts minus ``penalty`` × extra covers:

    max Σ y_i − λ Σ e_i  s.t.  y_i ≤ Σ_c M_ic x_c,  e_i ≥ Σ_c M_ic x_c − 1,  Σ x_c = k,
    x binary, 0 ≤ y ≤ 1, e ≥ 0. Falls back to greedy if the solver finds nothing in time.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, hstack, identity

    n, m = M.shape
    k = min(k, m)
    if k <= 0 or n == 0:
        return Selection((), 0, 0, "milp")
    rows = np.flatnonzero(M.any(axis=1))  # texts no candidate covers cannot matter
    A = csr_matrix(M[rows].astype(np.float64))
    r = len(rows)
    eye = identity(r, format="csr")
    zero = csr_matrix((r, r))
    # Variables: x (m), y (r), e (r).
    cover = hstack([-A, eye, zero])  # y - Mx <= 0
    extra = hstack([A, zero, -eye])  # Mx - e <= 1
    count = csr_matrix(np.concatenate([np.ones(m), np.zeros(2 * r)])[None, :])
    constraints = [
        LinearConstraint(cover, -np.inf, 0.0),
        LinearConstraint(extra, -np.inf, 1.0),
        LinearConstraint(count, k, k),
    ]
    c = np.concatenate([np.zeros(m), -np.ones(r), penalty * np.ones(r)])
    integrality = np.concatenate([np.ones(m), np.zeros(2 * r)])
    upper = np.concatenate([np.ones(m), np.ones(r), np.full(r, np.inf)])
    result = milp(
        c,
        constraints=constraints,
        integrality=integrality,
        bounds=Bounds(np.zeros(m + 2 * r), upper),
        options={"time_limit": time_limit_s},
    )
    if result.x is None:
        log.warning("milp found no selection (%s); selecting greedily", result.message)
        return select_greedy(M, k, penalty=penalty)
    x = result.x[:m]
    chosen = [int(j) for j in np.argsort(-x, kind="stable")[:k] if x[j] > 0.5]
    return _selection(M, chosen, "milp")


def _selection(M: np.ndarray, chosen: list[int], method: str) -> Selection:
    counts = M[:, chosen].sum(axis=1) if chosen else np.zeros(len(M), dtype=np.int64)
    return Selection(
        tuple(chosen), int((counts > 0).sum()), int(np.maximum(counts - 1, 0).sum()), method
    )


def select_candidates(M: np.ndarray, k: int | None = None, method: str = "greedy") -> Selection:
    if method not in ("greedy", "milp"):
        raise ConfigError(f"unknown selection method {method!r}; use 'greedy' or 'milp'")
    if method == "milp":
        # With K automatic, greedy decides how many, the integer programme which ones.
        k = k if k is not None else len(select_greedy(M).chosen)
        return select_milp(M, k)
    return select_greedy(M, k)


def assign_to_selected(
    Z: np.ndarray, M: np.ndarray, chosen: tuple[int, ...], *, reassign_outliers: bool = False
) -> tuple[Assignment, dict[int, int]]:
    """Each text to its best selected candidate that it satisfies (-1 if none, or its best
    selected candidate with ``reassign_outliers``). Clusters are renumbered by size; returns
    the assignment and the map cluster id -> candidate index."""
    n = len(Z)
    if not chosen:
        return Assignment(np.full(n, NOISE, dtype=np.int64), np.zeros(n)), {}
    cols = np.asarray(chosen)
    Zs = Z[:, cols]
    masked = np.where(M[:, cols], Zs, -np.inf)
    best = np.argmax(masked, axis=1)
    ok = np.isfinite(masked[np.arange(n), best])
    if reassign_outliers:
        best = np.where(ok, best, np.argmax(Zs, axis=1))
        ok = np.ones(n, dtype=bool)
    raw = np.where(ok, best, NOISE)
    labels = order_by_size(raw)
    mapping = {}
    for j in range(len(cols)):
        hit = np.flatnonzero(raw == j)
        if len(hit):
            mapping[int(labels[hit[0]])] = int(cols[j])
    top = np.sort(Zs, axis=1)
    margin = top[:, -1] - (top[:, -2] if Zs.shape[1] > 1 else top[:, -1] - 1.0)
    probabilities = np.where(labels == NOISE, 0.0, 1.0 - np.exp(-np.maximum(margin, 0.0)))
    return Assignment(labels, probabilities), mapping
