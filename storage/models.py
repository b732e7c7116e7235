"""ORM tables. The schema changes only through migrations (storage/migrations/versions)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class CorpusRow(Base):
    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(500))
    format: Mapped[str] = mapped_column(String(20))
    encoding: Mapped[str] = mapped_column(String(40))
    text_column: Mapped[str] = mapped_column(String(500))
    columns: Mapped[str] = mapped_column(Text)
    """JSON list of every input column, in input order."""
    n_rows: Mapped[int] = mapped_column(Integer)
    n_empty: Mapped[int] = mapped_column(Integer)
    n_duplicates: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    warnings: Mapped[str] = mapped_column(Text, default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_corpus_position", "corpus_id", "position", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    """0-based row number in the input file."""
    text: Mapped[str] = mapped_column(Text)
    """Cleaned text; "" for rows without a usable text (kept so exports hold every row)."""
    text_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[str] = mapped_column(Text)
    """JSON object of the row's cells, the raw text cell included."""


class EmbeddingRow(Base):
    __tablename__ = "embeddings"

    model_id: Mapped[str] = mapped_column(String(500), primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    """float32, little-endian."""


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_corpus_status", "corpus_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default="running")
    """running, completed or failed."""
    stage: Mapped[str] = mapped_column(String(40), default="")
    """The last stage saved."""
    mode: Mapped[str] = mapped_column(String(20), default="cluster")
    goal: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    embedder: Mapped[str] = mapped_column(String(500))
    labeler: Mapped[str] = mapped_column(String(100))
    label_column: Mapped[str] = mapped_column(String(500), default="")
    versions: Mapped[str] = mapped_column(Text, default="{}")
    timings: Mapped[str] = mapped_column(Text, default="{}")
    metrics: Mapped[str] = mapped_column(Text, default="{}")
    llm_usage: Mapped[str] = mapped_column(Text, default="{}")
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    warnings: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    """JSON list of what the user should know about the run (long texts cut, language...)."""
    owner: Mapped[str] = mapped_column(String(300), default="", server_default="")
    """``host:pid`` of the process working on the run; a resume never takes a live one's run."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    """Last time the owner saved a stage."""


class ClusterRow(Base):
    __tablename__ = "clusters"
    __table_args__ = (Index("ix_clusters_run_cluster", "run_id", "cluster_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    cluster_id: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    level: Mapped[int] = mapped_column(Integer, default=0)
    """0 for leaf clusters; 1 for parent groups of a hierarchy."""
    size: Mapped[int] = mapped_column(Integer)
    share: Mapped[float] = mapped_column(Float)
    keywords: Mapped[str] = mapped_column(Text, default="[]")
    representatives: Mapped[str] = mapped_column(Text, default="[]")
    name: Mapped[str] = mapped_column(String(500), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    inclusion_criterion: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="[]")
    label_status: Mapped[str] = mapped_column(String(20), default="pending")
    label_error: Mapped[str] = mapped_column(Text, default="")
    labeler: Mapped[str] = mapped_column(String(100), default="")
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    """Members changed since the label was written: relabel to refresh it."""
    faithfulness: Mapped[float | None] = mapped_column(Float, nullable=True)
    extra: Mapped[str] = mapped_column(Text, default="{}")


class AssignmentRow(Base):
    __tablename__ = "assignments"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    cluster_id: Mapped[int] = mapped_column(Integer)
    probability: Mapped[float] = mapped_column(Float)
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)


class LLMCallRow(Base):
    __tablename__ = "llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), index=True)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True, index=True
    )
    model: Mapped[str] = mapped_column(String(500))
    base_url: Mapped[str] = mapped_column(String(1000), default="")
    request: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text, default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EditRow(Base):
    __tablename__ = "edits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
