"""How ``Store`` writes and reads a run's clusters (summaries, labels, faithfulness, marks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select, update

from clustering.types import ClusterLabel, ClusterSummary
from storage.access import guarded
from storage.models import (
    ClusterRow,
)
from storage.records import (
    IN_CHUNK,
    ClusterInfo,
    _chunks,
    _cluster_info,
    _cut,
    _json,
)
from storage.session import StoreBase


class ClusterStore(StoreBase):
    """``Store``'s methods for clusters."""

    # --- clusters --------------------------------------------------------------------------

    @guarded("edit")
    def save_clusters(
        self,
        run_id: int,
        summaries: Sequence[ClusterSummary],
        labels: Sequence[ClusterLabel] = (),
        *,
        level: int = 0,
        faithfulness: dict[int, float] | None = None,
        alternatives: dict[int, ClusterLabel] | None = None,
    ) -> None:
        """Replace the run's clusters of one level with these summaries and labels; a cluster
        saved again keeps its ``edited`` and ``stale`` marks (a hierarchy added after edits).
        ``alternatives`` are LLM labels set aside for a more faithful keyword label (issue 18),
        kept in ``extra["llm_alternative"]``."""
        by_id = {lab.cluster_id: lab for lab in labels}
        faithfulness = faithfulness or {}
        alternatives = alternatives or {}
        with self._tx() as session:
            marks = {
                row.cluster_id: (row.edited, row.stale)
                for row in session.execute(
                    select(ClusterRow.cluster_id, ClusterRow.edited, ClusterRow.stale).where(
                        ClusterRow.run_id == run_id, ClusterRow.level == level
                    )
                )
            }
            session.execute(
                delete(ClusterRow).where(ClusterRow.run_id == run_id, ClusterRow.level == level)
            )
            for s in summaries:
                lab = by_id.get(s.cluster_id)
                session.add(
                    ClusterRow(
                        run_id=run_id,
                        cluster_id=s.cluster_id,
                        parent_id=s.parent_id,
                        level=level,
                        size=s.size,
                        share=s.share,
                        keywords=_json(list(s.keywords)),
                        representatives=_json([_cut(t) for t in s.representatives]),
                        name=lab.name if lab else "",
                        description=lab.description if lab else "",
                        inclusion_criterion=lab.inclusion_criterion if lab else "",
                        evidence=_json(list(lab.evidence) if lab else []),
                        label_status=lab.status if lab else "pending",
                        label_error=lab.error if lab else "",
                        labeler=lab.labeler if lab else "",
                        faithfulness=faithfulness.get(s.cluster_id),
                        extra=_json(_extra(s, alternatives.get(s.cluster_id))),
                        edited=marks.get(s.cluster_id, (False, False))[0],
                        stale=marks.get(s.cluster_id, (False, False))[1],
                    )
                )

    @guarded("edit")
    def save_labels(
        self,
        run_id: int,
        labels: Sequence[ClusterLabel],
        level: int = 0,
    ) -> None:
        """Write new labels onto stored clusters; the clusters are no longer stale."""
        with self._tx() as session:
            for lab in labels:
                session.execute(
                    update(ClusterRow)
                    .where(
                        ClusterRow.run_id == run_id,
                        ClusterRow.cluster_id == lab.cluster_id,
                        ClusterRow.level == level,
                    )
                    .values(
                        name=lab.name,
                        description=lab.description,
                        inclusion_criterion=lab.inclusion_criterion,
                        evidence=_json(list(lab.evidence)),
                        label_status=lab.status,
                        label_error=lab.error,
                        labeler=lab.labeler,
                        edited=False,
                        stale=False,
                    )
                )

    @guarded("edit")
    def save_faithfulness(self, run_id: int, per_cluster: dict[int, float], level: int = 0) -> None:
        with self._tx() as session:
            for cluster_id, value in per_cluster.items():
                session.execute(
                    update(ClusterRow)
                    .where(
                        ClusterRow.run_id == run_id,
                        ClusterRow.cluster_id == int(cluster_id),
                        ClusterRow.level == level,
                    )
                    .values(faithfulness=float(value))
                )

    @guarded("edit")
    def mark_stale(self, run_id: int, cluster_ids: Sequence[int], level: int = 0) -> None:
        """Flag clusters whose members changed after their label was written."""
        with self._tx() as session:
            for chunk in _chunks([int(c) for c in cluster_ids], IN_CHUNK):
                session.execute(
                    update(ClusterRow)
                    .where(
                        ClusterRow.run_id == run_id,
                        ClusterRow.level == level,
                        ClusterRow.cluster_id.in_(chunk),
                    )
                    .values(stale=True)
                )

    @guarded("read")
    def load_clusters(self, run_id: int, level: int | None = 0) -> list[ClusterInfo]:
        with self._tx() as session:
            query = select(ClusterRow).where(ClusterRow.run_id == run_id)
            if level is not None:
                query = query.where(ClusterRow.level == level)
            rows = session.scalars(query.order_by(ClusterRow.level, ClusterRow.cluster_id)).all()
            return [_cluster_info(r) for r in rows]


def _extra(summary: ClusterSummary, alternative: ClusterLabel | None) -> dict[str, Any]:
    extra: dict[str, Any] = {"neighbours": list(summary.neighbours)}
    if alternative is not None:
        extra["llm_alternative"] = {
            "name": alternative.name,
            "description": alternative.description,
            "inclusion_criterion": alternative.inclusion_criterion,
        }
    return extra
