"""The store: corpora, documents, the embedding cache, runs, clusters, assignments, LLM calls.

Dataclasses go in and out; SQLAlchemy stays inside this package. Every public method is one
short transaction, so a failure leaves the database as it was and concurrent processes queue on
the write lock briefly instead of failing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Select, delete, func, insert, select, update

from clustering.cached_embedding import text_hash
from clustering.types import Assignment, Corpus
from storage import migrate
from storage.access import guarded, unscoped, workspace_wide
from storage.clusters import ClusterStore
from storage.embeddings import EmbeddingStore
from storage.engine import database_url, make_engine, redact
from storage.errors import NotFoundError, StorageError
from storage.llm_calls import LLMCallStore
from storage.models import (
    AssignmentRow,
    ClusterRow,
    CorpusRow,
    DocumentRow,
    EditRow,
    EmbeddingRow,
    LLMCallRow,
    RunRow,
    utcnow,
)
from storage.records import (
    IN_CHUNK,
    INSERT_CHUNK,
    ClusterInfo,
    CorpusInfo,
    EditInfo,
    LLMCallRecord,
    RunInfo,
    _chunks,
    _corpus_info,
    _json,
    _rowcount,
    _run_info,
    corpus_content_hash,
)
from storage.run_state import (
    STRUCTURE_MODELS,
    RunStateStore,
    _load_structure,
)
from storage.team import TeamStore, check_storage_quota
from storage.users import UserStore

log = logging.getLogger(__name__)

__all__ = ["ClusterInfo", "CorpusInfo", "EditInfo", "LLMCallRecord", "RunInfo", "Store"]


def _corpus_chars(corpus: Corpus, records: list[dict[str, Any]]) -> int:
    """What a corpus adds to its workspace's storage, counted as ``storage.team`` counts it."""
    return sum(len(t) for t in corpus.texts) + sum(len(_json(r)) for r in records)


class Store(ClusterStore, RunStateStore, LLMCallStore, EmbeddingStore, TeamStore, UserStore):
    """All of corpusmap's persistent state, behind one SQLAlchemy engine."""

    @classmethod
    def open(cls, url_or_path: str | None = None) -> Store:
        """Open (creating and migrating as needed) the database at a URL or SQLite file path."""
        url = database_url(url_or_path)
        try:
            engine = make_engine(url)
            migrate.upgrade(engine)
        except Exception as err:
            raise StorageError(
                f"cannot open the database {redact(url)} ({type(err).__name__}: {err}); check "
                "the URL or path (--db / CORPUSMAP_DATABASE_URL) and that the server is reachable"
            ) from err
        log.info("opened database %s", redact(url))
        return cls(engine, url)

    # --- corpora -------------------------------------------------------------------------

    def _corpora(self) -> Select[Any]:
        """The corpora the caller may see: its workspace's, or all in single-user mode."""
        return self._in_workspace(select(CorpusRow), CorpusRow.workspace_id)

    @workspace_wide("edit")
    def add_corpus(self, corpus: Corpus, *, reuse: bool = True) -> CorpusInfo:
        """Store a corpus and its rows; with ``reuse`` an identical stored corpus is returned."""
        content_hash = corpus_content_hash(corpus)
        records = json.loads(
            corpus.frame.to_json(orient="records", date_format="iso", default_handler=str)
        )
        with self._tx() as session:
            if reuse:
                # Looked up inside the write transaction: two processes storing the same file at
                # once queue on the write lock and the second finds the first's corpus.
                existing = session.scalars(
                    self._corpora()
                    .where(CorpusRow.content_hash == content_hash)
                    .order_by(CorpusRow.id)
                    .limit(1)
                ).first()
                if existing is not None:
                    log.info("corpus %r is already stored as #%d", corpus.name, existing.id)
                    return _corpus_info(existing)
            check_storage_quota(session, self.workspace_id, _corpus_chars(corpus, records))
            row = CorpusRow(
                workspace_id=self.workspace_id,
                name=corpus.name,
                format=corpus.format,
                encoding=corpus.encoding,
                text_column=corpus.text_column,
                columns=_json([str(c) for c in corpus.frame.columns]),
                n_rows=corpus.n_rows,
                n_empty=corpus.n_empty,
                n_duplicates=corpus.n_duplicates,
                content_hash=content_hash,
                warnings=_json(list(corpus.warnings)),
            )
            session.add(row)
            session.flush()
            docs = [
                {
                    "corpus_id": row.id,
                    "position": i,
                    "text": text,
                    "text_hash": text_hash(text),
                    "meta": _json(record),
                }
                for i, (text, record) in enumerate(zip(corpus.texts, records, strict=True))
            ]
            for chunk in _chunks(docs, INSERT_CHUNK):
                session.execute(insert(DocumentRow), list(chunk))
            self._audit(session, "upload", "corpus", row.id, name=corpus.name, rows=corpus.n_rows)
            return _corpus_info(row)

    @workspace_wide("read")
    def find_corpus(self, content_hash: str) -> CorpusInfo | None:
        with self._tx() as session:
            row = session.scalars(
                self._corpora().where(CorpusRow.content_hash == content_hash).limit(1)
            ).first()
            return _corpus_info(row) if row else None

    @workspace_wide("read")
    def list_corpora(self) -> list[CorpusInfo]:
        with self._tx() as session:
            rows = session.scalars(self._corpora().order_by(CorpusRow.id.desc())).all()
            return [_corpus_info(r) for r in rows]

    @guarded("read")
    def get_corpus(self, corpus_id: int) -> CorpusInfo:
        with self._tx() as session:
            row = session.get(CorpusRow, corpus_id)
            if row is None:
                raise NotFoundError(f"no corpus #{corpus_id}; `corpusmap corpora` lists them")
            return _corpus_info(row)

    @guarded("read")
    def load_corpus(self, corpus_id: int) -> Corpus:
        info = self.get_corpus(corpus_id)
        with self._tx() as session:
            rows = session.execute(
                select(DocumentRow.text, DocumentRow.meta)
                .where(DocumentRow.corpus_id == corpus_id)
                .order_by(DocumentRow.position)
            ).all()
        frame = pd.DataFrame([json.loads(r.meta) for r in rows], columns=info.columns)
        return Corpus(
            name=info.name,
            frame=frame,
            text_column=info.text_column,
            texts=[r.text for r in rows],
            encoding=info.encoding,
            format=info.format,
            warnings=tuple(info.warnings),
        )

    @guarded("read")
    def document_ids(self, corpus_id: int) -> np.ndarray:
        """Document ids of a corpus in input order."""
        with self._tx() as session:
            ids = session.scalars(
                select(DocumentRow.id)
                .where(DocumentRow.corpus_id == corpus_id)
                .order_by(DocumentRow.position)
            ).all()
        return np.asarray(ids, dtype=np.int64)

    @guarded("admin")
    def delete_corpus(self, corpus_id: int) -> None:
        self.get_corpus(corpus_id)
        with self._tx() as session:
            run_ids = select(RunRow.id).where(RunRow.corpus_id == corpus_id)
            # Explicit deletes: foreign-key cascades are off on some engines and old files.
            for model in STRUCTURE_MODELS:
                session.execute(delete(model).where(model.run_id.in_(run_ids)))
            session.execute(delete(AssignmentRow).where(AssignmentRow.run_id.in_(run_ids)))
            session.execute(delete(ClusterRow).where(ClusterRow.run_id.in_(run_ids)))
            session.execute(delete(EditRow).where(EditRow.run_id.in_(run_ids)))
            session.execute(
                update(LLMCallRow).where(LLMCallRow.run_id.in_(run_ids)).values(run_id=None)
            )
            session.execute(delete(RunRow).where(RunRow.corpus_id == corpus_id))
            session.execute(delete(DocumentRow).where(DocumentRow.corpus_id == corpus_id))
            session.execute(delete(CorpusRow).where(CorpusRow.id == corpus_id))
            self._audit(session, "delete", "corpus", corpus_id)

    # --- runs ------------------------------------------------------------------------------

    @guarded("edit")
    def create_run(
        self,
        corpus_id: int,
        *,
        config: dict[str, Any],
        seed: int,
        embedder: str,
        labeler: str,
        mode: str = "cluster",
        goal: str = "",
        label_column: str = "",
        versions: dict[str, str] | None = None,
        name: str = "",
        owner: str = "",
    ) -> int:
        self.get_corpus(corpus_id)
        with self._tx() as session:
            row = RunRow(
                owner=owner,
                heartbeat_at=utcnow(),
                corpus_id=corpus_id,
                name=name,
                status="running",
                stage="created",
                mode=mode,
                goal=goal or "",
                config=_json(config),
                seed=seed,
                embedder=embedder,
                labeler=labeler,
                label_column=label_column or "",
                versions=_json(versions or {}),
            )
            session.add(row)
            session.flush()
            self._audit(session, "run", "run", row.id, corpus=corpus_id, mode=mode)
            return row.id

    @guarded("read")
    def get_run(self, run_id: int) -> RunInfo:
        with self._tx() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no run #{run_id}; `corpusmap runs` lists them")
            return _run_info(row, _load_structure(session, [row.id])[row.id])

    @guarded("read")
    def list_runs(self, corpus_id: int | None = None) -> list[RunInfo]:
        with self._tx() as session:
            query = select(RunRow).order_by(RunRow.id.desc())
            if corpus_id is not None:
                query = query.where(RunRow.corpus_id == corpus_id)
            elif self.access is not None:
                query = query.where(
                    RunRow.corpus_id.in_(self._corpora().with_only_columns(CorpusRow.id))
                )
            rows = session.scalars(query).all()
            structure = _load_structure(session, [r.id for r in rows])
            return [_run_info(r, structure[r.id]) for r in rows]

    def _update_run(self, run_id: int, **values: Any) -> None:
        with self._tx() as session:
            result = session.execute(update(RunRow).where(RunRow.id == run_id).values(**values))
            if _rowcount(result) == 0:
                raise NotFoundError(f"no run #{run_id}")

    @guarded("edit")
    def save_stage(self, run_id: int, stage: str, timings: dict[str, float]) -> None:
        self._update_run(run_id, stage=stage, timings=_json(timings), heartbeat_at=utcnow())

    @guarded("edit")
    def save_run_warnings(self, run_id: int, warnings: Sequence[str]) -> None:
        self._update_run(run_id, warnings=_json(list(warnings)))

    @guarded("edit")
    def unfinished_runs(
        self,
        corpus_id: int,
        *,
        config: dict[str, Any],
        embedder: str,
        labeler: str,
        mode: str = "cluster",
        goal: str = "",
        label_column: str = "",
    ) -> list[RunInfo]:
        """Runs of this corpus with exactly these settings that never completed, newest first."""
        with self._tx() as session:
            rows = session.scalars(
                select(RunRow)
                .where(
                    RunRow.corpus_id == corpus_id,
                    RunRow.status.in_(("running", "failed")),
                    RunRow.config == _json(config),
                    RunRow.embedder == embedder,
                    RunRow.labeler == labeler,
                    RunRow.mode == mode,
                    RunRow.goal == (goal or ""),
                    RunRow.label_column == (label_column or ""),
                )
                .order_by(RunRow.id.desc())
            ).all()
            return [_run_info(r) for r in rows]

    @workspace_wide("edit")
    def claim_run(self, run: RunInfo, owner: str) -> bool:
        """Take over an unfinished run; False if another process changed it first.

        A compare-and-set on (status, owner, stage): of two processes resuming the same run at
        once, exactly one wins.
        """
        if self.access is not None:
            self._check_access("run", run.id, "edit")
        with self._tx() as session:
            result = session.execute(
                update(RunRow)
                .where(
                    RunRow.id == run.id,
                    RunRow.status == run.status,
                    RunRow.owner == run.owner,
                    RunRow.stage == run.stage,
                )
                .values(
                    status="running",
                    owner=owner,
                    error="",
                    finished_at=None,
                    heartbeat_at=utcnow(),
                )
            )
            return _rowcount(result) == 1

    @guarded("edit")
    def save_llm_usage(self, run_id: int, usage: dict[str, Any]) -> None:
        self._update_run(run_id, llm_usage=_json(usage))

    @guarded("edit")
    def update_run_config(self, run_id: int, config: dict[str, Any]) -> None:
        self._update_run(run_id, config=_json(config))

    @guarded("edit")
    def finish_run(self, run_id: int) -> None:
        self._update_run(run_id, status="completed", stage="done", finished_at=utcnow(), error="")

    @guarded("edit")
    def fail_run(self, run_id: int, error: str) -> None:
        self._update_run(run_id, status="failed", error=error[:10_000], finished_at=utcnow())

    @guarded("edit")
    def rename_run(self, run_id: int, name: str) -> None:
        self._update_run(run_id, name=name)
        with self._tx() as session:
            self._audit(session, "edit", "run", run_id, kind="rename_run", name=name)

    @guarded("admin")
    def delete_run(self, run_id: int) -> None:
        self.get_run(run_id)
        with self._tx() as session:
            for model in STRUCTURE_MODELS:
                session.execute(delete(model).where(model.run_id == run_id))
            session.execute(delete(AssignmentRow).where(AssignmentRow.run_id == run_id))
            session.execute(delete(ClusterRow).where(ClusterRow.run_id == run_id))
            session.execute(delete(EditRow).where(EditRow.run_id == run_id))
            session.execute(
                update(LLMCallRow).where(LLMCallRow.run_id == run_id).values(run_id=None)
            )
            session.execute(delete(RunRow).where(RunRow.id == run_id))
            self._audit(session, "delete", "run", run_id)

    # --- assignments -----------------------------------------------------------------------

    @guarded("edit")
    def save_assignment(
        self,
        run_id: int,
        document_ids: Sequence[int],
        assignment: Assignment,
        coords: np.ndarray,
    ) -> None:
        """Replace the run's assignments (one row per clustered document)."""
        if not (len(document_ids) == len(assignment.labels) == len(coords)):
            raise StorageError("document ids, labels and coordinates differ in length")
        rows = [
            {
                "run_id": run_id,
                "document_id": int(d),
                "cluster_id": int(c),
                "probability": float(p),
                "x": float(xy[0]),
                "y": float(xy[1]),
            }
            for d, c, p, xy in zip(
                document_ids, assignment.labels, assignment.probabilities, coords, strict=True
            )
        ]
        with self._tx() as session:
            session.execute(delete(AssignmentRow).where(AssignmentRow.run_id == run_id))
            for chunk in _chunks(rows, INSERT_CHUNK):
                session.execute(insert(AssignmentRow), list(chunk))

    @guarded("read")
    def count_assignments(self, run_id: int) -> int:
        with self._tx() as session:
            query = select(func.count()).select_from(AssignmentRow)
            return int(session.scalar(query.where(AssignmentRow.run_id == run_id)) or 0)

    @guarded("read")
    def load_assignments(self, run_id: int) -> pd.DataFrame:
        """Columns document_id, position, text, cluster_id, probability, x, y, in input order."""
        with self._tx() as session:
            rows = session.execute(
                select(
                    AssignmentRow.document_id,
                    DocumentRow.position,
                    DocumentRow.text,
                    AssignmentRow.cluster_id,
                    AssignmentRow.probability,
                    AssignmentRow.x,
                    AssignmentRow.y,
                )
                .join(DocumentRow, DocumentRow.id == AssignmentRow.document_id)
                .where(AssignmentRow.run_id == run_id)
                .order_by(DocumentRow.position)
            ).all()
        columns = ["document_id", "position", "text", "cluster_id", "probability", "x", "y"]
        return pd.DataFrame([tuple(r) for r in rows], columns=columns)

    @guarded("edit")
    def move_documents(
        self, run_id: int, document_ids: Sequence[int], cluster_id: int, probability: float = 1.0
    ) -> int:
        """Put documents into a cluster (or -1 to mark them outliers); returns rows changed."""
        changed = 0
        with self._tx() as session:
            for chunk in _chunks(list(map(int, document_ids)), IN_CHUNK):
                result = session.execute(
                    update(AssignmentRow)
                    .where(AssignmentRow.run_id == run_id, AssignmentRow.document_id.in_(chunk))
                    .values(cluster_id=cluster_id, probability=probability)
                )
                changed += _rowcount(result)
        return changed

    # --- housekeeping ----------------------------------------------------------------------

    @unscoped
    def table_counts(self) -> dict[str, int]:
        """Rows per table: what tests compare before and after a failing operation."""
        counts = {}
        with self._tx() as session:
            for model in (
                CorpusRow,
                DocumentRow,
                EmbeddingRow,
                RunRow,
                ClusterRow,
                AssignmentRow,
                LLMCallRow,
                EditRow,
                *STRUCTURE_MODELS,
            ):
                counts[model.__tablename__] = int(
                    session.scalar(select(func.count()).select_from(model)) or 0
                )
        return counts
