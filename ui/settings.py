"""Settings the app reads from Streamlit's config, the environment and st.secrets."""

from __future__ import annotations

import os

import streamlit as st

from corpusmap.labelers import DEFAULT_LLM_MODEL
from corpusmap.team import TeamSettings

API_KEY_NAME = "OPENAI_API_KEY"
BASE_URL_NAME = "OPENAI_BASE_URL"
MODEL_NAME = "CORPUSMAP_LLM_MODEL"
POLL_SECONDS = 2.0
"""How often the Run page reads a running run's stored progress."""


def upload_limit_mb() -> int:
    """Streamlit's ``server.maxUploadSize`` (.streamlit/config.toml, or the environment
    variable STREAMLIT_SERVER_MAX_UPLOAD_SIZE): the box refuses larger files itself."""
    return int(st.get_option("server.maxUploadSize"))


def secret(name: str) -> str | None:
    """A value from the environment, else from st.secrets; never stored anywhere by us."""
    if os.environ.get(name):
        return os.environ[name]
    try:
        value = st.secrets.get(name)
    except FileNotFoundError:  # no secrets.toml (StreamlitSecretNotFoundError subclasses it)
        return None
    return str(value) if value else None


def default_llm_endpoint() -> str:
    return secret(BASE_URL_NAME) or ""


def default_llm_model() -> str:
    return secret(MODEL_NAME) or DEFAULT_LLM_MODEL


def secrets_table() -> dict:
    """Every table of st.secrets as plain dicts; empty when there is no secrets.toml."""
    if not st.secrets.load_if_toml_exists():
        return {}
    return st.secrets.to_dict()


def team_settings() -> TeamSettings:
    """Team mode's settings (``corpusmap.team``): the environment, else st.secrets. Read on
    every call (it is cheap), so no page can act on a stale answer to "is this team mode?"."""
    return TeamSettings.load(secrets_table())
