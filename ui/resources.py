"""Process-wide resources, created once per server process (st.cache_resource): the store (one
engine per database URL), the embedding model, and the registry of background runs."""

from __future__ import annotations

import logging
import threading

import streamlit as st

from corpusmap import runs, service
from storage import Store, default_database_url
from ui.runs import RunRegistry

log = logging.getLogger(__name__)


def database_url() -> str:
    """CORPUSMAP_DATABASE_URL, else the default file under CORPUSMAP_HOME (~/.corpusmap)."""
    return default_database_url()


@st.cache_resource(show_spinner="Opening the database…")
def store_for(url: str) -> Store:
    return Store.open(url)


def store() -> Store:
    return store_for(database_url())


@st.cache_resource(show_spinner="Loading the embedding model…")
def embedder(model: str | None = None):  # type: ignore[no-untyped-def]
    return service.get_embedder(model)


@st.cache_resource
def run_registry() -> RunRegistry:
    return RunRegistry()


@st.cache_resource(show_spinner=False)
def warm_up() -> threading.Thread:
    """Once per server process, in the background: load the model and compile UMAP while the
    user uploads a corpus, so the first run starts warm."""
    registry = run_registry()
    model = embedder(None)

    def work() -> None:
        log.info("warming up: loading the embedding model, compiling UMAP")
        with registry.exclusive():
            seconds = runs.warm_up(model)
            registry.reduce_compiled = True
        log.info("warmed up the embedding model and UMAP in %.1f s", seconds)

    thread = threading.Thread(target=work, name="corpusmap-warm-up", daemon=True)
    thread.start()
    return thread
