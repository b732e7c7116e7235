"""A run against a ground-truth column of its corpus: NMI, ARI, accuracy (Hungarian matching)
and the clusters × labels table. Outliers count as a cluster of their own, as in the metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from clustering.metrics import external_metrics
from clustering.types import NOISE
from corpusmap.errors import CorpusmapError
from storage import Store

MAX_LABELS = 1000
"""A column with more distinct values is an id or a text, not a set of classes."""


def truth_columns(store: Store, corpus_id: int) -> list[str]:
    """Columns that can serve as ground truth: not the text, between 2 and MAX_LABELS values."""
    corpus = store.load_corpus(corpus_id)
    columns = []
    for column in corpus.metadata_columns:
        values = corpus.frame[column].dropna().astype(str)
        if 2 <= values.nunique() <= MAX_LABELS:
            columns.append(str(column))
    return columns


@dataclass(frozen=True)
class Evaluation:
    column: str
    metrics: dict[str, float]
    per_cluster: pd.DataFrame
    """Per cluster: size, its most common label and that label's share (purity)."""
    crosstab: pd.DataFrame
    """Clusters (rows, by size) × labels (columns, by frequency): counts of texts."""


def evaluate_run(store: Store, run_id: int, column: str) -> Evaluation:
    run = store.get_run(run_id)
    corpus = store.load_corpus(run.corpus_id)
    if column not in corpus.frame.columns:
        raise CorpusmapError(
            f"no column {column!r} in corpus #{run.corpus_id}; its columns: "
            f"{', '.join(map(str, corpus.frame.columns))}"
        )
    assignments = store.load_assignments(run_id)
    positions = assignments["position"].to_numpy()
    truth = corpus.frame[column].iloc[positions].map(lambda v: "" if pd.isna(v) else str(v))
    predicted = assignments["cluster_id"].to_numpy()
    names = {c.cluster_id: c.name for c in store.load_clusters(run_id)}
    titles = [("outliers" if c == NOISE else f"{c}: {names.get(c, '')}") for c in predicted]
    table = pd.crosstab(pd.Series(titles, name="cluster"), pd.Series(truth.to_numpy(), name=column))
    table = table.loc[table.sum(axis=1).sort_values(ascending=False).index]
    table = table[table.sum(axis=0).sort_values(ascending=False).index]
    per_cluster = pd.DataFrame(
        {
            "cluster": table.index,
            "size": table.sum(axis=1).to_numpy(),
            "top label": table.idxmax(axis=1).to_numpy(),
            "purity": (table.max(axis=1) / table.sum(axis=1)).round(3).to_numpy(),
        }
    )
    metrics = external_metrics(truth.tolist(), predicted)
    return Evaluation(column, metrics, per_cluster, table)
