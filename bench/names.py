"""Offline cluster names (issue 14): how distinct they are and whether a reader can tell which
cluster a name belongs to: before (c-TF-IDF, most frequent words), FREX (log-odds keywords ranked
by FREX, words handed to one cluster each: the last stop's names, and still the names without an
embedder) and after (the same candidates, the name's terms chosen by how near the name embeds to
its cluster's centroid against the nearest other centroid, ``class_tfidf(..., embedder=)``).

    python -m bench.names [CORPORA...] [--grain auto|gold]

For each corpus the clusters are corpusmap's automatic ones on the cached 5-d UMAP space
(``--grain gold``: the gold classes, which needs no UMAP). Three measures per keyword method:

- shared: the share of clusters whose name has a word that another cluster's name also has
  (target 0);
- reader top-1: each name is embedded with the bundled all-MiniLM-L6-v2 and matched to the
  nearest cluster centroid (mean of its texts' vectors); the share of names matched to their
  own cluster. A stand-in for a reader picking the right cluster from its name. "after" chooses
  its names with the same encoder, so this reader favours it; hence also
- lexical top-1: a reader with no encoder: each name's words matched against the texts by
  TF-IDF (the cluster whose texts hold the name's words most, mean cosine of the name's TF-IDF
  vector to its texts'), the share of names matched to their own cluster.

Writes bench/results/names.md and names.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from bench.data import DATASETS, available, cached_embeddings, load_corpus
from clustering.keywords import class_tfidf, strip_markup
from clustering.labels import keyword_name
from clustering.types import NOISE

RESULTS = Path(__file__).parent / "results"
DEFAULT_CORPORA = (*DATASETS[:3], "20newsgroups_3k", "mix_3src")


def legacy_class_tfidf(
    texts: list[str], labels: np.ndarray, n_keywords: int = 10
) -> dict[int, tuple[str, ...]]:
    """The keywords before issue 14 (class-based TF-IDF of the concatenated cluster texts), kept
    here as the baseline."""
    ids = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    docs = [" ".join(texts[i] for i in np.flatnonzero(labels == c)) for c in ids]
    vectorizer = CountVectorizer(ngram_range=(1, 2), stop_words="english")
    tf = sp.csr_matrix(vectorizer.fit_transform(docs), dtype=np.float64)
    vocabulary = vectorizer.get_feature_names_out()
    term_totals = np.asarray(tf.sum(axis=0)).ravel()
    idf = np.log1p(tf.sum() / max(len(ids), 1) / np.maximum(term_totals, 1))
    tf = sp.diags(1 / np.maximum(np.asarray(tf.sum(axis=1)).ravel(), 1)) @ tf
    weights = (tf @ sp.diags(idf)).tocsr()
    result = {}
    for row, c in enumerate(ids):
        start, end = weights.indptr[row], weights.indptr[row + 1]
        cols, vals = weights.indices[start:end], weights.data[start:end]
        chosen: list[str] = []
        for j in cols[np.argsort(-vals, kind="stable")]:
            words = set(str(vocabulary[j]).split())
            if any(words <= set(x.split()) for x in chosen):
                continue
            chosen.append(str(vocabulary[j]))
            if len(chosen) == n_keywords:
                break
        result[c] = tuple(chosen)
    return result


def name_words(name: str) -> set[str]:
    return {w for part in name.lower().split(" · ") for w in part.split()}


def shared_share(names: dict[int, str]) -> float:
    """Share of clusters whose name shares a word with another cluster's name."""
    counts = Counter(w for name in names.values() for w in name_words(name))
    shared = [c for c, name in names.items() if any(counts[w] > 1 for w in name_words(name))]
    return len(shared) / max(len(names), 1)


def reader_top1(names: dict[int, str], vectors: np.ndarray, labels: np.ndarray, embedder) -> float:
    """Share of names whose embedding is nearest to their own cluster's centroid."""
    ids = sorted(names)
    centres = np.vstack([vectors[labels == c].mean(axis=0) for c in ids])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    named = embedder.embed([names[c] for c in ids])
    nearest = np.argmax(named @ centres.T, axis=1)
    return float(np.mean(nearest == np.arange(len(ids))))


def lexical_top1(names: dict[int, str], texts: list[str], labels: np.ndarray) -> float:
    """Share of names whose words are, by TF-IDF, nearest their own cluster's texts (mean of
    the texts' unit TF-IDF vectors): a reader that never saw the encoder."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    ids = sorted(names)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    docs = vectorizer.fit_transform([strip_markup(t) for t in texts])
    centres = np.vstack([np.asarray(docs[labels == c].mean(axis=0)).ravel() for c in ids])
    named = vectorizer.transform([" ".join(names[c].lower().split(" · ")) for c in ids])
    nearest = np.asarray((named @ centres.T).argmax(axis=1)).ravel()
    return float(np.mean(nearest == np.arange(len(ids))))


def clusters_of(name: str, grain: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    corpus = load_corpus(name)
    vectors = cached_embeddings(corpus)
    if grain == "gold":
        _, labels = np.unique(np.asarray(corpus.labels), return_inverse=True)
        return corpus.texts, vectors, labels.astype(np.int64)
    from bench.compare import cached_space
    from clustering.pipeline import PipelineConfig, cluster_space

    space, _ = cached_space(name, vectors)
    return corpus.texts, vectors, cluster_space(space, PipelineConfig()).labels


def measure_corpus(name: str, grain: str, embedder) -> dict[str, Any]:
    texts, vectors, labels = clusters_of(name, grain)
    out: dict[str, Any] = {"corpus": name, "grain": grain, "clusters": 0, "methods": {}}
    methods = (
        ("before", lambda: legacy_class_tfidf(texts, labels)),
        ("frex", lambda: class_tfidf(texts, labels)),
        ("after", lambda: class_tfidf(texts, labels, vectors=vectors, embedder=embedder)),
    )
    for method, keywords_of in methods:
        start = time.perf_counter()
        keywords = keywords_of()
        seconds = time.perf_counter() - start
        names = {c: keyword_name(k, c) for c, k in keywords.items()}
        out["clusters"] = len(names)
        out["methods"][method] = {
            "shared": shared_share(names),
            "reader_top1": reader_top1(names, vectors, labels, embedder),
            "lexical_top1": lexical_top1(names, texts, labels),
            "keyword_seconds": seconds,
            "examples": [names[c] for c in sorted(names)[:6]],
        }
    return out


HISTORY = (
    "History (gold classes): the last stop's names (FREX) were measured at Banking77 reader top-1"
    " 0.870 → 0.740 and mix_3src 0.941 → 0.802 (c-TF-IDF → FREX) with the embedder of that"
    " time; the FREX column below re-measures them with today's cached vectors and encoder."
)
AUTO_NOTE = (
    "corpusmap's clusters (seed 42) split some intents in two, and two halves of one intent can"
    " share no name word: on Banking77 the no-shared-word rule still costs reader top-1 here."
    " Letting a phrase reuse another name's word when it brings a word of its own"
    " (`clustering.name_choice.SHARED_HEAD_WORDS`, off) was measured on these clusters: Banking77"
    " reader top-1 0.884 → 0.988 and lexical 0.965 → 0.977, but names sharing a word 0% → 88%;"
    " mix_3src 0.973 → 1.000, lexical 0.986 → 0.986, shared 0% → 70%. Most names then take their"
    " intent's common head word ('Payment cancelled · Card payment · Payment didn't'): kept off,"
    " distinct words over reader top-1. External corpora (bbc_news, clinc150, tweet89) are not"
    " in the repository (`bench.data`)."
)
METHODS = ("before", "frex", "after")


def write_report(results: list[dict[str, Any]], grain: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if grain == "auto" else f".{grain}"
    (RESULTS / f"names{suffix}.json").write_text(json.dumps(results, indent=2))
    lines = [
        "# Offline cluster names: distinct and recognisable (issue 14)",
        "",
        f"Clusters: {'corpusmap auto on the cached UMAP space' if grain == 'auto' else 'gold classes'}."
        " before = c-TF-IDF (most frequent words); FREX = log-odds keywords ranked by FREX, each"
        " word in one cluster's name (the names without an embedder); after = the same"
        " candidates, the name's terms chosen by the margin of the name's embedding to its"
        " cluster's centroid (the names with the run's encoder). shared = clusters whose name"
        " shares a word with another's (target 0); reader top-1 = the name's MiniLM embedding"
        " is nearest its own cluster's centroid (the encoder 'after' chooses with, so it favours"
        " 'after'); lexical top-1 = the name's TF-IDF vector is nearest its own cluster's texts"
        " (no encoder). Seconds are in the JSON only (a shared, loaded machine). Produced by"
        f" `python -m bench.names{' --grain gold' if grain == 'gold' else ''}`.",
        "",
        HISTORY if grain == "gold" else AUTO_NOTE,
        "",
        "| corpus | clusters | shared before / FREX / after | reader top-1 before / FREX / after"
        " | lexical top-1 before / FREX / after |",
        "|---|---:|---|---|---|",
    ]
    for r in results:
        m = [r["methods"][k] for k in METHODS]
        lines.append(
            f"| {r['corpus']} | {r['clusters']} | "
            + " / ".join(f"{x['shared']:.1%}" for x in m)
            + " | "
            + " / ".join(f"{x['reader_top1']:.3f}" for x in m)
            + " | "
            + " / ".join(f"{x['lexical_top1']:.3f}" for x in m)
            + " |"
        )
    lines += ["", "First names per corpus (before → FREX → after):", ""]
    for r in results:
        triples = zip(*(r["methods"][k]["examples"] for k in METHODS), strict=True)
        lines.append(f"- {r['corpus']}: " + "; ".join(" → ".join(t) for t in triples))
    (RESULTS / f"names{suffix}.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    from clustering.embed import SentenceTransformerEmbedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpora", nargs="*", default=list(DEFAULT_CORPORA))
    parser.add_argument("--grain", choices=("auto", "gold"), default="auto")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    embedder = SentenceTransformerEmbedder()
    results = []
    for name in args.corpora:
        if not available(name):
            print(f"{name}: skipped, its data is not on this machine (bench/data.py)", flush=True)
            continue
        r = measure_corpus(name, args.grain, embedder)
        results.append(r)
        m = [r["methods"][k] for k in METHODS]
        print(
            f"{name:18s} K {r['clusters']:4d} shared "
            + " / ".join(f"{x['shared']:.1%}" for x in m)
            + "  reader top-1 "
            + " / ".join(f"{x['reader_top1']:.3f}" for x in m)
            + "  lexical top-1 "
            + " / ".join(f"{x['lexical_top1']:.3f}" for x in m),
            flush=True,
        )
    # Corpora not run this time keep their last results, so one corpus can be re-run alone.
    suffix = "" if args.grain == "auto" else f".{args.grain}"
    previous = RESULTS / f"names{suffix}.json"
    if previous.exists():
        done = {r["corpus"]: r for r in results}
        before = json.loads(previous.read_text())
        old = {r["corpus"] for r in before}
        results = [done.get(r["corpus"], r) for r in before] + [
            r for r in results if r["corpus"] not in old
        ]
    write_report(results, args.grain)


if __name__ == "__main__":
    main()
