"""``corpusmap`` for crash tests: the real CLI in a real process, with two test knobs.

CORPUSMAP_TEST_EMBED_CHUNK: texts embedded between two writes to the cache (the product writes
every 2,048); CORPUSMAP_TEST_EMBED_DELAY: seconds to sleep before each chunk, so that a
``kill -9`` lands in the middle of embedding.
"""

from __future__ import annotations

import os
import sys
import time

import clustering.pipeline as pipeline
import corpusmap.workflow as workflow
from clustering.cached_embedding import embed_texts
from clustering.types import no_progress


class SlowEmbedder:
    def __init__(self, inner, delay: float) -> None:
        self.inner = inner
        self.delay = delay
        self.model_id = inner.model_id
        self.cache_key = inner.cache_key

    def embed(self, texts):
        time.sleep(self.delay)
        return self.inner.embed(texts)


def chunked_embed_texts(texts, embedder, cache=None, *, progress=no_progress, chunk_size=None):
    chunk = int(os.environ["CORPUSMAP_TEST_EMBED_CHUNK"])
    delay = float(os.environ.get("CORPUSMAP_TEST_EMBED_DELAY", "0"))
    return embed_texts(
        texts, SlowEmbedder(embedder, delay), cache, progress=progress, chunk_size=chunk
    )


if os.environ.get("CORPUSMAP_TEST_EMBED_CHUNK"):
    pipeline.embed_texts = chunked_embed_texts  # type: ignore[assignment]
    workflow.embed_texts = chunked_embed_texts  # type: ignore[assignment]  # every run's embed

if __name__ == "__main__":
    from corpusmap.cli import main

    sys.argv[0] = "corpusmap"
    main()
