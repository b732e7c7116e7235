"""Goal-driven clustering modes wired to storage (issue 5).

Every mode stores a run like ``service.cluster_corpus`` does (clusters, labels, assignments,
map coordinates, metrics), so ``show``, ``export``, ``relabel`` and the app work on it:

- ``cluster``: the pipeline; with seed labels or must-link / cannot-link pairs it becomes
  semi-supervised (``clustering.constraints``) and marks novel clusters (``clustering.novelty``).
- ``propose``: propose → assign → select (``llm.goal``), embeddings only without an LLM.
- ``classify``: label-then-classify (``llm.classify``), nearest category without an LLM.

Any mode can embed with goal-conditioned vectors: an instruction prefix for encoders trained
with one (``ModeOptions.instruction``), and LLM keyphrase expansion (``expand_keyphrases``,
``llm.keyphrases``; its calls come first in the plan and the budget).

Any mode can add a two-level hierarchy (``clustering.hierarchy``; parents' count by the LLM's
pairwise checks when an LLM is configured, ``llm.granularity``) and per-cluster keyword rules
(``clustering.rules``). The run stores its mode, the options, the LLM plan (budget), what the
LLM used, the constraint report, novelty, hierarchy and rules (in ``metrics``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clustering import read_corpus
from clustering.constraints import (
    Constraints,
    cluster_with_constraints,
    constraint_report,
    read_pairs,
    remap_pairs,
    seeds_from_values,
)
from clustering.embed import (
    SentenceTransformerEmbedder,
    embed_texts,
    parse_model_id,
    plain_encoder,
    resolve_instruction,
    uncached_texts,
)
from clustering.errors import ConfigError
from clustering.faithfulness import explanation_faithfulness
from clustering.hierarchy import (
    Hierarchy,
    build_hierarchy,
    hierarchy_from_partition,
    leaf_partitions,
    parent_candidates,
    summarize_parents,
)
from clustering.labels import KeywordLabeler
from clustering.novelty import find_novel_clusters
from clustering.pipeline import PipelineConfig, measure, reduce_vectors
from clustering.rules import explain_clusters
from clustering.sampling import balanced_sample
from clustering.summarize import summarize_clusters
from clustering.types import (
    NOISE,
    Assignment,
    ClusterLabel,
    ClusterSummary,
    Embedder,
    Labeler,
    ProgressCallback,
    no_progress,
)
from corpusmap import service
from corpusmap.errors import CorpusmapError
from storage import Store

log = logging.getLogger(__name__)

MODES = ("cluster", "propose", "classify")
PAIRS_SHARE = 0.25
"""Share of the call budget the hierarchy's pairwise checks may spend (at most ``MAX_PAIR_CALLS``)."""
MAX_PAIR_CALLS = 6
PARENT_ID_BASE = 1000
"""Stored parents (level 1) are clusters 1000, 1001, ... (ids are unique per run across levels)."""


@dataclass(frozen=True)
class ModeOptions:
    """What a mode run does beyond ``PipelineConfig``; stored with the run."""

    mode: str = "cluster"
    seed_label_column: str | None = None
    seed_labels: tuple[tuple[int, str], ...] = ()
    """Seeds typed by hand: (0-based input row number, label); they override the column."""
    must_link: tuple[tuple[int, int], ...] = ()
    """Pairs of 0-based input row numbers that belong together."""
    cannot_link: tuple[tuple[int, int], ...] = ()
    llm_budget: int | None = None
    """Most LLM calls of the goal-driven steps; ``None`` plans a default, 0 asks nothing."""
    hierarchy: bool = False
    n_parents: int | None = None
    k_method: str = "silhouette"
    """How K is chosen offline: ``silhouette`` or ``stability``."""
    selection: str = "greedy"
    """``propose``: ``greedy`` or ``milp``."""
    categories: tuple[str, ...] = ()
    """``classify``: the user's own categories (no proposal)."""
    rules: bool = True
    instruction: str = ""
    """Instruction prefix template for encoders trained with one (E5-instruct, GTE-Qwen...):
    ``{goal}`` is replaced by the run's goal, e.g. ``"Instruct: {goal}\nQuery: "``."""
    expand_keyphrases: bool = False
    """Before embedding, the LLM rewrites each distinct text into goal-relevant keyphrases
    (``llm.keyphrases``); off by default: one call per ``KEYPHRASE_BATCH`` texts."""

    @property
    def constrained(self) -> bool:
        return bool(
            self.seed_label_column or self.seed_labels or self.must_link or self.cannot_link
        )

    def validate(self) -> None:
        if self.mode not in MODES:
            raise CorpusmapError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.llm_budget is not None and self.llm_budget < 0:
            raise CorpusmapError(f"--llm-budget must be 0 or more, got {self.llm_budget}")
        if self.k_method not in ("silhouette", "stability"):
            raise CorpusmapError("k_method must be 'silhouette' or 'stability'")
        if self.selection not in ("greedy", "milp"):
            raise CorpusmapError("selection must be 'greedy' or 'milp'")
        if self.constrained and self.mode != "cluster":
            raise CorpusmapError(
                "seed labels and must-link / cannot-link pairs steer --mode cluster only"
            )
        if self.categories and self.mode != "classify":
            raise CorpusmapError("categories are for --mode classify")
        # The template's fields and syntax; whether the run has a goal is checked with it.
        resolve_instruction(self.instruction, "goal")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seed_labels"] = len(self.seed_labels)
        data["must_link"] = len(self.must_link)
        data["cannot_link"] = len(self.cannot_link)
        data["categories"] = list(self.categories)
        return data


@dataclass(frozen=True)
class ModeOutcome:
    """What a mode computed, before it is stored."""

    assignment: Assignment
    space: np.ndarray
    labels: tuple[ClusterLabel, ...] = ()
    """Labels the mode wrote itself (propose, classify); others come from the labeler."""
    metrics: dict[str, Any] = field(default_factory=dict)


def pairs_from_file(path: str | Path | None) -> tuple[tuple[int, int], ...]:
    if not path:
        return ()
    return tuple((int(a), int(b)) for a, b in read_pairs(path))


def make_asker(
    settings: Any | None, store: Store, budget: int | None, call_budget: Any | None = None
) -> Any | None:
    """A ``JSONAsker`` for the goal-driven prompts, or ``None`` with no endpoint or budget 0.

    ``call_budget`` (``llm.asker.CallBudget``) is shared with other askers of the same run
    (keyphrase expansion): the run's calls together stay within it.
    """
    if settings is None or not settings.configured or budget == 0:
        return None
    from llm.asker import CallBudget, JSONAsker
    from llm.goal_prompts import GOAL_PROMPT_VERSION

    return JSONAsker(
        settings,
        prompt_version=GOAL_PROMPT_VERSION,
        store=store,
        budget=call_budget or CallBudget(budget),
    )


# --- goal-conditioned embeddings ---------------------------------------------------------------


def check_goal_embedding(
    options: ModeOptions, config: PipelineConfig, llm_settings: Any | None
) -> None:
    """Fail before any work on an instruction that cannot be filled in (``{goal}`` with no
    goal), or on keyphrase expansion with no LLM endpoint (never a silent no-op)."""
    resolve_instruction(options.instruction, config.goal)
    if options.expand_keyphrases and (llm_settings is None or not llm_settings.configured):
        raise CorpusmapError(
            "keyphrase expansion asks an LLM to rewrite every text into keyphrases, and no LLM "
            "endpoint is configured: set OPENAI_BASE_URL (and OPENAI_API_KEY if it needs one), "
            "pass --llm-base-url, or in the app name clusters with an LLM and fill in its "
            "endpoint (`corpusmap llm serve` starts a local one); or leave expansion off"
        )


def goal_embedder(encoder: Embedder, options: ModeOptions, config: PipelineConfig) -> Embedder:
    """``encoder`` with the run's instruction prefix (``options.instruction`` with the goal
    filled in), or ``encoder`` itself when there is no instruction."""
    if not options.instruction:
        return encoder
    prefix = resolve_instruction(options.instruction, config.goal)
    if isinstance(encoder, SentenceTransformerEmbedder):
        return encoder.with_prefix(prefix)  # shares the loaded model
    model, _ = parse_model_id(encoder.model_id)
    return service.get_embedder(model, prefix=prefix)


def keyphrase_budget_left(budget: int | None, keyphrase_calls: int) -> int | None:
    """What ``--llm-budget`` leaves to the mode's own steps once keyphrase expansion is paid."""
    return None if budget is None else max(0, budget - keyphrase_calls)


def plan_llm(
    texts: Sequence[str],
    options: ModeOptions,
    config: PipelineConfig,
    *,
    keyphrase_texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Calls and tokens a mode will spend at most (the budget), for display before it runs.

    With ``options.expand_keyphrases`` the plan starts with ``keyphrase_calls`` for
    ``keyphrase_texts`` (the distinct texts not in the embedding cache; default: every
    distinct text), and the mode's steps plan with what ``llm_budget`` leaves. A budget that
    cannot expand every one of those texts raises ``CorpusmapError``: expanding some texts and
    not others would put two kinds of vectors in one space and distort it.
    """
    if not options.expand_keyphrases:
        return _plan_steps(texts, options, config)
    from llm.keyphrases import KEYPHRASE_BATCH, plan_keyphrases

    todo = list(dict.fromkeys(texts)) if keyphrase_texts is None else list(keyphrase_texts)
    expansion = plan_keyphrases(todo)
    needed = expansion["keyphrase_calls"]
    if options.llm_budget is not None and options.llm_budget < needed:
        raise CorpusmapError(
            f"--expand-keyphrases needs {needed:,} LLM calls to expand {len(todo):,} distinct "
            f"texts ({KEYPHRASE_BATCH} per call), but --llm-budget is {options.llm_budget}: "
            f"raise --llm-budget to at least {needed:,} (the mode's own steps get what is left) "
            "or leave expansion off"
        )
    steps = replace(options, llm_budget=keyphrase_budget_left(options.llm_budget, needed))
    plan = _plan_steps(texts, steps, config)
    combined = {
        k: plan.get(k, 0) + expansion[k] for k in ("calls", "prompt_tokens", "completion_tokens")
    }
    return {**plan, **combined, "keyphrase_calls": needed, "keyphrase_texts": len(todo)}


def _plan_steps(
    texts: Sequence[str], options: ModeOptions, config: PipelineConfig
) -> dict[str, Any]:
    if options.mode == "propose":
        from llm.goal import GoalConfig, plan_goal

        return plan_goal(
            texts,
            GoalConfig(goal=config.goal, n_clusters=config.n_clusters, budget=options.llm_budget),
        ).to_dict()
    if options.mode == "classify":
        from llm.classify import ClassifyConfig, plan_classify

        cfg = ClassifyConfig(
            goal=config.goal,
            n_clusters=config.n_clusters,
            categories=options.categories,
            budget=options.llm_budget,
        )
        return plan_classify(texts, cfg).to_dict()
    calls = pair_calls(options) if options.hierarchy else 0
    return {
        "calls": calls,
        "prompt_tokens": calls * 400,
        "completion_tokens": calls * 30,
        "pair_calls": calls,
    }


def pair_calls(options: ModeOptions) -> int:
    if options.llm_budget is None:
        return MAX_PAIR_CALLS
    return min(MAX_PAIR_CALLS, options.llm_budget)


# --- the run --------------------------------------------------------------------------------


def run_mode(
    store: Store,
    corpus_id: int,
    options: ModeOptions,
    *,
    config: PipelineConfig | None = None,
    embedder: Embedder | None = None,
    labeler: Labeler | None = None,
    llm_settings: Any | None = None,
    label_column: str | None = None,
    progress: ProgressCallback = no_progress,
    run_name: str = "",
    on_created: Callable[[int], None] | None = None,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Run ``options.mode`` on a stored corpus and store it; returns the run id.

    ``llm_settings`` (``llm.LLMSettings``) is the endpoint of the goal-driven steps; without
    it (or with ``llm_budget=0``) every mode runs on embeddings alone. ``on_plan(plan)`` gets
    the LLM budget before any call is made. ``options.instruction`` embeds with an instruction
    prefix (``embedder``'s model); ``options.expand_keyphrases`` expands the texts into
    keyphrases first, which needs ``llm_settings``: its calls come first in the plan and in
    ``llm_budget``, and a budget that cannot pay for them fails here, before any call.
    """
    options.validate()
    config = config or PipelineConfig()
    config.validate()
    check_goal_embedding(options, config, llm_settings)
    encoder = goal_embedder(embedder or service.get_embedder(), options, config)
    corpus = store.load_corpus(corpus_id)
    truth = service.truth_column(corpus, label_column)
    index = corpus.nonempty_index
    texts = [corpus.texts[i] for i in index]
    doc_ids = store.document_ids(corpus_id)[index]
    constraints = build_constraints(corpus, index, options)
    call_budget = None
    asker = expander = None
    todo: list[str] | None = None
    try:
        if options.expand_keyphrases and llm_settings is not None:  # else refused above
            from llm.asker import CallBudget
            from llm.keyphrases import KeyphraseEmbedder, keyphrase_asker

            # One budget for the expansion and the mode's steps: the run stays in llm_budget.
            call_budget = CallBudget(options.llm_budget)
            expander = keyphrase_asker(llm_settings, store=store, budget=call_budget)
            encoder = KeyphraseEmbedder(encoder, expander, config.goal)
            todo = uncached_texts(texts, encoder, store)
        plan = plan_llm(texts, options, config, keyphrase_texts=todo)
        steps = replace(
            options,
            llm_budget=keyphrase_budget_left(options.llm_budget, plan.get("keyphrase_calls", 0)),
        )
        asker = make_asker(llm_settings, store, steps.llm_budget, call_budget)
        if asker is None and not options.expand_keyphrases:
            plan = {"calls": 0}
        if on_plan is not None:
            on_plan(plan)

        def created(run_id: int) -> None:
            for each in (asker, expander):
                if each is not None:
                    each.run_id = run_id  # calls are recorded against this run
            if on_created is not None:
                on_created(run_id)

        if options.mode == "cluster" and not options.constrained:
            run_id = service.cluster_corpus(
                store,
                corpus_id,
                config=config,
                embedder=encoder,
                labeler=labeler,
                label_column=label_column,
                progress=progress,
                run_name=run_name,
                on_created=created,
            )
            stored = store.get_run(run_id).config
            store.update_run_config(run_id, {**stored, "mode_options": options.to_dict()})
            _save_usage(store, run_id, asker, labeler, plan, encoder)
            add_structure(store, run_id, steps, texts, encoder, labeler, asker, config, plan)
            return run_id
        return _run_steps(
            store,
            corpus_id,
            options,
            steps,
            config=config,
            encoder=encoder,
            labeler=labeler,
            asker=asker,
            plan=plan,
            texts=texts,
            doc_ids=doc_ids,
            truth=truth,
            constraints=constraints,
            label_column=label_column,
            progress=progress,
            run_name=run_name,
            on_created=created,
        )
    finally:
        for each in (asker, expander):
            if each is not None:
                each.close()


def _run_steps(
    store: Store,
    corpus_id: int,
    options: ModeOptions,
    steps: ModeOptions,
    *,
    config: PipelineConfig,
    encoder: Embedder,
    labeler: Labeler | None,
    asker: Any | None,
    plan: dict[str, Any],
    texts: list[str],
    doc_ids: np.ndarray,
    truth: list[Any] | None,
    constraints: Constraints,
    label_column: str | None,
    progress: ProgressCallback,
    run_name: str,
    on_created: Callable[[int], None],
) -> int:
    """A mode other than the plain pipeline, stage by stage; ``steps`` are ``options`` with
    the budget that keyphrase expansion left."""
    run_id = store.create_run(
        corpus_id,
        config={**config.to_dict(), "mode_options": options.to_dict()},
        seed=config.random_state,
        embedder=encoder.model_id,
        labeler=_labeler_name(options, labeler, asker),
        mode=options.mode,
        goal=config.goal or "",
        label_column=label_column or "",
        versions=service.package_versions(),
        name=run_name,
    )
    if hasattr(labeler, "run_id"):
        labeler.run_id = run_id
    on_created(run_id)
    timings: dict[str, Any] = {}
    try:
        start = time.perf_counter()
        progress("embed", 0.0, f"embedding {len(texts):,} texts")
        vectors, counts = embed_texts(texts, encoder, store, progress=progress)
        timings["embed"] = round(time.perf_counter() - start, 3)
        timings.update({f"embed_{k}": v for k, v in counts.items()})
        store.save_stage(run_id, "embed", timings)

        start = time.perf_counter()
        progress("reduce", 0.0, "laying out the map")
        _, coords = reduce_vectors(vectors, replace(config, n_components=2))
        timings["reduce"] = round(time.perf_counter() - start, 3)
        store.save_stage(run_id, "reduce", timings)

        start = time.perf_counter()
        progress("cluster", 0.0, f"{options.mode} mode")
        outcome = compute_mode(texts, vectors, encoder, steps, config, constraints, asker)
        timings["cluster"] = round(time.perf_counter() - start, 3)
        store.save_assignment(run_id, doc_ids, outcome.assignment, coords)
        store.save_stage(run_id, "cluster", timings)

        start = time.perf_counter()
        progress("label", 0.0, "naming the clusters")
        summaries = summarize_clusters(
            texts,
            vectors,
            outcome.assignment,
            goal=config.goal,
            n_representatives=config.n_representatives,
        )
        labels = name_clusters(summaries, outcome, labeler, options)
        timings["label"] = round(time.perf_counter() - start, 3)
        faith = explanation_faithfulness(vectors, outcome.assignment.labels, labels, encoder)
        store.save_clusters(run_id, summaries, labels, faithfulness=faith.per_cluster)
        store.save_stage(run_id, "label", timings)

        metrics = {**measure(outcome.space, outcome.assignment.labels, truth), **outcome.metrics}
        metrics["faithfulness"] = faith.overall
        store.save_metrics(run_id, _storable(metrics))
        _save_usage(store, run_id, asker, labeler, plan, encoder)
        add_structure(
            store, run_id, steps, texts, encoder, labeler, asker, config, plan, vectors=vectors
        )
        store.finish_run(run_id)
    except BaseException as err:
        store.fail_run(run_id, f"{type(err).__name__}: {err}")
        raise
    return run_id


def _labeler_name(options: ModeOptions, labeler: Labeler | None, asker: Any | None) -> str:
    if options.mode in ("propose", "classify"):
        return f"{options.mode}-llm" if asker is not None else "keywords"
    return getattr(labeler, "name", "keywords")


def build_constraints(corpus: Any, index: np.ndarray, options: ModeOptions) -> Constraints:
    n = len(index)
    if not options.constrained:
        return Constraints.none(n)
    values: list[Any] = [None] * n
    positions = {int(row): pos for pos, row in enumerate(index)}
    if options.seed_label_column:
        column = options.seed_label_column
        if column not in corpus.frame.columns:
            raise CorpusmapError(
                f"no seed label column {column!r}; the corpus has: "
                f"{', '.join(map(str, corpus.frame.columns))}"
            )
        values = list(corpus.frame[column].iloc[index])
    for row, label in options.seed_labels:
        if not 0 <= int(row) < corpus.n_rows:
            raise CorpusmapError(f"a seed names row {row} but the input has {corpus.n_rows} rows")
        if int(row) in positions:
            values[positions[int(row)]] = label
    seeds, classes = seeds_from_values(values)
    if (options.seed_label_column or options.seed_labels) and not len(classes):
        raise CorpusmapError("the seed labels are all empty: give at least one row a label")
    must = remap_pairs(
        np.asarray(options.must_link, dtype=np.int64).reshape(-1, 2), positions, corpus.n_rows
    )
    cannot = remap_pairs(
        np.asarray(options.cannot_link, dtype=np.int64).reshape(-1, 2), positions, corpus.n_rows
    )
    return Constraints(seeds, classes, must, cannot)


def compute_mode(
    texts: Sequence[str],
    vectors: np.ndarray,
    embedder: Embedder,
    options: ModeOptions,
    config: PipelineConfig,
    constraints: Constraints,
    asker: Any | None,
) -> ModeOutcome:
    """The mode's clustering on embedded texts (no storage)."""
    # Proposed descriptions and categories are embedded as they are, never expanded into
    # keyphrases: they are not corpus texts and their calls are not in the plan.
    embedder = plain_encoder(embedder)
    if options.mode == "propose":
        from llm.goal import GoalConfig, propose_assign_select

        goal_config = GoalConfig(
            goal=config.goal,
            n_clusters=config.n_clusters,
            selection=options.selection,
            budget=options.llm_budget,
            reassign_outliers=config.reassign_outliers,
            random_state=config.random_state,
        )
        result = propose_assign_select(texts, vectors, embedder, goal_config, asker)
        metrics = {"mode_stats": result.stats, "selection": result.selection.to_dict()}
        return ModeOutcome(result.assignment, vectors, result.labels, metrics)
    if options.mode == "classify":
        from llm.classify import ClassifyConfig, label_then_classify

        classify_config = ClassifyConfig(
            goal=config.goal,
            n_clusters=config.n_clusters,
            categories=options.categories,
            budget=options.llm_budget,
            random_state=config.random_state,
        )
        classified = label_then_classify(texts, vectors, embedder, classify_config, asker)
        return ModeOutcome(
            classified.assignment, vectors, classified.labels, {"mode_stats": classified.stats}
        )
    assignment, space, class_of = cluster_with_constraints(
        vectors,
        constraints,
        n_clusters=config.n_clusters,
        n_components=config.n_components,
        n_neighbors=config.n_neighbors,
        random_state=config.random_state,
    )
    found: dict[str, Any] = {
        "constraints": {
            **constraints.to_dict(),
            **constraint_report(assignment.labels, constraints).to_dict(),
        }
    }
    if constraints.n_seeds:
        found["novelty"] = find_novel_clusters(
            assignment.labels, constraints.seeds, constraints.classes
        ).to_dict()
    return ModeOutcome(assignment, space, (), found)


def name_clusters(
    summaries: Sequence[ClusterSummary],
    outcome: ModeOutcome,
    labeler: Labeler | None,
    options: ModeOptions,
) -> list[ClusterLabel]:
    """The mode's own labels; else the labeler's, with known clusters named by their seed class."""
    if outcome.labels:
        return list(outcome.labels)
    labels = list((labeler or KeywordLabeler()).label(summaries))
    known = outcome.metrics.get("novelty", {}).get("known", {})
    return [
        replace(lab, name=str(known[lab.cluster_id])[:200], labeler="seed", status="ok")
        if lab.cluster_id in known
        else lab
        for lab in labels
    ]


# --- hierarchy and rules ----------------------------------------------------------------------


def add_structure(
    store: Store,
    run_id: int,
    options: ModeOptions,
    texts: Sequence[str],
    embedder: Embedder | None,
    labeler: Labeler | None,
    asker: Any | None,
    config: PipelineConfig,
    plan: dict[str, Any],
    *,
    vectors: np.ndarray | None = None,
    llm_settings: Any | None = None,
) -> None:
    """Add the hierarchy (when asked) and the keyword rules to a stored run.

    Without ``vectors``, the run's are read back from the cache (``service.run_vectors``;
    ``llm_settings`` expands texts a keyphrase run is missing there)."""
    if not (options.hierarchy or options.rules):
        return
    assignments = store.load_assignments(run_id)
    texts = assignments["text"].tolist()
    leaf_labels = assignments["cluster_id"].to_numpy(np.int64)
    metrics = dict(store.get_run(run_id).metrics)
    if options.rules:
        start = time.perf_counter()
        rules = explain_clusters(texts, leaf_labels)
        metrics["rules"] = {int(c): r.to_dict() for c, r in rules.items()}
        log.info("keyword rules for %d clusters in %.1f s", len(rules), time.perf_counter() - start)
    if options.hierarchy:
        if vectors is None:
            vectors = service.run_vectors(
                store, store.get_run(run_id), texts, embedder, llm_settings=llm_settings
            )
        hierarchy = choose_hierarchy(vectors, leaf_labels, texts, options, asker, config)
        base = save_hierarchy(
            store, run_id, hierarchy, texts, vectors, leaf_labels, labeler, config
        )
        stored = hierarchy.to_dict()
        stored["parent_of"] = {c: base + p for c, p in stored["parent_of"].items()}
        metrics["hierarchy"] = {**stored, "parent_id_base": base}
        if options.rules:
            parent_rules = explain_clusters(texts, hierarchy.parent_labels(leaf_labels))
            metrics["parent_rules"] = {base + int(c): r.to_dict() for c, r in parent_rules.items()}
    store.save_metrics(run_id, _storable(metrics))
    _save_usage(store, run_id, asker, labeler, plan, embedder)


def choose_hierarchy(
    vectors: np.ndarray,
    leaf_labels: np.ndarray,
    texts: Sequence[str],
    options: ModeOptions,
    asker: Any | None,
    config: PipelineConfig,
) -> Hierarchy:
    """Parents by the offline criterion; with an LLM, their count by pairwise checks."""
    offline = build_hierarchy(
        vectors,
        leaf_labels,
        n_parents=options.n_parents,
        method=options.k_method,
        random_state=config.random_state,
    )
    n_leaves = len({int(c) for c in leaf_labels if c != NOISE})
    if asker is None or options.n_parents is not None or n_leaves < 4:
        return offline
    from llm.granularity import choose_k_by_pairs

    candidates = [min(k, n_leaves) for k in parent_candidates(n_leaves)]
    _, partitions = leaf_partitions(vectors, leaf_labels, candidates)
    left = asker.budget.left
    calls = min(MAX_PAIR_CALLS, left if left is not None else MAX_PAIR_CALLS)
    choice = choose_k_by_pairs(
        texts,
        leaf_labels,
        partitions,
        asker,
        config.goal,
        max_calls=calls,
        fallback=offline.choice,
        random_state=config.random_state,
    )
    if choice.method != "llm_pairs":
        return offline
    return hierarchy_from_partition(partitions[choice.k], leaf_labels, choice)


def save_hierarchy(
    store: Store,
    run_id: int,
    hierarchy: Hierarchy,
    texts: Sequence[str],
    vectors: np.ndarray,
    leaf_labels: np.ndarray,
    labeler: Labeler | None,
    config: PipelineConfig,
) -> int:
    """Parents as level-1 clusters (labeled), leaves re-saved with their ``parent_id``;
    returns the id base of the stored parents."""
    stored = store.load_clusters(run_id)
    leaf_summaries = [
        ClusterSummary(
            cluster_id=c.cluster_id,
            size=c.size,
            share=c.share,
            keywords=tuple(c.keywords),
            representatives=tuple(c.representatives),
            goal=config.goal,
            neighbours=tuple(c.extra.get("neighbours", ())),
        )
        for c in stored
    ]
    leaf_labels_kept = [
        ClusterLabel(
            cluster_id=c.cluster_id,
            name=c.name,
            description=c.description,
            inclusion_criterion=c.inclusion_criterion,
            evidence=tuple(c.evidence),
            status=c.label_status,
            error=c.label_error,
            labeler=c.labeler,
        )
        for c in stored
    ]
    faithfulness = {c.cluster_id: c.faithfulness for c in stored if c.faithfulness is not None}
    parents, leaves = summarize_parents(
        list(texts), vectors, leaf_labels, hierarchy, leaf_summaries, goal=config.goal
    )
    parent_labels = list((labeler or KeywordLabeler()).label(parents))
    # Cluster ids are unique per run across levels (the clusters table's index), so parents are
    # stored as base + 0..P-1, the base a power of ten above every leaf id.
    base = parent_id_base(leaf_labels)
    parents = tuple(replace(p, cluster_id=base + p.cluster_id) for p in parents)
    parent_labels = [replace(lab, cluster_id=base + lab.cluster_id) for lab in parent_labels]
    leaves = tuple(
        replace(s, parent_id=None if s.parent_id is None else base + s.parent_id) for s in leaves
    )
    store.save_clusters(run_id, parents, parent_labels, level=1)
    store.save_clusters(run_id, leaves, leaf_labels_kept, faithfulness=faithfulness)
    return base


def parent_id_base(leaf_labels: np.ndarray) -> int:
    """``PARENT_ID_BASE``, or the next power of ten above the largest leaf id."""
    top = int(np.max(leaf_labels, initial=0))
    base = PARENT_ID_BASE
    while base <= top:
        base *= 10
    return base


USAGE_TOTALS = (
    "calls",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cache_hits",
    "over_budget",
    "unanswered",
)
"""Usage keys summed over the run's askers and labeler."""


def _save_usage(
    store: Store,
    run_id: int,
    asker: Any | None,
    labeler: Labeler | None,
    plan: dict[str, Any],
    embedder: Embedder | None = None,
) -> None:
    """The run's LLM usage: the mode's asker at the top, keyphrase expansion under
    ``keyphrases`` and the labeler under ``labeler``, their calls and tokens summed."""
    from llm.keyphrases import KeyphraseEmbedder

    usage: dict[str, Any] = asker.usage_dict() if asker is not None else {}
    parts: dict[str, dict[str, Any]] = {}
    if isinstance(embedder, KeyphraseEmbedder) and embedder.asker is not None:
        parts["keyphrases"] = embedder.usage_dict()
    if hasattr(labeler, "usage"):
        parts["labeler"] = labeler.usage.to_dict()
    for name, part in parts.items():
        if not usage:
            usage = dict(part)
            if name == "keyphrases":
                usage[name] = part
            continue
        usage[name] = part
        for key in USAGE_TOTALS:
            if key in usage or key in part:
                usage[key] = usage.get(key, 0) + part.get(key, 0)
    if usage or plan.get("calls"):
        usage["plan"] = plan
        store.save_llm_usage(run_id, usage)


def keyphrase_text(usage: dict[str, Any]) -> str:
    """What keyphrase expansion did in a run, in one sentence (``""`` when it was off), from
    the run's ``llm_usage``."""
    expansion = (usage or {}).get("keyphrases")
    if not expansion:
        return ""
    if not expansion.get("texts"):
        return "keyphrases: every expanded vector came from the embedding cache (no LLM call)"
    return (
        f"keyphrases: {expansion.get('expanded', 0):,} texts expanded, "
        f"{expansion.get('kept', 0):,} kept as they were (no usable keyphrases), "
        f"{expansion.get('calls', 0)} calls, {expansion.get('cache_hits', 0)} from the cache"
    )


def _storable(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if v is not None}


# --- the file-level entry point and app helpers ---------------------------------------------


def run_file(
    source: str | Path,
    options: ModeOptions,
    *,
    text_column: str | None = None,
    config: PipelineConfig | None = None,
    embedder: str | None = None,
    labeler: str | Labeler | None = "keywords",
    label_column: str | None = None,
    db: str | None = None,
    store: Store | None = None,
    sheet: str | None = None,
    llm_overrides: dict[str, Any] | None = None,
    progress: ProgressCallback = no_progress,
    on_plan: Callable[[dict[str, Any]], None] | None = None,
    ray: str | None = None,
) -> Any:
    """``api.run`` for any mode: read, store, run; returns an ``api.RunHandle``.

    ``ray`` (``"auto"`` or an address) embeds on a Ray cluster; the mode's own steps run here.
    """
    from corpusmap import api

    options.validate()
    if ray and (options.instruction or options.expand_keyphrases):
        raise CorpusmapError(
            "--ray embeds with the plain model: drop --instruction / --expand-keyphrases, or --ray"
        )
    settings = llm_settings_from(llm_overrides)
    check_goal_embedding(options, config or PipelineConfig(), settings)  # before any write
    store = store or Store.open(db)
    corpus = read_corpus(source, text_column=text_column, sheet=sheet)
    if label_column:
        service.truth_column(corpus, label_column)
    if options.seed_label_column and options.seed_label_column not in corpus.frame.columns:
        raise CorpusmapError(
            f"no seed label column {options.seed_label_column!r}; the corpus has: "
            f"{', '.join(map(str, corpus.frame.columns))}"
        )
    info = store.add_corpus(corpus)
    chosen = api.make_labeler(labeler, store, llm_overrides)
    encoder: Embedder | None = service.get_embedder(embedder) if embedder else None
    if ray:
        from corpusmap import distributed

        distributed.connect(ray)
        encoder = distributed.RayEmbedder(embedder)
    run_id = run_mode(
        store,
        info.id,
        options,
        config=config,
        embedder=encoder,
        labeler=chosen,
        llm_settings=settings,
        label_column=label_column,
        progress=progress,
        on_plan=on_plan,
    )
    return api.RunHandle(store, run_id, info)


def llm_settings_from(overrides: dict[str, Any] | None) -> Any | None:
    """LLM settings from the environment and overrides, or ``None`` when none is configured."""
    from llm import LLMSettings

    settings = LLMSettings.from_env(**{k: v for k, v in (overrides or {}).items() if v is not None})
    return settings if settings.configured else None


def balanced_sample_frame(
    store: Store, run_id: int, n: int, *, by_parent: bool = True, random_state: int = 42
) -> pd.DataFrame:
    """``n`` rows of the labeled corpus, even across clusters (and across children within
    parents when the run has a hierarchy); outliers left out."""
    frame = service.labeled_frame(store, run_id)
    parents = {
        c.cluster_id: c.parent_id for c in store.load_clusters(run_id) if c.parent_id is not None
    }
    picked = balanced_sample(
        frame["cluster_id"].to_numpy(np.int64),
        n,
        parents=parents if by_parent and parents else None,
        random_state=random_state,
    )
    sample = frame.iloc[picked].copy()
    if parents:
        sample["parent_id"] = [parents.get(int(c), NOISE) for c in sample["cluster_id"]]
    return sample


def hierarchy_table(store: Store, run_id: int) -> pd.DataFrame:
    """One row per parent (level 1) and its children: ids, names, sizes."""
    parents = store.load_clusters(run_id, level=1)
    leaves = store.load_clusters(run_id)
    rows = []
    for p in parents:
        children = [c for c in leaves if c.parent_id == p.cluster_id]
        rows.append(
            {
                "parent_id": p.cluster_id,
                "parent_name": p.name,
                "size": p.size,
                "children": [c.cluster_id for c in children],
                "child_names": [c.name for c in children],
            }
        )
    return pd.DataFrame(
        rows, columns=["parent_id", "parent_name", "size", "children", "child_names"]
    )


def rule_table(store: Store, run_id: int) -> pd.DataFrame:
    """Per cluster: name, the LLM/keyword explanation, the keyword rule and its precision/recall."""
    rules = store.get_run(run_id).metrics.get("rules", {})
    rows = []
    for c in store.load_clusters(run_id):
        rule = rules.get(str(c.cluster_id)) or rules.get(c.cluster_id) or {}
        rows.append(
            {
                "cluster_id": c.cluster_id,
                "name": c.name,
                "explanation": c.inclusion_criterion or c.description,
                "rule": rule.get("rule", ""),
                "rule_precision": rule.get("rule_precision"),
                "rule_recall": rule.get("rule_recall"),
            }
        )
    return pd.DataFrame(
        rows, columns=["cluster_id", "name", "explanation", "rule", "rule_precision", "rule_recall"]
    )


def check_mode_config(
    options: ModeOptions, config: PipelineConfig, llm_settings: Any | None = None
) -> None:
    """Fail early on settings that cannot work together (for the app's form). Pass the LLM
    settings the run will use: keyphrase expansion without a configured one is refused."""
    options.validate()
    config.validate()
    check_goal_embedding(options, config, llm_settings)
    if options.mode == "classify" and options.categories and config.n_clusters:
        if config.n_clusters < len(options.categories):
            raise ConfigError("fewer clusters than the categories given")


def plan_for_corpus(
    store: Store,
    corpus_id: int,
    options: ModeOptions,
    config: PipelineConfig | None = None,
    *,
    embedder: Embedder | None = None,
    llm_settings: Any | None = None,
) -> dict[str, Any]:
    """The LLM budget a mode run would plan on a stored corpus (for display before it runs).

    With keyphrase expansion and ``llm_settings``, only the texts whose expanded vectors are
    not cached yet are counted (``embedder``: the run's model, default the bundled one);
    without them, every distinct text. Raises ``CorpusmapError`` when ``llm_budget`` cannot
    pay for the expansion.
    """
    config = config or PipelineConfig()
    corpus = store.load_corpus(corpus_id)
    texts = [corpus.texts[i] for i in corpus.nonempty_index]
    todo = None
    if options.expand_keyphrases and llm_settings is not None and llm_settings.configured:
        from llm.keyphrases import KeyphraseEmbedder

        base = goal_embedder(embedder or service.get_embedder(), options, config)
        expanded = KeyphraseEmbedder(base, None, config.goal, llm_model=llm_settings.model)
        todo = uncached_texts(texts, expanded, store)
    return plan_llm(texts, options, config, keyphrase_texts=todo)


def add_hierarchy(
    store: Store,
    run_id: int,
    *,
    n_parents: int | None = None,
    k_method: str = "silhouette",
    labeler: Labeler | None = None,
    llm_settings: Any | None = None,
    llm_budget: int | None = MAX_PAIR_CALLS,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Add (or redo) the two-level hierarchy and keyword rules of any stored run; returns the
    hierarchy as stored in the run's metrics."""
    run = store.get_run(run_id)
    options = ModeOptions(
        hierarchy=True, n_parents=n_parents, k_method=k_method, llm_budget=llm_budget
    )
    options.validate()
    embedder = embedder or service.run_embedder(run)
    asker = make_asker(llm_settings, store, llm_budget)
    if asker is not None:
        asker.run_id = run_id
    config = PipelineConfig(goal=run.goal or None, random_state=run.seed)
    try:
        add_structure(
            store,
            run_id,
            options,
            [],
            embedder,
            labeler,
            asker,
            config,
            plan_llm([], options, config),
            llm_settings=llm_settings,
        )
    finally:
        if asker is not None:
            asker.close()
    after = store.get_run(run_id)
    if run.llm_usage and after.llm_usage != run.llm_usage:
        store.save_llm_usage(run_id, merged_usage(run.llm_usage, after.llm_usage, "hierarchy"))
    return dict(after.metrics.get("hierarchy", {}))


def merged_usage(before: dict[str, Any], added: dict[str, Any], name: str) -> dict[str, Any]:
    """A run's stored LLM usage with a later step's usage added under ``name`` and in the
    totals (a hierarchy added afterwards must not erase what the run itself used)."""
    merged = {**before, name: added}
    for key in USAGE_TOTALS:
        if key in before or key in added:
            merged[key] = before.get(key, 0) + added.get(key, 0)
    return merged


def add_rules(store: Store, run_id: int) -> pd.DataFrame:
    """Add (or redo) the keyword rules of any stored run; returns ``rule_table``."""
    add_structure(
        store, run_id, ModeOptions(), [], None, None, None, PipelineConfig(), {"calls": 0}
    )  # type: ignore[arg-type]
    return rule_table(store, run_id)


def outcome_lines(info: Any) -> list[str]:
    """What a mode run found, one plain sentence each (the CLI prints them, the app shows them):
    LLM use against the plan, fallbacks, constraints held, novel clusters, hierarchy, rules."""
    metrics, usage = info.metrics, info.llm_usage or {}
    mode = info.mode or "cluster"
    lines = []
    if mode != "cluster" or usage.get("plan"):
        plan = usage.get("plan", {})
        lines.append(
            f"LLM used: {usage.get('calls', 0)} of {plan.get('calls', 0)} planned calls, "
            f"{usage.get('cache_hits', 0)} from the cache, "
            f"{usage.get('prompt_tokens', 0):,} + {usage.get('completion_tokens', 0):,} tokens, "
            f"{usage.get('unanswered', 0)} unanswered"
        )
    expansion = keyphrase_text(usage)
    if expansion:
        lines.append(expansion)
    stats = metrics.get("mode_stats") or {}
    if stats.get("fallback"):
        lines.append(f"{mode}: no usable LLM answer, fell back to {stats['fallback']}")
    report = metrics.get("constraints")
    if report:
        lines.append(
            f"constraints held: must-link {report['must_link_held']}/{report['must_link_total']}, "
            f"cannot-link {report['cannot_link_held']}/{report['cannot_link_total']}, "
            f"seeds together {report['seeds_together']}/{report['seeds_total']}"
        )
    novelty = metrics.get("novelty")
    if novelty:
        lines.append(f"novel clusters (no seed): {', '.join(map(str, novelty['novel'])) or 'none'}")
    hierarchy = metrics.get("hierarchy")
    if hierarchy:
        lines.append(
            f"hierarchy: {hierarchy['n_parents']} parents over {metrics.get('n_clusters')} "
            f"clusters (chosen by {hierarchy['choice']['method']})"
        )
    rules = metrics.get("rules")
    if rules:
        precise = sum(1 for r in rules.values() if (r.get("rule_precision") or 0) >= 0.8)
        lines.append(f"keyword rules: {len(rules)} clusters, {precise} with precision ≥ 0.8")
    return lines


def plan_text(plan: dict[str, Any]) -> str:
    """The LLM budget of a run in one sentence (shown before it runs)."""
    if not plan.get("calls"):
        return "LLM budget: no calls (embeddings only)"
    parts = ", ".join(
        f"{k.removesuffix('_calls')} {v}" for k, v in plan.items() if k.endswith("_calls")
    )
    return (
        f"LLM budget: up to {plan['calls']} calls ({parts}), about "
        f"{plan.get('prompt_tokens', 0):,} prompt + {plan.get('completion_tokens', 0):,} "
        "completion tokens"
    )
