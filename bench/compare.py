"""Quality benchmark: corpusmap (automatic K and K given) vs BERTopic 0.17.4 defaults vs k-means
with the true K, all on the same cached embeddings.

    python -m bench.compare [DATASETS...] [--fresh-umap] [--seeds 0 1 2 3 4] [--no-names]

Datasets: the four of ../shared/data and the two-grain corpora of ``bench.data`` (default: all
six), and the external corpora of ``bench.data.EXTERNAL`` (BBC News, CLINC150, Tweet89,
GoogleNews-T: run by name, ``python -m bench.compare bbc_news clinc150 tweet89 googlenews_t``;
skipped with a message when their files are absent). Issue 14 added, per corpus: the spread of the automatic K and its NMI over UMAP seeds
(``--seeds``; each seed is one more UMAP fit, cached), the spread the resampled fits report
within one run, NMI against the coarse labels of two-grain corpora (and "K given" at the coarse
K), and the offline names' measures of ``bench.names`` on the automatic clusters (shared words,
reader top-1). With a warm cache (embeddings and UMAP spaces) a full run takes about 10 minutes
on 2 quiet cores; the first run embeds 20 Newsgroups (18,846 long posts: about 40 minutes on CPU)
and fits 5 UMAP seeds per corpus (about 15 minutes in all).

Each corpus runs in its own subprocess so its peak RSS is its own. The 5-d UMAP space is
corpusmap's (cosine, n_neighbors 15, min_dist 0, seed 42): BERTopic's default UMAP has exactly
these parameters, so by default BERTopic is handed the same space (a stand-in reducer) and the
comparison isolates the clustering; ``--fresh-umap`` lets BERTopic fit its own seeded UMAP.
Writes bench/results/compare.md, compare.json and compare.png.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import (
    ALL_CORPORA,
    DATASETS,
    EXTERNAL,
    MULTI_GRAIN,
    available,
    cached_embeddings,
    load_corpus,
)

RESULTS = Path(__file__).parent / "results"
METHODS = ("corpusmap auto", "corpusmap K given", "BERTopic 0.17.4", "k-means true K")
COARSE_METHOD = "corpusmap K given (coarse)"
OFFERED_METHOD = "corpusmap coarser grain offered"
"""The run's own coarser grain (``metrics['coarse']``: whole clusters grouped along the Ward tree),
scored like the others; absent when the run offered none."""
DEFAULT_CORPORA = DATASETS + MULTI_GRAIN


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cached_space(name: str, vectors: np.ndarray) -> tuple[np.ndarray, float | None]:
    """corpusmap's default clustering space (``bench.stability.seeded_space`` at the default
    seed) and the seconds its fit took, None when it came from the cache."""
    from bench.stability import seeded_space
    from clustering.pipeline import PipelineConfig

    start = time.perf_counter()
    space, fitted = seeded_space(name, vectors, PipelineConfig().random_state or 0)
    return space, (time.perf_counter() - start) if fitted else None


class FixedSpace:
    """A BERTopic ``umap_model`` that returns a precomputed reduction of the same rows."""

    def __init__(self, space: np.ndarray) -> None:
        self.space = space

    def fit(self, X: Any, y: Any = None) -> FixedSpace:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return self.space


def score(
    truth: list[str], labels: np.ndarray, seconds: float, coarse: list[str] | None = None
) -> dict[str, Any]:
    from clustering.metrics import external_metrics

    labels = np.asarray(labels)
    result: dict[str, Any] = external_metrics(truth, labels)
    if coarse is not None:
        result["nmi_coarse"] = external_metrics(coarse, labels)["nmi"]
    result["clusters"] = int(len(np.unique(labels[labels != -1])))
    result["outliers"] = float(np.mean(labels == -1))
    result["seconds"] = seconds
    return result


def run_one(name: str, fresh_umap: bool, seeds: list[int], names: bool) -> dict[str, Any]:
    from clustering.grains import coarse_labels, k_spread
    from clustering.pipeline import PipelineConfig, cluster_space, make_clusterer

    corpus = load_corpus(name)
    vectors = cached_embeddings(corpus)
    k_true = corpus.n_classes
    space, umap_seconds = cached_space(name, vectors)
    out: dict[str, Any] = {
        "dataset": name,
        "n": len(corpus.texts),
        "classes": k_true,
        "umap_seconds": umap_seconds,
        "methods": {},
    }

    coarse = corpus.coarse
    start = time.perf_counter()
    clusterer = make_clusterer(PipelineConfig())
    auto = clusterer.fit_predict(space)
    out["methods"]["corpusmap auto"] = score(
        corpus.labels, auto.labels, time.perf_counter() - start, coarse
    )
    out["k_spread"] = k_spread(clusterer.granularity_)
    offered = coarse_labels(auto.labels, clusterer.granularity_)
    if offered is not None:
        out["methods"][OFFERED_METHOD] = score(corpus.labels, offered, 0.0, coarse)

    start = time.perf_counter()
    given = cluster_space(space, PipelineConfig(n_clusters=k_true))
    out["methods"]["corpusmap K given"] = score(
        corpus.labels, given.labels, time.perf_counter() - start, coarse
    )
    if coarse is not None:
        start = time.perf_counter()
        given = cluster_space(space, PipelineConfig(n_clusters=corpus.n_coarse))
        out["methods"][COARSE_METHOD] = score(
            corpus.labels, given.labels, time.perf_counter() - start, coarse
        )

    if seeds:
        from bench.stability import seeded_space

        per_seed, offered_k, offered_nmi = [], [], []
        for seed in seeds:
            seeded = make_clusterer(PipelineConfig())
            labels = seeded.fit_predict(seeded_space(name, vectors, seed)[0]).labels
            per_seed.append(score(corpus.labels, labels, 0.0, coarse))
            # The offered coarser grain against the coarse labels (the labels of a one-level
            # corpus such as BBC News's 5 sections); None where the run offered none.
            grouped = coarse_labels(labels, seeded.granularity_)
            offered_k.append(seeded.granularity_.coarse_k or None)
            offered_nmi.append(
                None
                if grouped is None
                else round(score(coarse or corpus.labels, grouped, 0.0)["nmi"], 4)
            )
        out["seeds"] = {"seeds": seeds, "k": [m["clusters"] for m in per_seed]}
        out["seeds"]["nmi"] = [round(m["nmi"], 4) for m in per_seed]
        out["seeds"]["offered_k"] = offered_k
        out["seeds"]["nmi_offered"] = offered_nmi
        if coarse is not None:
            out["seeds"]["nmi_coarse"] = [round(m["nmi_coarse"], 4) for m in per_seed]

    if names:
        from bench.names import legacy_class_tfidf, reader_top1, shared_share
        from clustering.embed import SentenceTransformerEmbedder
        from clustering.keywords import class_tfidf
        from clustering.labels import keyword_name

        embedder = SentenceTransformerEmbedder()
        out["names"] = {}
        after = class_tfidf(corpus.texts, auto.labels, vectors=vectors, embedder=embedder)
        for method, found in (
            ("before", legacy_class_tfidf(corpus.texts, auto.labels)),
            ("after", after),  # as a run names them: chosen with the run's encoder
        ):
            named = {c: keyword_name(k, c) for c, k in found.items()}
            out["names"][method] = {
                "shared": shared_share(named),
                "reader_top1": reader_top1(named, vectors, auto.labels, embedder),
            }

    from bertopic import BERTopic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fresh_umap:
            from umap import UMAP

            reducer: Any = UMAP(
                n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=42
            )
        else:
            reducer = FixedSpace(space)
        start = time.perf_counter()
        topics, _ = BERTopic(umap_model=reducer).fit_transform(corpus.texts, embeddings=vectors)
    out["methods"]["BERTopic 0.17.4"] = score(
        corpus.labels, np.asarray(topics), time.perf_counter() - start, coarse
    )

    from sklearn.cluster import KMeans

    start = time.perf_counter()
    labels = KMeans(k_true, n_init=10, random_state=42).fit_predict(vectors)
    out["methods"]["k-means true K"] = score(
        corpus.labels, labels, time.perf_counter() - start, coarse
    )
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def write_report(results: list[dict[str, Any]]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(results, indent=2))
    lines = [
        "# corpusmap vs BERTopic vs k-means",
        "",
        "Same cached all-MiniLM-L6-v2 embeddings for every method (the precision `auto` chose when "
        "the corpus was first embedded); corpusmap and BERTopic on the same",
        "seeded 5-d UMAP space (BERTopic's default UMAP parameters are corpusmap's). Outliers (-1)",
        "count as one cluster in every metric. Seconds: the clustering step only (BERTopic: its",
        "HDBSCAN + c-TF-IDF; k-means: on the 384-d vectors). Produced by `python -m bench.compare`.",
        "",
        "| corpus | n | classes | method | NMI | ARI | ACC | clusters | outliers | s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for method in (*METHODS, COARSE_METHOD, OFFERED_METHOD):
            if method not in r["methods"]:
                continue
            m = r["methods"][method]
            lines.append(
                f"| {r['dataset']} | {r['n']:,} | {r['classes']} | {method} | {m['nmi']:.3f} | "
                f"{m['ari']:.3f} | {m['acc']:.3f} | {m['clusters']} | {100 * m['outliers']:.1f}% | "
                f"{m['seconds']:.1f} |"
            )
    lines += [
        "",
        "Issue 14: how firm the automatic K is, the coarse grain of two-grain corpora, and the",
        "offline names. K per seed / NMI per seed: corpusmap auto on UMAP seeds (each a fresh fit);",
        "resampled: the range the run itself reports (`metrics['k_spread']`, 6 random 80 % subsets",
        "of one space). NMI coarse: against the coarse labels (BERTopic: its defaults). Names:",
        "shared = clusters whose name shares a word with another's; reader top-1 = the name's",
        "MiniLM embedding is nearest its own cluster's centroid (`bench.names`), before → after.",
        "Coarser grain offered: the run's own coarser level (`metrics['coarse']`, whole clusters",
        "grouped along the Ward tree) per seed, K and NMI against the coarse labels (the labels",
        "themselves for a one-level corpus); '-' where that seed's run offered none.",
        "",
        "| corpus | K auto | K resampled | K per seed | NMI per seed (mean) | NMI coarse auto / "
        "K given coarse / BERTopic | coarser grain offered: K / NMI per seed | names shared | "
        "reader top-1 |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for r in results:
        auto = r["methods"]["corpusmap auto"]
        spread = r.get("k_spread") or {}
        seeds = r.get("seeds") or {}
        coarse = ""
        if "nmi_coarse" in auto:
            coarse = (
                f"{auto['nmi_coarse']:.3f} / {r['methods'][COARSE_METHOD]['nmi_coarse']:.3f} / "
                f"{r['methods']['BERTopic 0.17.4']['nmi_coarse']:.3f}"
            )
        seed_nmi = ", ".join(f"{x:.3f}" for x in seeds.get("nmi", []))
        if seeds.get("nmi"):
            seed_nmi += f" ({np.mean(seeds['nmi']):.3f})"
        offered = ", ".join(
            f"{k} / {x:.3f}" if k else "-"
            for k, x in zip(seeds.get("offered_k", []), seeds.get("nmi_offered", []), strict=True)
        )
        names = r.get("names") or {}
        shared = reader = ""
        if names:
            b, a = names["before"], names["after"]
            shared = f"{b['shared']:.0%} → {a['shared']:.0%}"
            reader = f"{b['reader_top1']:.3f} → {a['reader_top1']:.3f}"
        lines.append(
            f"| {r['dataset']} | {auto['clusters']} | "
            f"{spread.get('min', '')}–{spread.get('max', '')} | "
            f"{', '.join(map(str, seeds.get('k', [])))} | "
            f"{seed_nmi} | "
            f"{coarse} | {offered} | {shared} | {reader} |"
        )
    # The external corpora (issue 14: judged on corpora nobody tuned for) are averaged apart, so
    # the means of the tuned-on corpora stay comparable with earlier runs.
    groups = (
        ("", [r for r in results if r["dataset"] not in EXTERNAL]),
        (" (external corpora)", [r for r in results if r["dataset"] in EXTERNAL]),
    )
    lines += ["", "| method | mean NMI | mean ARI | mean ACC |", "|---|---:|---:|---:|"]
    for suffix, group in groups:
        for method in METHODS if group else ():
            vals = [r["methods"][method] for r in group]
            lines.append(
                f"| {method}{suffix} | {np.mean([v['nmi'] for v in vals]):.3f} | "
                f"{np.mean([v['ari'] for v in vals]):.3f} | "
                f"{np.mean([v['acc'] for v in vals]):.3f} |"
            )
    external = [r["dataset"] for r in results if r["dataset"] in EXTERNAL]
    if external:
        lines += [
            "",
            "External corpora (not in ../shared/data; `bench.data` converts them from these "
            "sources into ../bench-data): "
            + "; ".join(
                f"{name}: {EXTERNAL[name]['repository']} @ {EXTERNAL[name]['commit'][:10]}, "
                f"{EXTERNAL[name]['path']}"
                for name in external
            )
            + ".",
        ]
    lines += ["", "| corpus | UMAP 5-d s (if computed) | peak RSS MB |", "|---|---:|---:|"]
    for r in results:
        umap_s = f"{r['umap_seconds']:.1f}" if r["umap_seconds"] else "cached"
        lines.append(f"| {r['dataset']} | {umap_s} | {r['peak_rss_mb']:.0f} |")
    (RESULTS / "compare.md").write_text("\n".join(lines) + "\n")
    write_chart(results)


def write_chart(results: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    x = np.arange(len(results))
    width = 0.2
    for ax, metric in zip(axes, ("nmi", "ari"), strict=True):
        for i, method in enumerate(METHODS):
            ax.bar(
                x + (i - 1.5) * width,
                [r["methods"][method][metric] for r in results],
                width,
                label=method,
            )
        ax.set_xticks(x, [r["dataset"] for r in results], rotation=15)
        ax.set_title(metric.upper())
        ax.set_ylim(0, 1)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "compare.png", dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("datasets", nargs="*", default=list(DEFAULT_CORPORA))
    parser.add_argument("--fresh-umap", action="store_true", help="BERTopic fits its own UMAP")
    parser.add_argument(
        "--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4], help="UMAP seeds for K's spread"
    )
    parser.add_argument("--no-names", action="store_true", help="skip the offline name measures")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.datasets) - set(ALL_CORPORA))
    if unknown:
        parser.error(f"unknown corpora {unknown}; choose from {', '.join(ALL_CORPORA)}")
    logging.basicConfig(level=logging.WARNING)
    if args.one:
        print(json.dumps(run_one(args.one, args.fresh_umap, args.seeds, not args.no_names)))
        return
    results = []
    for name in args.datasets:
        if not available(name):
            # External corpora are not in the repository (bench.data's docstring says how to
            # fetch and convert them); the others run without them.
            print(f"{name}: skipped, its data is not on this machine (bench/data.py)", flush=True)
            continue
        cmd = [sys.executable, "-m", "bench.compare", "--one", name]
        if args.fresh_umap:
            cmd.append("--fresh-umap")
        if args.no_names:
            cmd.append("--no-names")
        cmd += ["--seeds", *map(str, args.seeds)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(result)
        for method in (*METHODS, COARSE_METHOD, OFFERED_METHOD):
            if method not in result["methods"]:
                continue
            m = result["methods"][method]
            print(
                f"{name:16s} {method:18s} NMI {m['nmi']:.3f} ARI {m['ari']:.3f} "
                f"ACC {m['acc']:.3f} K {m['clusters']:4d} out {100 * m['outliers']:4.1f}% "
                f"{m['seconds']:.1f}s",
                flush=True,
            )
    # Corpora not run this time keep their last results, so one corpus can be re-run alone.
    previous = RESULTS / "compare.json"
    if previous.exists():
        done_names = {r["dataset"] for r in results}
        kept = [r for r in json.loads(previous.read_text()) if r["dataset"] not in done_names]
        results = sorted(
            kept + results,
            key=lambda r: ALL_CORPORA.index(r["dataset"]) if r["dataset"] in ALL_CORPORA else 99,
        )
    write_report(results)


if __name__ == "__main__":
    main()
