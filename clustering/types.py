"""The values that flow between pipeline stages, and the Protocols of the stages.

Every stage takes and returns these frozen dataclasses, so a stage can be swapped for any
object with the same shape (an identity reducer, a k-means clusterer, an LLM labeler).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

NOISE = -1
"""Cluster id of outliers everywhere: in assignments, exports and metrics."""


@dataclass(frozen=True)
class Corpus:
    """A table of texts as read from a file.

    ``frame`` holds every input row in input order, every original column kept. ``texts`` is the
    cleaned text of each row ("" where the row had no usable text); rows with an empty text are
    kept in ``frame`` (so exports hold every input row) but never embedded or clustered.
    """

    name: str
    frame: pd.DataFrame
    text_column: str
    texts: list[str]
    encoding: str = "utf-8"
    format: str = "csv"
    warnings: tuple[str, ...] = ()

    @property
    def n_rows(self) -> int:
        return len(self.texts)

    @property
    def nonempty_index(self) -> np.ndarray:
        """Row positions whose text is not empty, in input order."""
        return np.array([i for i, t in enumerate(self.texts) if t], dtype=np.int64)

    @property
    def n_empty(self) -> int:
        return sum(1 for t in self.texts if not t)

    @property
    def n_duplicates(self) -> int:
        """Non-empty rows whose text already appeared earlier in the corpus."""
        nonempty = [t for t in self.texts if t]
        return len(nonempty) - len(set(nonempty))

    @property
    def metadata_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.text_column]


@dataclass(frozen=True)
class Assignment:
    """Cluster of every clustered text: ids are 0..K-1 by decreasing size, -1 is noise."""

    labels: np.ndarray
    probabilities: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len({int(x) for x in self.labels if x != NOISE})

    @property
    def noise_share(self) -> float:
        return float(np.mean(self.labels == NOISE)) if len(self.labels) else 0.0


@dataclass(frozen=True)
class ClusterSummary:
    """What a labeler may know of one cluster: never the pipeline, never the embeddings."""

    cluster_id: int
    size: int
    share: float
    keywords: tuple[str, ...]
    representatives: tuple[str, ...]
    goal: str | None = None
    neighbours: tuple[int, ...] = ()
    """Ids of the nearest other clusters (for contrast in a prompt)."""
    neighbour_keywords: tuple[tuple[str, ...], ...] = ()
    parent_id: int | None = None


@dataclass(frozen=True)
class ClusterLabel:
    cluster_id: int
    name: str
    description: str
    inclusion_criterion: str = ""
    evidence: tuple[int, ...] = ()
    status: str = "ok"
    """``ok`` for a label from its labeler, ``keywords`` for the offline labeler,
    ``llm_failed`` where an LLM was asked and the keyword label stands in (see ``error``)."""
    error: str = ""
    labeler: str = "keywords"


@dataclass(frozen=True)
class StageTiming:
    stage: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """Everything a run produced, aligned to ``Corpus.nonempty_index``."""

    assignment: Assignment
    coords: np.ndarray
    summaries: tuple[ClusterSummary, ...]
    labels: tuple[ClusterLabel, ...]
    metrics: dict[str, Any]
    timings: tuple[StageTiming, ...]
    config: dict[str, Any]

    def label_of(self, cluster_id: int) -> ClusterLabel | None:
        return next((lab for lab in self.labels if lab.cluster_id == cluster_id), None)


ProgressCallback = Callable[[str, float, str], None]
"""``progress(stage, fraction_done, message)``: the UI adapts it to progress bars."""


def no_progress(stage: str, fraction: float, message: str) -> None:
    """The default progress callback: does nothing."""


@runtime_checkable
class Embedder(Protocol):
    @property
    def model_id(self) -> str:
        """Names what made the vectors (model, instruction prefix, expansion). Read-only, so
        the embedders' properties satisfy it."""
        ...

    @property
    def cache_key(self) -> str:
        """The embedding cache's key: ``model_id`` plus the numeric precision the vectors were
        computed in, so vectors of two precisions never mix (issue #13)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


class EmbeddingCache(Protocol):
    """Where vectors are kept between runs, keyed by (model id, sha256 of the text)."""

    def get_embeddings(self, model_id: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_embeddings(self, model_id: str, items: dict[str, np.ndarray]) -> None: ...


class Reducer(Protocol):
    def fit_transform(self, X: np.ndarray) -> np.ndarray: ...


class Clusterer(Protocol):
    def fit_predict(self, X: np.ndarray) -> Assignment: ...


class Labeler(Protocol):
    """Names and explains clusters from their summaries. A labeler that asks an LLM records
    its calls against the run it is bound to and reports what it used; an offline one binds
    to nothing, uses nothing and has nothing to close."""

    name: str

    def label(self, summaries: Sequence[ClusterSummary]) -> list[ClusterLabel]: ...

    def bind_run(self, run_id: int) -> None: ...

    def usage_dict(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
