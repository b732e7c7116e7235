"""The labelled corpora of /work/shared/data and a cache of their embeddings.

Embeddings are computed once per corpus with corpusmap's default embedder and kept as
``<cache>/<name>.npy`` (outside the repository), so quality benchmarks do not pay the embed stage.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CORPUSMAP_BENCH_DATA", REPO.parent / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("CORPUSMAP_BENCH_CACHE", REPO.parent / "bench-cache"))
DATASETS = ("banking77_test", "ag_news_test", "stackoverflow", "20newsgroups")


@dataclass(frozen=True)
class LabelledCorpus:
    name: str
    texts: list[str]
    labels: list[str]

    @property
    def n_classes(self) -> int:
        return len(set(self.labels))


def load_corpus(name: str) -> LabelledCorpus:
    path = DATA_DIR / f"{name}.jsonl.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; set CORPUSMAP_BENCH_DATA to the data folder")
    texts: list[str] = []
    labels: list[str] = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            # The pipeline takes non-empty texts only; keep rows aligned with their labels.
            text = row["text"].strip() or "(empty)"
            texts.append(text)
            labels.append(str(row["label"]))
    return LabelledCorpus(name, texts, labels)


def cached_embeddings(corpus: LabelledCorpus, *, compute: bool = True) -> np.ndarray:
    """The corpus's vectors from the cache, computing and saving them on a miss."""
    path = CACHE_DIR / f"{corpus.name}.npy"
    if path.exists():
        vectors = np.load(path)
        if len(vectors) == len(corpus.texts):
            return vectors
        log.warning(
            "%s has %d rows, corpus has %d: recomputing", path, len(vectors), len(corpus.texts)
        )
    if not compute:
        raise FileNotFoundError(f"no cached embeddings at {path}; run python -m bench.data")
    from clustering.embed import SentenceTransformerEmbedder, embed_texts

    start = time.perf_counter()
    vectors, counts = embed_texts(corpus.texts, SentenceTransformerEmbedder())
    log.info("embedded %s: %s in %.1f s", corpus.name, counts, time.perf_counter() - start)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Fill the embedding cache of the bench corpora.")
    parser.add_argument("datasets", nargs="*", default=list(DATASETS))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in args.datasets:
        start = time.perf_counter()
        vectors = cached_embeddings(load_corpus(name))
        print(f"{name}: {vectors.shape} in {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
