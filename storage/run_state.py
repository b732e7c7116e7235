"""A run's structure tables (rules, hierarchy choice, constraint results, novelty) and its
edit log with the states undo and redo apply (``corpusmap.edits``): how ``Store`` reads and
writes them."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, cast, delete, func, select, update
from sqlalchemy.orm import Session

from storage.access import guarded
from storage.errors import NotFoundError
from storage.models import (
    AssignmentRow,
    ClusterRow,
    ConstraintResultRow,
    EditRow,
    HierarchyRow,
    NoveltyRow,
    RuleRow,
    RunRow,
)
from storage.records import (
    CONSTRAINT_FIELDS,
    IN_CHUNK,
    STRUCTURE_KEYS,
    ClusterInfo,
    EditInfo,
    _chunks,
    _cut,
    _edit_info,
    _json,
    _rowcount,
)
from storage.session import StoreBase

if TYPE_CHECKING:
    import pandas as pd

    from storage.records import RunInfo

log = logging.getLogger(__name__)


def _load_structure(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Rules, hierarchy, constraint results and novelty of these runs, from their tables."""
    found: dict[int, dict[str, Any]] = {
        r: {"rules": {}, "parent_rules": {}, "hierarchy": {}, "constraints": {}, "novelty": {}}
        for r in run_ids
    }
    for chunk in _chunks(list(run_ids), IN_CHUNK):
        for rule in session.scalars(select(RuleRow).where(RuleRow.run_id.in_(chunk))).all():
            key = "parent_rules" if rule.level else "rules"
            found[rule.run_id][key][rule.cluster_id] = {
                "rule": rule.rule,
                "rule_precision": rule.precision,
                "rule_recall": rule.recall,
            }
        for h in session.scalars(select(HierarchyRow).where(HierarchyRow.run_id.in_(chunk))):
            found[h.run_id]["hierarchy"] = {
                "n_parents": h.n_parents,
                "choice": json.loads(h.choice or "{}"),
                "parent_id_base": h.parent_id_base,
            }
        results = select(ConstraintResultRow).where(ConstraintResultRow.run_id.in_(chunk))
        for c in session.scalars(results):
            found[c.run_id]["constraints"] = {
                **{name: getattr(c, name) for name in CONSTRAINT_FIELDS},
                "satisfied_share": c.satisfied_share,
                "stale": c.stale,
            }
        novel = (
            select(NoveltyRow).where(NoveltyRow.run_id.in_(chunk)).order_by(NoveltyRow.cluster_id)
        )
        for n in session.scalars(novel):
            novelty = found[n.run_id]["novelty"] or {"known": {}, "novel": [], "purity": {}}
            found[n.run_id]["novelty"] = novelty
            if n.seed_class is None:
                novelty["novel"].append(n.cluster_id)
            else:
                novelty["known"][n.cluster_id] = n.seed_class
            if n.purity is not None:
                novelty["purity"][n.cluster_id] = n.purity
    return found


def pack_state(state: dict[str, Any]) -> bytes:
    """A run state (``Store.read_state``) as stored with an edit: zlib-compressed JSON."""
    return zlib.compress(_json(state).encode("utf-8"), 6)


def unpack_state(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8"))


STRUCTURE_MODELS = (RuleRow, HierarchyRow, ConstraintResultRow, NoveltyRow)


def _write_rules(
    session: Session, run_id: int, rules: dict[Any, dict[str, Any]], level: int
) -> None:
    session.execute(delete(RuleRow).where(RuleRow.run_id == run_id, RuleRow.level == level))
    for cluster_id, rule in rules.items():
        session.add(
            RuleRow(
                run_id=run_id,
                cluster_id=int(cluster_id),
                level=level,
                rule=str(rule.get("rule", "")),
                precision=rule.get("rule_precision"),
                recall=rule.get("rule_recall"),
            )
        )


def _write_hierarchy(session: Session, run_id: int, hierarchy: dict[str, Any] | None) -> None:
    session.execute(delete(HierarchyRow).where(HierarchyRow.run_id == run_id))
    if not hierarchy:
        return
    choice = hierarchy.get("choice") or {}
    session.add(
        HierarchyRow(
            run_id=run_id,
            n_parents=int(hierarchy.get("n_parents", 0)),
            method=str(choice.get("method", "")),
            choice=_json(choice),
            parent_id_base=int(hierarchy.get("parent_id_base", 0)),
        )
    )


def _write_constraints(session: Session, run_id: int, report: dict[str, Any] | None) -> None:
    session.execute(delete(ConstraintResultRow).where(ConstraintResultRow.run_id == run_id))
    if not report:
        return
    session.add(
        ConstraintResultRow(
            run_id=run_id,
            **{name: int(report.get(name, 0)) for name in CONSTRAINT_FIELDS},
            satisfied_share=report.get("satisfied_share"),
            stale=bool(report.get("stale", False)),
        )
    )


def _write_novelty(session: Session, run_id: int, novelty: dict[str, Any] | None) -> None:
    session.execute(delete(NoveltyRow).where(NoveltyRow.run_id == run_id))
    if not novelty:
        return
    known = {int(c): str(name) for c, name in (novelty.get("known") or {}).items()}
    purity = {int(c): float(p) for c, p in (novelty.get("purity") or {}).items()}
    for c in sorted(set(known) | {int(c) for c in novelty.get("novel") or ()}):
        session.add(
            NoveltyRow(run_id=run_id, cluster_id=c, seed_class=known.get(c), purity=purity.get(c))
        )


def _cluster_row(run_id: int, c: dict[str, Any]) -> ClusterRow:
    """A stored cluster from the fields of a ``ClusterInfo`` (as ``dataclasses.asdict`` gives)."""
    return ClusterRow(
        run_id=run_id,
        cluster_id=int(c["cluster_id"]),
        parent_id=None if c.get("parent_id") is None else int(c["parent_id"]),
        level=int(c.get("level", 0)),
        size=int(c["size"]),
        share=float(c["share"]),
        keywords=_json(list(c.get("keywords", []))),
        representatives=_json([_cut(t) for t in c.get("representatives", [])]),
        name=c.get("name", ""),
        description=c.get("description", ""),
        inclusion_criterion=c.get("inclusion_criterion", ""),
        evidence=_json(list(c.get("evidence", []))),
        label_status=c.get("label_status", "pending"),
        label_error=c.get("label_error", ""),
        labeler=c.get("labeler", ""),
        edited=bool(c.get("edited", False)),
        stale=bool(c.get("stale", False)),
        faithfulness=c.get("faithfulness"),
        extra=_json(c.get("extra") or {}),
    )


def _cluster_dict(c: ClusterInfo) -> dict[str, Any]:
    return {f: getattr(c, f) for f in ClusterInfo.__dataclass_fields__}


def _write_state(session: Session, run_id: int, state: dict[str, Any]) -> None:
    """Replace what ``Store.read_state`` reads with ``state`` (inside the caller's transaction)."""
    rows = state["assignments"]
    for d, c, p in zip(rows["document_id"], rows["cluster_id"], rows["probability"], strict=True):
        session.execute(
            update(AssignmentRow)
            .where(AssignmentRow.run_id == run_id, AssignmentRow.document_id == int(d))
            .values(cluster_id=int(c), probability=float(p))
        )
    session.execute(delete(ClusterRow).where(ClusterRow.run_id == run_id))
    session.flush()
    for cluster in state["clusters"]:
        session.add(_cluster_row(run_id, cluster))
    _write_rules(session, run_id, state.get("rules") or {}, 0)
    _write_rules(session, run_id, state.get("parent_rules") or {}, 1)
    _write_hierarchy(session, run_id, state.get("hierarchy"))
    _write_constraints(session, run_id, state.get("constraints"))
    _write_novelty(session, run_id, state.get("novelty"))
    session.execute(
        update(RunRow).where(RunRow.id == run_id).values(metrics=_json(state.get("metrics") or {}))
    )


class RunStateStore(StoreBase):
    """``Store``'s methods for structure and edits."""

    if TYPE_CHECKING:  # defined by ``Store`` and ``ClusterStore``

        def get_run(self, run_id: int) -> RunInfo: ...

        def load_assignments(self, run_id: int) -> pd.DataFrame: ...

        def load_clusters(self, run_id: int, level: int | None = 0) -> list[ClusterInfo]: ...

    @guarded("edit")
    def save_metrics(self, run_id: int, metrics: dict[str, Any]) -> None:
        """The run's figures; rules, hierarchy, constraints or novelty passed here go to their
        own tables (``STRUCTURE_KEYS``), replacing what the run had of that kind."""
        metrics = dict(metrics)
        structure = {k: metrics.pop(k) for k in STRUCTURE_KEYS if k in metrics}
        with self._tx() as session:
            result = session.execute(
                update(RunRow).where(RunRow.id == run_id).values(metrics=_json(metrics))
            )
            if _rowcount(result) == 0:
                raise NotFoundError(f"no run #{run_id}")
            for level, key in ((0, "rules"), (1, "parent_rules")):
                if key in structure:
                    _write_rules(session, run_id, structure[key] or {}, level)
            if "hierarchy" in structure:
                _write_hierarchy(session, run_id, structure["hierarchy"])
            if "constraints" in structure:
                _write_constraints(session, run_id, structure["constraints"])
            if "novelty" in structure:
                _write_novelty(session, run_id, structure["novelty"])

    @guarded("edit")
    def save_rules(self, run_id: int, rules: dict[int, dict[str, Any]], level: int = 0) -> None:
        """Replace the run's keyword rules of one level (``ClusterRule.to_dict()`` per cluster)."""
        with self._tx() as session:
            _write_rules(session, run_id, rules, level)

    @guarded("edit")
    def save_hierarchy_info(self, run_id: int, hierarchy: dict[str, Any] | None) -> None:
        """How the run's parents were chosen (``Hierarchy.to_dict()`` and ``parent_id_base``)."""
        with self._tx() as session:
            _write_hierarchy(session, run_id, hierarchy)

    @guarded("edit")
    def save_constraint_results(self, run_id: int, report: dict[str, Any] | None) -> None:
        with self._tx() as session:
            _write_constraints(session, run_id, report)

    @guarded("edit")
    def save_novelty(self, run_id: int, novelty: dict[str, Any] | None) -> None:
        """``Novelty.to_dict()``: known clusters with their seed class, novel ones, purity."""
        with self._tx() as session:
            _write_novelty(session, run_id, novelty)

    @guarded("edit")
    def edit_cluster(
        self,
        run_id: int,
        cluster_id: int,
        *,
        name: str | None = None,
        description: str | None = None,
        inclusion_criterion: str | None = None,
    ) -> None:
        """A user's own name or description; recorded in the edit log."""
        values: dict[str, Any] = {"edited": True}
        if name is not None:
            values["name"] = name.strip()
        if description is not None:
            values["description"] = description.strip()
        if inclusion_criterion is not None:
            values["inclusion_criterion"] = inclusion_criterion.strip()
        with self._tx() as session:
            result = session.execute(
                update(ClusterRow)
                .where(ClusterRow.run_id == run_id, ClusterRow.cluster_id == cluster_id)
                .values(**values)
            )
            if _rowcount(result) == 0:
                raise NotFoundError(f"run #{run_id} has no cluster {cluster_id}")
            session.add(
                EditRow(
                    run_id=run_id,
                    kind="edit_label",
                    payload=_json({"cluster_id": cluster_id, **values}),
                )
            )
            self._audit(session, "edit", "run", run_id, kind="edit_label", cluster=cluster_id)

    @guarded("edit")
    def add_edit(self, run_id: int, kind: str, payload: dict[str, Any], sentence: str = "") -> int:
        """Log a change that undo does not cover (a relabel made outside ``corpusmap.edits``)."""
        with self._tx() as session:
            row = EditRow(run_id=run_id, kind=kind, payload=_json(payload), sentence=sentence)
            session.add(row)
            self._audit(session, "edit", "run", run_id, kind=kind, sentence=sentence)
            session.flush()
            return row.id

    @guarded("read")
    def list_edits(self, run_id: int) -> list[EditInfo]:
        """The run's edit log, oldest first (undone edits included, marked)."""
        with self._tx() as session:
            rows = session.scalars(
                select(EditRow).where(EditRow.run_id == run_id).order_by(EditRow.id)
            ).all()
            return [_edit_info(r) for r in rows]

    @guarded("read")
    def edit_version(self, run_id: int) -> str:
        """Changes with every edit, undo and redo (for display caches). The latest edit's time
        is part of it: a new edit deletes the undone ones first, and SQLite then hands the new
        row the id of the deleted one, so split, undo, merge counted like split alone and the app
        showed the split's cached clusters."""
        with self._tx() as session:
            count, undone, last, when = session.execute(
                select(
                    func.count(EditRow.id),
                    func.sum(cast(EditRow.undone, Integer)),
                    func.max(EditRow.id),
                    func.max(EditRow.created_at),
                ).where(EditRow.run_id == run_id)
            ).one()
        return f"{count}:{undone or 0}:{last or 0}:{when or ''}"

    # --- run state: what an edit changes, undo and redo ----------------------------------

    @guarded("read")
    def read_state(self, run_id: int, document_ids: Sequence[int]) -> dict[str, Any]:
        """What an edit may change, as plain JSON-able data: the assignments of
        ``document_ids``, every cluster (all levels), the rules, metrics, hierarchy, constraint
        results and novelty. ``write_state`` puts it back exactly."""
        run = self.get_run(run_id)
        wanted = set(int(d) for d in document_ids)
        rows = self.load_assignments(run_id)
        rows = rows[rows["document_id"].isin(wanted)]
        return {
            "assignments": {
                "document_id": rows["document_id"].astype(int).tolist(),
                "cluster_id": rows["cluster_id"].astype(int).tolist(),
                "probability": rows["probability"].astype(float).tolist(),
            },
            "clusters": [_cluster_dict(c) for c in self.load_clusters(run_id, level=None)],
            "rules": {str(c): r for c, r in run.rules.items()},
            "parent_rules": {str(c): r for c, r in run.parent_rules.items()},
            "metrics": run.metrics,
            "hierarchy": run.hierarchy,
            "constraints": run.constraints,
            "novelty": run.novelty,
        }

    @guarded("edit")
    def record_edit(
        self,
        run_id: int,
        *,
        kind: str,
        payload: dict[str, Any],
        sentence: str,
        before: dict[str, Any],
        after: dict[str, Any],
        next_cluster_id: int | None = None,
        replaces_last: bool = False,
    ) -> EditInfo:
        """Write an edit's new state and log it, in one transaction; the edits undone before it
        can no longer be redone. ``replaces_last``: the latest logged edit of this ``kind`` was
        logged without its state (``corpusmap.service.relabel``); this entry takes its place."""
        with self._tx() as session:
            if replaces_last:
                last = session.scalars(
                    select(EditRow)
                    .where(EditRow.run_id == run_id, EditRow.kind == kind)
                    .order_by(EditRow.id.desc())
                    .limit(1)
                ).first()
                if last is not None and last.before is None:
                    session.delete(last)
            _write_state(session, run_id, after)
            session.execute(
                delete(EditRow).where(EditRow.run_id == run_id, EditRow.undone.is_(True))
            )
            if next_cluster_id is not None:
                session.execute(
                    update(RunRow)
                    .where(RunRow.id == run_id)
                    .values(next_cluster_id=int(next_cluster_id))
                )
            row = EditRow(
                run_id=run_id,
                kind=kind,
                payload=_json(payload),
                sentence=sentence,
                before=pack_state(before),
                after=pack_state(after),
            )
            session.add(row)
            self._audit(session, "edit", "run", run_id, kind=kind, sentence=sentence)
            session.flush()
            return _edit_info(row)

    @guarded("edit")
    def undo_edit(self, run_id: int) -> EditInfo | None:
        """Put back the state before the latest edit still in force; ``None`` if there is none.
        An edit logged without its state is returned unapplied (``undoable`` False)."""
        with self._tx() as session:
            row = session.scalars(
                select(EditRow)
                .where(EditRow.run_id == run_id, EditRow.undone.is_(False))
                .order_by(EditRow.id.desc())
                .limit(1)
            ).first()
            if row is None or row.before is None:
                return None if row is None else _edit_info(row)
            _write_state(session, run_id, unpack_state(row.before))
            row.undone = True
            self._audit(session, "edit", "run", run_id, kind="undo", sentence=row.sentence)
            return _edit_info(row)

    @guarded("edit")
    def redo_edit(self, run_id: int) -> EditInfo | None:
        """Apply again the oldest undone edit after the latest one in force; ``None`` if none."""
        with self._tx() as session:
            last = session.scalar(
                select(func.max(EditRow.id)).where(
                    EditRow.run_id == run_id, EditRow.undone.is_(False)
                )
            )
            query = select(EditRow).where(EditRow.run_id == run_id, EditRow.undone.is_(True))
            if last is not None:
                query = query.where(EditRow.id > last)
            row = session.scalars(query.order_by(EditRow.id).limit(1)).first()
            if row is None or row.after is None:
                return None
            _write_state(session, run_id, unpack_state(row.after))
            row.undone = False
            self._audit(session, "edit", "run", run_id, kind="redo", sentence=row.sentence)
            return _edit_info(row)
