"""Corpora as the app sees them: read an upload, preview it, list what is stored.

The app never reads files or talks to the store itself; these functions do, and raise our own
errors (``clustering.ClusteringError``, ``storage.StorageError``) for anything a user can fix.
"""

from __future__ import annotations

import pandas as pd

from clustering.ingest import FORMATS, read_corpus_bytes
from clustering.types import Corpus
from storage import CorpusInfo, Store

UPLOAD_TYPES = (
    "csv",
    "tsv",
    "tab",
    "jsonl",
    "ndjson",
    "json",
    "txt",
    "parquet",
    "pq",
    "xlsx",
    "gz",
)
"""Extensions the upload box accepts (``.gz`` of any text format)."""
PREVIEW_ROWS = 20

__all__ = [
    "FORMATS",
    "PREVIEW_ROWS",
    "UPLOAD_TYPES",
    "corpora_table",
    "corpus_facts",
    "corpus_preview",
    "read_upload",
    "text_column_choices",
]


def read_upload(
    data: bytes, filename: str, *, text_column: str | None = None, max_mb: float | None = None
) -> Corpus:
    """A corpus from an uploaded file's bytes; ``text_column`` overrides the detected one."""
    if max_mb:
        return read_corpus_bytes(
            data, filename, text_column=text_column, max_bytes=int(max_mb * 1024**2)
        )
    return read_corpus_bytes(data, filename, text_column=text_column)


def text_column_choices(corpus: Corpus) -> list[str]:
    """Columns that could hold the texts: the detected one first, then other text columns."""
    columns = [str(c) for c in corpus.frame.columns]
    text_like = [
        c
        for c in columns
        if c != corpus.text_column
        and (corpus.frame[c].dtype == object or pd.api.types.is_string_dtype(corpus.frame[c]))
    ]
    return [corpus.text_column, *text_like]


def corpus_preview(corpus: Corpus, n: int = PREVIEW_ROWS) -> pd.DataFrame:
    """The first rows with the cleaned text first (what will be embedded)."""
    head = corpus.frame.head(n).copy()
    head.insert(0, "text (cleaned)", corpus.texts[:n])
    return head


def corpus_facts(corpus: Corpus) -> dict[str, object]:
    return {
        "rows": corpus.n_rows,
        "texts": corpus.n_rows - corpus.n_empty,
        "empty rows (not clustered)": corpus.n_empty,
        "duplicate texts": corpus.n_duplicates,
        "encoding": corpus.encoding,
        "format": corpus.format,
        "text column": corpus.text_column,
    }


def corpora_table(store: Store) -> pd.DataFrame:
    """One row per stored corpus with its size, its runs and when it was added."""
    runs_per_corpus: dict[int, int] = {}
    for run in store.list_runs():
        runs_per_corpus[run.corpus_id] = runs_per_corpus.get(run.corpus_id, 0) + 1
    rows = [_corpus_row(c, runs_per_corpus.get(c.id, 0)) for c in store.list_corpora()]
    columns = [
        "id",
        "name",
        "texts",
        "rows",
        "empty",
        "duplicates",
        "text column",
        "format",
        "encoding",
        "runs",
        "added",
    ]
    return pd.DataFrame(rows, columns=columns)


def _corpus_row(info: CorpusInfo, n_runs: int) -> dict[str, object]:
    return {
        "id": info.id,
        "name": info.name,
        "texts": info.n_rows - info.n_empty,
        "rows": info.n_rows,
        "empty": info.n_empty,
        "duplicates": info.n_duplicates,
        "text column": info.text_column,
        "format": info.format,
        "encoding": info.encoding,
        "runs": n_runs,
        "added": info.created_at.strftime("%Y-%m-%d %H:%M"),
    }
