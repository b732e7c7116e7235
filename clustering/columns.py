"""A cell as corpusmap keeps its text (``clean_text``), and which column of a table holds the
texts (``choose_text_column``): the one the user names, else a usual name ("text", "body",
"message"...), else the text-like column with the longest values."""

from __future__ import annotations

import re

import pandas as pd

from clustering.errors import ColumnError, EmptyCorpusError

# Control characters other than tab and newline break tokenizers, terminals and spreadsheets.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: object) -> str:
    """A cell as text: NUL and control characters removed, whitespace trimmed; NA is ""."""
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN
        return ""
    if value is pd.NA or value is pd.NaT:
        return ""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL_CHARS.sub(" ", text).strip()


TEXT_COLUMN_NAMES = (
    "text",
    "content",
    "body",
    "message",
    "comment",
    "review",
    "description",
    "sentence",
    "document",
    "title",
    "question",
    "query",
    "utterance",
    "tweet",
)


def choose_text_column(frame: pd.DataFrame, requested: str | None = None) -> str:
    """The column holding the texts: the requested one, a usual name, or the longest strings."""
    columns = [str(c) for c in frame.columns]
    if requested is not None:
        if requested not in columns:
            raise ColumnError(
                f"no column {requested!r}; the file has: {', '.join(columns)}. "
                "Pass one of these as the text column"
            )
        if not frame[requested].map(clean_text).astype(bool).any():
            raise EmptyCorpusError(
                f"every text in column {requested!r} is empty; choose another column "
                f"(columns: {', '.join(columns)})"
            )
        if not _is_text_like(frame[requested]):
            raise ColumnError(
                f"column {requested!r} holds numbers or other non-text values; choose a column "
                f"of texts (text-like columns: {', '.join(_text_columns(frame)) or 'none'})"
            )
        return requested
    candidates = _text_columns(frame)
    if not candidates:
        raise ColumnError(
            f"no column holds text (columns: {', '.join(columns)}); the corpus needs a column "
            "of strings"
        )
    lowered = {c.lower(): c for c in candidates}
    for usual in TEXT_COLUMN_NAMES:
        if usual in lowered:
            return lowered[usual]
    return max(candidates, key=lambda c: _mean_length(frame[c]))


def _is_text_like(series: pd.Series) -> bool:
    values = series.dropna()
    values = values[values.astype(str).str.strip() != ""]
    if values.empty:
        return False
    strings = values.map(lambda v: isinstance(v, str))
    if strings.mean() < 0.5:
        return False
    # A column of numbers stored as strings ("12", "3.5") is not text.
    numeric = pd.to_numeric(values[strings].astype(str), errors="coerce").notna().mean()
    return numeric < 0.9


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [str(c) for c in frame.columns if _is_text_like(frame[c])]


def _mean_length(series: pd.Series) -> float:
    return float(series.dropna().astype(str).str.len().mean() or 0.0)
