"""Clusters in context: any other column of the corpus as a lens on a clustering.

Every function takes a vector of cluster ids (one per text, ``-1`` for outliers) and a column
of the same length, so it works at every level of a hierarchy: pass the leaf ids or the
parent ids. Pure numpy / scipy / pandas; plain frames out.

- ``column_kind``: categorical, numeric or datetime (the user may override it).
- ``categorical_lens``: per cluster × group, counts, the group's share in the cluster and in
  the corpus, lift and odds ratio, a 2×2 test (Fisher's exact where an expected count is under
  5, else chi-square with Yates' correction) and Benjamini-Hochberg q-values across every
  cell.
- ``numeric_lens``: per cluster, Mann-Whitney U against the rest, with the rank-biserial
  correlation (= Cliff's delta) as effect size, and BH q-values across clusters.
- ``balance_table``: per cluster, the smallest ratio of a group's share in the cluster to its
  share in the corpus (1 = every group as present as in the corpus, 0 = a group is missing),
  least balanced first. The notion of balance is that of Chierichetti et al., "Fair
  Clustering Through Fairlets" (NeurIPS 2017), as used for hierarchies in "Generalized
  Reductions: Making any Hierarchical Clustering Fair and Balanced with Low Cost" (ICML 2023).
- ``choose_period``, ``shares_over_time``, ``time_changes``: each cluster's share per period
  and the clusters whose share rose or fell most between the first and last periods, with a
  two-proportion test (Fisher's exact for small counts) and BH q-values.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from clustering.errors import ClusteringError

log = logging.getLogger(__name__)

ColumnKind = Literal["categorical", "numeric", "datetime"]
KINDS: tuple[str, ...] = ("categorical", "numeric", "datetime")
ALPHA = 0.05
"""False-discovery rate of every lens table's ``significant`` column."""
MAX_CATEGORIES_FOR_NUMBERS = 12
"""A numeric column with at most this many distinct values is read as categories (ratings,
flags, years of a short survey)."""
PARSE_SHARE = 0.95
"""A text column is numeric (or dates) when at least this share of its non-empty cells parse."""
MAX_GROUPS = 40
"""Groups kept by the categorical lens and the balance report; the rarest others are pooled
into ``OTHER`` (a column with 10,000 distinct values is not a grouping)."""
OTHER = "(other)"
MISSING = "(missing)"
FISHER_BELOW = 5.0
"""Fisher's exact test where an expected cell count of the 2×2 table is below this (Cochran's
rule); the chi-square approximation elsewhere."""
PERIOD_RULES = (
    (62, "day"),
    (27 * 7, "week"),
    (4 * 366, "month"),
)
"""(largest span in days, period): a span of two months is read by day, of half a year by
week, of four years by month, longer by quarter; each gives roughly 10 to 60 periods."""
PERIOD_FREQ = {"day": "D", "week": "W-SUN", "month": "M", "quarter": "Q"}
"""pandas period codes; a week ends on Sunday, so it starts on Monday."""
MIN_PERIOD_TEXTS = 20
"""The first and last periods compared are the first and last with at least this many texts
(a period of 3 texts makes any share look like a jump)."""


class LensError(ClusteringError):
    """A column that cannot be read as the kind asked for, or vectors that do not match."""


# --- column kinds -------------------------------------------------------------------------


def column_kind(values: pd.Series) -> ColumnKind:
    """Categorical, numeric or datetime, from the values (strings that parse count)."""
    series = pd.Series(values)
    present = series.dropna()
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric" if present.nunique() > MAX_CATEGORIES_FOR_NUMBERS else "categorical"
    text = present.astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return "categorical"
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().mean() >= PARSE_SHARE:
        return "numeric" if numbers.nunique() > MAX_CATEGORIES_FOR_NUMBERS else "categorical"
    if text.str.contains(r"\d", regex=True).mean() >= PARSE_SHARE:
        dates = _parse_dates(text)
        if dates.notna().mean() >= PARSE_SHARE:
            return "datetime"
    return "categorical"


def _parse_dates(values: pd.Series) -> pd.Series:
    try:
        return pd.to_datetime(values, errors="coerce", format="mixed", utc=True).dt.tz_localize(
            None
        )
    except (ValueError, TypeError):
        return pd.Series(pd.NaT, index=values.index)


def as_groups(values: pd.Series, max_groups: int = MAX_GROUPS) -> np.ndarray:
    """Group names as strings: missing cells are ``MISSING``, the rarest groups beyond
    ``max_groups`` are pooled into ``OTHER``."""
    series = pd.Series(values).reset_index(drop=True)
    groups = series.map(lambda v: MISSING if _is_missing(v) else _group_name(v)).astype(object)
    counts = groups.value_counts()
    if len(counts) > max_groups:
        keep = set(counts.index[: max_groups - 1])
        groups = groups.where(groups.isin(keep), OTHER)
    return groups.to_numpy(dtype=object)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _group_name(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_numbers(values: pd.Series) -> np.ndarray:
    numbers = pd.to_numeric(pd.Series(values).reset_index(drop=True), errors="coerce")
    return numbers.to_numpy(dtype=np.float64)


def as_dates(values: pd.Series) -> pd.Series:
    series = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_datetime64_any_dtype(series):
        if getattr(series.dt, "tz", None) is not None:
            return series.dt.tz_convert(None)
        return series
    return _parse_dates(series.astype(object).where(series.notna(), None).astype(str))


# --- multiple testing ---------------------------------------------------------------------


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values (NaN stays NaN and is not counted among the tests)."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if not len(finite):
        return q
    order = finite[np.argsort(p[finite], kind="stable")]
    m = len(order)
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q[order] = np.minimum(ranked, 1.0)
    return q


def two_by_two_p(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided p-values of 2×2 tables [[a, b], [c, d]] and the test used for each:
    Fisher's exact where an expected count is under ``FISHER_BELOW``, else chi-square with
    Yates' continuity correction."""
    a, b, c, d = (np.asarray(x, dtype=np.float64) for x in (a, b, c, d))
    n = a + b + c + d
    r1, r2, c1, c2 = a + b, c + d, a + c, b + d
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_min = np.minimum.reduce([r1 * c1, r1 * c2, r2 * c1, r2 * c2]) / n
        diff = np.maximum(np.abs(a * d - b * c) - n / 2, 0.0)
        chi2 = n * diff**2 / (r1 * r2 * c1 * c2)
    p = stats.chi2.sf(chi2, 1)
    degenerate = (r1 == 0) | (r2 == 0) | (c1 == 0) | (c2 == 0)
    p = np.where(degenerate, 1.0, p)
    small = (expected_min < FISHER_BELOW) & ~degenerate
    for i in np.flatnonzero(small):
        table = [[int(a[i]), int(b[i])], [int(c[i]), int(d[i])]]
        p[i] = stats.fisher_exact(table, alternative="two-sided").pvalue
    tests = np.where(small, "fisher", np.where(degenerate, "none", "chi2"))
    return np.minimum(p, 1.0), tests


# --- the lenses ---------------------------------------------------------------------------


def _check_lengths(labels: np.ndarray, values: object) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(values):  # type: ignore[arg-type]
        raise LensError(f"{len(labels)} cluster ids but {len(values)} column values")  # type: ignore[arg-type]
    return labels


def categorical_lens(
    labels: np.ndarray, values: pd.Series, *, alpha: float = ALPHA, max_groups: int = MAX_GROUPS
) -> pd.DataFrame:
    """One row per cluster × group: how the group is represented in the cluster.

    Columns: cluster_id, group, count, cluster_size, group_total, share_in_cluster,
    share_in_corpus, lift (share in cluster / share in corpus), odds_ratio (with 0.5 added to
    every cell), direction (over / under), test, p_value, q_value (BH over every cell),
    significant (q < ``alpha``). Outliers (-1) are a cluster like any other.
    """
    labels = _check_lengths(labels, values)
    groups = as_groups(values, max_groups)
    table = pd.crosstab(pd.Series(labels, name="cluster_id"), pd.Series(groups, name="group"))
    n = float(len(labels))
    counts = table.to_numpy(dtype=np.float64)
    cluster_sizes = counts.sum(axis=1, keepdims=True)
    group_totals = counts.sum(axis=0, keepdims=True)
    a = counts
    b = cluster_sizes - a
    c = group_totals - a
    d = n - a - b - c
    p, tests = two_by_two_p(a.ravel(), b.ravel(), c.ravel(), d.ravel())
    share_in_cluster = a / np.maximum(cluster_sizes, 1)
    share_in_corpus = np.broadcast_to(group_totals / max(n, 1), a.shape)
    frame = pd.DataFrame(
        {
            "cluster_id": np.repeat(table.index.to_numpy(), table.shape[1]),
            "group": np.tile(table.columns.to_numpy(dtype=object), table.shape[0]),
            "count": a.ravel().astype(np.int64),
            "cluster_size": np.broadcast_to(cluster_sizes, a.shape).ravel().astype(np.int64),
            "group_total": np.broadcast_to(group_totals, a.shape).ravel().astype(np.int64),
            "share_in_cluster": share_in_cluster.ravel(),
            "share_in_corpus": share_in_corpus.ravel(),
        }
    )
    frame["lift"] = frame["share_in_cluster"] / frame["share_in_corpus"]
    frame["odds_ratio"] = ((a + 0.5) * (d + 0.5) / ((b + 0.5) * (c + 0.5))).ravel()
    frame["direction"] = np.where(frame["lift"] >= 1, "over", "under")
    frame["test"] = tests
    frame["p_value"] = p
    frame["q_value"] = benjamini_hochberg(p)
    frame["significant"] = frame["q_value"] < alpha
    log.info(
        "categorical lens: %d clusters × %d groups, %d significant cells",
        table.shape[0],
        table.shape[1],
        int(frame["significant"].sum()),
    )
    return frame


def numeric_lens(labels: np.ndarray, values: pd.Series, *, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per cluster: the column's distribution in the cluster against the rest.

    Columns: cluster_id, n, median, median_rest, mean, mean_rest, u_statistic, effect (the
    rank-biserial correlation 2U/(n₁n₂) − 1, equal to Cliff's delta: +1 when every value in the
    cluster is above every other), direction (higher / lower), p_value (two-sided
    Mann-Whitney U), q_value (BH across clusters), significant. Missing values are left out.
    """
    labels = _check_lengths(labels, values)
    numbers = as_numbers(values)
    present = ~np.isnan(numbers)
    rows = []
    for cluster_id in np.unique(labels):
        inside = present & (labels == cluster_id)
        outside = present & (labels != cluster_id)
        x, y = numbers[inside], numbers[outside]
        row: dict[str, object] = {
            "cluster_id": int(cluster_id),
            "n": int(len(x)),
            "median": float(np.median(x)) if len(x) else np.nan,
            "median_rest": float(np.median(y)) if len(y) else np.nan,
            "mean": float(np.mean(x)) if len(x) else np.nan,
            "mean_rest": float(np.mean(y)) if len(y) else np.nan,
        }
        if len(x) and len(y):
            result = stats.mannwhitneyu(x, y, alternative="two-sided")
            effect = 2 * float(result.statistic) / (len(x) * len(y)) - 1
            row.update(
                u_statistic=float(result.statistic), effect=effect, p_value=float(result.pvalue)
            )
        else:
            row.update(u_statistic=np.nan, effect=np.nan, p_value=np.nan)
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["direction"] = np.where(frame["effect"] >= 0, "higher", "lower")
    frame["q_value"] = benjamini_hochberg(frame["p_value"].to_numpy())
    frame["significant"] = frame["q_value"] < alpha
    columns = ["cluster_id", "n", "median", "median_rest", "mean", "mean_rest", "u_statistic",
               "effect", "direction", "p_value", "q_value", "significant"]  # fmt: skip
    return frame[columns]


def balance_table(
    labels: np.ndarray, values: pd.Series, *, max_groups: int = MAX_GROUPS
) -> pd.DataFrame:
    """One row per cluster, least balanced first.

    Columns: cluster_id, size, balance (min over groups of share in cluster / share in corpus:
    1 when the cluster mirrors the corpus, 0 when a group is absent), least_group and its
    share_in_cluster / share_in_corpus, most_group with max_ratio (its over-representation),
    n_groups_present. Outliers (-1) are left out: they are not a cluster to balance.
    """
    labels = _check_lengths(labels, values)
    groups = as_groups(values, max_groups)
    table = pd.crosstab(pd.Series(labels, name="cluster_id"), pd.Series(groups, name="group"))
    corpus_share = table.sum(axis=0) / max(table.to_numpy().sum(), 1)
    rows = []
    for cluster_id, counts in table.iterrows():
        if cluster_id == -1:
            continue
        size = int(counts.sum())
        ratio = (counts / max(size, 1)) / corpus_share
        least, most = ratio.idxmin(), ratio.idxmax()
        rows.append(
            {
                "cluster_id": int(cluster_id),
                "size": size,
                "balance": float(ratio.min()),
                "least_group": least,
                "least_share_in_cluster": float(counts[least] / max(size, 1)),
                "least_share_in_corpus": float(corpus_share[least]),
                "most_group": most,
                "max_ratio": float(ratio.max()),
                "n_groups_present": int((counts > 0).sum()),
            }
        )
    columns = ["cluster_id", "size", "balance", "least_group", "least_share_in_cluster",
               "least_share_in_corpus", "most_group", "max_ratio", "n_groups_present"]  # fmt: skip
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(["balance", "size"], ascending=[True, False]).reset_index(drop=True)


# --- change over time ---------------------------------------------------------------------


def choose_period(dates: pd.Series, min_per_period: float = MIN_PERIOD_TEXTS) -> str:
    """day, week, month or quarter, from the span of the dates (``PERIOD_RULES``), made
    coarser while a period would hold fewer than ``min_per_period`` texts on average (300 texts
    over half a year are read by month, not by 26 weeks of a dozen texts)."""
    present = pd.Series(dates).dropna()
    if present.empty:
        raise LensError("the date column has no date that can be read")
    span_days = (present.max() - present.min()).total_seconds() / 86_400
    order = [period for _, period in PERIOD_RULES] + ["quarter"]
    chosen = next((period for limit, period in PERIOD_RULES if span_days <= limit), "quarter")
    for period in order[order.index(chosen) :]:
        n_periods = len(pd.period_range(present.min(), present.max(), freq=PERIOD_FREQ[period]))
        if len(present) / n_periods >= min_per_period or period == "quarter":
            return period
    return "quarter"


def period_starts(dates: pd.Series, period: str) -> pd.Series:
    """The start of each date's period (NaT stays NaT)."""
    if period not in PERIOD_FREQ:
        raise LensError(f"unknown period {period!r}; use one of {', '.join(PERIOD_FREQ)}")
    series = pd.Series(dates).reset_index(drop=True)
    return series.dt.to_period(PERIOD_FREQ[period]).dt.start_time


def shares_over_time(labels: np.ndarray, dates: pd.Series, period: str) -> pd.DataFrame:
    """Long table: period (its start), cluster_id, count, period_total, share. Every cluster
    appears in every period (count 0 where absent); texts without a date are left out."""
    labels = _check_lengths(labels, dates)
    starts = period_starts(dates, period)
    keep = starts.notna().to_numpy()
    counts = pd.crosstab(
        pd.Series(starts[keep].to_numpy(), name="period"),
        pd.Series(labels[keep], name="cluster_id"),
    )
    if counts.empty:
        raise LensError("no text has a date that can be read")
    freq = PERIOD_FREQ[period]
    full = pd.period_range(counts.index.min(), counts.index.max(), freq=freq).start_time
    counts = counts.reindex(full, fill_value=0)
    counts.index.name = "period"
    long = counts.stack().rename("count").reset_index()
    totals = counts.sum(axis=1)
    long["period_total"] = long["period"].map(totals).astype(np.int64)
    long["share"] = long["count"] / long["period_total"].clip(lower=1)
    return long[["period", "cluster_id", "count", "period_total", "share"]]


def time_changes(
    labels: np.ndarray,
    dates: pd.Series,
    period: str,
    *,
    alpha: float = ALPHA,
    min_period_texts: int = MIN_PERIOD_TEXTS,
) -> pd.DataFrame:
    """One row per cluster (outliers left out): its share in the first and the last period
    with at least ``min_period_texts`` texts, the change, a two-proportion test of it (Fisher's
    exact for small counts, else chi-square with Yates' correction, which is the squared
    two-proportion z), BH q-values across clusters; largest rise first, largest fall last."""
    shares = shares_over_time(labels, dates, period)
    totals = shares.groupby("period")["period_total"].first()
    busy = totals[totals >= min_period_texts]
    if len(busy) < 2:
        busy = totals[totals > 0]
    if len(busy) < 2:
        raise LensError(
            "the dates fall in a single period: choose a shorter period or a column whose "
            "dates span more time"
        )
    first, last = busy.index[0], busy.index[-1]
    at_first = shares[shares["period"] == first].set_index("cluster_id")
    at_last = shares[shares["period"] == last].set_index("cluster_id")
    ids = [int(c) for c in at_first.index if c != -1]
    a = at_last.loc[ids, "count"].to_numpy(np.float64)
    b = at_last.loc[ids, "period_total"].to_numpy(np.float64) - a
    c = at_first.loc[ids, "count"].to_numpy(np.float64)
    d = at_first.loc[ids, "period_total"].to_numpy(np.float64) - c
    p, tests = two_by_two_p(a, b, c, d)
    frame = pd.DataFrame(
        {
            "cluster_id": ids,
            "first_period": first,
            "last_period": last,
            "count_first": c.astype(np.int64),
            "count_last": a.astype(np.int64),
            "share_first": at_first.loc[ids, "share"].to_numpy(),
            "share_last": at_last.loc[ids, "share"].to_numpy(),
        }
    )
    frame["change"] = frame["share_last"] - frame["share_first"]
    frame["direction"] = np.where(frame["change"] >= 0, "rose", "fell")
    frame["test"] = tests
    frame["p_value"] = p
    frame["q_value"] = benjamini_hochberg(p)
    frame["significant"] = frame["q_value"] < alpha
    return frame.sort_values("change", ascending=False).reset_index(drop=True)
