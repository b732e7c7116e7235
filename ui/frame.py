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
from streamlit.navigation.page import StreamlitPage

from ui import keys, resources
from ui.widgets import LINKS, PAGES, follow_links

ENTRY_SCRIPT = "app.py"
_navigation_ran = threading.Event()
"""Set by the frame once ``st.navigation`` has run in this server process."""


def navigation_ran() -> None:
    """Call in the frame right after ``st.navigation``."""
    _navigation_ran.set()


def require(page_file: str) -> None:
    """Call first in every page with its ``__file__``: before any navigation, go to the frame,
    which comes back to this page (``resume``); then follow a ``?run=`` or ``?corpus=`` link
    the frame has not followed yet."""
    if not _navigation_ran.is_set():
        st.session_state[keys.DEEP_LINK] = f"pages/{Path(page_file).name}"
        st.switch_page(ENTRY_SCRIPT)
    if any(name in st.query_params for name in LINKS):
        follow_links(resources.store())


def resume() -> None:
    """In the frame, after ``st.navigation``: open the page a first deep link asked for."""
    navigation_ran()
    page = st.session_state.pop(keys.DEEP_LINK, None)
    if page:
        st.switch_page(page)


def pages(team: bool, signed_out: bool = False) -> dict[str, list[StreamlitPage]]:
    """The navigation: every screen, and in team mode the Team page. ``signed_out``: the gate
    holds the navigation (hidden, nothing run) with a sign-in page as the default, so the
    address "/" shows the sign-in and a deep link keeps its page for after it."""
    sections: dict[str, list[StreamlitPage]] = {}
    if signed_out:
        sections["Account"] = [
            st.Page(_sign_in, title="Sign in", icon=":material/login:", default=True)
        ]
    sections |= {
        "Data": [
            st.Page(
                PAGES["corpus"],
                title="Corpus",
                icon=":material/upload_file:",
                default=not signed_out,
            ),
            st.Page(PAGES["run"], title="Run", icon=":material/play_arrow:"),
        ],
        "Results": [
            st.Page(PAGES["explore"], title="Explore", icon=":material/scatter_plot:"),
            st.Page(PAGES["lens"], title="Context", icon=":material/filter_alt:"),
            st.Page(PAGES["edit"], title="Edit", icon=":material/edit:"),
            st.Page(PAGES["export"], title="Export", icon=":material/download:"),
        ],
        "Runs": [
            st.Page(PAGES["history"], title="History", icon=":material/history:"),
            st.Page(PAGES["evaluation"], title="Evaluation", icon=":material/fact_check:"),
        ],
    }
    if team:
        sections["Workspace"] = [st.Page(PAGES["team"], title="Team", icon=":material/group:")]
    return sections


def _sign_in() -> None:
    """The sign-in page's place in the navigation; the gate draws the form itself."""
