"""Labelers as the app offers them: offline keywords, or an LLM at an OpenAI-compatible endpoint.

The API key is passed in by the caller (from the environment or Streamlit secrets) and lives
only in the labeler's settings: it is never stored in the database or shown.
"""

from __future__ import annotations

from typing import Any

from clustering.types import Labeler
from corpusmap.api import make_labeler
from llm.settings import DEFAULT_MODEL as DEFAULT_LLM_MODEL
from storage import Store

KEYWORDS = "keywords"
LLM = "llm"

__all__ = ["DEFAULT_LLM_MODEL", "KEYWORDS", "LLM", "build_labeler", "llm_settings"]


def build_labeler(
    kind: str,
    store: Store,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> Labeler:
    """The offline keyword labeler, or an LLM labeler bound to ``store``."""
    overrides = {"base_url": base_url or None, "model": model or None, "api_key": api_key or None}
    return make_labeler(kind, store, overrides)


def llm_settings(
    kind: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
) -> Any | None:
    """The endpoint of the goal-driven steps (``llm.LLMSettings``), or ``None`` for keywords or
    when no endpoint or key is set (the modes then run on embeddings alone)."""
    if kind == KEYWORDS:
        return None
    from corpusmap.llm_session import llm_settings_from

    return llm_settings_from(
        {"base_url": base_url or None, "model": model or None, "api_key": api_key or None}
    )
