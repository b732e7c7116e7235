"""Display data of a run, cached by simple values (st.cache_data): the database URL, the run id
and the run's version, which changes with every stored edit and stage, so an edit is never
hidden by the cache and a rerun never recomputes what did not change."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from corpusmap import explore, plan
from corpusmap.request import RunRequest
from storage import RunInfo
from ui import resources


def run_version(run: RunInfo) -> str:
    """Changes with every stored stage and edit, and when a hierarchy or rules are added."""
    edits = resources.store().edit_version(run.id)
    added = f"{'h' if run.hierarchy else ''}{'r' if run.rules else ''}"
    return f"{run.status}:{run.stage}:{edits}:{added}"


@st.cache_data(max_entries=16, show_spinner=False)
def map_points(url: str, run_id: int, version: str) -> pd.DataFrame:
    return explore.map_points(resources.store_for(url), run_id)


@st.cache_data(max_entries=16, show_spinner=False)
def cluster_overview(url: str, run_id: int, version: str) -> pd.DataFrame:
    return explore.cluster_overview(resources.store_for(url), run_id)


def run_frames(run: RunInfo) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(map points, cluster table in similarity order) of a run, from the cache."""
    url, version = resources.database_url(), run_version(run)
    return map_points(url, run.id, version), cluster_overview(url, run.id, version)


@st.cache_data(max_entries=8, show_spinner=False)
def corpus_sample(url: str, corpus_id: int, n: int = 200) -> list[str]:
    """The first ``n`` non-empty texts of a corpus (for estimates)."""
    corpus = resources.store_for(url).load_corpus(corpus_id)
    return [t for t in corpus.texts if t][:n]


@st.cache_data(max_entries=4, show_spinner=False)
def corpus_texts(url: str, corpus_id: int) -> list[str]:
    """Every row's text in input order (empty ones too, so list positions are row numbers)."""
    return list(resources.store_for(url).load_corpus(corpus_id).texts)


@st.cache_data(max_entries=32, show_spinner=False)
def mode_plan(
    url: str,
    request: RunRequest,
    n_runs: int,
    _llm_settings: object | None = None,
) -> dict:
    """The LLM budget a run would plan (``corpusmap.plan.plan_for_corpus``); keyed by the
    request and the corpus's run count (a run fills the keyphrase cache), not by the settings,
    which hold the API key."""
    return plan.plan_for_corpus(resources.store_for(url), request, llm_settings=_llm_settings)
