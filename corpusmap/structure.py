"""What a run adds on top of its clusters: per-cluster keyword rules (``clustering.rules``) and
a two-level hierarchy of labeled parents (``clustering.hierarchy``; with an LLM, the number of
parents by pairwise "same group?" checks, ``llm.granularity``). The workflow adds them before a
run is marked completed; ``add_hierarchy`` and ``add_rules`` add them to any stored run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from clustering.hierarchy import (
    Hierarchy,
    build_hierarchy,
    hierarchy_from_partition,
    leaf_partitions,
    parent_candidates,
    summarize_parents,
)
from clustering.labels import KeywordLabeler
from clustering.pipeline import PipelineConfig
from clustering.rules import explain_clusters
from clustering.types import NOISE, ClusterSummary, Embedder, Labeler
from corpusmap import service
from corpusmap.llm_session import make_asker, merged_usage
from corpusmap.modes import ModeOptions
from corpusmap.plan import MAX_PAIR_CALLS
from corpusmap.views import rule_table
from storage import Store

log = logging.getLogger(__name__)

PARENT_ID_BASE = 1000
"""Stored parents (level 1) are clusters 1000, 1001, ... (ids are unique per run across levels)."""


def add_structure(
    store: Store,
    run_id: int,
    options: ModeOptions,
    embedder: Embedder | None,
    labeler: Labeler | None,
    asker: Any | None,
    config: PipelineConfig,
    *,
    vectors: np.ndarray | None = None,
    llm_settings: Any | None = None,
) -> None:
    """Add the hierarchy (when asked) and the keyword rules to a stored run.

    Without ``vectors``, the run's are read back from the cache (``service.run_vectors``;
    ``llm_settings`` expands texts a keyphrase run is missing there)."""
    if not (options.hierarchy or options.rules):
        return
    assignments = store.load_assignments(run_id)
    texts = assignments["text"].tolist()
    leaf_labels = assignments["cluster_id"].to_numpy(np.int64)
    metrics = dict(store.get_run(run_id).metrics)
    if options.rules:
        start = time.perf_counter()
        rules = explain_clusters(texts, leaf_labels)
        metrics["rules"] = {int(c): r.to_dict() for c, r in rules.items()}
        log.info("keyword rules for %d clusters in %.1f s", len(rules), time.perf_counter() - start)
    if options.hierarchy:
        if vectors is None:
            vectors = service.run_vectors(
                store, store.get_run(run_id), texts, embedder, llm_settings=llm_settings
            )
        hierarchy = choose_hierarchy(vectors, leaf_labels, texts, options, asker, config)
        base = save_hierarchy(
            store, run_id, hierarchy, texts, vectors, leaf_labels, labeler, config
        )
        stored = hierarchy.to_dict()
        stored["parent_of"] = {c: base + p for c, p in stored["parent_of"].items()}
        metrics["hierarchy"] = {**stored, "parent_id_base": base}
        if options.rules:
            parent_rules = explain_clusters(texts, hierarchy.parent_labels(leaf_labels))
            metrics["parent_rules"] = {base + int(c): r.to_dict() for c, r in parent_rules.items()}
    store.save_metrics(run_id, _storable(metrics))


def choose_hierarchy(
    vectors: np.ndarray,
    leaf_labels: np.ndarray,
    texts: Sequence[str],
    options: ModeOptions,
    asker: Any | None,
    config: PipelineConfig,
) -> Hierarchy:
    """Parents by the offline criterion; with an LLM, their count by pairwise checks."""
    offline = build_hierarchy(
        vectors,
        leaf_labels,
        n_parents=options.n_parents,
        method=options.k_method,
        random_state=config.random_state,
    )
    n_leaves = len({int(c) for c in leaf_labels if c != NOISE})
    if asker is None or options.n_parents is not None or n_leaves < 4:
        return offline
    from llm.granularity import choose_k_by_pairs

    candidates = [min(k, n_leaves) for k in parent_candidates(n_leaves)]
    _, partitions = leaf_partitions(vectors, leaf_labels, candidates)
    left = asker.budget.left
    calls = min(MAX_PAIR_CALLS, left if left is not None else MAX_PAIR_CALLS)
    choice = choose_k_by_pairs(
        texts,
        leaf_labels,
        partitions,
        asker,
        config.goal,
        max_calls=calls,
        fallback=offline.choice,
        random_state=config.random_state,
    )
    if choice.method != "llm_pairs":
        return offline
    return hierarchy_from_partition(partitions[choice.k], leaf_labels, choice)


def save_hierarchy(
    store: Store,
    run_id: int,
    hierarchy: Hierarchy,
    texts: Sequence[str],
    vectors: np.ndarray,
    leaf_labels: np.ndarray,
    labeler: Labeler | None,
    config: PipelineConfig,
) -> int:
    """Parents as level-1 clusters (labeled), leaves re-saved with their ``parent_id``;
    returns the id base of the stored parents."""
    stored = store.load_clusters(run_id)
    leaf_summaries = [
        ClusterSummary(
            cluster_id=c.cluster_id,
            size=c.size,
            share=c.share,
            keywords=tuple(c.keywords),
            representatives=tuple(c.representatives),
            goal=config.goal,
            neighbours=tuple(c.extra.get("neighbours", ())),
        )
        for c in stored
    ]
    leaf_labels_kept = [c.label() for c in stored]
    faithfulness = {c.cluster_id: c.faithfulness for c in stored if c.faithfulness is not None}
    parents, leaves = summarize_parents(
        list(texts), vectors, leaf_labels, hierarchy, leaf_summaries, goal=config.goal
    )
    parent_labels = list((labeler or KeywordLabeler()).label(parents))
    # Cluster ids are unique per run across levels (the clusters table's index), so parents are
    # stored as base + 0..P-1, the base a power of ten above every leaf id.
    base = parent_id_base(leaf_labels)
    parents = tuple(replace(p, cluster_id=base + p.cluster_id) for p in parents)
    parent_labels = [replace(lab, cluster_id=base + lab.cluster_id) for lab in parent_labels]
    leaves = tuple(
        replace(s, parent_id=None if s.parent_id is None else base + s.parent_id) for s in leaves
    )
    store.save_clusters(run_id, parents, parent_labels, level=1)
    store.save_clusters(run_id, leaves, leaf_labels_kept, faithfulness=faithfulness)
    return base


def parent_id_base(leaf_labels: np.ndarray) -> int:
    """``PARENT_ID_BASE``, or the next power of ten above the largest leaf id."""
    top = int(np.max(leaf_labels, initial=0))
    base = PARENT_ID_BASE
    while base <= top:
        base *= 10
    return base


def add_hierarchy(
    store: Store,
    run_id: int,
    *,
    n_parents: int | None = None,
    k_method: str = "silhouette",
    labeler: Labeler | None = None,
    llm_settings: Any | None = None,
    llm_budget: int | None = MAX_PAIR_CALLS,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Add (or redo) the two-level hierarchy and keyword rules of any stored run; returns the
    hierarchy as stored in the run's metrics."""
    run = store.get_run(run_id)
    options = ModeOptions(
        hierarchy=True, n_parents=n_parents, k_method=k_method, llm_budget=llm_budget
    )
    options.validate()
    embedder = embedder or service.run_embedder(run)
    asker = make_asker(llm_settings, store, llm_budget)
    if asker is not None:
        asker.run_id = run_id
    config = PipelineConfig(goal=run.goal or None, random_state=run.seed)
    try:
        add_structure(
            store, run_id, options, embedder, labeler, asker, config, llm_settings=llm_settings
        )
        used = asker.usage_dict() if asker is not None else {}
    finally:
        if asker is not None:
            asker.close()
    if used.get("calls") or used.get("cache_hits"):
        store.save_llm_usage(run_id, merged_usage(run.llm_usage or {}, used, "hierarchy"))
    return dict(store.get_run(run_id).hierarchy)


def add_rules(store: Store, run_id: int) -> pd.DataFrame:
    """Add (or redo) the keyword rules of any stored run; returns ``rule_table``."""
    add_structure(store, run_id, ModeOptions(), None, None, None, PipelineConfig())
    return rule_table(store, run_id)


def _storable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if v is not None}
