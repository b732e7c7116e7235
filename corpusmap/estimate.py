"""How many LLM calls and tokens a run will take, before it starts.

One labeling call per cluster. With a fixed K the count is known; with automatic K it is
estimated from the corpus size and HDBSCAN's minimum cluster size, as a range. Prompt tokens
come from the real prompt built over texts of the corpus, at the prompt's own 4 characters per
token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from clustering.cluster import default_min_cluster_size
from clustering.types import ClusterSummary
from llm.prompts import CHARS_PER_TOKEN, MAX_EXAMPLES, N_NEIGHBOUR_KEYWORDS, label_messages
from llm.settings import LLMSettings

COMPLETION_TOKENS = 120
"""A typical reply: name, one or two sentences, a criterion and evidence ids."""
TEXTS_PER_CLUSTER = (6.0, 3.0, 1.5)
"""Texts per cluster in units of min_cluster_size: few large clusters, typical, many small."""


@dataclass(frozen=True)
class LLMEstimate:
    clusters: int
    clusters_low: int
    clusters_high: int
    prompt_tokens_per_call: int
    completion_tokens_per_call: int
    cost_usd: float | None
    """``None`` when the model has no known price (a local model is priced at 0)."""

    @property
    def calls(self) -> int:
        return self.clusters

    @property
    def prompt_tokens(self) -> int:
        return self.clusters * self.prompt_tokens_per_call

    @property
    def completion_tokens(self) -> int:
        return self.clusters * self.completion_tokens_per_call


def estimate_clusters(
    n_texts: int, n_clusters: int | None, min_cluster_size: int | None
) -> tuple[int, int, int]:
    """(typical, low, high) number of clusters."""
    if n_texts <= 0:
        return 0, 0, 0
    if n_clusters is not None:
        k = min(n_clusters, n_texts)
        return k, k, k
    size = min_cluster_size or default_min_cluster_size(n_texts)
    low, mid, high = (max(1, round(n_texts / (size * f))) for f in TEXTS_PER_CLUSTER)
    return mid, low, high


def estimate_llm(
    texts: Sequence[str],
    *,
    n_clusters: int | None = None,
    min_cluster_size: int | None = None,
    goal: str | None = None,
    model: str | None = None,
) -> LLMEstimate:
    """Calls, tokens and cost of labelling a run over ``texts`` (non-empty texts of the corpus)."""
    mid, low, high = estimate_clusters(len(texts), n_clusters, min_cluster_size)
    sample = [t for t in texts[: MAX_EXAMPLES * 20 : 20] if t] or ["example"]
    summary = ClusterSummary(
        cluster_id=0,
        size=max(len(texts) // max(mid, 1), 1),
        share=1 / max(mid, 1),
        keywords=tuple(f"keyword{i}" for i in range(10)),
        representatives=tuple(sample[:MAX_EXAMPLES]),
        goal=goal or None,
        neighbours=(1, 2, 3),
        neighbour_keywords=tuple(
            tuple(f"word{i}" for i in range(N_NEIGHBOUR_KEYWORDS)) for _ in range(3)
        ),
    )
    messages, _ = label_messages(summary)
    prompt = sum(len(m["content"]) for m in messages) // CHARS_PER_TOKEN + 8 * len(messages)
    settings = LLMSettings(model=model) if model else LLMSettings()
    cost = None
    if settings.price_of() is not None:
        cost = settings.cost_usd(prompt * mid, COMPLETION_TOKENS * mid)
    return LLMEstimate(mid, low, high, prompt, COMPLETION_TOKENS, cost)
