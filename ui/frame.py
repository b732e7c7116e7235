"""Keep every page inside ``app.py``'s frame, deep links included.

Until some session has run ``st.navigation``, Streamlit serves the ``pages/`` folder the legacy
way: the very first request of a fresh server to a deep link such as ``/run`` runs that page on
its own, without the frame (no page config, sidebar pickers or warm-up). From the first
``st.navigation`` on, the folder is ignored for every session, and pages only run inside the
frame. So a page that runs before any navigation sends the browser to the frame, which switches
Streamlit to its navigation and then opens the page that was asked for.
"""

from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from ui import keys

ENTRY_SCRIPT = "app.py"
_navigation_ran = threading.Event()
"""Set by the frame once ``st.navigation`` has run in this server process."""


def navigation_ran() -> None:
    """Call in the frame right after ``st.navigation``."""
    _navigation_ran.set()


def require(page_file: str) -> None:
    """Call first in every page with its ``__file__``: before any navigation, go to the frame,
    which comes back to this page (``resume``)."""
    if not _navigation_ran.is_set():
        st.session_state[keys.DEEP_LINK] = f"pages/{Path(page_file).name}"
        st.switch_page(ENTRY_SCRIPT)


def resume() -> None:
    """In the frame, after ``st.navigation``: open the page a first deep link asked for."""
    navigation_ran()
    page = st.session_state.pop(keys.DEEP_LINK, None)
    if page:
        st.switch_page(page)
