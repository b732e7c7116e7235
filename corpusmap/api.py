"""The Python API: the whole pipeline in a few lines from a notebook or a script.

    import corpusmap
    result = corpusmap.run("tickets.csv", goal="what the customer wants fixed")
    result.clusters()          # one row per cluster
    result.frame()             # every input row with cluster_id, cluster_label, ...
    result.export("tickets_labeled.xlsx")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clustering import PipelineConfig, read_corpus
from clustering.types import Labeler, ProgressCallback, no_progress
from corpusmap import service
from corpusmap.errors import CorpusmapError
from corpusmap.export import write_table
from storage import CorpusInfo, RunInfo, Store


@dataclass
class RunHandle:
    """A stored run, with shortcuts to read and export it."""

    store: Store
    run_id: int
    corpus_info: CorpusInfo
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def info(self) -> RunInfo:
        return self.store.get_run(self.run_id)

    @property
    def metrics(self) -> dict[str, Any]:
        return self.info.metrics

    def frame(self) -> pd.DataFrame:
        if "frame" not in self._cache:
            self._cache["frame"] = service.labeled_frame(self.store, self.run_id)
        return self._cache["frame"]

    def clusters(self) -> pd.DataFrame:
        return service.cluster_table(self.store, self.run_id)

    def export(self, path: str | Path) -> Path:
        return write_table(self.frame(), path)

    def summary(self) -> dict[str, Any]:
        info = self.info
        return {
            "run_id": info.id,
            "corpus_id": info.corpus_id,
            "status": info.status,
            "texts": self.corpus_info.n_rows - self.corpus_info.n_empty,
            "rows": self.corpus_info.n_rows,
            "empty_rows": self.corpus_info.n_empty,
            "duplicates": self.corpus_info.n_duplicates,
            "metrics": {k: v for k, v in info.metrics.items() if k != "silhouette_per_cluster"},
            "timings": info.timings,
            "llm_usage": info.llm_usage,
        }


def make_labeler(
    kind: str | Labeler | None, store: Store | None = None, llm_overrides: dict[str, Any] | None = None
) -> Labeler | None:
    """``keywords`` (offline), ``llm`` (any OpenAI-compatible endpoint), or a Labeler object."""
    if kind is None or kind == "keywords":
        return None
    if not isinstance(kind, str):
        return kind
    if kind != "llm":
        raise CorpusmapError(f"unknown labeler {kind!r}; use 'keywords' or 'llm'")
    from llm import LLMLabeler, LLMSettings

    settings = LLMSettings.from_env(**{k: v for k, v in (llm_overrides or {}).items() if v is not None})
    if not settings.configured:
        raise CorpusmapError(
            "LLM labels need an endpoint: set OPENAI_BASE_URL (and OPENAI_API_KEY if it needs "
            "one), pass --llm-base-url, or fill in the app's Endpoint field; `corpusmap llm "
            "serve` starts a local one"
        )
    return LLMLabeler(settings, store=store)


def run(
    source: str | Path,
    *,
    text_column: str | None = None,
    goal: str | None = None,
    n_clusters: int | None = None,
    config: PipelineConfig | None = None,
    embedder: str | None = None,
    labeler: str | Labeler | None = "keywords",
    label_column: str | None = None,
    db: str | None = None,
    store: Store | None = None,
    sheet: str | None = None,
    llm_overrides: dict[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
    ray: str | None = None,
) -> RunHandle:
    """Read a corpus file, store it, cluster it, label the clusters; returns the stored run.

    ``ray`` (``"auto"`` or a cluster address) embeds and assigns on a Ray cluster
    (``corpusmap.distributed``); the results land in the same store.
    """
    if config is None:
        config = PipelineConfig(n_clusters=n_clusters, goal=goal)
    store = store or Store.open(db)
    corpus = read_corpus(source, text_column=text_column, sheet=sheet)
    if label_column:
        service.truth_column(corpus, label_column)  # fail before storing anything
    chosen = make_labeler(labeler, store, llm_overrides)  # a bad setting fails before any write
    info = store.add_corpus(corpus)
    chosen_embedder = service.get_embedder(embedder) if embedder else None
    batch_mapper = None
    if ray:
        from corpusmap import distributed

        distributed.connect(ray)
        chosen_embedder = distributed.RayEmbedder(embedder)
        batch_mapper = distributed.RayBatchMapper()
    run_id = service.cluster_corpus(
        store,
        info.id,
        config=config,
        embedder=chosen_embedder,
        labeler=chosen,
        label_column=label_column,
        progress=progress,
        batch_mapper=batch_mapper,
    )
    return RunHandle(store, run_id, info)


def open_run(run_id: int, db: str | None = None) -> RunHandle:
    """A stored run, by id."""
    store = Store.open(db)
    info = store.get_run(run_id)
    return RunHandle(store, run_id, store.get_corpus(info.corpus_id))
