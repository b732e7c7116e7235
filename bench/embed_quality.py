"""Does a faster precision change the clusters? NMI of Ward's clustering (true K) on vectors in
fp32, bf16, int8 (ONNX Runtime) and OpenVINO bf16, on the four visible corpora (issue #13: within
0.005 of fp32).

    python -m bench.embed_quality [--quick]

Ward's clustering rather than the full pipeline: it isolates the vectors (no UMAP or HDBSCAN
noise), is cheap, and is deterministic: k-means' NMI moved by up to 0.07 between fp32 and bf16
vectors at cosine 0.99995 on 500 AG News texts, its starts' noise, not the vectors'.
Writes bench/results/embed_quality.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans
from sklearn.metrics import normalized_mutual_info_score

from bench.data import load_base

RESULTS = Path(__file__).parent / "results"
PRECISIONS = ("fp32", "bf16", "int8", "openvino-bf16")
SIZES = {"banking77_test": 3080, "stackoverflow": 3000, "ag_news_test": 2000, "20newsgroups": 1000}


def subset(name: str, size: int, seed: int = 0) -> tuple[list[str], list[str]]:
    corpus = load_base(name)
    rows = np.random.default_rng(seed).permutation(len(corpus.texts))[:size]
    return [corpus.texts[i] for i in rows], [corpus.labels[i] for i in rows]


def nmi(vectors: np.ndarray, labels: list[str]) -> float:
    """NMI of Ward's agglomerative clustering with the true K: deterministic, so a difference
    between two precisions is the vectors' and not a k-means start's."""
    k = len(set(labels))
    return float(
        normalized_mutual_info_score(
            labels, AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(vectors)
        )
    )


def kmeans_spread(vectors: np.ndarray, labels: list[str], seeds: int) -> float:
    """The standard deviation of k-means' NMI over ``seeds`` seeds on the same fp32 vectors:
    the noise a k-means comparison between precisions would carry."""
    k = len(set(labels))
    scores = [
        normalized_mutual_info_score(
            labels, KMeans(k, n_init=1, random_state=seed).fit_predict(vectors)
        )
        for seed in range(seeds)
    ]
    return float(np.std(scores))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of each subset")
    parser.add_argument("--seeds", type=int, default=10, help="k-means seeds for the noise")
    parser.add_argument("--out", default=str(RESULTS / "embed_quality.md"))
    args = parser.parse_args(argv)
    from clustering.embed import SentenceTransformerEmbedder

    embedders = {p: SentenceTransformerEmbedder(precision=p) for p in PRECISIONS}
    lines = [
        "# Clustering quality by embedding precision (all-MiniLM-L6-v2)",
        "",
        f"Produced by `python -m bench.embed_quality{' --quick' if args.quick else ''}`: "
        "NMI of Ward's agglomerative clustering with the true K (deterministic), seeded subsets "
        f"(seed 0); beside it the standard deviation of k-means' NMI over {args.seeds} seeds on "
        "the fp32 vectors, the noise a k-means comparison would carry. Seconds are wall time on "
        "a shared machine: see embed_speed.md for speed.",
        "",
        "| corpus | texts | "
        + " | ".join(f"NMI {p}" for p in PRECISIONS)
        + " | "
        + " | ".join(f"{p} − fp32 (cosine)" for p in PRECISIONS[1:])
        + " | k-means sd (fp32) | seconds "
        + " / ".join(PRECISIONS)
        + " |",
        "|---|---:|" + "---:|" * (2 * len(PRECISIONS)) + "---|",
    ]
    for name, size in SIZES.items():
        texts, labels = subset(name, size // 4 if args.quick else size)
        vectors, seconds = {}, {}
        for precision, embedder in embedders.items():
            start = time.perf_counter()
            vectors[precision] = embedder.embed(texts)
            seconds[precision] = time.perf_counter() - start
        scores = {p: nmi(v, labels) for p, v in vectors.items()}
        spread = kmeans_spread(vectors["fp32"], labels, args.seeds)
        gaps = []
        for p in PRECISIONS[1:]:
            cosine = float(np.mean(np.sum(vectors["fp32"] * vectors[p], axis=1)))
            gaps.append(f"{scores[p] - scores['fp32']:+.4f} ({cosine:.4f})")
        line = (
            f"| {name} | {len(texts):,} | "
            + " | ".join(f"{scores[p]:.4f}" for p in PRECISIONS)
            + " | "
            + " | ".join(gaps)
            + f" | {spread:.4f} | "
            + " / ".join(f"{seconds[p]:.0f}" for p in PRECISIONS)
            + " |"
        )
        print(line, flush=True)
        lines.append(line)
    Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
