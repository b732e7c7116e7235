"""The Python API: the whole pipeline in a few lines from a notebook or a script.

import corpusmap
result = corpusmap.run("tickets.csv", goal="what the customer wants fixed")
result.clusters()          # one row per cluster
result.frame()             # every input row with cluster_id, cluster_label, ...
result.export("tickets_labeled.xlsx")

In team mode (``CORPUSMAP_TEAM=1``) give the user to act as: ``corpusmap.run(..., user="ana",
workspace="support")`` (or ``CORPUSMAP_USER`` / ``CORPUSMAP_WORKSPACE``); their role in the
workspace decides what they may do, and other workspaces' corpora and runs are "not found".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clustering import read_corpus
from clustering.types import Labeler, ProgressCallback, no_progress
from corpusmap import edits, llm_session, service, workflow
from corpusmap.errors import CorpusmapError
from corpusmap.export import export_format, write_table
from corpusmap.request import RunRequest, build_request
from corpusmap.team import TeamSettings, scoped_store
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
        # Cached per edit state: after an edit (or undo) the frame is read again (issue 15).
        version = (self.info.status, self.store.edit_version(self.run_id))
        if self._cache.get("frame_version") != version:
            self._cache["frame"] = service.labeled_frame(self.store, self.run_id)
            self._cache["frame_version"] = version
        return self._cache["frame"]

    # Edits (``corpusmap.edits``): each returns the sentence the run's edit log records.

    def rename(self, cluster_id: int, name: str, description: str | None = None) -> str:
        return edits.rename_cluster(
            self.store, self.run_id, cluster_id, name=name, description=description
        ).sentence

    def merge(self, *cluster_ids: int) -> str:
        return edits.merge_clusters(self.store, self.run_id, cluster_ids).sentence

    def take_coarse_grain(self) -> str:
        """Merge the clusters into the coarser grain the run offered, as one edit."""
        return edits.take_coarse_grain(self.store, self.run_id).sentence

    def split(self, cluster_id: int, n_parts: int = 2) -> str:
        return edits.split_cluster(self.store, self.run_id, cluster_id, n_parts).sentence

    def move(self, rows: list[int], cluster_id: int) -> str:
        """Move input rows (numbered from 0) to a cluster, or to -1 to mark them outliers."""
        return edits.move_rows(self.store, self.run_id, rows, cluster_id).sentence

    def undo(self) -> str:
        return edits.undo(self.store, self.run_id).sentence

    def redo(self) -> str:
        return edits.redo(self.store, self.run_id).sentence

    def edit_log(self) -> list[str]:
        return [
            edits.edit_sentence(e) + (" (undone)" if e.undone else "")
            for e in self.store.list_edits(self.run_id)
        ]

    def clusters(self) -> pd.DataFrame:
        return service.cluster_table(self.store, self.run_id)

    def export(self, path: str | Path) -> Path:
        frame = self.frame()
        what = "labeled corpus"  # the keys the app's downloads record too
        self.store.record_audit("export", "run", self.run_id, format=export_format(path), what=what)
        return write_table(frame, path)

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

    # --- clusters in context (issue 16; corpusmap.lens, corpusmap.assign) ---

    def lens(self, column: str, **options: Any) -> pd.DataFrame:
        """Over/under-represented groups of ``column`` per cluster (``lens.lens_table``)."""
        from corpusmap import lens

        return lens.lens_table(self.store, self.run_id, column, **options)

    def balance(self, column: str, **options: Any) -> pd.DataFrame:
        """Each cluster's and parent's balance on ``column`` (``lens.balance_report``)."""
        from corpusmap import lens

        return lens.balance_report(self.store, self.run_id, column, **options)

    def over_time(self, column: str, **options: Any) -> pd.DataFrame:
        """Clusters whose share rose or fell most over the date ``column`` (``lens.over_time``)."""
        from corpusmap import lens

        return lens.over_time(self.store, self.run_id, column, **options)

    def assign(self, source: str | Path, **options: Any) -> pd.DataFrame:
        """New rows placed into this run's clusters, the run unchanged (``assign.place_file``)."""
        from corpusmap import assign

        return assign.place_file(self.store, self.run_id, source, **options).frame


USER_ENV = "CORPUSMAP_USER"
WORKSPACE_ENV = "CORPUSMAP_WORKSPACE"


def open_store(
    db: str | None = None,
    *,
    user: str | None = None,
    workspace: str | None = None,
    store: Store | None = None,
) -> Store:
    """The store at ``db`` (or ``store``) acting as ``user`` in ``workspace`` when team mode is
    on (``CORPUSMAP_USER`` / ``CORPUSMAP_WORKSPACE`` when not given; refused if no user is
    named); the plain store in single-user mode (refused if one is). A store that already acts
    for someone is kept as it is unless a user or workspace is named."""
    if store is not None and store.access is not None and not (user or workspace):
        return store
    return scoped_store(
        store or Store.open(db),
        TeamSettings.load(),
        user or os.environ.get(USER_ENV) or None,
        workspace or os.environ.get(WORKSPACE_ENV) or None,
    )


def make_labeler(
    kind: str | Labeler | None,
    store: Store | None = None,
    llm_overrides: dict[str, Any] | None = None,
) -> Labeler:
    """``keywords`` (offline), ``llm`` (any OpenAI-compatible endpoint), or a Labeler object."""
    if kind is not None and not isinstance(kind, str):
        return kind
    return llm_session.make_labeler(
        kind or "keywords", store, llm_session.llm_settings_from(llm_overrides)
    )


def run(
    source: str | Path | None = None,
    request: RunRequest | None = None,
    *,
    db: str | None = None,
    store: Store | None = None,
    user: str | None = None,
    workspace: str | None = None,
    api_key: str | None = None,
    labeler: str | Labeler = "keywords",
    llm_overrides: dict[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> RunHandle:
    """Read a corpus file, store it, run it; returns the stored run.

    Give a ``RunRequest``, or the settings as keywords (``corpusmap.request.build_request``:
    ``goal``, ``n_clusters``, ``options=ModeOptions(mode="classify", ...)``, ``embedder``,
    ``label_column``, ``ray``...). ``labeler`` is ``"keywords"``, ``"llm"`` or a Labeler object;
    ``llm_overrides`` (``base_url``, ``model``, ``timeout_s``, ``max_in_flight``) and ``api_key``
    reach the LLM (the key is never stored). Every setting is checked before anything is stored.
    In team mode ``user`` (and ``workspace``) name who runs it (``open_store``).
    """
    overrides = dict(llm_overrides or {})
    api_key = api_key or overrides.pop("api_key", None)
    labeler_object = None if isinstance(labeler, str) else labeler
    if request is None:
        request = build_request(
            None if source is None else str(source),
            labeler=labeler if isinstance(labeler, str) else "keywords",
            llm=overrides,
            **settings,
        )
    elif source is not None or settings:
        raise CorpusmapError("give a RunRequest or the settings as keywords, not both")
    if request.source is None:
        raise CorpusmapError("api.run reads a corpus file: give its path (source)")
    configured = llm_session.llm_settings_from({**request.llm.overrides(), "api_key": api_key})
    request.validate(llm_configured=configured is not None)
    workflow.preload_model(request)  # while the file is read and stored
    store = open_store(db, user=user, workspace=workspace, store=store)
    corpus = read_corpus(request.source, text_column=request.text_column, sheet=request.sheet)
    check_corpus(request, corpus)  # fail before storing anything
    info = store.add_corpus(corpus)
    run_id = workflow.execute(
        store,
        request.for_corpus(info.id),
        api_key=api_key,
        labeler=labeler_object,
        progress=progress,
        on_plan=on_plan,
    )
    return RunHandle(store, run_id, info)


def check_corpus(request: RunRequest, corpus: Any) -> None:
    """The columns the request names exist in the corpus (one sentence when one does not)."""
    columns = [str(c) for c in corpus.frame.columns]
    named = {
        "label column": request.label_column,
        "seed label column": request.options.seed_label_column,
    }
    for what, column in named.items():
        if column and column not in columns:
            raise CorpusmapError(f"no {what} {column!r}; the corpus has: {', '.join(columns)}")


def open_run(
    run_id: int,
    db: str | None = None,
    *,
    user: str | None = None,
    workspace: str | None = None,
) -> RunHandle:
    """A stored run, by id (in team mode, as ``user`` in ``workspace``: ``open_store``)."""
    store = open_store(db, user=user, workspace=workspace)
    info = store.get_run(run_id)
    return RunHandle(store, run_id, store.get_corpus(info.corpus_id))
