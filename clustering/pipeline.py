"""The story of a run: embed → reduce → cluster → summarise → label → measure.

``run_pipeline`` is pure: it stores nothing itself. Callers that persist (``corpusmap.service``)
pass an embedding cache and an ``on_stage`` hook that saves each stage as soon as it is done.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from clustering.cached_embedding import embed_texts
from clustering.cluster import (
    HDBSCANClusterer,
    KMeansClusterer,
    MergedHDBSCANClusterer,
    reassign_outliers,
    single_cluster,
)
from clustering.errors import ConfigError
from clustering.grains import granularity_metrics
from clustering.labels import KeywordLabeler
from clustering.metrics import external_metrics, silhouette, summary_metrics
from clustering.reduce import UMAPReducer, fit_space_and_map
from clustering.sample_assign import BatchMapper, sampled_stages
from clustering.summarize import summarize_clusters
from clustering.types import (
    Assignment,
    ClusterLabel,
    ClusterSummary,
    Embedder,
    EmbeddingCache,
    Labeler,
    ProgressCallback,
    RunResult,
    StageTiming,
    no_progress,
)

log = logging.getLogger(__name__)

STAGES = ("embed", "reduce", "cluster", "summarize", "label", "metrics")


@dataclass(frozen=True)
class PipelineConfig:
    """Every parameter of a run; stored with it so the run can be reproduced."""

    n_clusters: int | None = None
    """Fixed K (k-means in the reduced space); ``None`` chooses the number of clusters."""
    min_cluster_size: int | None = None
    """HDBSCAN's smallest cluster; ``None`` grows it with N (``default_min_cluster_size``)."""
    min_samples: int | None = None
    """HDBSCAN's ``min_samples``; ``None`` is HDBSCAN's default (``min_cluster_size``)."""
    cluster_selection_method: str = "eom"
    merge_clusters: bool = True
    """Merge HDBSCAN's clusters by Ward's method to the cut with the best Calinski-Harabasz
    ratio and attach confident noise (``clustering.granularity``); ``False`` is plain HDBSCAN."""
    n_neighbors: int = 15
    n_components: int = 5
    min_dist: float = 0.0
    random_state: int = 42
    reassign_outliers: bool = False
    goal: str | None = None
    n_representatives: int = 8
    sample_size: int | None = 100_000
    """Above this many texts, UMAP and HDBSCAN are fitted on a random sample of this many
    distinct texts and the rest is assigned in batches (``clustering.sample_assign``); ``None``
    fits on all."""

    def validate(self) -> None:
        if self.n_clusters is not None and self.n_clusters < 1:
            raise ConfigError(f"n_clusters must be at least 1, got {self.n_clusters}")
        if self.min_cluster_size is not None and self.min_cluster_size < 2:
            raise ConfigError(f"min_cluster_size must be at least 2, got {self.min_cluster_size}")
        if self.n_neighbors < 2:
            raise ConfigError(f"n_neighbors must be at least 2, got {self.n_neighbors}")
        if self.n_components < 1:
            raise ConfigError(f"n_components must be at least 1, got {self.n_components}")
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise ConfigError("cluster_selection_method must be 'eom' or 'leaf'")
        if self.sample_size is not None and self.sample_size < 50:
            raise ConfigError(f"sample_size must be at least 50 (or None), got {self.sample_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


StageHook = Callable[[str, dict[str, Any]], None]
"""``on_stage(stage, outputs)`` runs after each stage; storage saves the outputs there."""


def _no_hook(stage: str, outputs: dict[str, Any]) -> None:
    pass


@dataclass
class _Clock:
    timings: list[StageTiming] = field(default_factory=list)

    def time(self, stage: str, start: float, **detail: Any) -> None:
        seconds = time.perf_counter() - start
        self.timings.append(StageTiming(stage, seconds, detail))
        log.info("stage %s: %.2f s %s", stage, seconds, detail or "")


def make_clusterer(
    config: PipelineConfig,
) -> MergedHDBSCANClusterer | HDBSCANClusterer | KMeansClusterer:
    if config.n_clusters is not None:
        return KMeansClusterer(config.n_clusters, random_state=config.random_state)
    if config.merge_clusters:
        return MergedHDBSCANClusterer(
            min_cluster_size=config.min_cluster_size,
            min_samples=config.min_samples,
            cluster_selection_method=config.cluster_selection_method,
            random_state=config.random_state,
        )
    return HDBSCANClusterer(
        min_cluster_size=config.min_cluster_size,
        min_samples=config.min_samples,
        cluster_selection_method=config.cluster_selection_method,
    )


def describe_clusterer(config: PipelineConfig) -> str:
    """The clustering algorithm of ``config`` in words, stored with every run (a sampled fit
    uses the same clusterer as a full one: ``clustering.sample_assign``)."""
    space = f"UMAP {config.n_components}-d"
    if config.n_clusters is not None:
        return f"k-means, K={config.n_clusters}, on {space}"
    if config.merge_clusters:
        return f"HDBSCAN micro-clusters merged by Ward (automatic K) on {space}"
    return f"HDBSCAN on {space}"


REDUCTION_MEMO_SIZE = 4
"""Reductions kept in memory per process: a re-cluster with new clustering parameters in the
app (one long-lived process) reuses the UMAP layouts instead of recomputing them (issue 6:
re-cluster in at most 5 s)."""
_reduction_memo: OrderedDict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()


def reduce_vectors(vectors: np.ndarray, config: PipelineConfig) -> tuple[np.ndarray, np.ndarray]:
    """The clustering space and the 2-D map coordinates (memoised on the vectors and the
    reduction parameters, which fully determine a seeded UMAP)."""
    key = (
        hashlib.sha1(np.ascontiguousarray(vectors).tobytes()).hexdigest(),
        vectors.shape,
        config.n_components,
        config.n_neighbors,
        config.min_dist,
        config.random_state,
    )
    if key in _reduction_memo:
        _reduction_memo.move_to_end(key)
        log.info("reusing the UMAP layouts of %d vectors", len(vectors))
        space, coords = _reduction_memo[key]
        return space.copy(), coords.copy()
    space, coords = _reduce(vectors, config)
    _reduction_memo[key] = (space.copy(), coords.copy())
    while len(_reduction_memo) > REDUCTION_MEMO_SIZE:
        _reduction_memo.popitem(last=False)
    return space, coords


def _reduce(vectors: np.ndarray, config: PipelineConfig) -> tuple[np.ndarray, np.ndarray]:
    if len(vectors) and not np.ptp(vectors, axis=0).any():
        # Every text is the same (issue 7: 100,000 identical texts): nothing to lay out, and
        # UMAP would spend minutes on a degenerate neighbour graph.
        n = len(vectors)
        return np.zeros((n, config.n_components), np.float32), np.zeros((n, 2), np.float32)
    space = UMAPReducer(
        n_components=config.n_components,
        n_neighbors=config.n_neighbors,
        min_dist=config.min_dist,
        random_state=config.random_state,
    )
    if config.n_components == 2:
        coords = space.fit_transform(vectors)
        return coords, coords.copy()
    # The map reuses the clustering space's neighbour graph (issue 13): no second search, and
    # both layouts at once where the machine allows.
    the_map = UMAPReducer(
        n_components=2,
        n_neighbors=config.n_neighbors,
        min_dist=0.1,
        random_state=config.random_state,
    )
    return fit_space_and_map(vectors, space, the_map)


def cluster_space(space: np.ndarray, config: PipelineConfig) -> Assignment:
    return fit_clusters(space, config)[0]


def fit_clusters(space: np.ndarray, config: PipelineConfig) -> tuple[Assignment, dict[str, Any]]:
    """The assignment of ``space``, and what the clusterer found out about the granularity for
    the run's metrics (the automatic K's spread over resampled fits, the grains the data
    supports, and why this cut: ``clustering.grains.granularity_metrics``)."""
    if len(space) == 0:
        return Assignment(np.zeros(0, dtype=np.int64), np.zeros(0)), {}
    if not np.ptp(space, axis=0).any():
        return single_cluster(len(space)), {}  # all points equal: one cluster, nothing to search
    clusterer = make_clusterer(config)
    assignment = clusterer.fit_predict(space)
    facts: dict[str, Any] = {}
    found = getattr(clusterer, "granularity_", None)  # a merged fit's, when it got that far
    if found is not None:
        facts = granularity_metrics(found)
    if assignment.n_clusters == 0 and len(space):
        # Everything came out as noise: one cluster is a clearer answer than none.
        log.warning("HDBSCAN found no cluster in %d texts; keeping them as one cluster", len(space))
        assignment = single_cluster(len(space))
    if config.reassign_outliers:
        assignment = reassign_outliers(space, assignment)
    return assignment, facts


def label_clusters(
    summaries: Sequence[ClusterSummary], labeler: Labeler | None
) -> list[ClusterLabel]:
    return list((labeler or KeywordLabeler()).label(summaries))


def measure(space: np.ndarray, labels: np.ndarray, truth: Sequence[Any] | None) -> dict[str, Any]:
    result = summary_metrics(labels)
    if truth is not None:
        result.update(external_metrics(truth, labels))
    result.update(silhouette(space, labels))
    return result


def run_pipeline(
    texts: Sequence[str],
    embedder: Embedder,
    config: PipelineConfig | None = None,
    *,
    labeler: Labeler | None = None,
    cache: EmbeddingCache | None = None,
    truth: Sequence[Any] | None = None,
    vectors: np.ndarray | None = None,
    progress: ProgressCallback = no_progress,
    on_stage: StageHook = _no_hook,
    batch_mapper: BatchMapper | None = None,
) -> RunResult:
    """Cluster non-empty ``texts`` and name the clusters.

    ``vectors`` skips the embed stage (a re-cluster of stored embeddings); ``truth`` (gold labels
    aligned to ``texts``) adds NMI, ARI and accuracy to the metrics. Above
    ``config.sample_size`` distinct texts, reduce and cluster fit on a sample and assign the
    rest in batches through ``batch_mapper`` (``clustering.sample_assign``).
    """
    config = config or PipelineConfig()
    config.validate()
    texts = list(texts)
    if any(not t for t in texts):
        raise ConfigError("run_pipeline takes non-empty texts only; drop empty ones first")
    clock = _Clock()

    start = time.perf_counter()
    progress("embed", 0.0, f"embedding {len(texts):,} texts")
    counts: dict[str, int] = {"texts": len(texts), "cache_hits": len(texts), "embedded": 0}
    if vectors is None:
        vectors, counts = embed_texts(texts, embedder, cache, progress=progress)
    clock.time("embed", start, **counts)
    on_stage("embed", {"counts": counts})

    start = time.perf_counter()
    progress("reduce", 0.0, "reducing with UMAP")
    large = sampled_stages(texts, config, mapper=batch_mapper)
    space, coords = large.reduce(vectors) if large else reduce_vectors(vectors, config)
    clock.time("reduce", start, **(large.detail if large else {}))
    on_stage("reduce", {"coords": coords})

    start = time.perf_counter()
    progress("cluster", 0.0, "clustering")
    if large:
        assignment, facts = large.cluster(space), large.facts_
    else:
        assignment, facts = fit_clusters(space, config)
    clock.time("cluster", start, n_clusters=assignment.n_clusters)
    on_stage("cluster", {"assignment": assignment, "coords": coords, "space": space})

    start = time.perf_counter()
    progress("summarize", 0.0, f"summarising {assignment.n_clusters} clusters")
    summaries = summarize_clusters(
        texts,
        vectors,
        assignment,
        goal=config.goal,
        n_representatives=config.n_representatives,
        embedder=embedder,
    )
    clock.time("summarize", start)
    on_stage("summarize", {"summaries": summaries})

    start = time.perf_counter()
    progress("label", 0.0, f"labelling {len(summaries)} clusters")
    labels = label_clusters(summaries, labeler)
    clock.time("label", start, labeler=getattr(labeler, "name", "keywords"))
    on_stage("label", {"labels": labels})

    start = time.perf_counter()
    metrics = {**measure(space, assignment.labels, truth), **facts}
    clock.time("metrics", start)
    on_stage("metrics", {"metrics": metrics})
    progress("metrics", 1.0, "done")

    return RunResult(
        assignment=assignment,
        coords=coords,
        summaries=summaries,
        labels=tuple(labels),
        metrics=metrics,
        timings=tuple(clock.timings),
        config=config.to_dict(),
    )
