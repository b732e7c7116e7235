"""The Context screen's cached data, session keys and filter widgets (issue 16)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from clustering import lens as stats
from corpusmap import lens
from storage import RunInfo
from storage.access import Access
from ui import data, resources

PLACEMENT = "context_placement"
"""The last ``corpusmap.assign.Placement`` of new texts on the Context page (with its run id)."""
UPLOAD = "context_upload"
COLOUR = "context_colour"
FILTER_COLUMNS = "context_filter_columns"
DATE_SLIDER_FORMAT = "YYYY-MM-DD"


@st.cache_data(max_entries=8, show_spinner=False)
def _context_frame(url: str, who: Access | None, run_id: int, version: str) -> pd.DataFrame:
    return lens.context_frame(resources.scoped_store(url, who), run_id)


@st.cache_data(max_entries=8, show_spinner=False)
def _kinds(url: str, who: Access | None, run_id: int, version: str) -> dict[str, str]:
    return lens.column_kinds(_context_frame(url, who, run_id, version))


def context_frame(run: RunInfo) -> tuple[pd.DataFrame, dict[str, str]]:
    """(``corpusmap.lens.context_frame`` of the run, each corpus column's kind), cached by who
    asks (``ui.data``) and the run's version, so an edit is never hidden."""
    url, who, version = resources.database_url(), resources.access(), data.run_version(run)
    return _context_frame(url, who, run.id, version), _kinds(url, who, run.id, version)


def filter_widgets(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, Any]:
    """One widget per column the user filters on; returns ``corpusmap.lens`` filters."""
    columns = st.multiselect(
        "Filter on",
        list(kinds),
        key=FILTER_COLUMNS,
        placeholder="No filter: every text",
        help="Keep only the texts whose values you choose; the map, the tables and the texts follow.",
    )
    filters: dict[str, Any] = {}
    for column in columns:
        kind = kinds[column]
        if kind == "categorical":
            values = pd.Series(
                stats.as_groups(frame[column], max_groups=len(frame) + 1)
            ).value_counts()
            chosen = st.multiselect(
                f"{column}: keep",
                list(values.index),
                default=list(values.index[:1]),
                format_func=lambda v, counts=values: f"{v} ({counts[v]:,})",
                key=f"context_filter_{column}",
            )
            filters[column] = chosen
        elif kind == "numeric":
            numbers = pd.Series(stats.as_numbers(frame[column])).dropna()
            if numbers.empty or numbers.min() == numbers.max():
                continue
            low, high = float(numbers.min()), float(numbers.max())
            filters[column] = st.slider(
                f"{column}: range", low, high, (low, high), key=f"context_filter_{column}"
            )
        else:
            dates = stats.as_dates(frame[column]).dropna()
            if dates.empty or dates.min() == dates.max():
                continue
            low, high = dates.min().to_pydatetime(), dates.max().to_pydatetime()
            chosen_range = st.slider(
                f"{column}: dates",
                low,
                high,
                (low, high),
                format=DATE_SLIDER_FORMAT,
                key=f"context_filter_{column}",
            )
            filters[column] = (pd.Timestamp(chosen_range[0]), pd.Timestamp(chosen_range[1]))
    return filters
