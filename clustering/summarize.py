"""Per-cluster summaries: size, share, keywords, representative texts and nearest clusters."""

from __future__ import annotations

import numpy as np

from clustering.embed import plain_encoder
from clustering.keywords import class_tfidf
from clustering.types import NOISE, Assignment, ClusterSummary, Embedder

N_REPRESENTATIVES = 8
N_NEIGHBOURS = 3
DIVERSITY = 0.3
"""Weight of novelty against centrality when picking representatives (maximal marginal
relevance): 0 takes the texts nearest the centre, even near-duplicates of each other."""


def centroids(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Unit-length mean vector of every cluster (noise excluded)."""
    result = {}
    for c in sorted(int(x) for x in np.unique(labels) if x != NOISE):
        mean = vectors[labels == c].mean(axis=0)
        norm = np.linalg.norm(mean)
        result[c] = mean / norm if norm > 0 else mean
    return result


def representatives(
    texts: list[str],
    vectors: np.ndarray,
    members: np.ndarray,
    centre: np.ndarray,
    n: int = N_REPRESENTATIVES,
    diversity: float = DIVERSITY,
) -> list[int]:
    """Indices of up to ``n`` distinct texts near the centre, spread by maximal marginal relevance."""
    if len(members) == 0:
        return []
    sims = vectors[members] @ centre
    order = members[np.argsort(-sims, kind="stable")]
    pool: list[int] = []
    seen: set[str] = set()
    for i in order:
        key = " ".join(texts[i].lower().split())
        if key in seen:
            continue
        seen.add(key)
        pool.append(int(i))
        if len(pool) >= 4 * n:
            break
    chosen = [pool[0]]
    candidates = pool[1:]
    while candidates and len(chosen) < n:
        cand = vectors[candidates]
        relevance = cand @ centre
        redundancy = (cand @ vectors[chosen].T).max(axis=1)
        score = (1 - diversity) * relevance - diversity * redundancy
        pick = int(np.argmax(score))
        chosen.append(candidates.pop(pick))
    return chosen


def summarize_clusters(
    texts: list[str],
    vectors: np.ndarray,
    assignment: Assignment,
    goal: str | None = None,
    n_representatives: int = N_REPRESENTATIVES,
    embedder: Embedder | None = None,
) -> tuple[ClusterSummary, ...]:
    """One summary per cluster, in cluster-id order (largest first).

    ``embedder`` (the encoder that made ``vectors``) lets the keywords a name is made of be
    chosen by how near the name embeds to its cluster's centroid (``class_tfidf``); keyword
    texts are not the corpus's own, so a keyphrase-expanding encoder embeds them plainly."""
    labels = assignment.labels
    n = len(labels)
    centres = centroids(vectors, labels)
    if not centres:
        return ()
    encoder = plain_encoder(embedder) if embedder is not None else None
    keywords = class_tfidf(texts, labels, vectors=vectors, embedder=encoder)
    ids = list(centres)
    matrix = np.vstack([centres[c] for c in ids])
    similarity = matrix @ matrix.T
    summaries = []
    for row, c in enumerate(ids):
        members = np.flatnonzero(labels == c)
        nearest = [ids[j] for j in np.argsort(-similarity[row]) if ids[j] != c][:N_NEIGHBOURS]
        summaries.append(
            ClusterSummary(
                cluster_id=c,
                size=len(members),
                share=len(members) / n,
                keywords=keywords.get(c, ()),
                representatives=tuple(
                    texts[i]
                    for i in representatives(texts, vectors, members, centres[c], n_representatives)
                ),
                goal=goal,
                neighbours=tuple(nearest),
                neighbour_keywords=tuple(keywords.get(x, ())[:5] for x in nearest),
            )
        )
    return tuple(summaries)
