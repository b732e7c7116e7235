"""The offline labeler: a readable name and a one-sentence description from a cluster's
keywords and representative texts. It is the default, and the fallback of every LLM labeler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clustering.types import ClusterLabel, ClusterSummary

NAME_KEYWORDS = 3
EXAMPLE_CHARS = 90


def keyword_name(keywords: Sequence[str], cluster_id: int) -> str:
    """Up to three keywords; a phrase replaces the single words it contains ("card arrived",
    not "Card · Arrived · Card arrived"), and a term that adds no new word is skipped."""
    chosen: list[str] = []
    for term in keywords:
        words = set(term.split())
        if any(words <= set(c.split()) for c in chosen):
            continue
        covered = [c for c in chosen if set(c.split()) <= words]
        at = chosen.index(covered[0]) if covered else len(chosen)
        chosen = [c for c in chosen if c not in covered]
        chosen.insert(min(at, len(chosen)), term)
        if len(chosen) == NAME_KEYWORDS:
            break
    if not chosen:
        return f"Cluster {cluster_id}"
    return " · ".join(k.capitalize() for k in chosen)


def keyword_description(summary: ClusterSummary) -> str:
    size = f"{summary.size:,} text{'s' if summary.size != 1 else ''} ({summary.share:.1%})"
    if summary.keywords:
        terms = ", ".join(f"“{k}”" for k in summary.keywords[:5])
        body = f"{size} mostly using {terms}"
    else:
        body = f"{size} with no distinctive words"
    if summary.representatives:
        body += f"; typical: “{shorten(summary.representatives[0], EXAMPLE_CHARS)}”"
    return body + "."


def keyword_criterion(keywords: Sequence[str]) -> str:
    if not keywords:
        return ""
    return "The text mentions " + " or ".join(f"“{k}”" for k in keywords[:3]) + "."


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def keyword_label(
    summary: ClusterSummary, status: str = "keywords", error: str = ""
) -> ClusterLabel:
    return ClusterLabel(
        cluster_id=summary.cluster_id,
        name=keyword_name(summary.keywords, summary.cluster_id),
        description=keyword_description(summary),
        inclusion_criterion=keyword_criterion(summary.keywords),
        status=status,
        error=error,
        labeler="keywords",
    )


class KeywordLabeler:
    """Names clusters from their distinctive keywords (``clustering.keywords``: no word in two
    clusters' names); needs no network."""

    name = "keywords"

    def label(self, summaries: Sequence[ClusterSummary]) -> list[ClusterLabel]:
        return [keyword_label(s) for s in summaries]

    def bind_run(self, run_id: int) -> None:
        """Offline: no call to record."""

    def usage_dict(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Nothing to close."""
