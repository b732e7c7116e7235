"""Process-wide resources, created once per server process (st.cache_resource): the store (one
engine per database URL), the embedding model, and the registry of background runs.

In team mode every page reaches the database through ``store()``, which is the store scoped to
the signed-in user's workspace and role (``Store.scoped``): an id of another workspace is "not
found" whatever page asks for it, and a page that forgets a role check is refused by the store.
"""

from __future__ import annotations

import logging
import threading

import streamlit as st

from corpusmap import runs, service
from storage import Store, default_database_url
from storage.access import Access, Need
from ui import keys, settings
from ui.runs import RunRegistry

log = logging.getLogger(__name__)


def database_url() -> str:
    """CORPUSMAP_DATABASE_URL, else the default file under CORPUSMAP_HOME (~/.corpusmap)."""
    return default_database_url()


@st.cache_resource(show_spinner="Opening the database…")
def store_for(url: str) -> Store:
    return Store.open(url)


def plain_store() -> Store:
    """The unscoped store: single-user mode, and team mode's sign-in (users belong to no
    workspace). Pages never use it: they use ``store()``."""
    return store_for(database_url())


def access() -> Access | None:
    """Who is asking: in team mode the signed-in user in their workspace with their role (set by
    the gate in ``app.py`` on every rerun), and a page run with no one signed in (which the gate
    prevents) stops here rather than see every workspace; None in single-user mode."""
    if not settings.team_settings().team:
        return None
    current = st.session_state.get(keys.ACCESS)
    if current is None:
        st.stop()
    return current


def store() -> Store:
    """The store every page uses: in team mode scoped to ``access()``."""
    return plain_store().scoped(access())


def scoped_store(url: str, who: Access | None) -> Store:
    """The store of ``url`` acting for ``who``: what cached functions build from their key, so
    a cached read still goes through the workspace check (None: single-user mode)."""
    return store_for(url).scoped(who)


def allows(need: Need) -> bool:
    """Whether the signed-in user's role allows ``need`` (always in single-user mode): pages
    hide the buttons a role cannot use; the scoped store refuses them anyway."""
    current = access()
    return current is None or current.allows(need)


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
