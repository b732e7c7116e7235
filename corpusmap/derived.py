"""What follows from a run's clusters, computed again after an edit (issue 15).

``commit`` takes a run as it is stored (``RunState``) and the new cluster of every text, and
stores, as one edit with its before and after states (``Store.record_edit``), everything a
fresh run would compute on that assignment:

- per cluster: size, share, keywords (c-TF-IDF over all clusters), representatives, nearest
  clusters; the membership probability of the changed clusters' texts (cosine to their new
  centroid in embedding space, in (0, 1]; outliers 0);
- names: a keyword-named cluster is named again from its new keywords; a name the user or an
  LLM wrote is kept and marked ``stale`` when its members changed (one relabel refreshes it);
  new clusters get keyword names (stale in a run named by an LLM);
- the keyword rules (with precision and recall) of changed clusters and parents, the
  hierarchy's parents (new leaves join the parent they came from; parents are summarised again
  and an emptied parent is retired), faithfulness, NMI/ARI/ACC against the run's gold column,
  silhouette (in embedding space after an edit: the run's clustering space is not stored),
  constraint results and novelty (``stale`` when the run's seeds cannot be read back).

A keyword rule depends only on its own cluster's members, so rules are computed again for the
changed clusters only; keywords and faithfulness depend on every cluster and are computed for
all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clustering.constraints import Constraints, constraint_report
from clustering.faithfulness import explanation_faithfulness
from clustering.hierarchy import Hierarchy, KChoice, summarize_parents
from clustering.labels import KeywordLabeler
from clustering.metrics import external_metrics, silhouette, summary_metrics
from clustering.novelty import find_novel_clusters
from clustering.rules import explain_clusters
from clustering.summarize import N_REPRESENTATIVES, summarize_clusters
from clustering.types import NOISE, Assignment, ClusterLabel, ClusterSummary
from corpusmap import service
from corpusmap.errors import CorpusmapError
from corpusmap.request import stored_request
from corpusmap.strategies import build_constraints
from storage import ClusterInfo, EditInfo, RunInfo, Store

log = logging.getLogger(__name__)

MIN_PROBABILITY = 1e-3
"""Floor of a recomputed membership: a member never reads as 0, which means outlier."""
KEYWORDS = "keywords"
LEGACY_COUNTS = ("seed_labels", "must_link", "cannot_link")
"""Stored as counts by runs made before requests: their seeds and pairs cannot be rebuilt."""


# --- the run as an edit sees it -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunState:
    """A run as an edit sees it: texts and assignment in input order, and its clusters."""

    run: RunInfo
    document_ids: np.ndarray
    positions: np.ndarray
    texts: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    leaves: dict[int, ClusterInfo]
    parents: dict[int, ClusterInfo]

    def size(self, cluster_id: int) -> int:
        return int((self.labels == cluster_id).sum())

    def title(self, cluster_id: int) -> str:
        if cluster_id == NOISE:
            return "outliers"
        name = self.leaves[cluster_id].name if cluster_id in self.leaves else ""
        return f"#{cluster_id} '{name}'" if name else f"#{cluster_id}"


def load_state(store: Store, run_id: int) -> RunState:
    run = store.get_run(run_id)
    rows = store.load_assignments(run_id)
    clusters = store.load_clusters(run_id, level=None)
    return RunState(
        run=run,
        document_ids=rows["document_id"].to_numpy(np.int64),
        positions=rows["position"].to_numpy(np.int64),
        texts=rows["text"].tolist(),
        labels=rows["cluster_id"].to_numpy(np.int64),
        probabilities=rows["probability"].to_numpy(np.float64),
        leaves={c.cluster_id: c for c in clusters if c.level == 0},
        parents={c.cluster_id: c for c in clusters if c.level == 1},
    )


def new_ids(state: RunState, n: int) -> tuple[list[int], int]:
    """``n`` fresh cluster ids and the counter after them (ids of parents are skipped)."""
    used = set(state.leaves) | set(state.parents) | {int(c) for c in state.labels}
    start = max(
        state.run.next_cluster_id, max((c for c in used if c not in state.parents), default=-1) + 1
    )
    ids: list[int] = []
    candidate = start
    while len(ids) < n:
        if candidate not in used:
            ids.append(candidate)
        candidate += 1
    return ids, candidate


# --- recomputing what follows from the clusters ---------------------------------------------


def run_vectors(store: Store, state: RunState) -> np.ndarray:
    vectors = service.run_vectors(store, state.run, state.texts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def membership(vectors: np.ndarray, labels: np.ndarray, cluster_id: int) -> np.ndarray:
    """Cosine of each member of a cluster to its centroid (unit vectors), in (0, 1]."""
    members = vectors[labels == cluster_id]
    centre = members.mean(axis=0)
    norm = np.linalg.norm(centre)
    centre = centre / norm if norm > 0 else centre
    return np.clip(members @ centre, MIN_PROBABILITY, 1.0).astype(np.float64)


def _label_of(c: ClusterInfo) -> dict[str, Any]:
    return {
        "name": c.name,
        "description": c.description,
        "inclusion_criterion": c.inclusion_criterion,
        "evidence": list(c.evidence),
        "label_status": c.label_status,
        "label_error": c.label_error,
        "labeler": c.labeler,
    }


def _keyword_label(label: ClusterLabel) -> dict[str, Any]:
    return {
        "name": label.name,
        "description": label.description,
        "inclusion_criterion": label.inclusion_criterion,
        "evidence": list(label.evidence),
        "label_status": label.status,
        "label_error": label.error,
        "labeler": label.labeler,
    }


def _named(
    summaries: Sequence[ClusterSummary],
    old: dict[int, ClusterInfo],
    changed: set[int],
    keyword_run: bool,
) -> dict[int, dict[str, Any]]:
    """Label fields, ``edited`` and ``stale`` of each summarised cluster after an edit."""
    fresh = {lab.cluster_id: lab for lab in KeywordLabeler().label(summaries)}
    named = {}
    for s in summaries:
        before = old.get(s.cluster_id)
        if before is None:  # a new cluster: keyword-named, stale where an LLM names the run
            named[s.cluster_id] = {
                **_keyword_label(fresh[s.cluster_id]),
                "edited": False,
                "stale": not keyword_run,
            }
        elif before.labeler == KEYWORDS and not before.edited:
            # Derived from the keywords, which every edit can shift: derived again.
            stale = before.stale or (s.cluster_id in changed and not keyword_run)
            named[s.cluster_id] = {
                **_keyword_label(fresh[s.cluster_id]),
                "edited": False,
                "stale": stale,
            }
        else:
            stale = before.stale or s.cluster_id in changed
            named[s.cluster_id] = {**_label_of(before), "edited": before.edited, "stale": stale}
    return named


def _cluster_dict(
    run_id: int,
    s: ClusterSummary,
    label: dict[str, Any],
    *,
    level: int,
    faithfulness: float | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "cluster_id": int(s.cluster_id),
        "size": int(s.size),
        "share": float(s.share),
        "keywords": list(s.keywords),
        "representatives": list(s.representatives),
        **label,
        "faithfulness": faithfulness,
        "parent_id": None if s.parent_id is None else int(s.parent_id),
        "level": level,
        "extra": {**extra, "neighbours": [int(n) for n in s.neighbours]},
    }


def commit(
    store: Store,
    state: RunState,
    labels: np.ndarray,
    *,
    kind: str,
    payload: dict[str, Any],
    sentence: Callable[[dict[int, dict[str, Any]]], str],
    overrides: dict[int, dict[str, Any]] | None = None,
    parent_of_new: dict[int, int | None] | None = None,
    next_cluster_id: int | None = None,
    vectors: np.ndarray | None = None,
) -> EditInfo:
    """Recompute everything derived from the clusters for ``labels`` and store it as one edit."""
    run = state.run
    vectors = run_vectors(store, state) if vectors is None else vectors
    moved = labels != state.labels
    changed = ({int(c) for c in state.labels[moved]} | {int(c) for c in labels[moved]}) - {NOISE}
    present = sorted({int(c) for c in labels if c != NOISE})

    probabilities = state.probabilities.copy()
    for c in changed & set(present):
        probabilities[labels == c] = membership(vectors, labels, c)
    probabilities[labels == NOISE] = 0.0
    touched = moved | (probabilities != state.probabilities)

    n_reps = stored_request(run).pipeline.n_representatives or N_REPRESENTATIVES
    goal = run.goal or None
    # The run's own encoder, as the run named its clusters with it (and measures faithfulness).
    embedder = service.run_embedder(run)
    summaries = summarize_clusters(
        state.texts,
        vectors,
        Assignment(labels, probabilities),
        goal=goal,
        n_representatives=n_reps,
        embedder=embedder,
    )
    keyword_run = run.labeler == KEYWORDS
    named = _named(summaries, state.leaves, changed, keyword_run)
    for cluster_id, fields in (overrides or {}).items():
        named[cluster_id].update(fields)

    # The hierarchy: every leaf keeps its parent, new leaves take the one they came from.
    parent_rows: list[dict[str, Any]] = []
    hierarchy_info = dict(run.hierarchy)
    parent_rules = dict(run.parent_rules)
    if state.parents:
        parent_of = {
            c: int(info.parent_id) for c, info in state.leaves.items() if info.parent_id is not None
        }
        parent_of.update({c: int(p) for c, p in (parent_of_new or {}).items() if p is not None})
        parent_of = {c: p for c, p in parent_of.items() if c in present}
        hierarchy = Hierarchy(parent_of, KChoice(len(set(parent_of.values()))))
        parents, summaries = summarize_parents(
            state.texts, vectors, labels, hierarchy, summaries, goal=goal, n_representatives=n_reps
        )
        parent_labels = hierarchy.parent_labels(labels)
        old_parent_of = {
            c: int(i.parent_id) for c, i in state.leaves.items() if i.parent_id is not None
        }
        old_parent_labels = np.array([old_parent_of.get(int(c), NOISE) for c in state.labels])
        parents_changed = {
            int(p)
            for p in np.unique(np.concatenate([parent_labels[moved], old_parent_labels[moved]]))
        } - {NOISE}
        parents_named = _named(parents, state.parents, parents_changed, keyword_run)
        parent_rows = [
            _cluster_dict(
                run.id,
                p,
                parents_named[p.cluster_id],
                level=1,
                faithfulness=None,
                extra=state.parents[p.cluster_id].extra if p.cluster_id in state.parents else {},
            )
            for p in parents
        ]
        if hierarchy_info:
            hierarchy_info["n_parents"] = len(parents)
        if parent_rules:
            parent_rules = {
                c: r for c, r in parent_rules.items() if c in {p.cluster_id for p in parents}
            }
            todo = [p for p in parents_changed if p in {q.cluster_id for q in parents}]
            if todo:
                masked = np.where(np.isin(parent_labels, todo), parent_labels, NOISE)
                for c, rule in explain_clusters(state.texts, masked).items():
                    parent_rules[int(c)] = rule.to_dict()

    cluster_labels = [
        ClusterLabel(
            cluster_id=s.cluster_id,
            name=named[s.cluster_id]["name"],
            description=named[s.cluster_id]["description"],
            inclusion_criterion=named[s.cluster_id]["inclusion_criterion"],
        )
        for s in summaries
    ]
    faith = explanation_faithfulness(vectors, labels, cluster_labels, embedder)
    leaf_rows = [
        _cluster_dict(
            run.id,
            s,
            named[s.cluster_id],
            level=0,
            faithfulness=faith.per_cluster.get(s.cluster_id),
            extra=state.leaves[s.cluster_id].extra if s.cluster_id in state.leaves else {},
        )
        for s in summaries
    ]

    rules = {c: r for c, r in run.rules.items() if c in present}
    if run.rules:
        todo = sorted(changed & set(present))
        if todo:
            masked = np.where(np.isin(labels, todo), labels, NOISE)
            for c, rule in explain_clusters(state.texts, masked).items():
                rules[int(c)] = rule.to_dict()

    metrics = _metrics(store, state, labels, vectors, faith.overall)
    constraints, novelty = _constraints(store, state, labels)

    before = store.read_state(run.id, state.document_ids[touched].tolist())
    after = {
        "assignments": {
            "document_id": state.document_ids[touched].astype(int).tolist(),
            "cluster_id": labels[touched].astype(int).tolist(),
            "probability": probabilities[touched].astype(float).tolist(),
        },
        "clusters": parent_rows + leaf_rows,
        "rules": {str(c): r for c, r in rules.items()},
        "parent_rules": {str(c): r for c, r in parent_rules.items()},
        "metrics": metrics,
        "hierarchy": hierarchy_info,
        "constraints": constraints,
        "novelty": novelty,
    }
    by_id = {row["cluster_id"]: row for row in leaf_rows}
    info = store.record_edit(
        run.id,
        kind=kind,
        payload=payload,
        sentence=sentence(by_id),
        before=before,
        after=after,
        next_cluster_id=next_cluster_id,
    )
    log.info("run #%d: %s", run.id, info.sentence)
    return info


def _metrics(
    store: Store, state: RunState, labels: np.ndarray, vectors: np.ndarray, faithfulness: float
) -> dict[str, Any]:
    """The run's figures for the new assignment: counts, silhouette (in embedding space: the
    run's own clustering space is not stored), gold-label agreement, faithfulness."""
    run = state.run
    metrics = dict(run.metrics)
    metrics["faithfulness"] = faithfulness
    if (labels == state.labels).all():
        return metrics  # a rename: the clusters' members, and so their figures, are the same
    # How the run chose its number of clusters describes the run as computed, and the coarser
    # grain it offered groups clusters that edits may have changed: said so, and withdrawn.
    metrics.pop("coarse", None)
    if metrics.get("granularity"):
        metrics["granularity_edited"] = True
    metrics.update(summary_metrics(labels))
    metrics.update(silhouette(vectors, labels))
    metrics["silhouette_space"] = "embeddings"
    if run.label_column:
        corpus = store.load_corpus(run.corpus_id)
        if run.label_column in corpus.frame.columns:
            column = corpus.frame[run.label_column].iloc[state.positions]
            truth = ["" if v is None or v != v else str(v) for v in column]
            metrics.update(external_metrics(truth, labels))
    metrics["faithfulness"] = faithfulness
    return {k: v for k, v in metrics.items() if v is not None}


def _constraints(
    store: Store, state: RunState, labels: np.ndarray
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Constraint results and novelty for the new assignment, checked again from the run's
    stored seeds; marked stale where the seeds are not stored (typed seeds and pairs of runs
    made before requests were stored in full)."""
    run = state.run
    if not run.constraints and not run.novelty:
        return {}, {}
    constraints = _stored_constraints(store, state)
    if constraints is None:
        novelty = dict(run.novelty)
        if novelty:
            present = {int(c) for c in labels}
            novelty = {
                "known": {c: v for c, v in novelty.get("known", {}).items() if c in present},
                "novel": [c for c in novelty.get("novel", []) if c in present],
                "purity": {c: v for c, v in novelty.get("purity", {}).items() if c in present},
            }
        return ({**run.constraints, "stale": True} if run.constraints else {}), novelty
    report = {
        **constraints.to_dict(),
        **constraint_report(labels, constraints).to_dict(),
        "stale": False,
    }
    novelty = (
        find_novel_clusters(labels, constraints.seeds, constraints.classes).to_dict()
        if constraints.n_seeds
        else {}
    )
    return report, novelty


def _stored_constraints(store: Store, state: RunState) -> Constraints | None:
    """The seeds and pairs of the run's stored request, as the run itself built them
    (``strategies.build_constraints``); ``None`` when they cannot be rebuilt: a run stored
    before requests kept only their counts, or the seed column is gone."""
    legacy = (state.run.config or {}).get("mode_options") or {}
    if any(isinstance(legacy.get(k), int) and legacy[k] > 0 for k in LEGACY_COUNTS):
        return None  # only their count was stored
    corpus = store.load_corpus(state.run.corpus_id)
    try:
        return build_constraints(corpus, state.positions, stored_request(state.run).options)
    except CorpusmapError:
        return None
