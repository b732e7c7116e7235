"""``corpusmap edit RUN …``: the app's edits from the command line, so they can be scripted and
reviewed. Each prints the sentence the run's edit log records; ``log`` prints the log."""

from __future__ import annotations

import click

from corpusmap import edits
from corpusmap.cli_common import db_option, handle_errors, open_store
from storage import Store


@click.group()
@click.argument("run_id", metavar="RUN", type=int)
@db_option
@click.pass_context
def edit(ctx: click.Context, run_id: int, db: str | None) -> None:
    """Edit a stored run: rename, merge, take the coarser grain, split, move texts, undo, redo
    (`corpusmap edit RUN merge 3 5 --db FILE`). Cluster ids are the ones `corpusmap show RUN`
    prints; they stay the same through edits of other clusters."""
    ctx.obj = {"run_id": run_id, "db": db}


def _store(ctx: click.Context, db: str | None) -> tuple[Store, int]:
    return open_store(db or ctx.obj["db"]), ctx.obj["run_id"]


@edit.command()
@click.argument("cluster_id", metavar="ID", type=int)
@click.argument("name")
@click.option("--description", default=None, help="A new description too.")
@db_option
@click.pass_context
@handle_errors
def rename(
    ctx: click.Context, cluster_id: int, name: str, description: str | None, db: str | None
) -> None:
    """Give cluster ID the name NAME."""
    store, run_id = _store(ctx, db)
    info = edits.rename_cluster(store, run_id, cluster_id, name=name, description=description)
    click.echo(info.sentence)


@edit.command()
@click.argument("cluster_ids", metavar="ID ID…", type=int, nargs=-1, required=True)
@db_option
@click.pass_context
@handle_errors
def merge(ctx: click.Context, cluster_ids: tuple[int, ...], db: str | None) -> None:
    """Merge clusters into the first ID; the others' ids are retired."""
    store, run_id = _store(ctx, db)
    click.echo(edits.merge_clusters(store, run_id, list(cluster_ids)).sentence)


@edit.command()
@db_option
@click.pass_context
@handle_errors
def coarser(ctx: click.Context, db: str | None) -> None:
    """Merge the clusters into the coarser grain the run offered (its groups of whole
    clusters, in `corpusmap show RUN`'s granularity sentence), as one edit."""
    store, run_id = _store(ctx, db)
    click.echo(edits.take_coarse_grain(store, run_id).sentence)


@edit.command()
@click.argument("cluster_id", metavar="ID", type=int)
@click.option("--into", "n_parts", type=click.IntRange(min=2), default=2, show_default=True)
@db_option
@click.pass_context
@handle_errors
def split(ctx: click.Context, cluster_id: int, n_parts: int, db: str | None) -> None:
    """Split cluster ID into N parts (k-means on its texts' embeddings); the parts get new ids."""
    store, run_id = _store(ctx, db)
    click.echo(edits.split_cluster(store, run_id, cluster_id, n_parts).sentence)


@edit.command()
@click.argument("rows", metavar="ROW…", type=int, nargs=-1, required=True)
@click.option("--to", "target", type=int, required=True, help="Cluster id, or -1 for outliers.")
@db_option
@click.pass_context
@handle_errors
def move(ctx: click.Context, rows: tuple[int, ...], target: int, db: str | None) -> None:
    """Move input rows (numbered from 0, as in exports) to cluster --to (-1: outliers)."""
    store, run_id = _store(ctx, db)
    click.echo(edits.move_rows(store, run_id, list(rows), target).sentence)


@edit.command()
@db_option
@click.pass_context
@handle_errors
def undo(ctx: click.Context, db: str | None) -> None:
    """Take back the latest edit."""
    store, run_id = _store(ctx, db)
    click.echo(f"Undid: {edits.undo(store, run_id).sentence}")


@edit.command()
@db_option
@click.pass_context
@handle_errors
def redo(ctx: click.Context, db: str | None) -> None:
    """Make the edit undone last again."""
    store, run_id = _store(ctx, db)
    click.echo(f"Redid: {edits.redo(store, run_id).sentence}")


@edit.command("log")
@db_option
@click.pass_context
@handle_errors
def show_log(ctx: click.Context, db: str | None) -> None:
    """The run's edits, oldest first."""
    store, run_id = _store(ctx, db)
    for e in store.list_edits(run_id):
        mark = " (undone)" if e.undone else ""
        click.echo(f"{e.created_at:%Y-%m-%d %H:%M:%S}  {edits.edit_sentence(e)}{mark}")
