"""Edits of a stored run: rename, merge, split, move texts, mark outliers, relabel; undo and redo.

Identity (issue 15): a cluster keeps its id through renames, moves and the edits of other
clusters. A split retires the split cluster and gives each part a new id; a merge keeps the
first id named and retires the others. New ids come from the run's counter
(``runs.next_cluster_id``), which only grows: an id is never reused within a run. The order
clusters are shown in (by size, by similarity) is the reader's business, not their ids'.

Derived data follows every edit. What an edit changes is recomputed from the stored texts and
their cached embeddings, as a fresh run would compute it on the new assignment:

- per cluster: size, share, keywords (c-TF-IDF over all clusters), representatives, nearest
  clusters; the membership probability of the changed clusters' texts (cosine to their new
  centroid in embedding space, in (0, 1]; outliers 0);
- names: a keyword-named cluster is named again from its new keywords; a name the user or an
  LLM wrote is kept and marked ``stale`` when its members changed (one relabel refreshes it);
  the parts of a split get keyword names (stale in a run named by an LLM);
- the keyword rules (with precision and recall) of changed clusters and parents, the
  hierarchy's parents (split parts join the split cluster's parent; parents are summarised
  again and an emptied parent is retired), faithfulness, NMI/ARI/ACC against the run's gold
  column, silhouette (in embedding space after an edit), constraint results and novelty (or
  ``stale`` when the run's seeds cannot be read back).

Every edit stores the state it replaced and the state it wrote (``Store.record_edit``), so
``undo`` and ``redo`` put back exactly what was there; the edit log reads as sentences.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clustering.cluster import KMeansClusterer
from clustering.constraints import (
    Constraints,
    constraint_report,
    remap_pairs,
    seeds_from_values,
)
from clustering.faithfulness import explanation_faithfulness
from clustering.hierarchy import Hierarchy, KChoice, summarize_parents
from clustering.labels import KeywordLabeler
from clustering.metrics import external_metrics, silhouette, summary_metrics
from clustering.novelty import find_novel_clusters
from clustering.rules import explain_clusters
from clustering.summarize import N_REPRESENTATIVES, summarize_clusters
from clustering.types import NOISE, Assignment, ClusterLabel, ClusterSummary, Labeler
from corpusmap import service
from corpusmap.errors import CorpusmapError
from storage import ClusterInfo, EditInfo, RunInfo, Store

log = logging.getLogger(__name__)

MIN_PROBABILITY = 1e-3
"""Floor of a recomputed membership: a member never reads as 0, which means outlier."""
KEYWORDS = "keywords"


class EditError(CorpusmapError):
    """An edit that cannot be made; the message says what to choose instead."""


# --- reading the run -------------------------------------------------------------------------


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


def _check_clusters(state: RunState, ids: Sequence[int]) -> None:
    missing = [c for c in ids if c == NOISE or c not in state.leaves]
    if missing:
        known = ", ".join(map(str, sorted(state.leaves))) or "none"
        raise EditError(
            f"run #{state.run.id} has no cluster {', '.join(map(str, missing))}; its clusters "
            f"are {known} (`corpusmap show {state.run.id}` lists them)"
        )


def _new_ids(state: RunState, n: int) -> tuple[list[int], int]:
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


# --- the edits -------------------------------------------------------------------------------


def rename_cluster(
    store: Store,
    run_id: int,
    cluster_id: int,
    *,
    name: str | None = None,
    description: str | None = None,
    inclusion_criterion: str | None = None,
) -> EditInfo:
    """The user's own name, description or inclusion criterion for a cluster."""
    state = load_state(store, run_id)
    _check_clusters(state, [cluster_id])
    old = state.leaves[cluster_id]
    new = {
        "name": old.name if name is None else name.strip(),
        "description": old.description if description is None else description.strip(),
        "inclusion_criterion": (
            old.inclusion_criterion if inclusion_criterion is None else inclusion_criterion.strip()
        ),
    }
    if (
        new["name"] == old.name
        and new["description"] == old.description
        and (new["inclusion_criterion"] == old.inclusion_criterion)
    ):
        raise EditError(f"cluster {cluster_id} already has this name and description")
    changed = [
        what
        for what, key in (
            ("description", "description"),
            ("inclusion criterion", "inclusion_criterion"),
        )
        if new[key] != getattr(old, key)
    ]
    if new["name"] != old.name:
        sentence = f"Renamed #{cluster_id} '{old.name}' to '{new['name']}'"
        if changed:
            sentence += f" and changed its {' and '.join(changed)}"
    else:
        sentence = f"Changed the {' and '.join(changed)} of #{cluster_id} '{old.name}'"
    overrides = {cluster_id: {**new, "edited": True, "stale": False}}
    return _commit(
        store,
        state,
        state.labels.copy(),
        kind="rename",
        payload={"cluster": cluster_id, **new},
        sentence=lambda after: sentence,
        overrides=overrides,
    )


def merge_clusters(store: Store, run_id: int, cluster_ids: Sequence[int]) -> EditInfo:
    """Merge clusters into the first one named; the others' ids are retired."""
    ids = list(dict.fromkeys(int(c) for c in cluster_ids))
    if len(ids) < 2:
        raise EditError("choose at least two different clusters to merge")
    state = load_state(store, run_id)
    _check_clusters(state, ids)
    kept = ids[0]
    labels = state.labels.copy()
    labels[np.isin(labels, ids)] = kept
    merged = ", ".join(f"{state.title(c)} ({state.size(c):,})" for c in ids[:-1])

    def sentence(after: dict[int, dict[str, Any]]) -> str:
        return (
            f"Merged {merged} and {state.title(ids[-1])} ({state.size(ids[-1]):,}) into "
            f"#{kept} '{after[kept]['name']}' ({after[kept]['size']:,} texts)"
        )

    return _commit(
        store,
        state,
        labels,
        kind="merge",
        payload={"clusters": ids, "kept": kept},
        sentence=sentence,
    )


def split_cluster(
    store: Store, run_id: int, cluster_id: int, n_parts: int = 2, random_state: int | None = None
) -> EditInfo:
    """Re-cluster one cluster's texts into ``n_parts`` (k-means on their embeddings); the parts
    get new ids (largest first) and the split cluster's id is retired."""
    if n_parts < 2:
        raise EditError("split into at least two parts")
    state = load_state(store, run_id)
    _check_clusters(state, [cluster_id])
    members = np.flatnonzero(state.labels == cluster_id)
    if len(members) < n_parts:
        raise EditError(
            f"cluster {cluster_id} has {len(members)} texts: too few to split in {n_parts}"
        )
    vectors = _vectors(store, state)
    seed = state.run.seed if random_state is None else random_state
    parts = KMeansClusterer(n_parts, random_state=seed).fit_predict(vectors[members]).labels
    found = sorted({int(p) for p in parts})  # KMeans numbers its parts by size already
    new_ids, next_id = _new_ids(state, len(found))
    labels = state.labels.copy()
    for part, new_id in zip(found, new_ids, strict=True):
        labels[members[parts == part]] = new_id
    before = f"{state.title(cluster_id)} ({len(members):,} texts)"

    def sentence(after: dict[int, dict[str, Any]]) -> str:
        named = [f"#{c} '{after[c]['name']}' ({after[c]['size']:,})" for c in new_ids]
        return f"Split {before} into {', '.join(named[:-1])} and {named[-1]}"

    parent = state.leaves[cluster_id].parent_id
    return _commit(
        store,
        state,
        labels,
        kind="split",
        payload={"cluster": cluster_id, "parts": n_parts, "new": new_ids},
        sentence=sentence,
        parent_of_new={c: parent for c in new_ids},
        next_cluster_id=next_id,
        vectors=vectors,
    )


def move_documents(
    store: Store, run_id: int, document_ids: Sequence[int], cluster_id: int
) -> EditInfo:
    """Move texts (by document id) to another cluster, or to -1 to mark them outliers."""
    state = load_state(store, run_id)
    if cluster_id != NOISE:
        _check_clusters(state, [cluster_id])
    chosen = np.isin(state.document_ids, np.asarray(list(document_ids), dtype=np.int64))
    chosen &= state.labels != cluster_id
    if not chosen.any():
        raise EditError(
            "none of the chosen texts belongs to this run outside the target: choose texts of "
            "another cluster"
        )
    sources = {
        int(c): int(n)
        for c, n in zip(*np.unique(state.labels[chosen], return_counts=True), strict=True)
    }
    origin = " and ".join(
        f"{state.title(c)}" + (f" ({n:,})" if len(sources) > 1 else "") for c, n in sources.items()
    )
    labels = state.labels.copy()
    labels[chosen] = cluster_id
    n = int(chosen.sum())
    texts = f"{n:,} text{'s' if n != 1 else ''}"
    if cluster_id == NOISE:
        kind = "mark_outliers"
        sentence_text = f"Marked {texts} of {origin} as outliers"

        def sentence(after: dict[int, dict[str, Any]]) -> str:
            return sentence_text

    else:
        kind = "move"

        def sentence(after: dict[int, dict[str, Any]]) -> str:
            target = after[cluster_id]
            return (
                f"Moved {texts} from {origin} to #{cluster_id} '{target['name']}' "
                f"(now {target['size']:,} texts)"
            )

    payload = {"documents": [int(d) for d in state.document_ids[chosen]], "cluster": cluster_id}
    return _commit(store, state, labels, kind=kind, payload=payload, sentence=sentence)


def move_rows(store: Store, run_id: int, rows: Sequence[int], cluster_id: int) -> EditInfo:
    """``move_documents`` by 0-based input row numbers (as the CLI and exports number them)."""
    state = load_state(store, run_id)
    by_row = dict(zip(state.positions.tolist(), state.document_ids.tolist(), strict=True))
    missing = [r for r in rows if r not in by_row]
    if missing:
        raise EditError(
            f"row {', '.join(map(str, missing))} of the input was not clustered (empty text or "
            f"beyond the {len(by_row):,} clustered rows); rows are numbered from 0"
        )
    return move_documents(store, run_id, [by_row[r] for r in rows], cluster_id)


def relabel(
    store: Store,
    run_id: int,
    labeler: Labeler | None = None,
    *,
    cluster_ids: Sequence[int] | None = None,
) -> tuple[list[ClusterLabel], EditInfo]:
    """Name clusters again (``service.relabel``) as an edit that undo can take back."""
    store.get_run(run_id)
    before = store.read_state(run_id, [])
    labels = service.relabel(store, run_id, labeler, cluster_ids=cluster_ids)
    after = store.read_state(run_id, [])
    by = labels[0].labeler if labels else KEYWORDS
    titles = [f"#{lab.cluster_id} '{lab.name}'" for lab in labels]
    shown = ", ".join(titles[:5]) + (f" and {len(titles) - 5} more" if len(titles) > 5 else "")
    sentence = f"Relabelled {len(labels)} cluster{'s' if len(labels) != 1 else ''} ({by}): {shown}"
    info = store.record_edit(
        run_id,
        kind="relabel",
        payload={"clusters": [lab.cluster_id for lab in labels], "labeler": by},
        sentence=sentence,
        before=before,
        after=after,
        replaces_last=True,
    )
    return labels, info


def undo(store: Store, run_id: int) -> EditInfo:
    """Put back the state before the latest edit still in force."""
    store.get_run(run_id)
    info = store.undo_edit(run_id)
    if info is None:
        raise EditError(f"run #{run_id} has no edit to undo")
    if not info.undoable:
        raise EditError(
            f"the latest edit ({edit_sentence(info)}) was stored before edits could be undone; "
            "make the opposite edit instead"
        )
    return info


def redo(store: Store, run_id: int) -> EditInfo:
    """Apply again the edit undone last."""
    store.get_run(run_id)
    info = store.redo_edit(run_id)
    if info is None:
        raise EditError(f"run #{run_id} has no undone edit to redo")
    return info


def can_undo(store: Store, run_id: int) -> bool:
    active = [e for e in store.list_edits(run_id) if not e.undone]
    return bool(active) and active[-1].undoable


def can_redo(store: Store, run_id: int) -> bool:
    edits = store.list_edits(run_id)
    last = max((e.id for e in edits if not e.undone), default=0)
    return any(e.undone and e.id > last for e in edits)


def edit_sentence(edit: EditInfo) -> str:
    """The edit in words; edits stored before the log had sentences are described from their
    payload."""
    if edit.sentence:
        return edit.sentence
    p = edit.payload
    if edit.kind == "merge":
        return f"Merged clusters {', '.join(map(str, p.get('clusters', [])))} (old numbering)"
    if edit.kind == "split":
        return f"Split cluster {p.get('cluster')} into {p.get('parts')} (old numbering)"
    if edit.kind in ("move", "mark_outliers"):
        n = len(p.get("documents", []))
        where = "outliers" if p.get("cluster") == NOISE else f"cluster {p.get('cluster')}"
        return f"Moved {n} texts to {where} (old numbering)"
    if edit.kind == "edit_label":
        return f"Renamed cluster {p.get('cluster_id')} to '{p.get('name', '')}'"
    if edit.kind == "relabel":
        return f"Relabelled {len(p.get('clusters', []))} clusters ({p.get('labeler', '')})"
    return edit.kind


# --- recomputing what follows from the clusters ---------------------------------------------


def _vectors(store: Store, state: RunState) -> np.ndarray:
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


def _config(run: RunInfo) -> tuple[dict[str, Any], dict[str, Any]]:
    """(pipeline settings, mode options) of a stored run, in either stored layout."""
    config = dict(run.config or {})
    pipeline = config.get("pipeline") if isinstance(config.get("pipeline"), dict) else config
    options = config.get("options") or config.get("mode_options") or {}
    return pipeline, options if isinstance(options, dict) else {}


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


def _commit(
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
    vectors = _vectors(store, state) if vectors is None else vectors
    moved = labels != state.labels
    changed = ({int(c) for c in state.labels[moved]} | {int(c) for c in labels[moved]}) - {NOISE}
    present = sorted({int(c) for c in labels if c != NOISE})

    probabilities = state.probabilities.copy()
    for c in changed & set(present):
        probabilities[labels == c] = membership(vectors, labels, c)
    probabilities[labels == NOISE] = 0.0
    touched = moved | (probabilities != state.probabilities)

    pipeline, options = _config(run)
    n_reps = int(pipeline.get("n_representatives") or N_REPRESENTATIVES)
    goal = run.goal or None
    summaries = summarize_clusters(
        state.texts, vectors, Assignment(labels, probabilities), goal=goal, n_representatives=n_reps
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
    faith = explanation_faithfulness(vectors, labels, cluster_labels, service.run_embedder(run))
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
    _, options = _config(state.run)
    typed, must, cannot = (options.get(k) for k in ("seed_labels", "must_link", "cannot_link"))
    if any(isinstance(v, int) and v > 0 for v in (typed, must, cannot)):
        return None  # only their count was stored
    column = options.get("seed_label_column")
    corpus = store.load_corpus(state.run.corpus_id)
    n = len(state.positions)
    values: list[Any] = [None] * n
    if column:
        if column not in corpus.frame.columns:
            return None
        values = list(corpus.frame[column].iloc[state.positions])
    where = {int(row): i for i, row in enumerate(state.positions)}
    for row, label in typed if isinstance(typed, list) else []:
        if int(row) in where:
            values[where[int(row)]] = label
    seeds, classes = seeds_from_values(values)

    def pairs(given: Any) -> np.ndarray:
        array = np.asarray(given if isinstance(given, list) else [], dtype=np.int64).reshape(-1, 2)
        return remap_pairs(array, where, corpus.n_rows)

    return Constraints(seeds, classes, pairs(must), pairs(cannot))
