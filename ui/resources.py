"""Process-wide resources, created once per server process (st.cache_resource): the store (one
engine per database URL), the embedding model, and the registry of background runs."""

from __future__ import annotations

import streamlit as st

from corpusmap import service
from storage import Store, default_database_url
from ui.runs import RunRegistry


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
