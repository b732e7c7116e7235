#!/usr/bin/env bash
# The embed and cluster benchmark on a GPU machine, in under 5 minutes.
#
#   bash bench/gpu_check.sh            # results in $OUT (default bench/results/gpu)
#
# Needs: the project installed with a CUDA build of torch (pip install -e . on a CUDA machine
# takes one), the corpora in $CORPUSMAP_BENCH_DATA (default /work/shared/data) and, for the
# cuML rows, RAPIDS cuML (pip install 'corpusmap[gpu]' --extra-index-url=https://pypi.nvidia.com).
# Without cuML the cluster rows run on the CPU packages and say so. Nothing is downloaded.
#
# What it measures (one JSON file and a Markdown table):
#   1. embedding: ~100k distinct texts (every real text plus joined pairs, as bench/large.py
#      builds them), fp16, batches of 256, on CUDA: texts/s;
#   2. clustering those 100k vectors: UMAP 5-d + 2-d and HDBSCAN, fitted on all (cuML);
#   3. the sample-and-assign path: fit on 50k, assign the other 50k in batches.
# GPU_CHECK_TEXTS=2000 makes it a smoke test that a CPU machine finishes.
# Each step has its own time budget; a step that would run past 5 minutes is skipped, not hung.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT:-bench/results/gpu}
export BUDGET_S=${BUDGET_S:-280}
mkdir -p "$OUT"
export CORPUSMAP_BENCH_CACHE=${CORPUSMAP_BENCH_CACHE:-$OUT/cache}
export PYTHONUNBUFFERED=1

(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "no nvidia-smi") | tee "$OUT/gpu.txt"

timeout "$BUDGET_S" "$PY" - "$OUT" <<'EOF'
import json, logging, os, sys, time
from pathlib import Path

import numpy as np
import torch

from bench.large import joined_texts, real_texts
from clustering import gpu
from clustering.embed import SentenceTransformerEmbedder
from clustering.pipeline import PipelineConfig
from clustering.sample_assign import SampledStages

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
out = Path(sys.argv[1])
N = int(os.environ.get("GPU_CHECK_TEXTS", "100000"))  # fewer for a smoke test on a CPU
t0 = time.perf_counter()
results = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
if torch.cuda.is_available():
    results["device"] = torch.cuda.get_device_name(0)
backend = gpu.resolve_backend("auto")
results["cluster_backend"] = backend


def save():
    (out / "gpu_check.json").write_text(json.dumps(results, indent=1))


def left():
    return int(os.environ["BUDGET_S"]) - 10 - (time.perf_counter() - t0)


texts, _ = real_texts()
extra = joined_texts(set(texts))
while len(texts) < N:
    texts.append(next(extra)[0])
texts = texts[:N]

embedder = SentenceTransformerEmbedder()
embedder.embed(["warm up"] * 512)
results["embed_device"] = embedder.resolved_device
results["embed_precision"] = embedder.resolved_precision
results["embed_batch_size"] = embedder.default_batch_size
start = time.perf_counter()
vectors = np.vstack([embedder.embed(texts[i : i + 8192]) for i in range(0, len(texts), 8192)])
seconds = time.perf_counter() - start
results["embed"] = {"texts": len(texts), "seconds": round(seconds, 1),
                    "texts_per_s": round(len(texts) / seconds)}
save()
print(f"embed: {len(texts):,} texts in {seconds:.1f} s on {embedder.resolved_device}", flush=True)
if torch.cuda.is_available():
    results["embed"]["cuda_peak_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    torch.cuda.empty_cache()

# 2. The whole 100k fitted at once (UMAP to 5-d and 2-d, HDBSCAN).
if backend == "cuml" or left() > 0.7 * int(os.environ["BUDGET_S"]):
    start = time.perf_counter()
    space = gpu.fit_transform(gpu.make_umap(backend, n_components=5, n_neighbors=15,
                                            min_dist=0.0, random_state=42), vectors)
    t_umap = time.perf_counter() - start
    gpu.fit_transform(gpu.make_umap(backend, n_components=2, n_neighbors=15, min_dist=0.1,
                                    random_state=42), vectors)
    t_map = time.perf_counter() - start - t_umap
    model = gpu.fit_hdbscan(gpu.make_hdbscan(backend, min_cluster_size=max(5, round(0.3 * N ** 0.5)), min_samples=None,
                                             cluster_selection_method="eom"), space, backend)
    t_hdb = time.perf_counter() - start - t_umap - t_map
    labels = np.asarray(model.labels_)
    results["fit_all"] = {"umap_5d_s": round(t_umap, 1), "umap_2d_s": round(t_map, 1),
                           "hdbscan_s": round(t_hdb, 1),
                           "clusters": int(len(set(labels.tolist()) - {-1})),
                           "noise_share": round(float(np.mean(labels == -1)), 3)}
    save()
    print("fit all:", results["fit_all"], flush=True)
else:
    results["fit_all"] = "skipped: not enough of the 5-minute budget left on the CPU"

# 3. Sample and assign: fit on 50k, assign the other 50k in batches.
if left() > 60:
    texts_list = list(texts)
    stages = SampledStages(texts_list, PipelineConfig(sample_size=N // 2), backend=backend)
    start = time.perf_counter()
    space, coords = stages.reduce(vectors)
    t_reduce = time.perf_counter() - start
    assignment = stages.cluster(space)
    t_cluster = time.perf_counter() - start - t_reduce
    results["sample_assign"] = {"sample": N // 2, "reduce_s": round(t_reduce, 1),
                                     "cluster_s": round(t_cluster, 1),
                                     "clusters": assignment.n_clusters,
                                     "noise_share": round(assignment.noise_share, 3)}
    save()
    print("sample and assign:", results["sample_assign"], flush=True)
results["total_s"] = round(time.perf_counter() - t0, 1)
save()
print(json.dumps(results, indent=1))
EOF
