"""Past runs side by side: a table of runs, and the comparison of two runs over the texts they
share (cluster counts, outlier shares, NMI and ARI between their assignments)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from clustering.types import NOISE
from corpusmap import service
from corpusmap.request import stored_request
from storage import RunInfo, Store

SUMMARY_METRICS = ("n_clusters", "noise_share", "silhouette", "faithfulness", "nmi", "ari", "acc")
CONFIG_SHOWN = ("n_clusters", "min_cluster_size", "reassign_outliers", "random_state")


def runs_table(store: Store) -> pd.DataFrame:
    """One row per run, newest first: what it ran on, how, how long and how well."""
    corpora = {c.id: c.name for c in store.list_corpora()}
    rows = [_run_row(run, corpora.get(run.corpus_id, "?")) for run in store.list_runs()]
    return pd.DataFrame(rows)


def _run_row(run: RunInfo, corpus_name: str) -> dict[str, object]:
    seconds = sum(v for k, v in run.timings.items() if not k.startswith("embed_"))
    pipeline = stored_request(run).pipeline
    row: dict[str, object] = {
        "run": run.id,
        "name": run.name,
        "corpus": f"#{run.corpus_id} {corpus_name}",
        "status": service.run_state(run),
        "stage": run.stage,
        "started": run.created_at.strftime("%Y-%m-%d %H:%M"),
        "seconds": round(seconds, 1),
        "labeler": run.labeler,
        "goal": run.goal,
        # Text, never a mix of numbers and "auto": Arrow cannot hold a mixed column (issue 15).
        "K": str(pipeline.n_clusters or "auto"),
        "min size": str(pipeline.min_cluster_size or "auto"),
        "seed": run.seed,
    }
    for key in SUMMARY_METRICS:
        value = run.metrics.get(key)
        row[key] = round(value, 3) if isinstance(value, float) else value
    return row


def readable(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested settings or figures dict as (name, value) rows in words: nested keys joined
    with " · ", numbers rounded, lists comma-separated, empty values left out."""
    rows: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            name = f"{prefix} · {key}" if prefix else str(key).replace("_", " ")
            rows.extend(readable(inner, name.replace("_", " ")))
        return rows
    if value is None or value == "" or value == [] or value == {}:
        return rows
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    return [(prefix, text)]


def details_table(section: dict[str, Any]) -> pd.DataFrame:
    """One section of ``run_details`` as a two-column table (what History shows, not JSON)."""
    return pd.DataFrame(readable(section), columns=["setting", "value"])


def run_details(run: RunInfo) -> dict[str, object]:
    """Config, timings, metrics and versions of one run, for display."""
    return {
        "config": run.config,
        "timings (s)": run.timings,
        "metrics": {k: v for k, v in run.metrics.items() if k != "silhouette_per_cluster"},
        "llm usage": run.llm_usage,
        "embedder": run.embedder,
        "labeler": run.labeler,
        "versions": run.versions,
        "error": run.error,
    }


@dataclass(frozen=True)
class RunComparison:
    run_a: int
    run_b: int
    shared_texts: int
    n_clusters_a: int
    n_clusters_b: int
    noise_share_a: float
    noise_share_b: float
    nmi: float
    ari: float
    overlap: pd.DataFrame
    """Largest overlaps: cluster of A, cluster of B, shared texts, share of A's cluster."""

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                f"run {self.run_a}": [self.n_clusters_a, round(self.noise_share_a, 3)],
                f"run {self.run_b}": [self.n_clusters_b, round(self.noise_share_b, 3)],
            },
            index=["clusters", "outlier share"],
        )


def compare_runs(store: Store, run_a: int, run_b: int, top: int = 30) -> RunComparison:
    """Agreement of two runs over the documents both clustered (outliers count as a cluster)."""
    a = store.load_assignments(run_a).set_index("document_id")
    b = store.load_assignments(run_b).set_index("document_id")
    shared = a.index.intersection(b.index)
    la = a.loc[shared, "cluster_id"].to_numpy(np.int64)
    lb = b.loc[shared, "cluster_id"].to_numpy(np.int64)
    names_a = {c.cluster_id: c.name for c in store.load_clusters(run_a)}
    names_b = {c.cluster_id: c.name for c in store.load_clusters(run_b)}
    pairs = pd.DataFrame({"a": la, "b": lb}).value_counts().reset_index(name="texts")
    sizes_a = pd.Series(la).value_counts()
    pairs["share of A's cluster"] = (pairs["texts"] / pairs["a"].map(sizes_a)).round(3)
    pairs[f"run {run_a} cluster"] = [_title(c, names_a) for c in pairs["a"]]
    pairs[f"run {run_b} cluster"] = [_title(c, names_b) for c in pairs["b"]]
    overlap = pairs[
        [f"run {run_a} cluster", f"run {run_b} cluster", "texts", "share of A's cluster"]
    ]
    return RunComparison(
        run_a=run_a,
        run_b=run_b,
        shared_texts=len(shared),
        n_clusters_a=len(set(la) - {NOISE}),
        n_clusters_b=len(set(lb) - {NOISE}),
        noise_share_a=float(np.mean(la == NOISE)) if len(la) else 0.0,
        noise_share_b=float(np.mean(lb == NOISE)) if len(lb) else 0.0,
        nmi=float(skm.normalized_mutual_info_score(la, lb)) if len(la) else 0.0,
        ari=float(skm.adjusted_rand_score(la, lb)) if len(la) else 0.0,
        overlap=overlap.head(top).reset_index(drop=True),
    )


def _title(cluster_id: int, names: dict[int, str]) -> str:
    if cluster_id == NOISE:
        return "outliers"
    return f"{cluster_id}: {names.get(cluster_id, '')}"
