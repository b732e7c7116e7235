"""The ``run`` command's goal-driven options (issue 5): ``--mode``, seeds, must-link /
cannot-link files, ``--llm-budget``, ``--hierarchy``, rules, a balanced sample export, and
goal-conditioned embeddings (``--instruction``, ``--expand-keyphrases``).

Kept apart from ``corpusmap.cli`` so that command stays readable: ``mode_options`` adds the
options, ``run_request`` runs the request they are part of and prints the LLM budget before and the
usage after (on stderr), the constraint report, novel clusters, the hierarchy and the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from corpusmap import modes, views
from corpusmap.cli_common import open_store
from corpusmap.export import write_table
from corpusmap.request import RunRequest
from llm.keyphrases import KEYPHRASE_BATCH

MODE_ARGS = (
    "mode",
    "seed_label_column",
    "must_link",
    "cannot_link",
    "llm_budget",
    "hierarchy",
    "n_parents",
    "k_method",
    "selection",
    "categories",
    "rules",
    "sample_out",
    "sample_n",
    "instruction",
    "expand_keyphrases",
)


def mode_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options, outermost last so they list in this order in ``--help``."""
    options = [
        click.option(
            "--mode",
            type=click.Choice(list(modes.MODES)),
            default="cluster",
            show_default=True,
            help="cluster: the pipeline (semi-supervised with seeds/pairs); propose: the LLM proposes goal-driven descriptions, texts are assigned, K are selected; classify: the LLM proposes labels, then classifies the texts.",
        ),
        click.option(
            "--seed-label-column",
            default=None,
            metavar="COL",
            help="Seed labels: rows with a value are seeds, empty cells are free (--mode cluster).",
        ),
        click.option(
            "--must-link",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="FILE",
            help="CSV of row-number pairs (0-based, input order) that belong together.",
        ),
        click.option(
            "--cannot-link",
            type=click.Path(exists=True, dir_okay=False),
            default=None,
            metavar="FILE",
            help="CSV of row-number pairs that must be apart.",
        ),
        click.option(
            "--llm-budget",
            type=click.IntRange(min=0),
            default=None,
            metavar="N",
            help="Most LLM calls of the goal-driven steps (default: a planned amount; 0: embeddings only).",
        ),
        click.option(
            "--hierarchy/--no-hierarchy",
            default=False,
            show_default=True,
            help="Group the clusters into labeled parents.",
        ),
        click.option(
            "--n-parents",
            type=click.IntRange(min=1),
            default=None,
            help="Number of parents (default: chosen by silhouette, or by LLM pairwise checks).",
        ),
        click.option(
            "--k-method",
            type=click.Choice(["silhouette", "stability"]),
            default="silhouette",
            show_default=True,
            help="Offline criterion for an automatic number of clusters or parents.",
        ),
        click.option(
            "--selection",
            type=click.Choice(["greedy", "milp"]),
            default="greedy",
            show_default=True,
            help="--mode propose: how descriptions are selected.",
        ),
        click.option(
            "--category",
            "categories",
            multiple=True,
            metavar="NAME",
            help="--mode classify: your own categories (repeat the option); no proposal.",
        ),
        click.option(
            "--rules/--no-rules",
            default=True,
            show_default=True,
            help="Explain each cluster with a keyword rule and its precision/recall.",
        ),
        click.option(
            "--sample-out",
            default=None,
            metavar="FILE",
            help="Also write a sample balanced across clusters (and children within parents).",
        ),
        click.option(
            "--sample-n",
            type=click.IntRange(min=1),
            default=200,
            show_default=True,
            help="Rows in --sample-out.",
        ),
        click.option(
            "--instruction",
            default="",
            metavar="TEMPLATE",
            help=(
                "Instruction prefix for encoders trained with one (E5-instruct, GTE-Qwen...; "
                "give one with --embedder): each text is embedded as TEMPLATE + text, {goal} "
                "becomes --goal and \\n a newline, e.g. 'Instruct: {goal}\\nQuery: '. The "
                "default all-MiniLM-L6-v2 takes no instruction. Vectors are cached per prefix."
            ),
        ),
        click.option(
            "--expand-keyphrases/--no-expand-keyphrases",
            default=False,
            show_default=True,
            help=(
                "Before embedding, the LLM rewrites each distinct text into keyphrases about "
                f"--goal (one call per {KEYPHRASE_BATCH} texts, paid from --llm-budget first; needs an LLM "
                "endpoint). Calls and vectors are stored: a re-run costs no call."
            ),
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def options_from(args: dict[str, Any]) -> modes.ModeOptions:
    return modes.ModeOptions(
        mode=args["mode"],
        seed_label_column=args["seed_label_column"],
        must_link=modes.pairs_from_file(args["must_link"]),
        cannot_link=modes.pairs_from_file(args["cannot_link"]),
        llm_budget=args["llm_budget"],
        hierarchy=args["hierarchy"],
        n_parents=args["n_parents"],
        k_method=args["k_method"],
        selection=args["selection"],
        categories=tuple(args["categories"]),
        rules=args["rules"],
        # A shell passes "\n" as two characters; instruction templates mean a newline.
        instruction=(args["instruction"] or "").replace("\\n", "\n"),
        expand_keyphrases=args["expand_keyphrases"],
    )


def echo_plan(plan: dict[str, Any]) -> None:
    if plan.get("calls"):
        click.echo(views.plan_text(plan), err=True)


def run_request(request: RunRequest, db: str | None, progress: Any, args: dict[str, Any]) -> Any:
    """Run ``request`` (``api.run``), print what the mode found (on stderr) and write the
    balanced sample ``--sample-out`` asks for; returns the ``api.RunHandle``."""
    from corpusmap import api

    result = api.run(request=request, store=open_store(db), progress=progress, on_plan=echo_plan)
    echo_outcome(result)
    if args["sample_out"]:
        sample = views.balanced_sample_frame(result.store, result.run_id, args["sample_n"])
        write_table(sample, args["sample_out"])
        click.echo(
            f"wrote a balanced sample of {len(sample):,} rows to {args['sample_out']}", err=True
        )
    return result


def echo_outcome(result: Any) -> None:
    """The mode's own findings, on stderr (the summary itself goes to stdout)."""
    for line in views.outcome_lines(result.info):
        click.echo(line, err=True)
