"""What a run shows a reader, as tables and plain sentences: the LLM plan before a run, what a
mode found after it, the hierarchy and rule tables, a balanced sample. The CLI prints these
sentences and the app shows the same ones; nothing here computes or stores a result.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from clustering.sampling import balanced_sample
from clustering.types import NOISE
from corpusmap import service
from storage import Store


def keyphrase_text(usage: dict[str, Any]) -> str:
    """What keyphrase expansion did in a run, in one sentence (``""`` when it was off), from
    the run's ``llm_usage``."""
    expansion = (usage or {}).get("keyphrases")
    if not expansion:
        return ""
    if not expansion.get("texts"):
        return "keyphrases: every expanded vector came from the embedding cache (no LLM call)"
    return (
        f"keyphrases: {expansion.get('expanded', 0):,} texts expanded, "
        f"{expansion.get('kept', 0):,} kept as they were (no usable keyphrases), "
        f"{expansion.get('calls', 0)} calls, {expansion.get('cache_hits', 0)} from the cache"
    )


def balanced_sample_frame(
    store: Store, run_id: int, n: int, *, by_parent: bool = True, random_state: int = 42
) -> pd.DataFrame:
    """``n`` rows of the labeled corpus, even across clusters (and across children within
    parents when the run has a hierarchy); outliers left out."""
    frame = service.labeled_frame(store, run_id)
    parents = {
        c.cluster_id: c.parent_id for c in store.load_clusters(run_id) if c.parent_id is not None
    }
    picked = balanced_sample(
        frame["cluster_id"].to_numpy(np.int64),
        n,
        parents=parents if by_parent and parents else None,
        random_state=random_state,
    )
    sample = frame.iloc[picked].copy()
    if parents:
        sample["parent_id"] = [parents.get(int(c), NOISE) for c in sample["cluster_id"]]
    return sample


def hierarchy_table(store: Store, run_id: int) -> pd.DataFrame:
    """One row per parent (level 1) and its children: ids, names, sizes."""
    parents = store.load_clusters(run_id, level=1)
    leaves = store.load_clusters(run_id)
    rows = []
    for p in parents:
        children = [c for c in leaves if c.parent_id == p.cluster_id]
        rows.append(
            {
                "parent_id": p.cluster_id,
                "parent_name": p.name,
                "size": p.size,
                "children": [c.cluster_id for c in children],
                "child_names": [c.name for c in children],
            }
        )
    return pd.DataFrame(
        rows, columns=["parent_id", "parent_name", "size", "children", "child_names"]
    )


def rule_table(store: Store, run_id: int) -> pd.DataFrame:
    """Per cluster: name, the LLM/keyword explanation, the keyword rule and its precision/recall."""
    rules = store.get_run(run_id).rules
    rows = []
    for c in store.load_clusters(run_id):
        rule = rules.get(c.cluster_id) or {}
        rows.append(
            {
                "cluster_id": c.cluster_id,
                "name": c.name,
                "explanation": c.inclusion_criterion or c.description,
                "rule": rule.get("rule", ""),
                "rule_precision": rule.get("rule_precision"),
                "rule_recall": rule.get("rule_recall"),
            }
        )
    return pd.DataFrame(
        rows, columns=["cluster_id", "name", "explanation", "rule", "rule_precision", "rule_recall"]
    )


def outcome_lines(info: Any) -> list[str]:
    """What a run found, one plain sentence each (the CLI prints them, the app shows them): how
    firm the automatic number of clusters is and which grain it picked, LLM use against the
    plan, fallbacks, constraints held, novel clusters, hierarchy, rules, labels kept."""
    metrics, usage = info.metrics, info.llm_usage or {}
    mode = info.mode or "cluster"
    lines = []
    if metrics.get("granularity"):
        edited = (
            "As computed, before the edits since: " if metrics.get("granularity_edited") else ""
        )
        lines.append(edited + metrics["granularity"])
    if (metrics.get("label_choice") or {}).get("sentence"):
        lines.append(metrics["label_choice"]["sentence"])
    if mode != "cluster" or usage.get("plan"):
        plan = usage.get("plan", {})
        lines.append(
            f"LLM used: {usage.get('calls', 0)} of {plan.get('calls', 0)} planned calls, "
            f"{usage.get('cache_hits', 0)} from the cache, "
            f"{usage.get('prompt_tokens', 0):,} + {usage.get('completion_tokens', 0):,} tokens, "
            f"{usage.get('unanswered', 0)} unanswered"
        )
    expansion = keyphrase_text(usage)
    if expansion:
        lines.append(expansion)
    stats = metrics.get("mode_stats") or {}
    if stats.get("fallback"):
        lines.append(f"{mode}: no usable LLM answer, fell back to {stats['fallback']}")
    report = info.constraints
    if report:
        lines.append(
            f"constraints held: must-link {report['must_link_held']}/{report['must_link_total']}, "
            f"cannot-link {report['cannot_link_held']}/{report['cannot_link_total']}, "
            f"seeds together {report['seeds_together']}/{report['seeds_total']}"
            + (
                " (before the last edits: they could not be checked again)"
                if report.get("stale")
                else ""
            )
        )
    novelty = info.novelty
    if novelty:
        lines.append(f"novel clusters (no seed): {', '.join(map(str, novelty['novel'])) or 'none'}")
    hierarchy = info.hierarchy
    if hierarchy:
        lines.append(
            f"hierarchy: {hierarchy['n_parents']} parents over {metrics.get('n_clusters')} "
            f"clusters (chosen by {hierarchy['choice'].get('method', '?')})"
        )
    rules = info.rules
    if rules:
        precise = sum(1 for r in rules.values() if (r.get("rule_precision") or 0) >= 0.8)
        lines.append(f"keyword rules: {len(rules)} clusters, {precise} with precision ≥ 0.8")
    return lines


def plan_text(plan: dict[str, Any]) -> str:
    """The LLM budget of a run in one sentence (shown before it runs)."""
    if not plan.get("calls"):
        return "LLM budget: no calls (embeddings only)"
    parts = ", ".join(
        f"{k.removesuffix('_calls')} {v}" for k, v in plan.items() if k.endswith("_calls")
    )
    return (
        f"LLM budget: up to {plan['calls']} calls ({parts}), about "
        f"{plan.get('prompt_tokens', 0):,} prompt + {plan.get('completion_tokens', 0):,} "
        "completion tokens"
    )
