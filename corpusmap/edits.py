"""Edits of a stored run: rename, merge, split, move texts, mark outliers, relabel; undo and redo.

Identity (issue 15): a cluster keeps its id through renames, moves and the edits of other
clusters. A split retires the split cluster and gives each part a new id; a merge keeps the
first id named and retires the others. New ids come from the run's counter
(``runs.next_cluster_id``), which only grows: an id is never reused within a run. The order
clusters are shown in (by size, by similarity) is the reader's business, not their ids'.

Every edit goes through ``corpusmap.derived.commit``, which computes again everything that
follows from the clusters and stores the state it replaced and the state it wrote, so ``undo``
and ``redo`` put back exactly what was there. The edit log reads as sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from clustering.cluster import KMeansClusterer
from clustering.types import NOISE, ClusterLabel, Labeler
from corpusmap import service
from corpusmap.derived import KEYWORDS, RunState, commit, load_state, new_ids, run_vectors
from corpusmap.errors import CorpusmapError
from storage import EditInfo, Store


class EditError(CorpusmapError):
    """An edit that cannot be made; the message says what to choose instead."""


def _editable(store: Store, run_id: int) -> RunState:
    """The run as an edit sees it; a run still being computed is not edited under its feet."""
    state = load_state(store, run_id)
    if service.run_state(state.run) == "running":
        raise EditError(
            f"run #{run_id} is still running (stage {state.run.stage!r}): edit it once it has "
            "finished"
        )
    return state


def _check_clusters(state: RunState, ids: Sequence[int]) -> None:
    missing = [c for c in ids if c == NOISE or c not in state.leaves]
    if missing:
        known = ", ".join(map(str, sorted(state.leaves))) or "none"
        raise EditError(
            f"run #{state.run.id} has no cluster {', '.join(map(str, missing))}; its clusters "
            f"are {known} (`corpusmap show {state.run.id}` lists them)"
        )


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
    state = _editable(store, run_id)
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
    return commit(
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
    state = _editable(store, run_id)
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

    return commit(
        store,
        state,
        labels,
        kind="merge",
        payload={"clusters": ids, "kept": kept},
        sentence=sentence,
    )


def take_coarse_grain(store: Store, run_id: int) -> EditInfo:
    """Merge the clusters into the coarser grain the run offered (``metrics["coarse"]``: groups
    of whole clusters along the same Ward tree, issue 14), as one edit that undo takes back. Each
    group keeps the id of its largest cluster."""
    state = _editable(store, run_id)
    coarse = state.run.metrics.get("coarse") or {}
    if not coarse.get("parent_of"):
        raise EditError(
            f"run #{run_id} offers no coarser grain (its edits since, or its granularity "
            "sentence, say why): merge clusters by hand, or run again asking for fewer clusters"
        )
    groups: dict[int, list[int]] = {}
    for cluster, group in coarse["parent_of"].items():
        if int(cluster) in state.leaves:
            groups.setdefault(int(group), []).append(int(cluster))
    joined = [sorted(ids, key=lambda c: (-state.size(c), c)) for ids in groups.values()]
    joined = sorted((ids for ids in joined if len(ids) > 1), key=lambda ids: ids[0])
    if not joined:
        raise EditError(f"run #{run_id} is at its coarser grain already")
    labels = state.labels.copy()
    for ids in joined:
        labels[np.isin(labels, ids)] = ids[0]
    before = {ids[0]: ", ".join(state.title(c) for c in ids) for ids in joined}
    n_after = len({int(c) for c in labels if c != NOISE})

    def sentence(after: dict[int, dict[str, Any]]) -> str:
        merged = "; ".join(f"{before[k]} into #{k} '{after[k]['name']}'" for k in before)
        return f"Took the coarser grain offered, {n_after} clusters: merged {merged}"

    return commit(
        store,
        state,
        labels,
        kind="coarse_grain",
        payload={"groups": joined, "k": coarse.get("k")},
        sentence=sentence,
    )


def split_cluster(
    store: Store, run_id: int, cluster_id: int, n_parts: int = 2, random_state: int | None = None
) -> EditInfo:
    """Re-cluster one cluster's texts into ``n_parts`` (k-means on their embeddings); the parts
    get new ids (largest first) and the split cluster's id is retired."""
    if n_parts < 2:
        raise EditError("split into at least two parts")
    state = _editable(store, run_id)
    _check_clusters(state, [cluster_id])
    members = np.flatnonzero(state.labels == cluster_id)
    if len(members) < n_parts:
        raise EditError(
            f"cluster {cluster_id} has {len(members)} texts: too few to split in {n_parts}"
        )
    vectors = run_vectors(store, state)
    seed = state.run.seed if random_state is None else random_state
    parts = KMeansClusterer(n_parts, random_state=seed).fit_predict(vectors[members]).labels
    found = sorted({int(p) for p in parts})  # KMeans numbers its parts by size already
    fresh, next_id = new_ids(state, len(found))
    labels = state.labels.copy()
    for part, new_id in zip(found, fresh, strict=True):
        labels[members[parts == part]] = new_id
    before = f"{state.title(cluster_id)} ({len(members):,} texts)"

    def sentence(after: dict[int, dict[str, Any]]) -> str:
        named = [f"#{c} '{after[c]['name']}' ({after[c]['size']:,})" for c in fresh]
        return f"Split {before} into {', '.join(named[:-1])} and {named[-1]}"

    parent = state.leaves[cluster_id].parent_id
    return commit(
        store,
        state,
        labels,
        kind="split",
        payload={"cluster": cluster_id, "parts": n_parts, "new": fresh},
        sentence=sentence,
        parent_of_new={c: parent for c in fresh},
        next_cluster_id=next_id,
        vectors=vectors,
    )


def move_documents(
    store: Store, run_id: int, document_ids: Sequence[int], cluster_id: int
) -> EditInfo:
    """Move texts (by document id) to another cluster, or to -1 to mark them outliers."""
    state = _editable(store, run_id)
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
    return commit(store, state, labels, kind=kind, payload=payload, sentence=sentence)


def move_rows(store: Store, run_id: int, rows: Sequence[int], cluster_id: int) -> EditInfo:
    """``move_documents`` by 0-based input row numbers (as the CLI and exports number them)."""
    state = _editable(store, run_id)
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
