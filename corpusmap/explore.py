"""What the Explore screen shows: map points, clusters in an order that keeps similar ones
together, and searchable members. Plain data in, plain frames out; no drawing here."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from clustering.types import NOISE
from corpusmap import service
from storage import ClusterInfo, RunInfo, Store

HOVER_CHARS = 160
"""Hover text is cut to this many characters: a 10 kB text would cover the map."""
OUTLIER_NAME = "outliers"


def cluster_order(clusters: list[ClusterInfo]) -> list[int]:
    """Cluster ids in a 1-D order that walks from each cluster to its nearest unvisited one.

    Uses the neighbours stored with each cluster (nearest centroids in embedding space); a walk
    that reaches a dead end restarts at the largest unvisited cluster.
    """
    by_id = {c.cluster_id: c for c in clusters}
    by_size = sorted(by_id, key=lambda c: (-by_id[c].size, c))
    order: list[int] = []
    seen: set[int] = set()
    for start in by_size:
        current: int | None = start
        while current is not None and current not in seen:
            order.append(current)
            seen.add(current)
            neighbours = by_id[current].extra.get("neighbours", [])
            current = next(
                (int(n) for n in neighbours if int(n) in by_id and int(n) not in seen), None
            )
    return order


def hover_text(text: str, limit: int = HOVER_CHARS) -> str:
    """Escaped and cut: plotly renders a subset of HTML in hover labels."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return html.escape(" ".join(short.split()))


def map_points(store: Store, run_id: int) -> pd.DataFrame:
    """Columns document_id, x, y, cluster_id, cluster, hover, text; one row per clustered text."""
    assignments = store.load_assignments(run_id)
    names = {c.cluster_id: c.name for c in store.load_clusters(run_id)}
    frame = assignments[["document_id", "x", "y", "cluster_id", "probability", "text"]].copy()
    frame["cluster"] = [
        cluster_title(c, names.get(c, "")) if c != NOISE else OUTLIER_NAME
        for c in frame["cluster_id"]
    ]
    frame["hover"] = [hover_text(t) for t in frame["text"]]
    return frame


def cluster_title(cluster_id: int, name: str) -> str:
    return f"{cluster_id}: {name}" if name else str(cluster_id)


def cluster_overview(store: Store, run_id: int) -> pd.DataFrame:
    """The cluster table in similarity order, with its position in that order (``rank``)."""
    clusters = store.load_clusters(run_id)
    table = service.cluster_table(store, run_id)
    order = cluster_order(clusters)
    rank = {c: i for i, c in enumerate(order)}
    table["rank"] = table["cluster_id"].map(rank)
    neighbours = {c.cluster_id: c.extra.get("neighbours", []) for c in clusters}
    table["similar to"] = [", ".join(map(str, neighbours.get(c, []))) for c in table["cluster_id"]]
    return table.sort_values("rank").reset_index(drop=True)


def find_members(
    points: pd.DataFrame,
    *,
    cluster_ids: list[int] | None = None,
    query: str = "",
    limit: int | None = None,
) -> pd.DataFrame:
    """Rows of ``map_points`` in the chosen clusters whose text contains ``query`` (any case)."""
    chosen = points
    if cluster_ids:
        chosen = chosen[chosen["cluster_id"].isin(cluster_ids)]
    if query.strip():
        chosen = chosen[chosen["text"].str.contains(query.strip(), case=False, regex=False)]
    if limit is not None:
        chosen = chosen.head(limit)
    return chosen


def sample_members(
    points: pd.DataFrame, cluster_id: int, n: int = 50, seed: int = 0
) -> pd.DataFrame:
    """A reproducible random sample of one cluster's members, most typical first."""
    members = points[points["cluster_id"] == cluster_id]
    if len(members) > n:
        members = members.sample(n, random_state=np.random.RandomState(seed))
    return members.sort_values("probability", ascending=False)


def rule_text(run: RunInfo, cluster_id: int) -> str:
    """A cluster's keyword rule with its precision and recall, or "" when the run has none."""
    rule = run.rules.get(cluster_id)
    if not rule or not rule.get("rule"):
        return ""
    precision, recall = rule.get("rule_precision"), rule.get("rule_recall")
    scores = ", ".join(
        f"{name} {value:.2f}"
        for name, value in (("precision", precision), ("recall", recall))
        if value is not None
    )
    return f"{rule['rule']} ({scores})" if scores else str(rule["rule"])


def novel_clusters(run: RunInfo) -> set[int]:
    """Clusters with no seeded text in a semi-supervised run (new classes)."""
    return {int(c) for c in (run.novelty or {}).get("novel", [])}
