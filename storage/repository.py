"""The store: corpora, documents, the embedding cache, runs, clusters, assignments, LLM calls.

Dataclasses go in and out; SQLAlchemy stays inside this package. Every public method is one
short transaction, so a failure leaves the database as it was and concurrent processes queue on
the write lock briefly instead of failing.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, Integer, cast, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from clustering.embed import text_hash
from clustering.types import Assignment, ClusterLabel, ClusterSummary, Corpus
from storage import migrate
from storage.engine import database_url, make_engine, redact
from storage.errors import NotFoundError, StorageError
from storage.models import (
    AssignmentRow,
    ClusterRow,
    ConstraintResultRow,
    CorpusRow,
    DocumentRow,
    EditRow,
    EmbeddingRow,
    HierarchyRow,
    LLMCallRow,
    NoveltyRow,
    RuleRow,
    RunRow,
    utcnow,
)

log = logging.getLogger(__name__)

INSERT_CHUNK = 5_000
IN_CHUNK = 900
"""Parameters per ``IN (...)`` query: below SQLite's variable limit on every build."""


@dataclass(frozen=True)
class CorpusInfo:
    id: int
    name: str
    format: str
    encoding: str
    text_column: str
    columns: list[str]
    n_rows: int
    n_empty: int
    n_duplicates: int
    content_hash: str
    warnings: list[str]
    created_at: datetime


@dataclass(frozen=True)
class RunInfo:
    id: int
    corpus_id: int
    name: str
    status: str
    stage: str
    mode: str
    goal: str
    config: dict[str, Any]
    seed: int
    embedder: str
    labeler: str
    label_column: str
    versions: dict[str, str]
    timings: dict[str, float]
    metrics: dict[str, Any]
    llm_usage: dict[str, Any]
    error: str
    created_at: datetime
    finished_at: datetime | None
    warnings: list[str] = field(default_factory=list)
    owner: str = ""
    heartbeat_at: datetime | None = None
    rules: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Keyword rule of each leaf cluster: ``{"rule", "rule_precision", "rule_recall"}``."""
    parent_rules: dict[int, dict[str, Any]] = field(default_factory=dict)
    """The same for the hierarchy's parents (level-1 clusters)."""
    hierarchy: dict[str, Any] = field(default_factory=dict)
    """``{"n_parents", "choice", "parent_id_base"}`` when the run has parents; the parents are
    its level-1 clusters and each leaf's ``parent_id`` names its own."""
    constraints: dict[str, Any] = field(default_factory=dict)
    """What a semi-supervised run's clusters keep of its seeds and pairs (``stale`` after an
    edit that could not check them again)."""
    novelty: dict[str, Any] = field(default_factory=dict)
    """``{"known": {cluster: seed class}, "novel": [clusters without seeds], "purity": {...}}``."""
    next_cluster_id: int = 0


STRUCTURE_KEYS = ("rules", "parent_rules", "hierarchy", "constraints", "novelty")
"""Parts of a run that older code kept inside ``metrics``; ``Store.save_metrics`` writes them to
their tables (storage/migrations/versions/0003_*) and ``RunInfo`` carries them as fields."""
CONSTRAINT_FIELDS = (
    "n_seeds",
    "n_seed_classes",
    "must_link_held",
    "must_link_total",
    "cannot_link_held",
    "cannot_link_total",
    "seeds_together",
    "seeds_total",
)


@dataclass(frozen=True)
class EditInfo:
    id: int
    run_id: int
    kind: str
    payload: dict[str, Any]
    sentence: str
    undone: bool
    undoable: bool
    """Whether the edit stored the state undo and redo apply (older edits did not)."""
    created_at: datetime


@dataclass(frozen=True)
class ClusterInfo:
    run_id: int
    cluster_id: int
    size: int
    share: float
    keywords: list[str]
    representatives: list[str]
    name: str
    description: str
    inclusion_criterion: str
    evidence: list[int]
    label_status: str
    label_error: str
    labeler: str
    edited: bool
    stale: bool
    faithfulness: float | None
    parent_id: int | None = None
    level: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def label(self) -> ClusterLabel:
        """The cluster's stored name and explanation, as a labeler returns them."""
        return ClusterLabel(
            cluster_id=self.cluster_id,
            name=self.name,
            description=self.description,
            inclusion_criterion=self.inclusion_criterion,
            evidence=tuple(self.evidence),
            status=self.label_status,
            error=self.label_error,
            labeler=self.labeler,
        )


@dataclass(frozen=True)
class LLMCallRecord:
    id: int
    cache_key: str
    run_id: int | None
    model: str
    base_url: str
    request: str
    response: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    status: str
    error: str
    created_at: datetime


def _corpus_info(row: CorpusRow) -> CorpusInfo:
    return CorpusInfo(
        id=row.id,
        name=row.name,
        format=row.format,
        encoding=row.encoding,
        text_column=row.text_column,
        columns=json.loads(row.columns),
        n_rows=row.n_rows,
        n_empty=row.n_empty,
        n_duplicates=row.n_duplicates,
        content_hash=row.content_hash,
        warnings=json.loads(row.warnings or "[]"),
        created_at=row.created_at,
    )


def _run_info(row: RunRow, structure: dict[str, Any] | None = None) -> RunInfo:
    return RunInfo(
        **(structure or {}),
        id=row.id,
        corpus_id=row.corpus_id,
        name=row.name,
        status=row.status,
        stage=row.stage,
        mode=row.mode,
        goal=row.goal,
        config=json.loads(row.config),
        seed=row.seed,
        embedder=row.embedder,
        labeler=row.labeler,
        label_column=row.label_column,
        versions=json.loads(row.versions or "{}"),
        timings=json.loads(row.timings or "{}"),
        metrics=json.loads(row.metrics or "{}"),
        llm_usage=json.loads(row.llm_usage or "{}"),
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        warnings=json.loads(row.warnings or "[]"),
        owner=row.owner or "",
        heartbeat_at=row.heartbeat_at,
        next_cluster_id=row.next_cluster_id or 0,
    )


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
        query = select(ConstraintResultRow).where(ConstraintResultRow.run_id.in_(chunk))
        for c in session.scalars(query):
            found[c.run_id]["constraints"] = {
                **{name: getattr(c, name) for name in CONSTRAINT_FIELDS},
                "satisfied_share": c.satisfied_share,
                "stale": c.stale,
            }
        query = (
            select(NoveltyRow).where(NoveltyRow.run_id.in_(chunk)).order_by(NoveltyRow.cluster_id)
        )
        for n in session.scalars(query):
            novelty = found[n.run_id]["novelty"] or {"known": {}, "novel": [], "purity": {}}
            found[n.run_id]["novelty"] = novelty
            if n.seed_class is None:
                novelty["novel"].append(n.cluster_id)
            else:
                novelty["known"][n.cluster_id] = n.seed_class
            if n.purity is not None:
                novelty["purity"][n.cluster_id] = n.purity
    return found


def _edit_info(row: EditRow) -> EditInfo:
    return EditInfo(
        id=row.id,
        run_id=row.run_id,
        kind=row.kind,
        payload=json.loads(row.payload or "{}"),
        sentence=row.sentence or "",
        undone=bool(row.undone),
        undoable=row.before is not None and row.after is not None,
        created_at=row.created_at,
    )


def pack_state(state: dict[str, Any]) -> bytes:
    """A run state (``Store.read_state``) as stored with an edit: zlib-compressed JSON."""
    return zlib.compress(_json(state).encode("utf-8"), 6)


def unpack_state(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob).decode("utf-8"))


def _cluster_info(row: ClusterRow) -> ClusterInfo:
    return ClusterInfo(
        run_id=row.run_id,
        cluster_id=row.cluster_id,
        size=row.size,
        share=row.share,
        keywords=json.loads(row.keywords),
        representatives=json.loads(row.representatives),
        name=row.name,
        description=row.description,
        inclusion_criterion=row.inclusion_criterion,
        evidence=json.loads(row.evidence),
        label_status=row.label_status,
        label_error=row.label_error,
        labeler=row.labeler,
        edited=row.edited,
        stale=row.stale,
        faithfulness=row.faithfulness,
        parent_id=row.parent_id,
        level=row.level,
        extra=json.loads(row.extra or "{}"),
    )


def _llm_record(row: LLMCallRow) -> LLMCallRecord:
    return LLMCallRecord(
        id=row.id,
        cache_key=row.cache_key,
        run_id=row.run_id,
        model=row.model,
        base_url=row.base_url,
        request=row.request,
        response=row.response,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        latency_s=row.latency_s,
        status=row.status,
        error=row.error,
        created_at=row.created_at,
    )


def corpus_content_hash(corpus: Corpus) -> str:
    """Identity of a corpus's content: its columns, text column and every cell."""
    payload = json.dumps([list(map(str, corpus.frame.columns)), corpus.text_column])
    cells = corpus.frame.to_json(orient="values", date_format="iso", default_handler=str)
    return text_hash(payload + cells)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


REPRESENTATIVE_CHARS = 5_000
"""A stored representative text is cut here: a 10 MB text must not ride along with every
cluster read (the full text stays in ``documents``)."""


def _cut(text: str, limit: int = REPRESENTATIVE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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


class Store:
    """All of corpusmap's persistent state, behind one SQLAlchemy engine."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

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

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    # --- corpora -------------------------------------------------------------------------

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
                    select(CorpusRow).where(CorpusRow.content_hash == content_hash).limit(1)
                ).first()
                if existing is not None:
                    log.info("corpus %r is already stored as #%d", corpus.name, existing.id)
                    return _corpus_info(existing)
            row = CorpusRow(
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
                session.execute(DocumentRow.__table__.insert(), list(chunk))
            return _corpus_info(row)

    def find_corpus(self, content_hash: str) -> CorpusInfo | None:
        with self._tx() as session:
            row = session.scalars(
                select(CorpusRow).where(CorpusRow.content_hash == content_hash).limit(1)
            ).first()
            return _corpus_info(row) if row else None

    def list_corpora(self) -> list[CorpusInfo]:
        with self._tx() as session:
            rows = session.scalars(select(CorpusRow).order_by(CorpusRow.id.desc())).all()
            return [_corpus_info(r) for r in rows]

    def get_corpus(self, corpus_id: int) -> CorpusInfo:
        with self._tx() as session:
            row = session.get(CorpusRow, corpus_id)
            if row is None:
                raise NotFoundError(f"no corpus #{corpus_id}; `corpusmap corpora` lists them")
            return _corpus_info(row)

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

    def document_ids(self, corpus_id: int) -> np.ndarray:
        """Document ids of a corpus in input order."""
        with self._tx() as session:
            ids = session.scalars(
                select(DocumentRow.id)
                .where(DocumentRow.corpus_id == corpus_id)
                .order_by(DocumentRow.position)
            ).all()
        return np.asarray(ids, dtype=np.int64)

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

    # --- embedding cache -----------------------------------------------------------------

    def get_embeddings(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._tx() as session:
            for chunk in _chunks(list(hashes), IN_CHUNK):
                rows = session.execute(
                    select(EmbeddingRow.text_hash, EmbeddingRow.vector).where(
                        EmbeddingRow.model_id == model_id, EmbeddingRow.text_hash.in_(chunk)
                    )
                ).all()
                for h, blob in rows:
                    found[h] = np.frombuffer(blob, dtype="<f4")
        return found

    def put_embeddings(self, model_id: str, items: dict[str, np.ndarray]) -> None:
        rows = [
            {
                "model_id": model_id,
                "text_hash": h,
                "dim": int(v.shape[0]),
                "vector": np.asarray(v, dtype="<f4").tobytes(),
            }
            for h, v in items.items()
        ]
        with self._tx() as session:
            for chunk in _chunks(rows, INSERT_CHUNK):
                session.execute(self._insert_ignoring_duplicates(EmbeddingRow), list(chunk))

    def _insert_ignoring_duplicates(self, model: type) -> Any:
        # Two processes may embed the same text at once; the second write is a no-op.
        if self.dialect == "postgresql":
            return postgresql.insert(model).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite.insert(model).on_conflict_do_nothing()
        return model.__table__.insert().prefix_with("IGNORE")

    def count_embeddings(self, model_id: str | None = None) -> int:
        with self._tx() as session:
            query = select(func.count()).select_from(EmbeddingRow)
            if model_id is not None:
                query = query.where(EmbeddingRow.model_id == model_id)
            return int(session.scalar(query) or 0)

    # --- runs ------------------------------------------------------------------------------

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
            return row.id

    def get_run(self, run_id: int) -> RunInfo:
        with self._tx() as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise NotFoundError(f"no run #{run_id}; `corpusmap runs` lists them")
            return _run_info(row, _load_structure(session, [row.id])[row.id])

    def list_runs(self, corpus_id: int | None = None) -> list[RunInfo]:
        with self._tx() as session:
            query = select(RunRow).order_by(RunRow.id.desc())
            if corpus_id is not None:
                query = query.where(RunRow.corpus_id == corpus_id)
            rows = session.scalars(query).all()
            structure = _load_structure(session, [r.id for r in rows])
            return [_run_info(r, structure[r.id]) for r in rows]

    def _update_run(self, run_id: int, **values: Any) -> None:
        with self._tx() as session:
            result = session.execute(update(RunRow).where(RunRow.id == run_id).values(**values))
            if result.rowcount == 0:
                raise NotFoundError(f"no run #{run_id}")

    def save_stage(self, run_id: int, stage: str, timings: dict[str, float]) -> None:
        self._update_run(run_id, stage=stage, timings=_json(timings), heartbeat_at=utcnow())

    def save_run_warnings(self, run_id: int, warnings: Sequence[str]) -> None:
        self._update_run(run_id, warnings=_json(list(warnings)))

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

    def claim_run(self, run: RunInfo, owner: str) -> bool:
        """Take over an unfinished run; False if another process changed it first.

        A compare-and-set on (status, owner, stage): of two processes resuming the same run at
        once, exactly one wins.
        """
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
            return result.rowcount == 1

    def save_metrics(self, run_id: int, metrics: dict[str, Any]) -> None:
        """The run's figures; rules, hierarchy, constraints or novelty passed here go to their
        own tables (``STRUCTURE_KEYS``), replacing what the run had of that kind."""
        metrics = dict(metrics)
        structure = {k: metrics.pop(k) for k in STRUCTURE_KEYS if k in metrics}
        with self._tx() as session:
            result = session.execute(
                update(RunRow).where(RunRow.id == run_id).values(metrics=_json(metrics))
            )
            if result.rowcount == 0:
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

    def save_rules(self, run_id: int, rules: dict[int, dict[str, Any]], level: int = 0) -> None:
        """Replace the run's keyword rules of one level (``ClusterRule.to_dict()`` per cluster)."""
        with self._tx() as session:
            _write_rules(session, run_id, rules, level)

    def save_hierarchy_info(self, run_id: int, hierarchy: dict[str, Any] | None) -> None:
        """How the run's parents were chosen (``Hierarchy.to_dict()`` and ``parent_id_base``)."""
        with self._tx() as session:
            _write_hierarchy(session, run_id, hierarchy)

    def save_constraint_results(self, run_id: int, report: dict[str, Any] | None) -> None:
        with self._tx() as session:
            _write_constraints(session, run_id, report)

    def save_novelty(self, run_id: int, novelty: dict[str, Any] | None) -> None:
        """``Novelty.to_dict()``: known clusters with their seed class, novel ones, purity."""
        with self._tx() as session:
            _write_novelty(session, run_id, novelty)

    def save_llm_usage(self, run_id: int, usage: dict[str, Any]) -> None:
        self._update_run(run_id, llm_usage=_json(usage))

    def update_run_config(self, run_id: int, config: dict[str, Any]) -> None:
        self._update_run(run_id, config=_json(config))

    def finish_run(self, run_id: int) -> None:
        self._update_run(run_id, status="completed", stage="done", finished_at=utcnow(), error="")

    def fail_run(self, run_id: int, error: str) -> None:
        self._update_run(run_id, status="failed", error=error[:10_000], finished_at=utcnow())

    def rename_run(self, run_id: int, name: str) -> None:
        self._update_run(run_id, name=name)

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

    # --- assignments -----------------------------------------------------------------------

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
                session.execute(AssignmentRow.__table__.insert(), list(chunk))

    def count_assignments(self, run_id: int) -> int:
        with self._tx() as session:
            query = select(func.count()).select_from(AssignmentRow)
            return int(session.scalar(query.where(AssignmentRow.run_id == run_id)) or 0)

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
                changed += result.rowcount
        return changed

    # --- clusters --------------------------------------------------------------------------

    def save_clusters(
        self,
        run_id: int,
        summaries: Sequence[ClusterSummary],
        labels: Sequence[ClusterLabel] = (),
        *,
        level: int = 0,
        faithfulness: dict[int, float] | None = None,
    ) -> None:
        """Replace the run's clusters of one level with these summaries and labels; a cluster
        saved again keeps its ``edited`` and ``stale`` marks (a hierarchy added after edits)."""
        by_id = {lab.cluster_id: lab for lab in labels}
        faithfulness = faithfulness or {}
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
                        extra=_json({"neighbours": list(s.neighbours)}),
                        edited=marks.get(s.cluster_id, (False, False))[0],
                        stale=marks.get(s.cluster_id, (False, False))[1],
                    )
                )

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

    def load_clusters(self, run_id: int, level: int | None = 0) -> list[ClusterInfo]:
        with self._tx() as session:
            query = select(ClusterRow).where(ClusterRow.run_id == run_id)
            if level is not None:
                query = query.where(ClusterRow.level == level)
            rows = session.scalars(query.order_by(ClusterRow.level, ClusterRow.cluster_id)).all()
            return [_cluster_info(r) for r in rows]

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
            if result.rowcount == 0:
                raise NotFoundError(f"run #{run_id} has no cluster {cluster_id}")
            session.add(
                EditRow(
                    run_id=run_id,
                    kind="edit_label",
                    payload=_json({"cluster_id": cluster_id, **values}),
                )
            )

    def add_edit(self, run_id: int, kind: str, payload: dict[str, Any], sentence: str = "") -> int:
        """Log a change that undo does not cover (a relabel made outside ``corpusmap.edits``)."""
        with self._tx() as session:
            row = EditRow(run_id=run_id, kind=kind, payload=_json(payload), sentence=sentence)
            session.add(row)
            session.flush()
            return row.id

    def list_edits(self, run_id: int) -> list[EditInfo]:
        """The run's edit log, oldest first (undone edits included, marked)."""
        with self._tx() as session:
            rows = session.scalars(
                select(EditRow).where(EditRow.run_id == run_id).order_by(EditRow.id)
            ).all()
            return [_edit_info(r) for r in rows]

    def edit_version(self, run_id: int) -> str:
        """Changes with every edit, undo and redo (for display caches)."""
        with self._tx() as session:
            count, undone, last = session.execute(
                select(
                    func.count(EditRow.id),
                    func.sum(cast(EditRow.undone, Integer)),
                    func.max(EditRow.id),
                ).where(EditRow.run_id == run_id)
            ).one()
        return f"{count}:{undone or 0}:{last or 0}"

    # --- run state: what an edit changes, undo and redo ----------------------------------

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
            session.flush()
            return _edit_info(row)

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
            return _edit_info(row)

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
            return _edit_info(row)

    # --- LLM calls -------------------------------------------------------------------------

    def find_llm_call(self, cache_key: str) -> LLMCallRecord | None:
        """The latest successful call with this key, for answering an identical call."""
        with self._tx() as session:
            row = session.scalars(
                select(LLMCallRow)
                .where(LLMCallRow.cache_key == cache_key, LLMCallRow.status == "ok")
                .order_by(LLMCallRow.id.desc())
                .limit(1)
            ).first()
            return _llm_record(row) if row else None

    def add_llm_call(
        self,
        *,
        cache_key: str,
        model: str,
        base_url: str,
        request: str,
        response: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        status: str,
        error: str = "",
        run_id: int | None = None,
    ) -> int:
        with self._tx() as session:
            row = LLMCallRow(
                cache_key=cache_key,
                run_id=run_id,
                model=model,
                base_url=base_url,
                request=request,
                response=response,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_s=latency_s,
                status=status,
                error=error,
            )
            session.add(row)
            session.flush()
            return row.id

    def list_llm_calls(self, run_id: int | None = None) -> list[LLMCallRecord]:
        with self._tx() as session:
            query = select(LLMCallRow).order_by(LLMCallRow.id)
            if run_id is not None:
                query = query.where(LLMCallRow.run_id == run_id)
            return [_llm_record(r) for r in session.scalars(query).all()]

    # --- housekeeping ----------------------------------------------------------------------

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
