"""How each mode turns embedded texts into an assignment (no storage): the strategies the run
workflow (``corpusmap.workflow``) plugs in.

- ``cluster``: the pipeline's reduce and cluster stages (sampled above ``sample_size`` texts);
  with seed labels or must-link / cannot-link pairs a constrained k-means in a space shaped by
  the seeds (``clustering.constraints``), and novel clusters marked (``clustering.novelty``).
- ``propose``: propose → assign → select (``llm.goal``), embeddings only without an LLM.
- ``classify``: label-then-classify (``llm.classify``), nearest category without an LLM.

Vectors expanded with LLM keyphrases first pass the keyphrase guard (``guard_keyphrases``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from clustering.constraints import (
    Constraints,
    cluster_with_constraints,
    constraint_report,
    remap_pairs,
    seeds_from_values,
)
from clustering.embed import SentenceTransformerEmbedder, plain_encoder, resolve_instruction
from clustering.labels import KeywordLabeler
from clustering.novelty import find_novel_clusters
from clustering.pipeline import (
    PipelineConfig,
    describe_clusterer,
    fit_clusters,
    reduce_vectors,
)
from clustering.sample_assign import BatchMapper, sampled_stages
from clustering.types import Assignment, ClusterLabel, ClusterSummary, Embedder, Labeler
from corpusmap.errors import CorpusmapError
from corpusmap.modes import ModeOptions


@dataclass(frozen=True)
class ModeOutcome:
    """What a mode computed, before it is stored."""

    assignment: Assignment
    space: np.ndarray
    """The space the clusters live in (for silhouette and the hierarchy)."""
    coords: np.ndarray
    """2-D map coordinates."""
    labels: tuple[ClusterLabel, ...] = ()
    """Labels the mode wrote itself (propose, classify); others come from the labeler."""
    metrics: dict[str, Any] = field(default_factory=dict)


def goal_embedder(encoder: Embedder, options: ModeOptions, config: PipelineConfig) -> Embedder:
    """``encoder`` with the run's instruction prefix (``options.instruction`` with the goal
    filled in), or ``encoder`` itself when there is no instruction."""
    if not options.instruction:
        return encoder
    prefix = resolve_instruction(options.instruction, config.goal)
    if isinstance(encoder, SentenceTransformerEmbedder):
        return encoder.with_prefix(prefix)  # shares the loaded model
    raise CorpusmapError(
        f"an instruction prefix needs a sentence-transformers encoder, not {encoder.model_id!r}"
    )


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
    *,
    batch_mapper: BatchMapper | None = None,
    on_reduced: Callable[[], None] = lambda: None,
) -> ModeOutcome:
    """The mode's clustering of embedded texts (no storage). ``on_reduced()`` runs once the
    UMAP layouts are done (the workflow saves the stage)."""
    vectors, guarded = guard_keyphrases(texts, vectors, embedder, config)
    outcome = _compute_mode(
        texts, vectors, embedder, options, config, constraints, asker, batch_mapper, on_reduced
    )
    if not guarded:
        return outcome
    return replace(outcome, metrics={**outcome.metrics, "keyphrase_guard": guarded})


def guard_keyphrases(
    texts: Sequence[str], vectors: np.ndarray, embedder: Embedder, config: PipelineConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors expanded with LLM keyphrases, the expansion undone where the guard drops it
    (``llm.keyphrases.guard_expansion``, issue 18), and what it did; other vectors as they are."""
    from llm.keyphrases import KeyphraseEmbedder

    if not isinstance(embedder, KeyphraseEmbedder):
        return vectors, {}
    return embedder.guard(texts, vectors, config.n_clusters, config.random_state)


def _compute_mode(
    texts: Sequence[str],
    vectors: np.ndarray,
    embedder: Embedder,
    options: ModeOptions,
    config: PipelineConfig,
    constraints: Constraints,
    asker: Any | None,
    batch_mapper: BatchMapper | None,
    on_reduced: Callable[[], None],
) -> ModeOutcome:
    if options.mode == "cluster" and not options.constrained:
        return _cluster(texts, vectors, config, batch_mapper, on_reduced)
    _, coords = reduce_vectors(vectors, replace(config, n_components=2))
    on_reduced()
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
        metrics = {
            "algorithm": "propose, assign, select (GoalEx)",
            "mode_stats": result.stats,
            "selection": result.selection.to_dict(),
        }
        return ModeOutcome(result.assignment, vectors, coords, result.labels, metrics)
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
        metrics = {"algorithm": "label, then classify", "mode_stats": classified.stats}
        return ModeOutcome(classified.assignment, vectors, coords, classified.labels, metrics)
    assignment, space, _ = cluster_with_constraints(
        vectors,
        constraints,
        n_clusters=config.n_clusters,
        n_components=config.n_components,
        n_neighbors=config.n_neighbors,
        random_state=config.random_state,
    )
    found = {"algorithm": "constrained k-means in a seed-shaped space"}
    found.update(constrained_findings(assignment.labels, constraints))
    return ModeOutcome(assignment, space, coords, (), found)


def constrained_findings(labels: np.ndarray, constraints: Constraints) -> dict[str, Any]:
    """How many constraints hold, and (with seeds) which clusters are novel."""
    found: dict[str, Any] = {
        "constraints": {
            **constraints.to_dict(),
            **constraint_report(labels, constraints).to_dict(),
        }
    }
    if constraints.n_seeds:
        found["novelty"] = find_novel_clusters(
            labels, constraints.seeds, constraints.classes
        ).to_dict()
    return found


def _cluster(
    texts: Sequence[str],
    vectors: np.ndarray,
    config: PipelineConfig,
    batch_mapper: BatchMapper | None,
    on_reduced: Callable[[], None],
) -> ModeOutcome:
    """The plain pipeline's reduce and cluster stages: on every text, or above
    ``config.sample_size`` texts fitted on a sample and assigned in batches, with the same
    clusterer either way."""
    large = sampled_stages(list(texts), config, mapper=batch_mapper)
    space, coords = large.reduce(vectors) if large else reduce_vectors(vectors, config)
    on_reduced()
    metrics: dict[str, Any] = {"algorithm": describe_clusterer(config)}
    if large:
        assignment = large.cluster(space)
        metrics.update(large.facts_, sampled=large.detail)
    else:
        assignment, facts = fit_clusters(space, config)
        metrics.update(facts)
    return ModeOutcome(assignment, space, coords, (), metrics)


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
