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


class WorkspaceRow(Base):
    """A team's space: every corpus (and through it every run, edit and export) and every LLM
    call belongs to one. Single-user mode keeps everything in the first one (id 1)."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    storage_quota_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Texts and cells the workspace may store, in MB (None: no limit)."""
    llm_calls_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """LLM calls the workspace's runs may send per UTC day (None: no limit)."""
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class UserRow(Base):
    """A person who signs in: a built-in account (argon2id hash) or an OpenID Connect one."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(320), unique=True)
    """The built-in account's name, or the OpenID Connect e-mail (else subject)."""
    display_name: Mapped[str] = mapped_column(String(300), default="")
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    """argon2id hash; None for accounts that sign in through an identity provider."""
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class MembershipRow(Base):
    __tablename__ = "memberships"

    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(20))
    """viewer, editor or admin (``storage.access.ROLES``)."""


class AuthSessionRow(Base):
    """A built-in sign-in: only the SHA-256 of its random token is stored."""

    __tablename__ = "auth_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class SignInAttemptRow(Base):
    """A failed built-in sign-in, per account and per client, for throttling."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(400))
    """``user:<name>`` or ``client:<address>``."""
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuditRow(Base):
    """Who uploaded, ran, edited, exported or deleted what, and when."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_workspace_at", "workspace_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    workspace_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """No foreign key: the trail outlives what it names."""
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(40))
    """upload, run, edit, export, delete, member, sign-in..."""
    object_kind: Mapped[str] = mapped_column(String(20), default="")
    object_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class CorpusRow(Base):
    __tablename__ = "corpora"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(Integer, index=True, default=1, server_default="1")
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
    next_cluster_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The id the next cluster an edit creates gets; it only grows, so an id is never reused
    within a run (0: no edit yet, the next id is one above the stored ones)."""


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
    workspace_id: Mapped[int] = mapped_column(Integer, index=True, default=1, server_default="1")
    """The workspace whose run sent it: its cache answers only that workspace."""
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
    sentence: Mapped[str] = mapped_column(Text, default="", server_default="")
    """The edit in words, as the log shows it."""
    undone: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    before: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """zlib-compressed JSON of the run's state before the edit (``corpusmap.edits``): undo."""
    after: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """The same after the edit: redo."""


class RuleRow(Base):
    """A cluster's keyword rule (``clustering.rules``), leaves and parents alike."""

    __tablename__ = "cluster_rules"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[int] = mapped_column(Integer, default=0)
    rule: Mapped[str] = mapped_column(Text, default="")
    precision: Mapped[float | None] = mapped_column(Float, nullable=True)
    recall: Mapped[float | None] = mapped_column(Float, nullable=True)


class HierarchyRow(Base):
    """How a run's hierarchy was chosen. The parents themselves are the run's level-1
    ``clusters`` (id, name, size) and each leaf names its parent in ``clusters.parent_id``."""

    __tablename__ = "hierarchies"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    n_parents: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(40), default="")
    choice: Mapped[str] = mapped_column(Text, default="{}")
    """JSON of ``clustering.hierarchy.KChoice`` (k, scores per k, method)."""
    parent_id_base: Mapped[int] = mapped_column(Integer, default=0)


class ConstraintResultRow(Base):
    """How many seed and pair constraints a semi-supervised run's clusters keep."""

    __tablename__ = "constraint_results"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    n_seeds: Mapped[int] = mapped_column(Integer, default=0)
    n_seed_classes: Mapped[int] = mapped_column(Integer, default=0)
    must_link_held: Mapped[int] = mapped_column(Integer, default=0)
    must_link_total: Mapped[int] = mapped_column(Integer, default=0)
    cannot_link_held: Mapped[int] = mapped_column(Integer, default=0)
    cannot_link_total: Mapped[int] = mapped_column(Integer, default=0)
    seeds_together: Mapped[int] = mapped_column(Integer, default=0)
    seeds_total: Mapped[int] = mapped_column(Integer, default=0)
    satisfied_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    """An edit changed the clusters and the constraints could not be checked again (seeds
    typed by hand or pairs from a file are not stored): the figures are from before it."""


class NoveltyRow(Base):
    """Per cluster of a seeded run: the seed class most of its seeds carry, or none (novel)."""

    __tablename__ = "cluster_novelty"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed_class: Mapped[str | None] = mapped_column(Text, nullable=True)
    """``None``: no seeded text is in the cluster (a class nobody named)."""
    purity: Mapped[float | None] = mapped_column(Float, nullable=True)
