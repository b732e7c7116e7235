"""Application services: the pipeline wired to storage. The CLI, the Python API and the app all
call these functions; none of them talks to the pipeline or the database directly.

A run is saved stage by stage (``on_stage``), so a failure in a later stage never loses what
was computed before it, and a crashed run can be resumed from its last saved stage.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from clustering.cached_embedding import embed_texts
from clustering.embed import BUNDLED_MODELS, SentenceTransformerEmbedder
from clustering.faithfulness import explanation_faithfulness, guard_llm_labels
from clustering.labels import KeywordLabeler
from clustering.summarize import summarize_clusters
from clustering.types import (
    NOISE,
    Assignment,
    ClusterLabel,
    Corpus,
    Embedder,
    Labeler,
)
from corpusmap.errors import CorpusmapError
from storage import CorpusInfo, RunInfo, Store

log = logging.getLogger(__name__)

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
    model: str | None = None, device: str = "auto", prefix: str = "", precision: str = "auto"
) -> SentenceTransformerEmbedder:
    """One loaded encoder per model, device and precision for the life of the process; an
    instruction ``prefix`` (see ``clustering.embed.resolve_instruction``) shares that model's
    encoder and has its own ``model_id``, so the cache keeps its vectors apart."""
    if model is not None and model.lower() in BUNDLED_MODELS:
        return get_embedder(None, device, prefix, precision)
    if prefix:
        return get_embedder(model, device, "", precision).with_prefix(prefix)
    return SentenceTransformerEmbedder(model, device=device, precision=precision)


def run_embedder(run: RunInfo, device: str = "auto") -> Embedder:
    """The embedder a stored run used, rebuilt from its stored request: the model, its precision,
    its instruction prefix and, for a keyphrase-expanded run, a
    ``llm.keyphrases.KeyphraseEmbedder`` that reads the embedding cache and never asks the LLM
    (``run_vectors`` connects one for texts missing from it)."""
    from clustering.embed import resolve_instruction
    from corpusmap.request import stored_request

    request = stored_request(run)
    prefix = resolve_instruction(request.options.instruction, request.goal)
    # The precision the run's vectors were computed in (its cache key), not a new choice.
    precision = run.timings.get("embed_precision") or request.embedding.precision
    base = get_embedder(request.embedding.model, device, prefix, precision)
    if not request.options.expand_keyphrases:
        return base
    from llm.keyphrases import KeyphraseEmbedder

    # The vectors are cached under the LLM model and prompt version the run used: its id says
    # which (the cache key, written when the run embedded).
    return KeyphraseEmbedder.from_model_id(run.embedder, base, run.goal or None)


def store_corpus(store: Store, corpus: Corpus) -> CorpusInfo:
    return store.add_corpus(corpus)


def delete_corpus(store: Store, corpus_id: int) -> None:
    """A corpus with its runs, their clusters, assignments and edits (cannot be undone)."""
    store.delete_corpus(corpus_id)


def delete_run(store: Store, run_id: int) -> None:
    """A run with its clusters, assignments, structure and edits (its LLM calls stay cached)."""
    store.delete_run(run_id)


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


def claim_unfinished_run(store: Store, corpus_id: int, settings: dict[str, Any]) -> RunInfo | None:
    """The newest unfinished run with these settings whose owner is gone, now owned by us."""
    for run in store.unfinished_runs(corpus_id, **settings):
        if run.status == "running" and owner_is_alive(run.owner, run.heartbeat_at):
            continue
        if store.claim_run(run, process_owner()):
            log.info("run #%d: resuming after stage %r (%s)", run.id, run.stage, run.status)
            return store.get_run(run.id)
    return None


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
    ids = [int(c) for c in cluster_id]
    frame["cluster_label"] = [
        clusters[c].name if c in clusters else ("outlier" if c == NOISE else "") for c in ids
    ]
    frame["cluster_description"] = [clusters[c].description if c in clusters else "" for c in ids]
    frame["cluster_probability"] = probability
    return frame


def cluster_table(store: Store, run_id: int) -> pd.DataFrame:
    """One row per cluster: id, name, size, share, keywords, description, status, and when the
    run has them its parent (hierarchy) and keyword rule with precision and recall."""
    rules = store.get_run(run_id).rules
    parents = {c.cluster_id: c.name for c in store.load_clusters(run_id, level=1)}
    rows = []
    for c in store.load_clusters(run_id):
        rule = rules.get(c.cluster_id) or {}
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
    labeler.bind_run(run_id)
    assignments = store.load_assignments(run_id)
    texts = assignments["text"].tolist()
    embedder = embedder or run_embedder(run)
    vectors = run_vectors(store, run, texts, embedder)
    assignment = Assignment(
        assignments["cluster_id"].to_numpy(np.int64), assignments["probability"].to_numpy()
    )
    summaries = summarize_clusters(
        texts, vectors, assignment, goal=run.goal or None, embedder=embedder
    )
    wanted = set(cluster_ids) if cluster_ids is not None else None
    todo = [s for s in summaries if wanted is None or s.cluster_id in wanted]
    labels = list(labeler.label(todo))
    choice = guard_llm_labels(vectors, assignment.labels, labels, todo, embedder)
    if choice is not None:  # never worse than the keyword label (issue 18)
        labels = list(choice.labels)
    all_labels = {lab.cluster_id: lab for lab in _current_labels(store, run_id)}
    all_labels.update({lab.cluster_id: lab for lab in labels})
    faith = explanation_faithfulness(
        vectors, assignment.labels, list(all_labels.values()), embedder
    )
    store.save_labels(run_id, labels)
    store.save_faithfulness(run_id, faith.per_cluster)
    metrics = dict(run.metrics)
    metrics["faithfulness"] = faith.overall
    store.save_metrics(run_id, metrics)
    used = labeler.usage_dict()
    if used:
        store.save_llm_usage(run_id, _add_usage(run.llm_usage, used))
    store.add_edit(
        run_id, "relabel", {"labeler": labeler.name, "clusters": [s.cluster_id for s in todo]}
    )
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
    return [c.label() for c in store.load_clusters(run_id)]
