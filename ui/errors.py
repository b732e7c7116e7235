"""Our errors become an st.error with their message; anything else surfaces as a bug."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from clustering import ClusteringError
from corpusmap import CorpusmapError
from llm import LLMError
from storage import StorageError

USER_ERRORS: tuple[type[Exception], ...] = (
    ClusteringError,
    CorpusmapError,
    LLMError,
    StorageError,
)
"""Errors whose message tells the user what to do: bad input, bad settings, missing things."""


@contextmanager
def user_errors(what: str = "") -> Iterator[None]:
    """Show our errors as ``st.error`` (with what was being done) instead of a traceback."""
    try:
        yield
    except USER_ERRORS as err:
        st.error(f"{what}: {err}" if what else str(err), icon=":material/error:")
