"""Application services: the pipeline wired to storage. The CLI, the Python API and the app all
call these functions; none of them talks to the pipeline or the database directly.

A run is saved stage by stage (``on_stage``), so a failure in a later stage never loses what
was computed before it, and a crashed run can be resumed from its last saved stage.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from clustering.cluster import KMeansClusterer, order_by_size
from clustering.embed import (
    BUNDLED_MODELS,
    DEFAULT_MODEL,
    SentenceTransformerEmbedder,
    embed_texts,
    parse_model_id,
)
from clustering.faithfulness import explanation_faithfulness
from clustering.labels import KeywordLabeler
from clustering.pipeline import PipelineConfig, label_clusters, measure, run_pipeline
from clustering.sample_assign import BatchMapper
from clustering.summarize import summarize_clusters
from clustering.types import (
    NOISE,
    Assignment,
    ClusterLabel,
    Corpus,
    Embedder,
    Labeler,
    ProgressCallback,
    RunResult,
    no_progress,
)
from corpusmap.errors import CorpusmapError
from storage import CorpusInfo, RunInfo, Store

log = logging.getLogger(__name__)

RESUMABLE_STAGES = ("cluster", "summarize", "label", "metrics")
"""Saved stages after which a resumed run keeps the stored assignment (no embed/reduce/cluster)."""
STALE_AFTER = timedelta(hours=1)
"""A running run owned by another machine is taken over once it has saved nothing for this long."""
CHARS_PER_TOKEN = 4
"""Rough characters per token of English text, for the long-text warning."""

VERSIONED_PACKAGES = (
    "corpusmap",
    "torch",
    "sentence-transformers",
    "umap-learn",
    "hdbscan",
    "scikit-learn",
    "openai",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = ""
    return versions


@lru_cache(maxsize=8)
def get_embedder(
    model: str | None = None, device: str = "auto", prefix: str = ""
) -> SentenceTransformerEmbedder:
    """One loaded encoder per model and device for the life of the process; an instruction
    ``prefix`` (see ``clustering.embed.resolve_instruction``) shares that model's encoder and
    has its own ``model_id``, so the cache keeps its vectors apart."""
    if model is not None and model.lower() in BUNDLED_MODELS:
        return get_embedder(None, device, prefix)
    if prefix:
        return get_embedder(model, device).with_prefix(prefix)
    return SentenceTransformerEmbedder(model, device=device)


def run_embedder(run: RunInfo, device: str = "auto") -> Embedder:
    """The embedder a stored run used, rebuilt from its ``embedder`` id: the model, its
    instruction prefix (``name|prefix=...``) and, for a keyphrase-expanded run
    (``...|keyphrases=...``), a ``llm.keyphrases.KeyphraseEmbedder`` that reads the embedding
    cache and never asks the LLM (``run_vectors`` connects one for texts missing from it)."""
    model_id = run.embedder or DEFAULT_MODEL
    if "|" not in model_id:
        return get_embedder(model_id, device)
    from llm.keyphrases import KeyphraseEmbedder, split_keyphrase_id

    base_id, tag = split_keyphrase_id(model_id)
    model, prefix = parse_model_id(base_id)
    base = get_embedder(model, device, prefix)
    if tag is None:
        return base
    return KeyphraseEmbedder.from_model_id(model_id, base, run.goal or None)


def store_corpus(store: Store, corpus: Corpus) -> CorpusInfo:
    return store.add_corpus(corpus)


def truth_column(corpus: Corpus, label_column: str | None) -> list[Any] | None:
    """Gold labels of the non-empty rows, or None."""
    if not label_column:
        return None
    if label_column not in corpus.frame.columns:
        raise CorpusmapError(
            f"no label column {label_column!r}; the corpus has: "
            f"{', '.join(map(str, corpus.frame.columns))}"
        )
    values = corpus.frame[label_column].iloc[corpus.nonempty_index]
    return ["" if pd.isna(v) else str(v) for v in values]


def cluster_corpus(
    store: Store,
    corpus_id: int,
    *,
    config: PipelineConfig | None = None,
    embedder: Embedder | None = None,
    labeler: Labeler | None = None,
    label_column: str | None = None,
    progress: ProgressCallback = no_progress,
    run_name: str = "",
    mode: str = "cluster",
    on_created: Callable[[int], None] | None = None,
    resume: bool = True,
    batch_mapper: BatchMapper | None = None,
) -> int:
    """Run the pipeline on a stored corpus; returns the new run's id.

    The run row exists from the start (status ``running``), every stage is saved as it ends,
    and an error marks the run ``failed`` with its message before it is raised again.
    ``on_created(run_id)`` is called once the row exists, so a caller running this in the
    background (the app) can follow the stored stages while the run goes on. ``batch_mapper``
    runs the assignment batches of a sampled run elsewhere (``corpusmap.distributed``).
    """
    config = config or PipelineConfig()
    config.validate()
    embedder = embedder or get_embedder()
    corpus = store.load_corpus(corpus_id)
    truth = truth_column(corpus, label_column)
    index = corpus.nonempty_index
    texts = [corpus.texts[i] for i in index]
    doc_ids = store.document_ids(corpus_id)[index]
    # With ``resume`` (issue 7), the newest unfinished run of this corpus with exactly these
    # settings whose process is gone (killed, crashed, interrupted) is continued instead of
    # starting over: embeddings come from the cache, a stored assignment is kept, and LLM
    # calls already answered come from the call cache.
    settings: dict[str, Any] = {
        "config": config.to_dict(),
        "embedder": embedder.model_id,
        "labeler": getattr(labeler, "name", "keywords"),
        "mode": mode,
        "goal": config.goal or "",
        "label_column": label_column or "",
    }
    resumed = claim_unfinished_run(store, corpus_id, settings) if resume else None
    if resumed is not None:
        run_id = resumed.id
    else:
        run_id = store.create_run(
            corpus_id,
            seed=config.random_state,
            versions=package_versions(),
            name=run_name,
            owner=process_owner(),
            **settings,
        )
    warnings = long_text_warnings(texts, embedder)
    if resumed is not None:
        warnings.append(
            f"continued interrupted run #{run_id} after its saved stage {resumed.stage!r}"
        )
    store.save_run_warnings(run_id, warnings)
    if hasattr(labeler, "run_id"):
        labeler.run_id = run_id  # LLM calls are recorded against this run
    if on_created is not None:
        on_created(run_id)
    log.info("run #%d on corpus #%d: %d texts", run_id, corpus_id, len(texts))
    timings: dict[str, Any] = dict(resumed.timings) if resumed is not None else {}
    stage_start = time.perf_counter()
    state: dict[str, Any] = {}

    def on_stage(stage: str, outputs: dict[str, Any]) -> None:
        nonlocal stage_start
        timings[stage] = round(time.perf_counter() - stage_start, 3)
        stage_start = time.perf_counter()
        if stage == "embed":
            timings.update({f"embed_{k}": v for k, v in outputs["counts"].items()})
        elif stage == "cluster":
            store.save_assignment(run_id, doc_ids, outputs["assignment"], outputs["coords"])
            space = outputs.get("space")
            if space is not None and len(space) == len(outputs["assignment"].labels):
                # Saved now so that a run resumed after this stage has its metrics.
                early = measure(space, outputs["assignment"].labels, truth)
                store.save_metrics(run_id, _storable_metrics(early))
            state["assignment"] = outputs["assignment"]
        elif stage == "summarize":
            store.save_clusters(run_id, outputs["summaries"])
            state["summaries"] = outputs["summaries"]
        elif stage == "label":
            state["labels"] = outputs["labels"]
        store.save_stage(run_id, stage, timings)

    try:
        kept = None
        if resumed is not None:
            kept = continue_from_assignment(
                store, resumed, texts, doc_ids, embedder, labeler, config, truth, progress, on_stage
            )
        result = kept or run_pipeline(
            texts,
            embedder,
            config,
            labeler=labeler,
            cache=store,
            truth=truth,
            progress=progress,
            on_stage=on_stage,
            batch_mapper=batch_mapper,
        )
        faith = _faithfulness(store, texts, result, embedder)
        store.save_clusters(run_id, result.summaries, result.labels, faithfulness=faith.per_cluster)
        metrics = {**result.metrics, "faithfulness": faith.overall}
        store.save_metrics(run_id, _storable_metrics(metrics))
        if hasattr(labeler, "usage"):
            store.save_llm_usage(run_id, labeler.usage.to_dict())
        store.finish_run(run_id)
    except BaseException as err:
        # Stages saved so far stay; the run says where and why it stopped.
        store.fail_run(run_id, f"{type(err).__name__}: {err}")
        raise
    return run_id


def process_owner() -> str:
    """``host:pid`` of this process, stored with the runs it works on."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_alive(owner: str, heartbeat_at: datetime | None) -> bool:
    """Whether the process that owns a running run may still be working on it."""
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return True  # another thread of this process (the app runs runs in the background)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if heartbeat_at is None:
        return False
    return datetime.now(UTC).replace(tzinfo=None) - heartbeat_at < STALE_AFTER


def run_state(run: RunInfo) -> str:
    """The run's status as a reader needs it: a ``running`` run whose process is gone is
    ``interrupted`` (the same command again resumes it from its last stage)."""
    if run.status == "running" and not owner_is_alive(run.owner, run.heartbeat_at):
        return "interrupted"
    return run.status


def claim_unfinished_run(
    store: Store, corpus_id: int, settings: dict[str, Any]
) -> RunInfo | None:
    """The newest unfinished run with these settings whose owner is gone, now owned by us."""
    for run in store.unfinished_runs(corpus_id, **settings):
        if run.status == "running" and owner_is_alive(run.owner, run.heartbeat_at):
            continue
        if store.claim_run(run, process_owner()):
            log.info("run #%d: resuming after stage %r (%s)", run.id, run.stage, run.status)
            return store.get_run(run.id)
    return None


def continue_from_assignment(
    store: Store,
    run: RunInfo,
    texts: list[str],
    doc_ids: np.ndarray,
    embedder: Embedder,
    labeler: Labeler | None,
    config: PipelineConfig,
    truth: list[Any] | None,
    progress: ProgressCallback,
    on_stage: Callable[[str, dict[str, Any]], None],
) -> RunResult | None:
    """Finish a resumed run from its stored assignment: summarise, label, measure.

    ``None`` when the run stopped before its assignment was saved (the caller runs the whole
    pipeline, with every embedding already in the cache).
    """
    if run.stage not in RESUMABLE_STAGES:
        return None
    stored = store.load_assignments(run.id)
    if stored["document_id"].tolist() != [int(d) for d in doc_ids]:
        log.warning("run #%d: stored assignment does not match the corpus; redoing it", run.id)
        return None
    progress("embed", 0.0, "resuming: embeddings from the cache")
    vectors, counts = embed_texts(texts, embedder, store, progress=progress)
    assignment = Assignment(
        stored["cluster_id"].to_numpy(np.int64), stored["probability"].to_numpy(np.float64)
    )
    coords = stored[["x", "y"]].to_numpy(np.float32)
    log.info(
        "run #%d: kept %d clusters of %d texts; %d embeddings from the cache",
        run.id,
        assignment.n_clusters,
        len(texts),
        counts["cache_hits"],
    )
    progress("summarize", 0.0, f"summarising {assignment.n_clusters} clusters")
    summaries = summarize_clusters(
        texts, vectors, assignment, goal=config.goal, n_representatives=config.n_representatives
    )
    on_stage("summarize", {"summaries": summaries})
    progress("label", 0.0, f"labelling {len(summaries)} clusters")
    labels = label_clusters(summaries, labeler)
    on_stage("label", {"labels": labels})
    metrics = dict(run.metrics) or measure(coords, assignment.labels, truth)
    on_stage("metrics", {"metrics": metrics})
    progress("metrics", 1.0, "done")
    return RunResult(
        assignment=assignment,
        coords=coords,
        summaries=tuple(summaries),
        labels=tuple(labels),
        metrics=metrics,
        timings=(),
        config=config.to_dict(),
    )


def long_text_warnings(texts: Sequence[str], embedder: Embedder) -> list[str]:
    """A warning when texts exceed the embedding model's window (only their start is embedded)."""
    window = getattr(embedder, "max_seq_length", None)
    if not isinstance(window, int) or window <= 0:
        return []
    limit = window * CHARS_PER_TOKEN
    lengths = [len(t) for t in texts if len(t) > limit]
    if not lengths:
        return []
    return [
        f"{len(lengths):,} text(s) are longer than the embedding model's window of {window} "
        f"tokens (about {limit:,} characters; the longest has {max(lengths):,}): only their "
        "beginning is embedded and clustered. Split long documents (by paragraph or section) "
        "to cluster all of their content"
    ]


def _faithfulness(store: Store, texts: Sequence[str], result: RunResult, embedder: Embedder) -> Any:
    vectors, _ = embed_texts(texts, embedder, store)
    return explanation_faithfulness(vectors, result.assignment.labels, result.labels, embedder)


def _storable_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if v is not None}


# --- reading runs back ------------------------------------------------------------------------


def labeled_frame(store: Store, run_id: int) -> pd.DataFrame:
    """Every input row, in input order, with all input columns plus the run's cluster columns.

    Rows whose text was empty (never clustered) get cluster_id -1 and probability 0.
    """
    run = store.get_run(run_id)
    corpus = store.load_corpus(run.corpus_id)
    assignments = store.load_assignments(run_id)
    clusters = {c.cluster_id: c for c in store.load_clusters(run_id)}
    cluster_id = np.full(corpus.n_rows, NOISE, dtype=np.int64)
    probability = np.zeros(corpus.n_rows, dtype=np.float64)
    positions = assignments["position"].to_numpy(dtype=np.int64)
    cluster_id[positions] = assignments["cluster_id"].to_numpy(dtype=np.int64)
    probability[positions] = assignments["probability"].to_numpy(dtype=np.float64)
    frame = corpus.frame.copy()
    frame["cluster_id"] = cluster_id
    frame["cluster_label"] = [
        clusters[c].name if c in clusters else ("outlier" if c == NOISE else "") for c in cluster_id
    ]
    frame["cluster_description"] = [
        clusters[c].description if c in clusters else "" for c in cluster_id
    ]
    frame["cluster_probability"] = probability
    return frame


def cluster_table(store: Store, run_id: int) -> pd.DataFrame:
    """One row per cluster: id, name, size, share, keywords, description, status, and when the
    run has them its parent (hierarchy) and keyword rule with precision and recall."""
    metrics = store.get_run(run_id).metrics
    rules = metrics.get("rules") or {}
    parents = {c.cluster_id: c.name for c in store.load_clusters(run_id, level=1)}
    rows = []
    for c in store.load_clusters(run_id):
        rule = rules.get(str(c.cluster_id)) or {}
        rows.append(
            {
                "cluster_id": c.cluster_id,
                "name": c.name,
                "size": c.size,
                "share": c.share,
                "keywords": ", ".join(c.keywords[:8]),
                "description": c.description,
                "inclusion_criterion": c.inclusion_criterion,
                "label_status": c.label_status,
                "faithfulness": c.faithfulness,
                "stale": c.stale,
                "parent_id": c.parent_id,
                "parent_name": parents.get(c.parent_id, "") if c.parent_id is not None else "",
                "rule": rule.get("rule", ""),
                "rule_precision": rule.get("rule_precision"),
                "rule_recall": rule.get("rule_recall"),
            }
        )
    columns = list(CLUSTER_COLUMNS)
    if not parents:
        columns = [c for c in columns if c not in ("parent_id", "parent_name")]
    if not rules:
        columns = [c for c in columns if not c.startswith("rule")]
    return pd.DataFrame(rows, columns=list(CLUSTER_COLUMNS))[columns]


CLUSTER_COLUMNS = (
    "cluster_id",
    "name",
    "size",
    "share",
    "keywords",
    "description",
    "inclusion_criterion",
    "label_status",
    "faithfulness",
    "stale",
    "parent_id",
    "parent_name",
    "rule",
    "rule_precision",
    "rule_recall",
)


def run_vectors(
    store: Store,
    run: RunInfo,
    texts: Sequence[str],
    embedder: Embedder | None = None,
    *,
    llm_settings: Any | None = None,
) -> np.ndarray:
    """Embeddings of a run's texts from the cache (embedding only what is missing), by
    ``embedder`` or the run's own (``run_embedder``).

    A keyphrase-expanded run's vectors come from the cache without any LLM call; texts missing
    from it are expanded with ``llm_settings`` (default: the environment's endpoint), or
    ``llm.errors.KeyphraseError`` says that an endpoint is needed.
    """
    embedder = embedder or run_embedder(run)
    with _llm_for_keyphrases(embedder, store, run, llm_settings) as encoder:
        vectors, counts = embed_texts(texts, encoder, store)
    if counts["embedded"]:
        log.info("embedded %d texts missing from the cache", counts["embedded"])
    return vectors


@contextmanager
def _llm_for_keyphrases(
    embedder: Embedder, store: Store, run: RunInfo, llm_settings: Any | None
) -> Iterator[Embedder]:
    """``embedder``, or a rebuilt keyphrase embedder connected to an LLM for this call only
    (closed after it); with no endpoint it stays cache-only."""
    from llm import LLMSettings
    from llm.keyphrases import KeyphraseEmbedder, keyphrase_asker

    if not isinstance(embedder, KeyphraseEmbedder) or embedder.asker is not None:
        yield embedder
        return
    settings = llm_settings or LLMSettings.from_env()
    if not settings.configured:
        yield embedder
        return
    # The stored vectors name their LLM model: ask that one, at whatever endpoint is set.
    asker = keyphrase_asker(
        settings.with_overrides(model=embedder.llm_model), store=store, run_id=run.id
    )
    try:
        yield KeyphraseEmbedder(
            embedder.base,
            asker,
            embedder.goal,
            llm_model=embedder.llm_model,
            version=embedder.version,
        )
    finally:
        asker.close()


# --- relabel and edits ------------------------------------------------------------------------


def relabel(
    store: Store,
    run_id: int,
    labeler: Labeler | None = None,
    *,
    cluster_ids: Sequence[int] | None = None,
    embedder: Embedder | None = None,
) -> list[ClusterLabel]:
    """New labels from the stored clusters, without re-clustering (all, or ``cluster_ids``)."""
    run = store.get_run(run_id)
    labeler = labeler or KeywordLabeler()
    if hasattr(labeler, "run_id"):
        labeler.run_id = run_id
    assignments = store.load_assignments(run_id)
    texts = assignments["text"].tolist()
    embedder = embedder or run_embedder(run)
    vectors = run_vectors(store, run, texts, embedder)
    assignment = Assignment(
        assignments["cluster_id"].to_numpy(np.int64), assignments["probability"].to_numpy()
    )
    summaries = summarize_clusters(texts, vectors, assignment, goal=run.goal or None)
    wanted = set(cluster_ids) if cluster_ids is not None else None
    todo = [s for s in summaries if wanted is None or s.cluster_id in wanted]
    labels = list(labeler.label(todo))
    all_labels = {lab.cluster_id: lab for lab in _current_labels(store, run_id)}
    all_labels.update({lab.cluster_id: lab for lab in labels})
    faith = explanation_faithfulness(vectors, assignment.labels, list(all_labels.values()), embedder)
    store.save_labels(run_id, labels)
    store.save_faithfulness(run_id, faith.per_cluster)
    metrics = dict(run.metrics)
    metrics["faithfulness"] = faith.overall
    store.save_metrics(run_id, metrics)
    if hasattr(labeler, "usage"):
        store.save_llm_usage(run_id, _add_usage(run.llm_usage, labeler.usage.to_dict()))
    store.add_edit(run_id, "relabel", {"labeler": labeler.name, "clusters": [s.cluster_id for s in todo]})
    return labels


def _add_usage(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    total = dict(old)
    for key, value in new.items():
        if isinstance(value, int | float) and isinstance(total.get(key, 0), int | float):
            total[key] = total.get(key, 0) + value
        else:
            total[key] = value
    return total


def _current_labels(store: Store, run_id: int) -> list[ClusterLabel]:
    return [
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
        for c in store.load_clusters(run_id)
    ]


def _rewrite_clusters(
    store: Store,
    run_id: int,
    new_labels: np.ndarray,
    changed: set[int],
    kind: str,
    payload: dict[str, Any],
    embedder: Embedder | None = None,
) -> dict[int, int]:
    """Store a new assignment after an edit: clusters renumbered by size, summaries rebuilt,
    labels of untouched clusters kept, changed clusters given keyword labels marked stale.

    Returns the map from old to new cluster ids of untouched clusters.
    """
    run = store.get_run(run_id)
    assignments = store.load_assignments(run_id)
    texts = assignments["text"].tolist()
    old_labels = assignments["cluster_id"].to_numpy(np.int64)
    ordered = order_by_size(new_labels)
    # Which old cluster each new id came from, when it is untouched (same members).
    old_of_new: dict[int, int] = {}
    for new_id in np.unique(ordered[ordered != NOISE]):
        olds = np.unique(old_labels[ordered == new_id])
        if len(olds) == 1 and olds[0] not in changed and olds[0] != NOISE:
            if (old_labels == olds[0]).sum() == (ordered == new_id).sum():
                old_of_new[int(new_id)] = int(olds[0])
    probabilities = assignments["probability"].to_numpy()
    moved = ordered != old_labels
    probabilities = np.where(moved, 1.0, probabilities)
    probabilities = np.where(ordered == NOISE, 0.0, probabilities)
    assignment = Assignment(ordered, probabilities)
    coords = assignments[["x", "y"]].to_numpy()
    store.save_assignment(run_id, assignments["document_id"].to_numpy(), assignment, coords)
    vectors = run_vectors(store, run, texts, embedder)
    summaries = summarize_clusters(texts, vectors, assignment, goal=run.goal or None)
    previous = {lab.cluster_id: lab for lab in _current_labels(store, run_id)}
    labels = []
    stale_ids = []
    keyword_labels = {lab.cluster_id: lab for lab in KeywordLabeler().label(summaries)}
    for s in summaries:
        old = old_of_new.get(s.cluster_id)
        if old is not None and old in previous:
            labels.append(replace(previous[old], cluster_id=s.cluster_id))
        else:
            labels.append(keyword_labels[s.cluster_id])
            stale_ids.append(s.cluster_id)
    store.save_clusters(run_id, summaries, labels)
    store.mark_stale(run_id, stale_ids)
    metrics = dict(run.metrics)
    metrics.update(measure(coords, ordered, None))
    metrics.pop("silhouette_per_cluster", None)
    store.save_metrics(run_id, _storable_metrics(metrics))
    store.add_edit(run_id, kind, payload)
    return old_of_new


def merge_clusters(store: Store, run_id: int, cluster_ids: Sequence[int]) -> int:
    """Merge clusters into one; returns the merged cluster's new id."""
    ids = sorted(set(int(c) for c in cluster_ids))
    if len(ids) < 2:
        raise CorpusmapError("choose at least two clusters to merge")
    labels = store.load_assignments(run_id)["cluster_id"].to_numpy(np.int64)
    _check_clusters(labels, ids)
    merged = labels.copy()
    merged[np.isin(labels, ids)] = ids[0]
    _rewrite_clusters(store, run_id, merged, set(ids), "merge", {"clusters": ids})
    after = store.load_assignments(run_id)["cluster_id"].to_numpy(np.int64)
    return int(after[np.flatnonzero(labels == ids[0])[0]])


def split_cluster(
    store: Store, run_id: int, cluster_id: int, n_parts: int = 2, random_state: int = 42
) -> list[int]:
    """Re-cluster one cluster's members into ``n_parts`` (k-means on their embeddings)."""
    if n_parts < 2:
        raise CorpusmapError("split into at least two parts")
    run = store.get_run(run_id)
    assignments = store.load_assignments(run_id)
    labels = assignments["cluster_id"].to_numpy(np.int64)
    _check_clusters(labels, [cluster_id])
    members = np.flatnonzero(labels == cluster_id)
    if len(members) < n_parts:
        raise CorpusmapError(
            f"cluster {cluster_id} has {len(members)} texts: too few to split in {n_parts}"
        )
    texts = assignments["text"].tolist()
    vectors = run_vectors(store, run, [texts[i] for i in members])
    parts = KMeansClusterer(n_parts, random_state=random_state).fit_predict(vectors).labels
    new = labels.copy()
    top = int(labels.max()) + 1
    new[members] = np.where(parts == 0, cluster_id, top + parts - 1)
    _rewrite_clusters(
        store, run_id, new, {cluster_id}, "split", {"cluster": cluster_id, "parts": n_parts}
    )
    after = store.load_assignments(run_id)["cluster_id"].to_numpy(np.int64)
    return sorted({int(x) for x in after[members]})


def move_documents(
    store: Store, run_id: int, document_ids: Sequence[int], cluster_id: int
) -> None:
    """Move texts to another cluster, or to -1 to mark them outliers."""
    assignments = store.load_assignments(run_id)
    labels = assignments["cluster_id"].to_numpy(np.int64)
    if cluster_id != NOISE:
        _check_clusters(labels, [cluster_id])
    docs = assignments["document_id"].to_numpy(np.int64)
    chosen = np.isin(docs, np.asarray(list(document_ids), dtype=np.int64))
    if not chosen.any():
        raise CorpusmapError("none of the chosen texts belongs to this run")
    changed = set(int(c) for c in np.unique(labels[chosen])) | {cluster_id}
    new = labels.copy()
    new[chosen] = cluster_id
    kind = "mark_outliers" if cluster_id == NOISE else "move"
    _rewrite_clusters(
        store,
        run_id,
        new,
        changed - {NOISE},
        kind,
        {"documents": [int(d) for d in docs[chosen]], "cluster": cluster_id},
    )


def _check_clusters(labels: np.ndarray, ids: Sequence[int]) -> None:
    present = set(int(x) for x in np.unique(labels))
    missing = [c for c in ids if c not in present or c == NOISE]
    if missing:
        raise CorpusmapError(
            f"no cluster {', '.join(map(str, missing))} in this run; "
            f"clusters are 0..{max(present - {NOISE}, default=-1)}"
        )
