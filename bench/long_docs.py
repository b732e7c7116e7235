"""Long documents: cut at 128 tokens, cut at 256 (the model's window, corpusmap's default), or
average the vectors of 256-token chunks? Quality and time on 20 Newsgroups (issue #13).

    python -m bench.long_docs [--n 3000] [--precision auto]

A seeded subset of ``--n`` posts; NMI of k-means with the true K (20 groups; and the 7 coarse
groups) over 3 seeds. Chunks are cut at token boundaries (the tokenizer's offsets), at most
``--max-chunks`` per post (a few posts run to 160,000 characters). Writes
bench/results/long_docs.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from bench.data import load_base

RESULTS = Path(__file__).parent / "results"
CHUNK_TOKENS = 254
"""Tokens per chunk: the 256-token window less [CLS] and [SEP]."""


def chunks(text: str, tokenizer, max_chunks: int) -> list[str]:
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)[
        "offset_mapping"
    ]
    pieces = []
    for start in range(0, max(len(offsets), 1), CHUNK_TOKENS):
        window = offsets[start : start + CHUNK_TOKENS]
        if not window:
            break
        pieces.append(text[window[0][0] : window[-1][1]])
        if len(pieces) == max_chunks:
            break
    return pieces or [text]


def nmi(vectors: np.ndarray, labels: list[str], seeds: int = 3) -> float:
    k = len(set(labels))
    return float(
        np.mean(
            [
                normalized_mutual_info_score(
                    labels, KMeans(k, n_init=3, random_state=s).fit_predict(vectors)
                )
                for s in range(seeds)
            ]
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--max-chunks", type=int, default=8)
    parser.add_argument("--out", default=str(RESULTS / "long_docs.md"))
    args = parser.parse_args(argv)
    from clustering.embed import SentenceTransformerEmbedder

    corpus = load_base("20newsgroups")
    rows = np.random.default_rng(0).permutation(len(corpus.texts))[: args.n]
    texts = [corpus.texts[i] for i in rows]
    fine = [corpus.labels[i] for i in rows]
    coarse = [label.split(".")[0] for label in fine]
    embedder = SentenceTransformerEmbedder(precision=args.precision)
    encoder = embedder.encoder
    results = []
    for window in (128, 256):
        encoder.max_seq_length = window
        start = time.perf_counter()
        vectors = embedder.embed(texts)
        results.append(
            (f"cut at {window} tokens", vectors, time.perf_counter() - start, len(texts))
        )
    encoder.max_seq_length = 256
    start = time.perf_counter()
    pieces = [chunks(t, encoder.tokenizer, args.max_chunks) for t in texts]
    flat = [p for doc in pieces for p in doc]
    chunk_vectors = embedder.embed(flat)
    owner = np.repeat(np.arange(len(texts)), [len(doc) for doc in pieces])
    summed = np.zeros((len(texts), chunk_vectors.shape[1]), dtype=np.float32)
    np.add.at(summed, owner, chunk_vectors)
    averaged = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    results.append(
        (
            f"mean of 256-token chunks (≤ {args.max_chunks})",
            averaged,
            time.perf_counter() - start,
            len(flat),
        )
    )
    lines = [
        "# Long documents: where to cut (20 Newsgroups)",
        "",
        f"Produced by `python -m bench.long_docs --n {args.n} --precision {args.precision}` "
        f"({embedder.precision}: {embedder.precision_reason}). {len(texts):,} posts (seed 0), "
        f"median {int(np.median([len(t) for t in texts])):,} characters; k-means with the true "
        "K, NMI mean of 3 seeds. Times on a shared machine: compare within the table.",
        "",
        "| variant | passages embedded | seconds | NMI 20 groups | NMI 7 coarse groups |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, vectors, seconds, n in results:
        line = (
            f"| {name} | {n:,} | {seconds:.0f} | {nmi(vectors, fine):.4f} | "
            f"{nmi(vectors, coarse):.4f} |"
        )
        print(line, flush=True)
        lines.append(line)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
