"""Cluster keywords by class-based TF-IDF: a cluster's texts are one document, and a term
weighs more the more often it appears in this cluster and the fewer clusters use it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer

from clustering.types import NOISE

N_KEYWORDS = 10
NGRAM_RANGE = (1, 2)


def class_tfidf(
    texts: list[str], labels: np.ndarray, n_keywords: int = N_KEYWORDS
) -> dict[int, tuple[str, ...]]:
    """Top terms of every cluster (noise excluded), best first."""
    labels = np.asarray(labels)
    ids = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    if not ids:
        return {}
    docs = [" ".join(texts[i] for i in np.flatnonzero(labels == c)) for c in ids]
    counts = _count(docs)
    if counts is None:
        return {c: () for c in ids}
    matrix, vocabulary = counts
    tf = sp.csr_matrix(matrix, dtype=np.float64)
    term_totals = np.asarray(tf.sum(axis=0)).ravel()
    avg_words = tf.sum() / max(len(ids), 1)
    idf = np.log1p(avg_words / np.maximum(term_totals, 1))
    row_sums = np.asarray(tf.sum(axis=1)).ravel()
    tf = sp.diags(1 / np.maximum(row_sums, 1)) @ tf
    weights = (tf @ sp.diags(idf)).tocsr()
    result: dict[int, tuple[str, ...]] = {}
    for row, c in enumerate(ids):
        start, end = weights.indptr[row], weights.indptr[row + 1]
        cols, vals = weights.indices[start:end], weights.data[start:end]
        top = cols[np.argsort(-vals, kind="stable")]
        result[c] = _without_redundant([vocabulary[j] for j in top], n_keywords)
    return result


def _count(docs: list[str]) -> tuple[sp.spmatrix, np.ndarray] | None:
    for stop_words in ("english", None):
        try:
            vectorizer = CountVectorizer(ngram_range=NGRAM_RANGE, stop_words=stop_words)
            return vectorizer.fit_transform(docs), vectorizer.get_feature_names_out()
        except ValueError:
            # Empty vocabulary: every word was a stop word (or there are no words at all).
            continue
    return None


def _without_redundant(terms: list[str], n: int) -> tuple[str, ...]:
    """Drop a term whose words all appear in one higher-ranked term ("card" after "card fee")."""
    chosen: list[str] = []
    for term in terms:
        words = set(term.split())
        if any(words <= set(c.split()) for c in chosen):
            continue
        chosen.append(term)
        if len(chosen) == n:
            break
    return tuple(chosen)
