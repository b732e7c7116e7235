"""The ``corpusmap`` command line. Results go to stdout, progress and errors to stderr; bad
input exits with status 2 and one line that says what to do."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from clustering import PipelineConfig
from corpusmap import api, service
from corpusmap.cli_common import (
    StderrProgress,
    acting_options,
    db_option,
    handle_errors,
    open_store,
)
from corpusmap.cli_edit import edit
from corpusmap.cli_lens import assign_command, balance_command, lens_command, over_time_command
from corpusmap.cli_modes import mode_options, options_from, run_request
from corpusmap.cli_team import TEAM_COMMANDS
from corpusmap.export import write_table
from corpusmap.request import PRECISIONS, build_request

log = logging.getLogger("corpusmap")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log every stage in detail on stderr.")
@click.version_option(package_name="corpusmap")
@acting_options
def main(verbose: bool) -> None:
    """corpusmap: cluster a corpus of texts and name the clusters.

    In team mode (CORPUSMAP_TEAM=1) every command acts as the user --user names, in their
    workspace; the server's operator manages accounts with `users` and `workspaces`."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option(
    "--out", "out", required=True, help="Labeled corpus: .csv, .jsonl, .parquet or .xlsx."
)
@click.option("--text-column", default=None, help="Column holding the texts (default: detected).")
@click.option("--goal", default=None, help="What the clusters should be about, in plain words.")
@click.option("--n-clusters", type=click.IntRange(min=1), default=None, help="Fix K (k-means).")
@click.option(
    "--min-cluster-size",
    type=click.IntRange(min=2),
    default=None,
    help="Smallest cluster (automatic K).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option("--embedder", default=None, help="sentence-transformers model name or local folder.")
@click.option(
    "--precision",
    type=click.Choice(list(PRECISIONS)),
    default="auto",
    show_default=True,
    help="Embedding precision; auto chooses by the hardware: fp16 on CUDA; on a CPU fp32 unless a short calibration (kept per machine) finds bf16 (where native), int8 (ONNX Runtime) or OpenVINO in fp32 or bf16 faster with the same vectors.",
)
@click.option(
    "--name",
    "run_name",
    default="",
    help="A name for the run (shown in `corpusmap runs` and the app).",
)
@click.option(
    "--labeler", type=click.Choice(["keywords", "llm"]), default="keywords", show_default=True
)
@click.option("--label-column", default=None, help="Gold labels: print NMI, ARI and ACC.")
@click.option("--reassign-outliers", is_flag=True, help="Put every outlier in its nearest cluster.")
@click.option("--sheet", default=None, help="XLSX sheet to read (default: the first with data).")
@click.option(
    "--llm-base-url", default=None, help="OpenAI-compatible endpoint (default: $OPENAI_BASE_URL)."
)
@click.option("--llm-model", default=None, help="Model name (default: $CORPUSMAP_LLM_MODEL).")
@click.option("--llm-timeout", type=float, default=None, help="Seconds per LLM request.")
@click.option(
    "--llm-max-in-flight", type=click.IntRange(min=1), default=None, help="Concurrent LLM requests."
)
@click.option(
    "--sample-size",
    type=click.IntRange(min=50),
    default=PipelineConfig.sample_size,
    show_default=True,
    help="Above this many texts, fit UMAP and HDBSCAN on this many distinct texts and assign the rest in batches.",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="auto|ADDRESS",
    help="Embed and assign on a Ray cluster (pip install 'corpusmap[ray]').",
)
@mode_options
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@db_option
@handle_errors
def run(
    input_path: str,
    out: str,
    text_column: str | None,
    goal: str | None,
    n_clusters: int | None,
    min_cluster_size: int | None,
    seed: int,
    embedder: str | None,
    precision: str,
    run_name: str,
    labeler: str,
    label_column: str | None,
    reassign_outliers: bool,
    sheet: str | None,
    llm_base_url: str | None,
    llm_model: str | None,
    llm_timeout: float | None,
    llm_max_in_flight: int | None,
    sample_size: int,
    ray_address: str | None,
    as_json: bool,
    quiet: bool,
    db: str | None,
    **mode_args: Any,
) -> None:
    """Cluster INPUT and write the labeled corpus to OUT (see --mode for goal-driven modes)."""
    from corpusmap.export import export_format

    export_format(out)  # fail on a bad --out before any work
    request = build_request(
        input_path,
        text_column=text_column,
        sheet=sheet,
        label_column=label_column,
        goal=goal,
        n_clusters=n_clusters,
        min_cluster_size=min_cluster_size,
        random_state=seed,
        reassign_outliers=reassign_outliers,
        sample_size=sample_size,
        options=options_from(mode_args),
        embedder=embedder,
        precision=precision,
        name=run_name,
        labeler=labeler,
        llm={
            "base_url": llm_base_url,
            "model": llm_model,
            "timeout_s": llm_timeout,
            "max_in_flight": llm_max_in_flight,
        },
        ray=ray_address,
    )
    result = run_request(request, db, StderrProgress(quiet), mode_args)
    for warning in [*result.corpus_info.warnings, *result.info.warnings]:
        click.echo(f"warning: {warning}", err=True)
    _echo_label_failures(result)
    write_table(result.frame(), out)
    summary = result.summary()
    summary["out"] = out
    if as_json:
        click.echo(json.dumps(summary, indent=1, default=str))
    else:
        _print_summary(summary)


def _echo_label_failures(result: api.RunHandle) -> None:
    """Which clusters kept their keyword label because the LLM failed, and why (on stderr)."""
    clusters = result.store.load_clusters(result.run_id)
    failed = [c for c in clusters if c.label_status == "llm_failed"]
    if not failed:
        return
    click.echo(
        f"warning: {len(failed)} of {len(clusters)} clusters kept their keyword label because "
        "the LLM failed (label_status llm_failed; `corpusmap relabel` asks again):",
        err=True,
    )
    for c in failed:
        click.echo(f"  cluster {c.cluster_id}: {c.label_error}", err=True)


def _print_summary(summary: dict[str, Any]) -> None:
    m = summary["metrics"]
    click.echo(
        f"run #{summary['run_id']} on corpus #{summary['corpus_id']}: {summary['texts']:,} texts"
    )
    click.echo(
        f"clusters: {m.get('n_clusters')}  outliers: {m.get('noise_share', 0):.1%}"
        + (f"  silhouette: {m['silhouette']:.3f}" if m.get("silhouette") is not None else "")
    )
    if "nmi" in m:
        click.echo(f"NMI: {m['nmi']:.3f}  ARI: {m['ari']:.3f}  ACC: {m['acc']:.3f}")
    if m.get("faithfulness") is not None:
        click.echo(f"explanation faithfulness: {m['faithfulness']:.3f}")
    timings = summary["timings"]
    stages = [
        s for s in ("embed", "reduce", "cluster", "summarize", "label", "metrics") if s in timings
    ]
    click.echo("seconds: " + "  ".join(f"{s} {timings[s]:.1f}" for s in stages))
    if "embed_embedded" in timings:
        click.echo(
            f"embedded {timings['embed_embedded']:,} texts, {timings.get('embed_cache_hits', 0):,} from the cache"
        )
    if timings.get("embed_precision"):
        click.echo(
            f"precision {timings['embed_precision']}: {timings.get('embed_precision_reason', '')}"
        )
    usage = summary.get("llm_usage") or {}
    if usage:
        click.echo(
            f"LLM: {usage.get('calls', 0)} calls, {usage.get('cache_hits', 0)} cached, "
            f"{usage.get('failures', 0)} failed, {usage.get('prompt_tokens', 0):,} + "
            f"{usage.get('completion_tokens', 0):,} tokens, ~${usage.get('cost_usd', 0):.4f}"
        )
    click.echo(f"wrote {summary['out']}")


@main.command()
@click.option("--corpus", "corpus_id", type=int, default=None, help="Only runs of this corpus.")
@db_option
@handle_errors
def runs(corpus_id: int | None, db: str | None) -> None:
    """List stored runs, newest first."""
    store = open_store(db)
    corpora = {c.id: c for c in store.list_corpora()}
    rows = store.list_runs(corpus_id)
    if not rows:
        click.echo("no runs yet: `corpusmap run INPUT --out OUT` makes one")
        return
    click.echo(
        f"{'run':>5}  {'status':<11} {'clusters':>8} {'outliers':>8}  {'created':<19}  corpus"
    )
    for r in rows:
        name = corpora[r.corpus_id].name if r.corpus_id in corpora else "?"
        click.echo(
            f"{r.id:>5}  {service.run_state(r):<11} {r.metrics.get('n_clusters', ''):>8} "
            f"{_pct(r.metrics.get('noise_share')):>8}  {r.created_at:%Y-%m-%d %H:%M:%S}  "
            f"#{r.corpus_id} {name}"
        )


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


@main.command()
@click.option("--db", "db", default=None, help="SQLAlchemy URL or SQLite file.")
@handle_errors
def corpora(db: str | None) -> None:
    """List stored corpora."""
    store = open_store(db)
    items = store.list_corpora()
    if not items:
        click.echo("no corpora yet")
        return
    for c in items:
        click.echo(
            f"#{c.id:<4} {c.name}  {c.n_rows:,} rows ({c.n_empty:,} empty, "
            f"{c.n_duplicates:,} duplicates)  column {c.text_column!r}  {c.created_at:%Y-%m-%d %H:%M}"
        )


@main.command()
@click.argument("run_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON lines.")
@db_option
@handle_errors
def show(run_id: int, as_json: bool, db: str | None) -> None:
    """Print the cluster table of a run, then what the run found (how firm its number of
    clusters is, the grain it picked and the coarser one it offers)."""
    from corpusmap import service, views

    store = open_store(db)
    run_info = store.get_run(run_id)
    table = service.cluster_table(store, run_id)
    if as_json:
        click.echo(table.to_json(orient="records", lines=True, force_ascii=False))
        return
    click.echo(
        f"run #{run_info.id} ({run_info.status}), corpus #{run_info.corpus_id}, "
        f"{len(table)} clusters, goal: {run_info.goal or '-'}"
    )
    for row in table.itertuples():
        faith = (
            ""
            if row.faithfulness is None or row.faithfulness != row.faithfulness
            else f" faith {row.faithfulness:.2f}"
        )
        status = "" if row.label_status in ("ok", "keywords") else f" [{row.label_status}]"
        click.echo(
            f"{row.cluster_id:>4}  {row.size:>6,}  {row.share:6.1%}  {row.name}{status}{faith}"
        )
        click.echo(f"      {row.keywords}")
    # What the run found beyond the table: how firm K is, the grain picked and the one offered.
    for line in views.outcome_lines(run_info):
        click.echo(line)


@main.command()
@click.argument("run_id", type=int)
@click.option("--out", "out", required=True, help="File to write (.csv, .jsonl, .parquet, .xlsx).")
@click.option("--clusters", "clusters_only", is_flag=True, help="Write the cluster table instead.")
@db_option
@handle_errors
def export(run_id: int, out: str, clusters_only: bool, db: str | None) -> None:
    """Re-export a stored run without recomputing anything."""
    from corpusmap import service
    from corpusmap.export import export_format

    store = open_store(db)
    frame = (
        service.cluster_table(store, run_id)
        if clusters_only
        else service.labeled_frame(store, run_id)
    )
    # Recorded before the file is written: no export leaves without its line in the trail.
    what = "cluster table" if clusters_only else "labeled corpus"
    store.record_audit("export", "run", run_id, format=export_format(out), what=what)
    write_table(frame, out)
    click.echo(f"wrote {out} ({len(frame):,} rows)")


@main.command()
@click.argument("run_id", type=int)
@click.option("--labeler", type=click.Choice(["keywords", "llm"]), default="llm", show_default=True)
@click.option("--cluster", "cluster_ids", type=int, multiple=True, help="Only these clusters.")
@click.option("--llm-base-url", default=None)
@click.option("--llm-model", default=None)
@db_option
@handle_errors
def relabel(
    run_id: int,
    labeler: str,
    cluster_ids: tuple[int, ...],
    llm_base_url: str | None,
    llm_model: str | None,
    db: str | None,
) -> None:
    """Name the clusters of a stored run again, without re-clustering."""
    from corpusmap import service

    store = open_store(db)
    chosen = api.make_labeler(labeler, store, {"base_url": llm_base_url, "model": llm_model})
    labels = service.relabel(store, run_id, chosen, cluster_ids=list(cluster_ids) or None)
    failed = sum(1 for lab in labels if lab.status == "llm_failed")
    click.echo(
        f"relabelled {len(labels)} clusters of run #{run_id}"
        + (f", {failed} fell back to keywords" if failed else "")
    )


@main.group()
def llm() -> None:
    """The optional local LLM (llama.cpp server with SmolLM2)."""


@llm.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--model", "model_path", default=None, help="GGUF file (default: the bundled SmolLM2)."
)
@handle_errors
def llm_serve(host: str, port: int, model_path: str | None) -> None:
    """Start an OpenAI-compatible server on HOST:PORT; point corpusmap at it with
    OPENAI_BASE_URL=http://HOST:PORT/v1 CORPUSMAP_LLM_MODEL=smollm2."""
    from llm import serve_local_model

    process = serve_local_model(host=host, port=port, model_path=model_path)
    click.echo(
        f"serving on http://{host}:{port}/v1 (model alias smollm2); Ctrl+C stops it\n"
        f"  export OPENAI_BASE_URL=http://{host}:{port}/v1 CORPUSMAP_LLM_MODEL=smollm2",
        err=True,
    )
    try:
        process.wait()
    except KeyboardInterrupt:
        process.terminate()
        process.wait(timeout=10)


main.add_command(edit)
main.add_command(lens_command)
main.add_command(balance_command)
main.add_command(over_time_command)
main.add_command(assign_command)
for command in TEAM_COMMANDS:
    main.add_command(command)

if __name__ == "__main__":  # pragma: no cover
    main()
