"""Label-then-classify ("Text Clustering as Classification with LLMs", Huang & He 2024),
within a call budget.

1. Categories: the user's own, or the LLM proposes labels over a few batches of diverse texts
   (each batch sees the names found so far), and one more call merges them into at most K.
   Without an LLM: keyword categories of a k-means clustering.
2. Every text goes to its nearest category by embedding (the description embedded).
3. The LLM classifies many texts per call, the least certain texts first, while the budget
   lasts; its answers replace the embedding's. Category 0 in a reply ("none fits") makes the
   text an outlier.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from clustering.cluster import order_by_size
from clustering.cover import Candidate, similarity_z
from clustering.types import NOISE, Assignment, ClusterLabel, Embedder
from llm.asker import JSONAsker, Question
from llm.goal import (
    PROPOSAL_BATCH,
    UNLIMITED_CALLS,
    LLMPlan,
    embed_candidates,
    keyword_candidates,
    propose,
)
from llm.goal_prompts import (
    ASSIGNMENTS_SCHEMA,
    CATEGORIES_SCHEMA,
    classify_messages,
    estimate_prompt_tokens,
    merge_messages,
    parse_assignments,
    parse_groups,
)

log = logging.getLogger(__name__)

CLASSIFY_BATCH = 15
"""Texts classified per call (a 2,048-token local model still has room to answer)."""
PROPOSAL_CALLS = 4
DEFAULT_MAX_CATEGORIES = 12
MERGE_DISTANCE = 0.35
"""Cosine distance under which two proposed categories are one, when merging by embedding."""
COMPLETION_TOKENS = {"propose": 220, "merge": 300, "classify": 12 * CLASSIFY_BATCH}
"""Expected reply sizes, for the plan (the classify entry is for a full default batch)."""


@dataclass(frozen=True)
class ClassifyConfig:
    goal: str | None = None
    n_clusters: int | None = None
    """Most categories; ``None``: ``DEFAULT_MAX_CATEGORIES``."""
    categories: tuple[str, ...] = ()
    """The user's own category names: no proposal, no merge."""
    budget: int | None = None
    proposal_calls: int = PROPOSAL_CALLS
    allow_other: bool = True
    """Category 0 ("none fits") in a reply makes the text an outlier."""
    random_state: int = 42
    proposal_batch: int = PROPOSAL_BATCH
    classify_batch: int = CLASSIFY_BATCH
    """Texts per classification call (fewer for a small local model's context)."""

    @property
    def max_categories(self) -> int:
        return self.n_clusters or DEFAULT_MAX_CATEGORIES

    def to_dict(self) -> dict[str, Any]:
        return {
            "goal": self.goal,
            "n_clusters": self.n_clusters,
            "categories": list(self.categories),
            "budget": self.budget,
            "proposal_calls": self.proposal_calls,
            "allow_other": self.allow_other,
            "random_state": self.random_state,
            "proposal_batch": self.proposal_batch,
            "classify_batch": self.classify_batch,
        }


def split_budget(config: ClassifyConfig, n_texts: int) -> dict[str, int]:
    total = (
        config.budget
        if config.budget is not None
        else UNLIMITED_CALLS + math.ceil(n_texts / config.classify_batch)
    )
    if config.categories:
        return {"propose_calls": 0, "merge_calls": 0, "classify_calls": total}
    propose = min(config.proposal_calls, max(1, total // 3)) if total else 0
    merge = 1 if total - propose >= 2 else 0
    return {
        "propose_calls": propose,
        "merge_calls": merge,
        "classify_calls": max(0, total - propose - merge),
    }


def plan_classify(texts: Sequence[str], config: ClassifyConfig) -> LLMPlan:
    parts = split_budget(config, len(texts))
    parts["classify_calls"] = min(
        parts["classify_calls"], math.ceil(len(texts) / config.classify_batch)
    )
    sample = list(texts[:100]) or [""]
    mean_chars = sum(min(len(t), 240) for t in sample) / len(sample)
    tokens = (
        parts["propose_calls"] * estimate_prompt_tokens([], int(mean_chars * config.proposal_batch))
        + parts["merge_calls"] * estimate_prompt_tokens([], 60 * config.proposal_calls * 8)
        + parts["classify_calls"]
        * estimate_prompt_tokens(
            [], int(mean_chars * config.classify_batch) + 60 * config.max_categories
        )
    )
    completion = sum(COMPLETION_TOKENS[k.split("_")[0]] * v for k, v in parts.items())
    return LLMPlan(sum(parts.values()), tokens, completion, parts)


@dataclass(frozen=True)
class ClassifyResult:
    assignment: Assignment
    categories: tuple[Candidate, ...]
    cluster_category: dict[int, int]
    labels: tuple[ClusterLabel, ...]
    stats: dict[str, Any]


def merge_by_embedding(candidates: Sequence[Candidate], k: int | None) -> list[Candidate]:
    """Near-duplicate categories merged (agglomerative, cosine), at most ``k`` kept; each group
    keeps the candidate nearest its centre."""
    from sklearn.cluster import AgglomerativeClustering

    if len(candidates) <= 1:
        return list(candidates)
    X = np.vstack([c.vector for c in candidates])
    params: dict[str, Any] = {"metric": "cosine", "linkage": "average"}
    if k is not None and len(candidates) > k:
        model = AgglomerativeClustering(n_clusters=k, **params)
    else:
        model = AgglomerativeClustering(
            n_clusters=None, distance_threshold=MERGE_DISTANCE, **params
        )
    groups = model.fit_predict(X)
    kept = []
    for g in sorted(set(groups), key=lambda g: -int((groups == g).sum())):
        members = np.flatnonzero(groups == g)
        centre = X[members].mean(axis=0)
        kept.append(candidates[int(members[np.argmax(X[members] @ centre)])])
    return kept[: k or len(kept)]


def find_categories(
    texts: Sequence[str],
    vectors: np.ndarray,
    embedder: Embedder,
    config: ClassifyConfig,
    asker: JSONAsker | None,
    parts: dict[str, int],
    stats: dict[str, Any],
) -> list[Candidate]:
    if config.categories:
        groups = [(name, f"The text is about {name}.") for name in config.categories]
        return embed_candidates(groups, embedder)
    if asker is not None and parts["propose_calls"]:
        from llm.goal import GoalConfig

        proposal_config = GoalConfig(
            goal=config.goal,
            random_state=config.random_state,
            proposal_batch=config.proposal_batch,
        )
        groups = propose(asker, texts, vectors, proposal_config, parts["propose_calls"])
        stats["proposed"] = len(groups)
        candidates = embed_candidates(groups, embedder)
        if len(candidates) > config.max_categories and parts["merge_calls"]:
            merged = asker.ask(
                Question(
                    merge_messages(
                        config.goal,
                        [(c.name, c.description) for c in candidates],
                        config.max_categories,
                    ),
                    CATEGORIES_SCHEMA,
                    "merge",
                ),
                lambda data: parse_groups(data, "categories"),
            )
            if merged:
                stats["merged_by"] = "llm"
                candidates = embed_candidates(merged[: config.max_categories], embedder)
        if len(candidates) > config.max_categories:
            stats["merged_by"] = "embedding"
            candidates = merge_by_embedding(candidates, config.max_categories)
        if candidates:
            return candidates
        stats["fallback"] = "keywords"
    else:
        stats["fallback"] = "no_llm" if asker is None else "no_budget"
    k = config.n_clusters or max(2, min(DEFAULT_MAX_CATEGORIES, round(math.sqrt(len(texts) / 4))))
    return keyword_candidates(texts, vectors, k, config.random_state)


def label_then_classify(
    texts: Sequence[str],
    vectors: np.ndarray,
    embedder: Embedder,
    config: ClassifyConfig,
    asker: JSONAsker | None = None,
) -> ClassifyResult:
    """See the module docstring. ``vectors`` are ``embedder``'s vectors of ``texts``."""
    texts = list(texts)
    n = len(texts)
    parts = split_budget(config, n)
    stats: dict[str, Any] = {"llm_classified": 0, "embedding_classified": 0, "other": 0}
    categories = find_categories(texts, vectors, embedder, config, asker, parts, stats)
    Z = similarity_z(vectors, np.vstack([c.vector for c in categories]))
    nearest = np.argmax(Z, axis=1)
    top = np.sort(Z, axis=1)
    margin = top[:, -1] - top[:, -2] if Z.shape[1] > 1 else np.full(n, 10.0)
    raw = nearest.astype(np.int64)
    confidence = 1.0 - np.exp(-np.maximum(margin, 0.0))
    by_llm = np.zeros(n, dtype=bool)
    if asker is not None and parts["classify_calls"]:
        order = np.argsort(margin, kind="stable")  # least certain first
        size = config.classify_batch
        n_batches = min(parts["classify_calls"], math.ceil(n / size))
        batches = [order[k * size : (k + 1) * size] for k in range(n_batches)]
        pairs = [(c.name, c.description) for c in categories]
        questions = [
            Question(
                classify_messages(config.goal, pairs, [texts[i] for i in b]),
                ASSIGNMENTS_SCHEMA,
                "classify",
            )
            for b in batches
        ]
        parsers = [
            partial(parse_assignments, n_texts=len(b), n_categories=len(categories))
            for b in batches
        ]
        for batch, answer in zip(batches, asker.ask_many(questions, parsers), strict=True):
            for k, category in (answer or {}).items():
                i = int(batch[k])
                if category < 0 and not config.allow_other:
                    continue
                raw[i] = NOISE if category < 0 else category
                by_llm[i] = True
                confidence[i] = 1.0
    stats["llm_classified"] = int(by_llm.sum())
    stats["embedding_classified"] = int(n - by_llm.sum())
    stats["other"] = int((raw == NOISE).sum())
    stats["categories"] = len(categories)
    labels = order_by_size(raw)
    mapping: dict[int, int] = {}
    for j in range(len(categories)):
        hit = np.flatnonzero(raw == j)
        if len(hit):
            mapping[int(labels[hit[0]])] = j
    cluster_labels = tuple(
        ClusterLabel(
            cluster_id=cid,
            name=categories[j].name,
            description=categories[j].description,
            inclusion_criterion=categories[j].description,
            status="ok" if categories[j].source == "llm" else "keywords",
            labeler="classify-llm" if categories[j].source == "llm" else "keywords",
        )
        for cid, j in sorted(mapping.items())
    )
    confidence = np.where(labels == NOISE, 0.0, confidence)
    log.info(
        "label-then-classify: %d categories, %d texts by the LLM, %d by embedding",
        len(categories),
        stats["llm_classified"],
        stats["embedding_classified"],
    )
    return ClassifyResult(
        Assignment(labels, confidence), tuple(categories), mapping, cluster_labels, stats
    )
