"""What the store hands out: frozen records of corpora, runs, clusters, edits and LLM calls,
read from their rows; and the small helpers every part of the store shares."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from clustering.cached_embedding import text_hash
from clustering.types import ClusterLabel, Corpus
from storage.models import (
    ClusterRow,
    CorpusRow,
    EditRow,
    LLMCallRow,
    RunRow,
)

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


def _rowcount(result: Any) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` is typed as a plain ``Result``)."""
    return int(result.rowcount)
