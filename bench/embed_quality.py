"""Does a faster precision change the clusters? NMI of k-means (true K) on vectors in fp32, bf16 and
int8 (ONNX Runtime), on the four visible corpora (issue #13: within 0.005 of fp32).

    python -m bench.embed_quality [--quick]

k-means rather than the full pipeline: it isolates the vectors (no UMAP or HDBSCAN noise), and
is cheap. Each corpus is a seeded subset; NMI is the mean over ``--seeds`` k-means seeds.
Writes bench/results/embed_quality.md.
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
PRECISIONS = ("fp32", "bf16", "int8")
SIZES = {"banking77_test": 3080, "stackoverflow": 3000, "ag_news_test": 2000, "20newsgroups": 1000}


def subset(name: str, size: int, seed: int = 0) -> tuple[list[str], list[str]]:
    corpus = load_base(name)
    rows = np.random.default_rng(seed).permutation(len(corpus.texts))[:size]
    return [corpus.texts[i] for i in rows], [corpus.labels[i] for i in rows]


def nmi(vectors: np.ndarray, labels: list[str], seeds: int) -> float:
    k = len(set(labels))
    scores = [
        normalized_mutual_info_score(
            labels, KMeans(k, n_init=3, random_state=seed).fit_predict(vectors)
        )
        for seed in range(seeds)
    ]
    return float(np.mean(scores))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of each subset")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS / "embed_quality.md"))
    args = parser.parse_args(argv)
    from clustering.embed import SentenceTransformerEmbedder

    embedders = {p: SentenceTransformerEmbedder(precision=p) for p in PRECISIONS}
    lines = [
        "# Clustering quality by embedding precision (all-MiniLM-L6-v2)",
        "",
        f"Produced by `python -m bench.embed_quality{' --quick' if args.quick else ''}`: "
        f"k-means with the true K, NMI mean of {args.seeds} seeds, seeded subsets (seed 0).",
        "",
        "| corpus | texts | NMI fp32 | NMI bf16 | NMI int8 | int8 − fp32 | "
        "mean cosine int8 to fp32 | seconds fp32 / bf16 / int8 |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, size in SIZES.items():
        texts, labels = subset(name, size // 4 if args.quick else size)
        vectors, seconds = {}, {}
        for precision, embedder in embedders.items():
            start = time.perf_counter()
            vectors[precision] = embedder.embed(texts)
            seconds[precision] = time.perf_counter() - start
        scores = {p: nmi(v, labels, args.seeds) for p, v in vectors.items()}
        cosine = float(np.mean(np.sum(vectors["fp32"] * vectors["int8"], axis=1)))
        line = (
            f"| {name} | {len(texts):,} | {scores['fp32']:.4f} | {scores['bf16']:.4f} | "
            f"{scores['int8']:.4f} | {scores['int8'] - scores['fp32']:+.4f} | {cosine:.4f} | "
            + " / ".join(f"{seconds[p]:.0f}" for p in PRECISIONS)
            + " |"
        )
        print(line, flush=True)
        lines.append(line)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
