"""What the Export screen offers: the labeled corpus, the cluster table and the HTML report, as
bytes with a file name and a MIME type. Spreadsheet formats neutralise formula cells
(``corpusmap.export``)."""

from __future__ import annotations

import re

from corpusmap import service
from corpusmap.export import table_bytes
from corpusmap.report import render_report
from storage import Store

CORPUS_FORMATS = ("csv", "jsonl", "parquet", "xlsx")
TABLE_FORMATS = ("csv", "xlsx")
MIME = {
    "csv": "text/csv",
    "jsonl": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
}


def file_stem(store: Store, run_id: int) -> str:
    """``<corpus name>_run<id>``, with only safe characters."""
    corpus = store.get_corpus(store.get_run(run_id).corpus_id)
    name = re.sub(
        r"\.(gz|csv|tsv|jsonl|ndjson|json|txt|parquet|pq|xlsx)$", "", corpus.name, flags=re.I
    )
    name = re.sub(r"\.(csv|tsv|jsonl|ndjson|json|txt)$", "", name, flags=re.I)
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "corpus"
    return f"{safe}_run{run_id}"


def labeled_corpus_bytes(store: Store, run_id: int, fmt: str) -> bytes:
    """Every input row with its columns plus cluster_id, cluster_label, cluster_description and
    cluster_probability."""
    return table_bytes(service.labeled_frame(store, run_id), fmt)


def cluster_table_bytes(store: Store, run_id: int, fmt: str) -> bytes:
    return table_bytes(service.cluster_table(store, run_id), fmt)


def balanced_sample_bytes(
    store: Store, run_id: int, n: int, fmt: str, *, by_parent: bool = True
) -> bytes:
    """``n`` labeled rows spread evenly across clusters (and across children within parents)."""
    from corpusmap.views import balanced_sample_frame

    return table_bytes(balanced_sample_frame(store, run_id, n, by_parent=by_parent), fmt)


def report_bytes(store: Store, run_id: int) -> bytes:
    return render_report(store, run_id).encode("utf-8")
