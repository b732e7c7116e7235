"""Clusters in context: a stored run seen through any other column of its corpus.

Computed from what a run already stores (the corpus rows with all their columns, the
assignment, the clusters and, for a hierarchy, the parents); nothing is written. The
statistics live in ``clustering.lens``; this module finds the rows, the cluster names and the
level, and returns frames the CLI, the API, the app and the report show as they are.

    lens_table(store, run_id, "source")            # over/under-represented groups per cluster
    balance_report(store, run_id, "region")        # least balanced clusters and parents first
    time_view(store, run_id, "date").changes       # clusters that rose or fell most

Each takes ``filters`` (restrict the rows first) and ``frame`` (a ``context_frame`` already
read: the app reads it once per run and version).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clustering import lens as stats
from clustering.types import NOISE
from corpusmap import explore
from corpusmap.errors import CorpusmapError
from storage import Store

__all__ = [
    "KINDS",
    "LEVELS",
    "TimeView",
    "balance_report",
    "column_kinds",
    "context_frame",
    "filter_mask",
    "lens_table",
    "over_time",
    "time_view",
]

LEVELS = ("cluster", "parent")
KINDS = stats.KINDS
OUTLIER_NAME = explore.OUTLIER_NAME
RESERVED = ("document_id", "position", "text", "cluster_id", "cluster", "parent_id", "probability",
            "x", "y", "hover")  # fmt: skip
"""Columns ``context_frame`` adds; a corpus column of the same name is shown as ``<name>_``."""

Filters = Mapping[str, Sequence[Any] | tuple[Any, Any]]
"""Column → the values to keep (a list), or ``(low, high)`` bounds for numbers and dates."""


class LensUsageError(CorpusmapError):
    """A column, kind, level or period that the run cannot be seen through."""


def context_frame(store: Store, run_id: int) -> pd.DataFrame:
    """One row per clustered text, in input order: document_id, position, text, cluster_id,
    cluster (its title), parent_id (-1 without a hierarchy), probability, x, y, hover, then
    every column of the corpus except the text column."""
    run = store.get_run(run_id)
    corpus = store.load_corpus(run.corpus_id)
    points = explore.map_points(store, run_id)
    assignments = store.load_assignments(run_id)
    points["position"] = assignments["position"].to_numpy()
    parents = {c.cluster_id: c.parent_id for c in store.load_clusters(run_id)}
    points["parent_id"] = [
        NOISE if parents.get(c) is None else int(parents[c])  # type: ignore[arg-type]
        for c in points["cluster_id"]
    ]
    columns = [c for c in corpus.frame.columns if c != corpus.text_column]
    extra = corpus.frame[columns].iloc[points["position"].to_numpy()].reset_index(drop=True)
    extra.columns = [f"{c}_" if c in RESERVED else str(c) for c in extra.columns]
    ordered = ["document_id", "position", "text", "cluster_id", "cluster", "parent_id",
               "probability", "x", "y", "hover"]  # fmt: skip
    return pd.concat([points[ordered].reset_index(drop=True), extra], axis=1)


def metadata_columns(frame: pd.DataFrame) -> list[str]:
    """The corpus's own columns in a ``context_frame``."""
    return [c for c in frame.columns if c not in RESERVED]


def column_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Each corpus column's kind (``clustering.lens.column_kind``)."""
    return {c: stats.column_kind(frame[c]) for c in metadata_columns(frame)}


def filter_mask(frame: pd.DataFrame, filters: Filters | None) -> np.ndarray:
    """Rows whose every filtered column holds a kept value (a list: those values, compared as
    ``clustering.lens.as_groups`` names them; a pair: bounds, inclusive)."""
    mask = np.ones(len(frame), dtype=bool)
    for column, wanted in (filters or {}).items():
        _check_column(frame, column)
        if isinstance(wanted, tuple) and len(wanted) == 2:
            low, high = wanted
            kind = stats.column_kind(frame[column])
            if kind == "datetime":
                values = stats.as_dates(frame[column])
                low, high = pd.Timestamp(low), pd.Timestamp(high)
            else:
                values = pd.Series(stats.as_numbers(frame[column]))
            keep = values.between(low, high).to_numpy(dtype=bool)
        else:
            names = stats.as_groups(frame[column], max_groups=len(frame) + 1)
            keep = np.isin(names, [str(w) for w in wanted])
        mask &= keep
    return mask


def _check_column(frame: pd.DataFrame, column: str) -> None:
    if column not in frame.columns or column in RESERVED:
        raise LensUsageError(
            f"no column {column!r} in this run's corpus; columns: "
            f"{', '.join(metadata_columns(frame)) or '(only the text column)'}"
        )


def _rows(
    store: Store,
    run_id: int,
    column: str,
    level: str,
    filters: Filters | None,
    frame: pd.DataFrame | None,
) -> tuple[pd.DataFrame, np.ndarray, dict[int, str]]:
    """(rows kept, their cluster ids at ``level``, names of those ids)."""
    if level not in LEVELS:
        raise LensUsageError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    frame = context_frame(store, run_id) if frame is None else frame
    _check_column(frame, column)
    frame = frame[filter_mask(frame, filters)].reset_index(drop=True)
    if frame.empty:
        raise LensUsageError("no text is left after the filters; loosen them")
    if level == "parent":
        parents = store.load_clusters(run_id, level=1)
        if not parents:
            raise LensUsageError(
                f"run #{run_id} has no hierarchy: build one (Explore → Hierarchy, or "
                "`corpusmap run --hierarchy`) or use level 'cluster'"
            )
        names = {c.cluster_id: c.name for c in parents}
        labels = frame["parent_id"].to_numpy(np.int64)
    else:
        names = {c.cluster_id: c.name for c in store.load_clusters(run_id)}
        labels = frame["cluster_id"].to_numpy(np.int64)
    names[NOISE] = OUTLIER_NAME
    return frame, labels, names


def _named(table: pd.DataFrame, names: dict[int, str], level: str) -> pd.DataFrame:
    table = table.copy()
    table.insert(1, "name", [names.get(int(c), "") for c in table["cluster_id"]])
    table.insert(0, "level", level)
    return table


def lens_table(
    store: Store,
    run_id: int,
    column: str,
    *,
    kind: str | None = None,
    level: str = "cluster",
    filters: Filters | None = None,
    alpha: float = stats.ALPHA,
    frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The column's distribution per cluster against the whole corpus (or the filtered rows).

    Categorical: one row per cluster × group (``clustering.lens.categorical_lens``), the
    significant cells first, strongest lift first. Numeric or datetime: one row per cluster
    (``clustering.lens.numeric_lens``; dates as days, medians shown as dates), significant
    first, largest effect first. ``kind`` overrides the detected kind.
    """
    frame, labels, names = _rows(store, run_id, column, level, filters, frame)
    kind = kind or stats.column_kind(frame[column])
    if kind not in stats.KINDS:
        raise LensUsageError(f"unknown kind {kind!r}; use one of {', '.join(stats.KINDS)}")
    if kind == "categorical":
        table = stats.categorical_lens(labels, frame[column], alpha=alpha)
        # Significant first; within them over-represented groups by lift, then the rest.
        table["_strength"] = np.abs(np.log(table["lift"].clip(lower=1e-6)))
        table["_over"] = table["direction"] == "over"
        table = table.sort_values(["significant", "_over", "_strength"], ascending=False)
        table = table.drop(columns="_over")
        table = table.drop(columns="_strength")
    else:
        values = frame[column]
        if kind == "datetime":
            dates = stats.as_dates(values)
            if dates.notna().sum() == 0:
                raise LensUsageError(f"column {column!r} holds no date that can be read")
            values = (dates - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86_400
        elif np.isnan(stats.as_numbers(values)).all():
            raise LensUsageError(f"column {column!r} holds no number; use kind 'categorical'")
        table = stats.numeric_lens(labels, values, alpha=alpha)
        if kind == "datetime":
            for name in ("median", "median_rest", "mean", "mean_rest"):
                days = pd.to_timedelta(table[name], unit="D").dt.round("s")
                table[name] = pd.Timestamp("1970-01-01") + days
        table["_strength"] = table["effect"].abs()
        table = table.sort_values(["significant", "_strength"], ascending=[False, False])
        table = table.drop(columns="_strength")
    table = _named(table.reset_index(drop=True), names, level)
    table.attrs.update(column=column, kind=kind)
    return table


def balance_report(
    store: Store,
    run_id: int,
    column: str,
    *,
    filters: Filters | None = None,
    frame: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Each cluster's and, with a hierarchy, each parent's balance on ``column``
    (``clustering.lens.balance_table``), least balanced first; ``level`` says which."""
    frame, labels, names = _rows(store, run_id, column, "cluster", filters, frame)
    tables = [_named(stats.balance_table(labels, frame[column]), names, "cluster")]
    parents = store.load_clusters(run_id, level=1)
    if parents:
        parent_names = {c.cluster_id: c.name for c in parents}
        parent_labels = frame["parent_id"].to_numpy(np.int64)
        tables.append(
            _named(stats.balance_table(parent_labels, frame[column]), parent_names, "parent")
        )
    report = pd.concat(tables, ignore_index=True)
    report = report.sort_values(["balance", "size"], ascending=[True, False]).reset_index(drop=True)
    report.attrs.update(column=column)
    return report


@dataclass(frozen=True)
class TimeView:
    """Shares per period and the clusters whose share changed most."""

    column: str
    period: str
    shares: pd.DataFrame
    """period, cluster_id, name, count, period_total, share (every cluster in every period)."""
    changes: pd.DataFrame
    """One row per cluster: first/last period shares, change, test, q_value, significant."""


def time_view(
    store: Store,
    run_id: int,
    column: str,
    *,
    period: str | None = None,
    level: str = "cluster",
    filters: Filters | None = None,
    alpha: float = stats.ALPHA,
    frame: pd.DataFrame | None = None,
) -> TimeView:
    """Each cluster's share per period of a date column; ``period`` (day, week, month,
    quarter) is chosen from the span when not given."""
    frame, labels, names = _rows(store, run_id, column, level, filters, frame)
    dates = stats.as_dates(frame[column])
    if dates.notna().sum() == 0:
        raise LensUsageError(
            f"column {column!r} holds no date that can be read; choose a date column"
        )
    period = period or stats.choose_period(dates)
    if period not in stats.PERIOD_FREQ:
        raise LensUsageError(
            f"unknown period {period!r}; use one of {', '.join(stats.PERIOD_FREQ)}"
        )
    try:
        shares = stats.shares_over_time(labels, dates, period)
        changes = stats.time_changes(labels, dates, period, alpha=alpha)
    except stats.LensError as err:
        raise LensUsageError(str(err)) from err
    shares.insert(2, "name", [names.get(int(c), "") for c in shares["cluster_id"]])
    return TimeView(column, period, shares, _named(changes, names, level))


def over_time(store: Store, run_id: int, column: str, **options: Any) -> pd.DataFrame:
    """``time_view(...).changes``, with the period in ``attrs["period"]``."""
    view = time_view(store, run_id, column, **options)
    changes = view.changes
    changes.attrs.update(column=column, period=view.period)
    return changes
