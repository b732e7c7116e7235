"""``corpusmap lens | balance | over-time | assign``: a stored run in the context of its other
columns, and new texts placed into it. Tables go to stdout (or ``--out``, any export format);
errors exit with status 2 and one line that says what to do."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from corpusmap import assign, lens
from corpusmap.cli_common import db_option, handle_errors, open_store
from corpusmap.export import write_table
from storage import Store

SHOWN_ROWS = 40
"""Rows printed to the terminal; ``--out`` writes them all."""


def _write(store: Store, run_id: int, table: pd.DataFrame, out: str, what: str) -> Path:
    """Write a table drawn from a run, with its line in the audit trail."""
    path = write_table(table, out)
    store.record_audit("export", "run", run_id, format=path.suffix.lstrip("."), what=what)
    return path


def _emit(store: Store, run_id: int, table: pd.DataFrame, out: str | None, what: str) -> None:
    if out:
        path = _write(store, run_id, table, out, what)
        click.echo(f"wrote {len(table):,} rows ({what}) to {path}", err=True)
        return
    with pd.option_context(
        "display.width", 200, "display.max_columns", 20, "display.max_colwidth", 40
    ):
        click.echo(table.head(SHOWN_ROWS).to_string(index=False))
    if len(table) > SHOWN_ROWS:
        click.echo(
            f"… {len(table) - SHOWN_ROWS:,} more rows: write them all with --out FILE", err=True
        )


@click.command("lens")
@click.argument("run_id", metavar="RUN", type=int)
@click.argument("column")
@click.option(
    "--kind",
    type=click.Choice(["categorical", "numeric", "datetime"]),
    default=None,
    help="Read the column as this kind (default: detected).",
)
@click.option(
    "--level",
    type=click.Choice(list(lens.LEVELS)),
    default="cluster",
    show_default=True,
    help="Leaf clusters, or the parents of a hierarchy.",
)
@click.option("--out", "out", default=None, help="Write the table (.csv, .xlsx, .jsonl, .parquet).")
@db_option
@handle_errors
def lens_command(
    run_id: int, column: str, kind: str | None, level: str, out: str | None, db: str | None
) -> None:
    """How COLUMN is distributed in each cluster of RUN against the whole corpus: over- and
    under-represented groups (Fisher / chi-square, Benjamini-Hochberg q-values) or, for
    numbers and dates, a Mann-Whitney test per cluster with its effect size."""
    store = open_store(db)
    table = lens.lens_table(store, run_id, column, kind=kind, level=level)
    n = int(table["significant"].sum())
    click.echo(
        f"{column!r} read as {table.attrs['kind']}: {n} significant row(s) at FDR 5%", err=True
    )
    _emit(store, run_id, table, out, "lens")


@click.command("balance")
@click.argument("run_id", metavar="RUN", type=int)
@click.argument("column")
@click.option("--out", "out", default=None, help="Write the table (.csv, .xlsx, .jsonl, .parquet).")
@db_option
@handle_errors
def balance_command(run_id: int, column: str, out: str | None, db: str | None) -> None:
    """Each cluster's (and parent's) balance on COLUMN: the smallest ratio of a group's share
    in the cluster to its share in the corpus; least balanced first."""
    store = open_store(db)
    _emit(store, run_id, lens.balance_report(store, run_id, column), out, "balance")


@click.command("over-time")
@click.argument("run_id", metavar="RUN", type=int)
@click.argument("column")
@click.option(
    "--period",
    type=click.Choice(["day", "week", "month", "quarter"]),
    default=None,
    help="Default: chosen from the span of the dates.",
)
@click.option("--level", type=click.Choice(list(lens.LEVELS)), default="cluster", show_default=True)
@click.option(
    "--shares",
    "shares_out",
    default=None,
    help="Also write every cluster's share per period to this file.",
)
@click.option(
    "--out", "out", default=None, help="Write the change table (.csv, .xlsx, .jsonl, .parquet)."
)
@db_option
@handle_errors
def over_time_command(
    run_id: int,
    column: str,
    period: str | None,
    level: str,
    shares_out: str | None,
    out: str | None,
    db: str | None,
) -> None:
    """Each cluster's share per period of the date COLUMN, and the clusters whose share rose or
    fell most between the first and last periods (tested, with FDR q-values)."""
    store = open_store(db)
    view = lens.time_view(store, run_id, column, period=period, level=level)
    first, last = view.changes["first_period"].iloc[0], view.changes["last_period"].iloc[0]
    click.echo(f"by {view.period}: {first:%Y-%m-%d} against {last:%Y-%m-%d}", err=True)
    if shares_out:
        _write(store, run_id, view.shares, shares_out, "shares over time")
    _emit(store, run_id, view.changes, out, "change over time")


@click.command("assign")
@click.argument("run_id", metavar="RUN", type=int)
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "out",
    required=True,
    help="The new rows with cluster_id, cluster_label, cluster_probability, similarity, new_group.",
)
@click.option("--text-column", default=None, help="Column holding the texts (default: detected).")
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Cosine similarity below which a text fits no cluster (default: calibrated on the run's members).",
)
@click.option(
    "--save-as-run",
    is_flag=True,
    help="Store the run's rows and the new ones as a new corpus and run (the old run is kept).",
)
@click.option("--drift-out", default=None, help="Also write the share-by-cluster drift table here.")
@db_option
@handle_errors
def assign_command(
    run_id: int,
    input_path: str,
    out: str,
    text_column: str | None,
    threshold: float | None,
    save_as_run: bool,
    drift_out: str | None,
    db: str | None,
) -> None:
    """Place the texts of INPUT into the clusters of RUN without refitting it: nearest
    cluster centroid of the run's embeddings, -1 where a text fits none. Prints a drift report;
    RUN itself is not changed."""
    store = open_store(db)
    options = {} if threshold is None else {"threshold": threshold}
    placement = assign.place_file(store, run_id, input_path, text_column=text_column, **options)
    _write(store, run_id, placement.frame, out, "placed texts")
    report = assign.drift_report(store, placement)
    for line in report.lines():
        click.echo(line)
    if drift_out:
        _write(store, run_id, report.shares, drift_out, "drift")
    if save_as_run:
        new_id = assign.save_as_run(store, placement)
        click.echo(f"saved as run #{new_id} (run #{run_id} is unchanged)")
