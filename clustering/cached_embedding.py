"""Embedding a corpus through the cache: each distinct text once, the cached ones never again,
with progress a user can watch (``embed_texts``); any ``Embedder`` (``clustering.embed``'s
sentence-transformers encoder, Ray's, a goal or keyphrase wrapper)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np

from clustering.progress import ProgressMeter
from clustering.types import Embedder, EmbeddingCache, ProgressCallback, no_progress

log = logging.getLogger(__name__)

CHUNK_SIZE = 2048
"""Texts embedded between two writes to the cache: a crash loses at most one chunk."""
PROGRESS_SECONDS = 2.0
"""``embed_texts`` reports progress about this often: it embeds in steps of ~this long."""
MIN_PROGRESS_STEP = 32
"""Fewest texts per step: smaller calls lose the batching of the forward pass (steps of 16
titles ran the fp32 stage at half the raw forward pass's rate on a busy machine)."""


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embed_texts(
    texts: Sequence[str],
    embedder: Embedder,
    cache: EmbeddingCache | None = None,
    *,
    progress: ProgressCallback = no_progress,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[np.ndarray, dict[str, int]]:
    """Vectors for ``texts`` (one row each), embedding each distinct text once.

    Vectors already in ``cache`` (under ``embedder.cache_key``) are reused; new ones are written
    back chunk by chunk, so an interrupted run keeps what it embedded. Within a chunk the texts
    go to the embedder in steps of about ``PROGRESS_SECONDS``, each followed by a ``progress``
    report of texts done, rate and time left. An embedder with a ``chunk_size`` attribute (the
    Ray embedder, whose every call starts a distributed job) sets the chunk size itself and is
    called once per chunk. Returns the vectors and counts
    ``{"texts", "distinct", "cache_hits", "embedded"}``.
    """
    fixed_chunk = getattr(embedder, "chunk_size", None)
    chunk_size = int(fixed_chunk or chunk_size)
    hashes = [text_hash(t) for t in texts]
    first_index: dict[str, int] = {}
    for i, h in enumerate(hashes):
        first_index.setdefault(h, i)
    distinct = list(first_index)
    if distinct:
        progress("embed", 0.0, "loading the embedding model")
    key = embedder.cache_key
    found: dict[str, np.ndarray] = {}
    if cache is not None and distinct:
        found = cache.get_embeddings(key, distinct)
    missing = [h for h in distinct if h not in found]
    log.info(
        "embedding %d texts: %d distinct, %d cached, %d to embed with %s",
        len(texts),
        len(distinct),
        len(found),
        len(missing),
        key,
    )
    meter = ProgressMeter("embed", len(missing), progress)
    step = MIN_PROGRESS_STEP
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start : start + chunk_size]
        parts = []
        at = 0
        while at < len(chunk):
            part = chunk[at : at + (len(chunk) if fixed_chunk else step)]
            parts.append(np.asarray(embedder.embed([texts[first_index[h]] for h in part])))
            at += len(part)
            meter.advance(len(part))
            step = max(MIN_PROGRESS_STEP, min(chunk_size, int(meter.rate * PROGRESS_SECONDS)))
        new = dict(zip(chunk, np.vstack(parts), strict=True))
        if cache is not None:
            cache.put_embeddings(key, new)
        found.update(new)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32), _counts(0, 0, 0, 0)
    matrix = np.vstack([found[h] for h in hashes]).astype(np.float32, copy=False)
    return matrix, _counts(len(texts), len(distinct), len(distinct) - len(missing), len(missing))


def uncached_texts(
    texts: Sequence[str], embedder: Embedder, cache: EmbeddingCache | None
) -> list[str]:
    """The distinct texts ``embed_texts`` would embed (not in ``cache`` under its cache key),
    in first-seen order: what a plan must pay for when embedding costs more than compute."""
    first: dict[str, str] = {}
    for t in texts:
        first.setdefault(text_hash(t), t)
    if cache is None or not first:
        return list(first.values())
    found = cache.get_embeddings(embedder.cache_key, list(first))
    return [t for h, t in first.items() if h not in found]


def _counts(texts: int, distinct: int, hits: int, embedded: int) -> dict[str, int]:
    return {"texts": texts, "distinct": distinct, "cache_hits": hits, "embedded": embedded}
