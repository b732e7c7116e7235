"""Label-then-classify ("Text Clustering as Classification with LLMs", Huang & He 2024),
within a call budget.

1. Categories: the user's own, or the LLM proposes labels over a few batches of diverse texts
   (each batch sees the names found so far), and one more call merges them into at most K.
   Without an LLM: keyword categories of a k-means clustering.
2. Every text goes to its nearest category by embedding (the description embedded).
3. The LLM classifies many texts per call, the least certain texts first, while the budget
   lasts; its answers replace the embedding's. Category 0 in a reply ("none fits") makes the
   text an outlier.
4. The guard (issue 18; the mechanism is ``llm.guard``, shared with keyphrase expansion): the
   first texts the LLM classifies are ``CALIBRATION_PAIRS`` pairs of near-duplicates (and,
   with ``anchors``, texts the embedding is surest of, nearest a category the LLM named: none
   by default, ``llm.guard.ANCHOR_TEXTS`` says why), mixed. How often it puts both texts of a
   pair in one category estimates its accuracy from its consistency, how often it gives an
   anchor the embedding's category estimates it from below; ``q`` is the lower of the two. With too few
   answers per category to tell a good model from a bad one (``too_few_answers``), no text is
   sent to be classified: the budget buys categories only. Under ``CLUSTERS_TRUST_ACCURACY``,
   where the LLM and the embedding's own clusters (the categories' prototypes moved onto their
   texts without the LLM) disagree, the LLM's answer is kept only where ``q`` beats the
   embedding's estimated accuracy at that text's margin; where the clusters are large, ``q``
   is at most the LLM's agreement with them on the surest of the texts it answered, where
   they are small, how well its answers' own prototypes predict them against how well the
   clusters' predict theirs (``guard_by_clusters``). The texts the LLM did not classify then
   go to prototypes moved onto the members of each category (``refine_prototypes``), so they
   follow the LLM's answers.
5. When the pairs' estimate is under ``TRUST_ACCURACY`` and the LLM's own answers fit the
   offline categories (keywords of a k-means clustering, nearest by embedding) better than its
   categories, the run is the offline one: the LLM's influence is dropped (``offline_instead``).
   The anchors' estimate is not used here: it counts the embedding's own mistakes on anchors
   against the LLM and varies over 15 texts, and alone it dropped a judge right 3 times in 4
   on Banking77 (400 texts, budgets 10-30) with its gain of +0.02 to +0.04 NMI.
Measured with simulated judges of known accuracy (``bench.llm_value``,
``bench/results/llm_value.md``): without steps 4-5, a judge right half the time made classify
end well below its no-LLM run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from clustering.cluster import order_by_size
from clustering.cover import Candidate, similarity_z
from clustering.types import NOISE, Assignment, ClusterLabel, Embedder
from llm.asker import JSONAsker, Question
from llm.classify_guard import guard_by_clusters, refine_prototypes
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
from llm.guard import (
    ANCHOR_TEXTS,
    TRUST_ACCURACY,
    anchor_accuracy,
    anchor_texts,
    calibration_pairs,
    estimate_accuracy,
    lower_accuracy,
    margins,
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
CALIBRATION_PAIRS = 15
"""Near-duplicate pairs classified first: whether the LLM puts both texts of a pair in one
category estimates its accuracy (the guard, step 4; ``llm.guard``)."""


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
    guard: bool = True
    """Step 4 of the module docstring; off only to measure what it is worth."""
    anchors: int = ANCHOR_TEXTS
    """Anchor texts the guard asks about (step 4); 0 only to measure what they are worth."""
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
            "guard": self.guard,
            "anchors": self.anchors,
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
    classify = max(0, total - propose - merge)
    if too_few_answers(config, n_texts, classify):
        classify = 0
    return {"propose_calls": propose, "merge_calls": merge, "classify_calls": classify}


MIN_ANSWERS_PER_CATEGORY = 2
"""Fewer classification answers than this per category and, with the guard on, the budget
buys categories only: no text is sent to be classified (``too_few_answers``)."""


def too_few_answers(config: ClassifyConfig, n_texts: int, classify_calls: int) -> bool:
    """Whether ``classify_calls`` would classify fewer than ``MIN_ANSWERS_PER_CATEGORY`` texts
    per category (the user's categories, else at most K). Measured on 400 Banking77 texts (77
    categories, budget 10: 6 calls, 90 answers of which 30 go to the guard's calibration
    pairs): a judge always right gained +0.009 NMI, one right 9 times in 10 -0.007 to +0.012,
    one right half the time lost up to 0.016; the answers themselves do the harm (-0.014 when
    they do not move the prototypes), and so few cannot tell those judges apart (the pairs read
    the half-right one 0.89). Without the answers the same categories, refined, end within
    0.006 of the no-LLM run (``bench.llm_value_seeds``, issue 18)."""
    if not config.guard or not classify_calls:
        return False
    answers = min(n_texts, classify_calls * config.classify_batch)
    n_categories = len(config.categories) or config.max_categories
    return answers < MIN_ANSWERS_PER_CATEGORY * n_categories


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
        return embed_candidates(groups, embedder, source="user")  # the user's own: never replaced
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
            return fill_categories(candidates, texts, vectors, config, stats)
        stats["fallback"] = "keywords"
    else:
        stats["fallback"] = "no_llm" if asker is None else "no_budget"
    return offline_categories(texts, vectors, config)


def offline_categories(
    texts: Sequence[str], vectors: np.ndarray, config: ClassifyConfig
) -> list[Candidate]:
    """The categories without an LLM: keywords of a k-means clustering."""
    k = config.n_clusters or max(2, min(DEFAULT_MAX_CATEGORIES, round(math.sqrt(len(texts) / 4))))
    return keyword_candidates(texts, vectors, k, config.random_state)


def _nearest(vectors: np.ndarray, categories: Sequence[Candidate]) -> np.ndarray:
    Z = similarity_z(vectors, np.vstack([c.vector for c in categories]))
    return np.argmax(Z, axis=1).astype(np.int64)


def offline_instead(
    given: dict[int, int],
    nearest: np.ndarray,
    theirs: np.ndarray,
    llm_accuracy: float,
) -> bool:
    """Whether the run is to keep the offline categories because the LLM is not to be trusted
    with it (step 5 of the module docstring): its estimated accuracy is under
    ``TRUST_ACCURACY`` and its answers ``given`` agree better with the offline categories
    (``theirs``, nearest by embedding) than with the nearest of its own (``nearest``)."""
    from sklearn.metrics import normalized_mutual_info_score as nmi

    if llm_accuracy >= TRUST_ACCURACY or not given:
        return False
    ids = np.fromiter(given, dtype=np.int64, count=len(given))
    answers = np.fromiter(given.values(), dtype=np.int64, count=len(ids))
    return bool(nmi(answers, theirs[ids]) > nmi(answers, nearest[ids]))


def fill_categories(
    candidates: list[Candidate],
    texts: Sequence[str],
    vectors: np.ndarray,
    config: ClassifyConfig,
    stats: dict[str, Any],
) -> list[Candidate]:
    """With K given and fewer proposed categories, keyword categories of a k-means clustering
    into K, those least like any proposed one first, up to K (a budget too small to propose
    every group must not leave whole groups without a category: issue 18)."""
    k = config.n_clusters
    if not k or len(candidates) >= k:
        return candidates
    extra = keyword_candidates(texts, vectors, k, config.random_state)
    taken = np.vstack([c.vector for c in candidates])
    extra.sort(key=lambda c: float(np.max(taken @ c.vector)))
    added = extra[: k - len(candidates)]
    stats["filled_by_keywords"] = len(added)
    return [*candidates, *added]


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
    nearest, margin = margins(Z)
    raw = nearest.copy()
    confidence = 1.0 - np.exp(-np.maximum(margin, 0.0))
    by_llm = np.zeros(n, dtype=bool)
    budget_left = split_budget(replace(config, guard=False), n)["classify_calls"]
    if asker is not None and not parts["classify_calls"] and budget_left:
        # Too few answers to trust or to matter: the categories' prototypes move onto their
        # texts without them (``too_few_answers``).
        stats["classify_skipped"] = "too few answers per category"
        raw = np.argmax(refine_prototypes(Z, vectors, categories, {}), axis=1).astype(np.int64)
    if asker is not None and parts["classify_calls"]:
        order = np.argsort(margin, kind="stable")  # least certain first
        twins: list[tuple[int, int]] = []
        anchors = np.zeros(0, dtype=np.int64)
        if config.guard and Z.shape[1] > 1 and n >= 4 * CALIBRATION_PAIRS:
            # Near-duplicate pairs and anchors go first, mixed, so even a small budget can be
            # judged (step 4).
            twins = calibration_pairs(vectors, CALIBRATION_PAIRS, config.random_state, texts)
            paired = [i for pair in twins for i in pair]
            named = [j for j, c in enumerate(categories) if c.source in ("llm", "user")]
            anchors = anchor_texts(nearest, margin, config.anchors, named, exclude=paired)
            first = np.random.default_rng(config.random_state).permutation(
                np.asarray(paired + anchors.tolist(), dtype=np.int64)
            )
            order = np.concatenate([first, order[~np.isin(order, first)]])
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
        answers: dict[int, int] = {}
        for batch, answer in zip(batches, asker.ask_many(questions, parsers), strict=True):
            for k, category in (answer or {}).items():
                if category < 0 and not config.allow_other:
                    continue
                answers[int(batch[k])] = category
        from_pairs = estimate_accuracy(answers, twins) if twins else None
        from_anchors = anchor_accuracy(answers, anchors, nearest) if len(anchors) else None
        accuracy = lower_accuracy(from_pairs, from_anchors)
        if accuracy is not None:
            stats["guard_llm_accuracy"] = round(accuracy, 4)
            for key, value in (("pair", from_pairs), ("anchor", from_anchors)):
                if value is not None:
                    stats[f"guard_{key}_accuracy"] = round(value, 4)
            # The anchors decide which answers stand, not alone the fallback (step 5).
            whole = from_pairs if from_pairs is not None else accuracy
            offline = (
                offline_categories(texts, vectors, config)
                if whole < TRUST_ACCURACY and answers
                else None
            )
            theirs = _nearest(vectors, offline) if offline else nearest
            if offline and offline_instead(answers, nearest, theirs, whole):
                stats["guard"] = "offline"
                log.info(
                    "label-then-classify: the LLM's estimated accuracy is %.2f and its answers "
                    "fit the offline categories better: the run keeps those",
                    whole,
                )
                categories, raw, answers = offline, theirs, {}
            else:
                answers = guard_by_clusters(Z, vectors, categories, answers, accuracy, stats)
                refined = refine_prototypes(Z, vectors, categories, answers)
                raw = np.argmax(refined, axis=1).astype(np.int64)
        for i, category in answers.items():
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
            status="ok" if categories[j].source in ("llm", "user") else "keywords",
            labeler={"llm": "classify-llm", "user": "user"}.get(categories[j].source, "keywords"),
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
