"""Seed stability of the automatic number of clusters (issue 14).

    python -m bench.stability [CORPORA...] [--seeds 0 1 2 3 4]

For every corpus and UMAP seed (the 5-d cosine space of corpusmap's defaults, cached next to the
embeddings) this runs the automatic path's steps 1-2 once on all points and on
``N_RESAMPLES`` random 80 % subsets, and cuts the Ward tree by each rule of
``clustering.granularity.consensus_k``: ``full`` (the best variance ratio of the full data, the
rule before issue 14), ``median`` and ``mean`` (over the resamples). Beside them: k-means with the
true K in the same space (the "K given" path, at the fine and, for two-grain corpora, the coarse
grain) and BERTopic's default clustering of the same space (HDBSCAN ``min_cluster_size=10``, its
topics are exactly HDBSCAN's labels when no topic reduction is asked for).

Reports, per corpus and rule: K on each seed, K's spread over seeds, the spread the resamples
report within one seed, and NMI (fine and coarse) as mean and range over seeds.
Writes bench/results/stability.md and stability.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import CACHE_DIR, MULTI_GRAIN, cached_embeddings, load_corpus

RESULTS = Path(__file__).parent / "results"
DEFAULT_CORPORA = ("banking77_test", "ag_news_4k", "stackoverflow_4k", *MULTI_GRAIN)
MICRO_FACTORS = (1.0, 0.6)
"""HDBSCAN's min_cluster_size for the micro-clusters as a multiple of corpusmap's default."""
RULES = ("full", "median", "mean", "full@0.6", "median@0.6", "mean@0.6", "median@0.6+second")


def seeded_space(name: str, vectors: np.ndarray, seed: int) -> tuple[np.ndarray, bool]:
    """corpusmap's default clustering space for ``seed``, cached next to the embeddings, and
    whether it was fitted now (False: read from the cache)."""
    from clustering.pipeline import PipelineConfig
    from clustering.reduce import UMAP_EXACT_BELOW, UMAPReducer, exact_knn_allowed

    config = PipelineConfig()
    # From UMAP_EXACT_BELOW points the neighbour graph is corpusmap's exact search where the
    # machine's rate allows it (issue 13); spaces from pynndescent's graph are cached apart.
    n = len(vectors)
    search = ".exact" if n >= UMAP_EXACT_BELOW and exact_knn_allowed(n) else ""
    path = CACHE_DIR / (
        f"{name}.umap{config.n_components}.nn{config.n_neighbors}.s{seed}{search}.npy"
    )
    if path.exists():
        return np.load(path), False
    space = UMAPReducer(
        n_components=config.n_components,
        n_neighbors=config.n_neighbors,
        min_dist=config.min_dist,
        random_state=seed,
    ).fit_transform(vectors)
    np.save(path, space)
    return space, True


def nmi(truth: list[str] | None, labels: np.ndarray) -> float | None:
    from clustering.metrics import external_metrics

    return None if truth is None else round(external_metrics(truth, labels)["nmi"], 4)


def run_seed(corpus: Any, space: np.ndarray, seed: int) -> dict[str, Any]:
    import hdbscan

    from clustering.cluster import (
        HDBSCANClusterer,
        KMeansClusterer,
        default_min_cluster_size,
        order_by_size,
    )
    from clustering.granularity import (
        MICRO_SIZE_FACTOR,
        SECOND_CUT_SHARE,
        best_cut,
        merge_micro_clusters,
        variance_ratio_curve,
    )
    from clustering.resampling import K_RULE, consensus_k, resampled_curves

    out: dict[str, Any] = {"seed": seed, "rules": {}}
    for factor in MICRO_FACTORS:
        start = time.perf_counter()
        size = max(5, round(default_min_cluster_size(len(space)) * factor))
        micro = HDBSCANClusterer(min_cluster_size=size)
        found = micro.fit_predict(space)
        full = variance_ratio_curve(space, found.labels)[1]
        micro_s = time.perf_counter() - start
        start = time.perf_counter()
        fits = resampled_curves(space, micro.min_cluster_size_, None, random_state=0, second=None)
        curves = [f.scores for f in fits]
        tag = "" if factor == 1.0 else f"@{factor}"
        out[f"resample_seconds{tag}"] = round(time.perf_counter() - start, 2)
        out[f"micro_seconds{tag}"] = round(micro_s, 2)
        out[f"resampled_k{tag}"] = [best_cut(c) for c in curves if c]
        for rule in ("full", "median", "mean"):
            k = consensus_k(full, curves, rule)
            for second, suffix in ((None, ""), (SECOND_CUT_SHARE, "+second")):
                if suffix and (factor != MICRO_SIZE_FACTOR or rule != K_RULE):
                    continue  # the second cut measured on the default path only
                merged = merge_micro_clusters(space, found.labels, n_clusters=k, second=second)
                labels = order_by_size(merged[0])
                out["rules"][rule + tag + suffix] = {
                    "k": int(len(np.unique(labels[labels != -1]))),
                    "nmi": nmi(corpus.labels, labels),
                    "nmi_coarse": nmi(corpus.coarse, labels),
                }
    for grain, truth in (("fine", corpus.labels), ("coarse", corpus.coarse)):
        if truth is None:
            continue
        labels = KMeansClusterer(len(set(truth)), random_state=seed).fit_predict(space).labels
        out[f"kmeans_{grain}"] = {"nmi": nmi(truth, labels), "nmi_other": None}
        other = corpus.coarse if grain == "fine" else corpus.labels
        out[f"kmeans_{grain}"]["nmi_other"] = nmi(other, labels)
    bertopic = hdbscan.HDBSCAN(min_cluster_size=10, prediction_data=True).fit(space).labels_
    out["bertopic"] = {
        "k": int(len(np.unique(bertopic[bertopic != -1]))),
        "nmi": nmi(corpus.labels, bertopic),
        "nmi_coarse": nmi(corpus.coarse, bertopic),
    }
    return out


def run_corpus(name: str, seeds: list[int]) -> dict[str, Any]:
    corpus = load_corpus(name)
    vectors = cached_embeddings(corpus)
    result: dict[str, Any] = {
        "corpus": name,
        "n": len(corpus.texts),
        "classes": corpus.n_classes,
        "coarse_classes": corpus.n_coarse,
        "seeds": [],
    }
    for seed in seeds:
        space, _ = seeded_space(name, vectors, seed)
        r = run_seed(corpus, space, seed)
        result["seeds"].append(r)
        print(
            f"{name:18s} seed {seed}: "
            + " ".join(f"{k}={v['k']} ({v['nmi']})" for k, v in r["rules"].items())
            + f" resampled {r['resampled_k']} ({r['resample_seconds']} s)"
            + f" BERTopic {r['bertopic']['k']} ({r['bertopic']['nmi']})",
            flush=True,
        )
    return result


def span(values: list[float]) -> str:
    return f"{min(values)}–{max(values)}" if min(values) != max(values) else f"{min(values)}"


def write_report(results: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stability.json").write_text(json.dumps(results, indent=2))
    lines = [
        "# Seed stability of the automatic K (issue 14)",
        "",
        "Per corpus, 5 UMAP seeds of corpusmap's default space. Rules: `full` = best variance",
        "ratio of the full data (before issue 14); `median` / `mean` = over 6 random 80 % resamples",
        "(`clustering.granularity.consensus_k`); `+second` = then `second_cut` (the default path).",
        "within-seed = the range the resamples report on",
        "one seed (union over seeds). NMI: mean over seeds (min–max). k-means = true K in the same",
        "space; BERTopic = its default HDBSCAN (min_cluster_size 10) on the same space.",
        "Produced by `python -m bench.stability`.",
        "",
        "| corpus | n | classes (coarse) | method | K per seed | K spread | NMI fine | NMI coarse |",
        "|---|---:|---|---|---|---|---|---|",
    ]

    def nmi_cell(values: list[float | None]) -> str:
        vals = [v for v in values if v is not None]
        if not vals:
            return ""
        return f"{np.mean(vals):.3f} ({min(vals):.3f}–{max(vals):.3f})"

    for r in results:
        head = f"| {r['corpus']} | {r['n']:,} | {r['classes']} ({r['coarse_classes'] or '-'}) |"
        seeds = r["seeds"]
        for rule in RULES:
            if any(rule not in s["rules"] for s in seeds):
                continue
            ks = [s["rules"][rule]["k"] for s in seeds]
            lines.append(
                f"{head} auto `{rule}` | {', '.join(map(str, ks))} | {span(ks)} | "
                f"{nmi_cell([s['rules'][rule]['nmi'] for s in seeds])} | "
                f"{nmi_cell([s['rules'][rule]['nmi_coarse'] for s in seeds])} |"
            )
        for factor in MICRO_FACTORS:
            tag = "" if factor == 1.0 else f"@{factor}"
            within = [k for s in seeds for k in s.get(f"resampled_k{tag}", [])]
            if within:
                lines.append(f"{head} resamples{tag} (within-seed) | | {span(within)} | | |")
        for grain in ("fine", "coarse"):
            if f"kmeans_{grain}" in seeds[0]:
                vals = [s[f"kmeans_{grain}"] for s in seeds]
                fine = [v["nmi"] if grain == "fine" else v["nmi_other"] for v in vals]
                coarse = [v["nmi_other"] if grain == "fine" else v["nmi"] for v in vals]
                k = r["classes"] if grain == "fine" else r["coarse_classes"]
                lines.append(f"{head} k-means K={k} | | | {nmi_cell(fine)} | {nmi_cell(coarse)} |")
        ks = [s["bertopic"]["k"] for s in seeds]
        lines.append(
            f"{head} BERTopic defaults | {', '.join(map(str, ks))} | {span(ks)} | "
            f"{nmi_cell([s['bertopic']['nmi'] for s in seeds])} | "
            f"{nmi_cell([s['bertopic']['nmi_coarse'] for s in seeds])} |"
        )
    (RESULTS / "stability.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpora", nargs="*", default=list(DEFAULT_CORPORA))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    for name in args.corpora:
        # The report is rewritten after each corpus: a long sweep keeps what it finished.
        result = run_corpus(name, args.seeds)
        previous = RESULTS / "stability.json"
        kept = json.loads(previous.read_text()) if previous.exists() else []
        write_report([r for r in kept if r["corpus"] != name] + [result])


if __name__ == "__main__":
    main()
