"""Scale: time and peak RSS per stage at 10k / 50k / 100k texts built from the real corpora.

    python -m bench.scale [--sizes 10000 50000 100000]

Texts are the four bench corpora concatenated and repeated with a numbered suffix where more are
needed, so every text is distinct; vectors come from the embedding cache plus a tiny seeded
perturbation for the repeats (the embed stage itself is measured by bench.embed_speed). Each
size runs in its own subprocess: "cold" is reduce + cluster in a fresh process (numba compiles),
"re-cluster" is the automatic clustering again on the stored UMAP space with other parameters.
Writes bench/results/scale.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DATASETS, cached_embeddings, load_corpus

RESULTS = Path(__file__).parent / "results"


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_vectors(n: int, seed: int = 0) -> np.ndarray:
    parts = [cached_embeddings(load_corpus(name), compute=False) for name in DATASETS]
    base = np.vstack(parts)
    rng = np.random.default_rng(seed)
    reps = []
    total = 0
    while total < n:
        block = base[: n - total].copy()
        if total:
            block += rng.normal(0, 0.01, size=block.shape).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
        reps.append(block)
        total += len(block)
    return np.vstack(reps)[:n]


def run_one(n: int) -> dict[str, Any]:
    from clustering.pipeline import PipelineConfig, cluster_space, reduce_vectors

    out: dict[str, Any] = {"n": n}
    vectors = build_vectors(n)
    out["rss_after_load_mb"] = rss_mb()
    config = PipelineConfig(sample_size=None)
    start = time.perf_counter()
    space, _ = reduce_vectors(vectors, config)
    out["reduce_s"] = time.perf_counter() - start
    out["rss_after_reduce_mb"] = rss_mb()
    start = time.perf_counter()
    first = cluster_space(space, config)
    out["cluster_s"] = time.perf_counter() - start
    out["clusters"] = first.n_clusters
    out["rss_after_cluster_mb"] = rss_mb()
    start = time.perf_counter()
    again = cluster_space(space, PipelineConfig(min_cluster_size=2 * (first.n_clusters or 5)))
    out["recluster_s"] = time.perf_counter() - start
    out["recluster_clusters"] = again.n_clusters
    start = time.perf_counter()
    cluster_space(space, PipelineConfig(n_clusters=20))
    out["recluster_k_s"] = time.perf_counter() - start
    out["peak_rss_mb"] = rss_mb()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 50_000, 100_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    rows = []
    for n in args.sizes:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--one", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - start
        rows.append(row)
        print(row, flush=True)
    lines = [
        "# Scale: reduce and cluster at 10k-100k texts (2 cores)",
        "",
        "Fresh process per size (numba compile included in the reduce stage, which fits the 5-d "
        "and the 2-d UMAP). Re-cluster = automatic clustering again on the stored 5-d space with "
        "another min_cluster_size; K given = k-means on the stored space. Produced by "
        "`python -m bench.scale`.",
        "",
        "| n | reduce s | cluster s | clusters | re-cluster s | K-given s | process s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['reduce_s']:.1f} | {r['cluster_s']:.1f} | {r['clusters']} | "
            f"{r['recluster_s']:.1f} | {r['recluster_k_s']:.1f} | {r['process_s']:.1f} | "
            f"{r['peak_rss_mb']:.0f} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
