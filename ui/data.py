"""Display data of a run, cached by simple values (st.cache_data): the database URL, who is
asking, the run id and the run's version, which changes with every stored edit and stage, so an
edit is never hidden by the cache and a rerun never recomputes what did not change.

Who is asking (``ui.resources.access()``: the signed-in user's ``Access`` in team mode, None in
single-user mode) is part of every key, and each function reads through the store scoped to it:
a frame cached for one user's run is never served to a user of another workspace, and a cached
read still passes the workspace check the first time it is computed for that user."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from corpusmap import explore, plan
from corpusmap.request import RunRequest
from storage import RunInfo
from storage.access import Access
from ui import resources


def run_version(run: RunInfo) -> str:
    """Changes with every stored stage and edit, and when a hierarchy or rules are added."""
    edits = resources.store().edit_version(run.id)
    added = f"{'h' if run.hierarchy else ''}{'r' if run.rules else ''}"
    return f"{run.status}:{run.stage}:{edits}:{added}"


@st.cache_data(max_entries=16, show_spinner=False)
def map_points(url: str, who: Access | None, run_id: int, version: str) -> pd.DataFrame:
    return explore.map_points(resources.scoped_store(url, who), run_id)


@st.cache_data(max_entries=16, show_spinner=False)
def cluster_overview(url: str, who: Access | None, run_id: int, version: str) -> pd.DataFrame:
    return explore.cluster_overview(resources.scoped_store(url, who), run_id)


def run_frames(run: RunInfo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(map points, cluster table in similarity order) of a run, from the cache."""
    url, who, version = resources.database_url(), resources.access(), run_version(run)
    return map_points(url, who, run.id, version), cluster_overview(url, who, run.id, version)


@st.cache_data(max_entries=8, show_spinner=False)
def _corpus_sample(url: str, who: Access | None, corpus_id: int, n: int) -> list[str]:
    corpus = resources.scoped_store(url, who).load_corpus(corpus_id)
    return [t for t in corpus.texts if t][:n]


def corpus_sample(corpus_id: int, n: int = 200) -> list[str]:
    """The first ``n`` non-empty texts of a corpus (for estimates)."""
    return _corpus_sample(resources.database_url(), resources.access(), corpus_id, n)


@st.cache_data(max_entries=4, show_spinner=False)
def _corpus_texts(url: str, who: Access | None, corpus_id: int) -> list[str]:
    return list(resources.scoped_store(url, who).load_corpus(corpus_id).texts)


def corpus_texts(corpus_id: int) -> list[str]:
    """Every row's text in input order (empty ones too, so list positions are row numbers)."""
    return _corpus_texts(resources.database_url(), resources.access(), corpus_id)


@st.cache_data(max_entries=32, show_spinner=False)
def _mode_plan(
    url: str,
    who: Access | None,
    request: RunRequest,
    n_runs: int,
    _llm_settings: object | None = None,
) -> dict:
    return plan.plan_for_corpus(
        resources.scoped_store(url, who), request, llm_settings=_llm_settings
    )


def mode_plan(request: RunRequest, n_runs: int, llm_settings: object | None = None) -> dict:
    """The LLM budget a run would plan (``corpusmap.plan.plan_for_corpus``); keyed by who asks,
    the request and the corpus's run count (a run fills the keyphrase cache), not by the
    settings, which hold the API key."""
    return _mode_plan(resources.database_url(), resources.access(), request, n_runs, llm_settings)
