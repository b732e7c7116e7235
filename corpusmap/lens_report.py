"""The HTML report's "Clusters in context" section: the lens and balance tables of one column
(``corpusmap.report.render_report(..., context_column=...)``). Every cell is HTML-escaped."""

from __future__ import annotations

from html import escape

import pandas as pd

from corpusmap import lens
from storage import Store

REPORT_ROWS = 30
"""Rows of each table in the report; the CSV/XLSX downloads hold them all."""
LENS_COLUMNS = ("level", "cluster_id", "name", "group", "count", "share_in_cluster",
                "share_in_corpus", "lift", "q_value", "direction")  # fmt: skip
NUMERIC_COLUMNS = (
    "level",
    "cluster_id",
    "name",
    "n",
    "median",
    "median_rest",
    "effect",
    "q_value",
    "direction",
)
BALANCE_COLUMNS = (
    "level",
    "cluster_id",
    "name",
    "size",
    "balance",
    "least_group",
    "most_group",
    "max_ratio",
)


def context_section(store: Store, run_id: int, column: str) -> str:
    """``<h2>`` and the tables: the significant cells of the lens, then the balance report
    (categorical columns only), least balanced first."""
    table = lens.lens_table(store, run_id, column)
    kind = table.attrs["kind"]
    significant = table[table["significant"]]
    columns = LENS_COLUMNS if kind == "categorical" else NUMERIC_COLUMNS
    parts = [
        f"<h2>Clusters in context: {escape(column)}</h2>",
        f"<p class='muted'>{escape(column)} read as {escape(kind)}; {len(significant)} of "
        f"{len(table)} rows significant at a false-discovery rate of 5% "
        f"({'Fisher / chi-square per cluster × group' if kind == 'categorical' else 'Mann-Whitney U per cluster'}"
        ", Benjamini-Hochberg).</p>",
        _html_table(significant, columns),
    ]
    if kind == "categorical":
        balance = lens.balance_report(store, run_id, column)
        parts += [
            f"<h3>Balance on {escape(column)}</h3>",
            "<p class='muted'>Smallest ratio of a group's share in the cluster to its share in "
            "the corpus (1 = mirrors the corpus, 0 = a group is missing); least balanced first.</p>",
            _html_table(balance, BALANCE_COLUMNS),
        ]
    return "\n".join(parts)


def _html_table(table: pd.DataFrame, columns: tuple[str, ...]) -> str:
    if table.empty:
        return "<p class='muted'>None.</p>"
    shown = table[[c for c in columns if c in table.columns]].head(REPORT_ROWS)
    return shown.to_html(index=False, escape=True, float_format=lambda v: f"{v:.3g}", border=0)
