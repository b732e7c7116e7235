"""Cluster keywords: the words and phrases that separate a cluster from the rest of the corpus.

A term may be a cluster's keyword only when it is over-represented there: its weighted log-odds
with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin' Words") against the
rest of the corpus, on document counts, shrunk towards the corpus rate and divided by its
standard error, is above ``MIN_Z``. The allowed terms are ranked by FREX (frequency and
exclusivity together, as the stm package labels topics). Counting documents, not occurrences,
keeps one long text that repeats a word from speaking for its cluster (20 Newsgroups).

Measured on Banking77's 77 gold intents (reader top-1 of bench/names.py: a name's embedding is
nearest its own cluster's centroid; c-TF-IDF before: 0.870 with 92 % of names sharing a word):
ranking by the z-score 0.714, by the log-odds 0.714, FREX 0.740, all with no word shared.
Re-ranking single candidate terms by their embedding's margin to the centroid lowered it (0.766
-> 0.662 at half weight, 0.506 alone: single words embed poorly), and handing out words by stem
("activate" = "activation") lowered it to 0.688. But with no shared word, FREX hands "card" to
one card intent and leaves the others nameless (mix_3src 0.941 -> 0.802). So, given the run's
encoder, the *names* are embedded and chosen (``clustering.name_choice``): the terms whose name
embeds nearest its cluster's centroid against the nearest other centroid, a contested word to
the cluster that would lose most without it, a misread name allowed to take a word from a
cluster that reads as well without it. bench/results/names.gold.md, re-measured with today's
vectors (c-TF-IDF / FREX / names by margin): Banking77 0.870 / 0.753 / 0.961, mix_3src 0.950 /
0.782 / 0.970, 20NG 3k 0.800 / 0.950 / 1.000, AG News and StackOverflow 1.000 throughout; a
TF-IDF reader that never saw the encoder agrees (Banking77 0.948 / 0.974 / 0.987, mix 0.950 /
0.980 / 0.970). Steps by margin alone: Banking77 0.896, mix 0.891; with the regret order: mix
0.921; with three passes: 0.950; with the repair: 0.970. On corpusmap's own clusters of
Banking77 (86, two halves of some intents) the rule still costs: c-TF-IDF 0.930, FREX 0.651,
by margin 0.860, with the repair 0.884 (bench/results/names.md).

Issue 14: the most frequent words made poor names ("Said · Mr · Government" for every BBC News
cluster). So besides English stop words:

- markup residue never becomes a term: URLs, e-mail addresses, tags, HTML entities (``&amp;``,
  and broken ones such as ``#39;`` or ``quot;``) are removed before tokenising, and a token must
  start with a letter (no numbers);
- a word spread evenly over the clusters (normalised entropy of its per-cluster rates at least
  ``MAX_SPREAD``) or barely more common in the cluster than in the corpus (``MIN_LIFT``) is
  boilerplate for this corpus, not a keyword;
- a word belongs to one cluster only: terms are handed out greedily by score over all clusters,
  so each word goes to the cluster where it is most distinctive (the highest z-score), and a
  term with a word already given to another cluster is skipped. No two clusters' keyword names
  share a word (measured by ``bench/names.py``).
"""

from __future__ import annotations

import re

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

from clustering.name_choice import centres_of, choose_names, fits
from clustering.types import NOISE, Embedder

N_KEYWORDS = 10
NGRAM_RANGE = (1, 2)
PRIOR_DOCS = 10.0
"""Strength of the informative prior, in pseudo-documents spread by the corpus rate of each term:
it decides how many texts a term needs before it can rank at all."""
MIN_Z = 0.0
"""A keyword's log-odds z-score in its cluster is above this: over-represented there. (1.0, a
stricter bar, dropped Banking77's reader top-1 from 0.740 to 0.675.)"""
MIN_SHARE = 0.03
"""A keyword is in at least this share of its cluster's texts. Without it FREX names AG News's
1,900-text classes by rare exclusive words ("Treasuries · Output · Offset", reader top-1 0.75);
with it "Oil prices · Profit · Shares" (1.00). No change on Banking77 (40 texts per intent)."""
MIN_LIFT = 1.5
"""A keyword is at least this many times as common in its cluster as in the whole corpus."""
MAX_SPREAD = 0.9
"""Words whose per-cluster rates have a normalised entropy of at least this are boilerplate
(spread evenly over the clusters); only judged with at least ``MIN_CLUSTERS_FOR_SPREAD`` clusters."""
MIN_CLUSTERS_FOR_SPREAD = 3
MIN_DF_FROM = 1000
"""From this many texts on, terms found in a single text are not counted at all."""
CANDIDATES = 20
"""Best-ranked terms per cluster considered when the words are handed out: a cluster claims no
word from deep in its list (Banking77 reader top-1 0.740 with 20, 0.727 with 60, 0.727 with 10)."""
FREX_WEIGHT = 0.5
"""Weight of exclusivity against frequency in FREX (0.3: 0.662, 0.7: 0.688 on Bankin77)."""
TOKEN_PATTERN = r"(?u)\b[^\W\d_][^\W_]+(?:['’][^\W\d_]+)?\b"
"""A word starts with a letter and holds letters and digits ("mp3", "x11", not "39" nor the "s"
left of "Microsoft #39;s")."""
MARKUP = re.compile(
    r"(?i)(?:https?://|www\.)\S+"  # URLs
    r"|\S+@\S+\.\w+"  # e-mail addresses
    r"|</?[a-z][^>]{0,200}>"  # tags
    r"|&?#x?[0-9a-f]{1,6};"  # numeric entities, with or without the ampersand (#39;)
    r"|&?\b(?:quot|amp|apos|lt|gt|nbsp|mdash|ndash|hellip|rsquo|lsquo|rdquo|ldquo);"
)
EXTRA_STOP_WORDS = frozenset(
    # Contraction halves left by the tokeniser and web residue; none names a topic.
    "don doesn didn isn wasn aren weren haven hasn hadn won wouldn couldn shouldn can't ve ll re "
    "im ive dont cant http https www com org net edu html htm href nbsp quot amp lt gt apos".split()
)
CONTRACTIONS = frozenset(
    # Whole contractions, which the token pattern keeps as one word ("hasn't", "don't", "i'm"):
    # without them "Payment cancelled · Days · Hasn't" and "Payment · Freeze · Don't" were names.
    f"{base}{apostrophe}{ending}"
    for apostrophe in ("'", "’")
    for base, ending in [
        *(
            (b, "t")
            for b in "don doesn didn isn wasn aren weren haven hasn hadn won wouldn "
            "couldn shouldn can mustn needn mightn ain shan".split()
        ),
        *(
            (p, e)
            for p in "i you we they he she it that there what who where here how let".split()
            for e in ("s", "re", "ve", "ll", "m", "d")
        ),
    ]
)
STOP_WORDS = frozenset(ENGLISH_STOP_WORDS) | EXTRA_STOP_WORDS | CONTRACTIONS


def strip_markup(text: str) -> str:
    """``text`` without URLs, e-mail addresses, tags and HTML entities (also broken ones)."""
    return MARKUP.sub(" ", text)


def class_tfidf(
    texts: list[str],
    labels: np.ndarray,
    n_keywords: int = N_KEYWORDS,
    *,
    vectors: np.ndarray | None = None,
    embedder: Embedder | None = None,
) -> dict[int, tuple[str, ...]]:
    """Distinctive terms of every cluster (noise excluded), best first; no word is shared
    between two clusters' terms. (The name is kept from the c-TF-IDF it replaced.)

    With ``vectors`` (the texts' embeddings) and ``embedder`` (the encoder that made them), the
    first terms, those a name is made of, are chosen among the same distinctive candidates by
    how close the name they make embeds to the cluster's centroid against the nearest other
    centroid (``choose_names``); without them, by FREX alone."""
    labels = np.asarray(labels)
    ids = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    if not ids:
        return {}
    counted = _count([strip_markup(t) for t in texts])
    if counted is None:
        return {c: () for c in ids}
    presence, vocabulary, stop_words_only = counted
    if stop_words_only:
        # Degenerate corpus: every word is a stop word. Name it with what it has.
        return _by_frequency(presence, vocabulary, labels, ids, n_keywords)
    owner: dict[str, int] = {}
    pairs = candidates(presence, labels, ids, vocabulary)
    named: list[list[str]] = [[] for _ in ids]
    if embedder is not None and vectors is not None and len(ids) > 1:
        named = choose_names(
            pairs, vocabulary, ids, owner, centres_of(vectors, labels, ids), embedder
        )
    result = _hand_out(pairs, vocabulary, ids, n_keywords, owner, named)
    empty = [c for c in ids if not result[c]]
    if empty:
        # No over-represented word of these clusters is left (small clusters inside a larger
        # topic): their most common words that no other cluster took are still a better name
        # than "Cluster 7". Only if there are none may a name share a word.
        result.update(_by_frequency(presence, vocabulary, labels, empty, n_keywords, owner))
    return result


def candidates(
    presence: sp.csr_matrix, labels: np.ndarray, ids: list[int], vocabulary: np.ndarray
) -> list[tuple[float, int, int]]:
    """(-rank, cluster row, term) for the ``CANDIDATES`` best allowed terms of every cluster
    (sparse: only the terms a cluster uses are scored)."""
    n = presence.shape[0]
    clustered = np.flatnonzero(np.isin(labels, ids))
    member = sp.csr_matrix(
        (np.ones(len(clustered)), (np.searchsorted(ids, labels[clustered]), clustered)),
        shape=(len(ids), n),
    )
    inside = (member @ presence).tocoo()  # texts of each cluster that contain each term
    rows, cols, y = inside.row, inside.col, inside.data
    sizes = np.asarray(member.sum(axis=1)).ravel()
    df = np.asarray(presence.sum(axis=0)).ravel()
    size, freq = sizes[rows], df[cols]
    outside, rest = freq - y, n - size
    prior = PRIOR_DOCS * freq / n
    p_in = (y + prior) / (size + PRIOR_DOCS)
    p_out = (outside + prior) / (rest + PRIOR_DOCS)
    delta = np.log(p_in / np.maximum(1 - p_in, 1e-12)) - np.log(
        p_out / np.maximum(1 - p_out, 1e-12)
    )
    variance = (
        1 / (y + prior)
        + 1 / np.maximum(size - y + PRIOR_DOCS - prior, 1e-9)
        + 1 / (outside + prior)
        + 1 / np.maximum(rest - outside + PRIOR_DOCS - prior, 1e-9)
    )
    z = delta / np.sqrt(variance)
    rate = y / size
    lift = rate * n / freq
    allowed = (y >= np.maximum(np.minimum(2, size), MIN_SHARE * size)) & (lift >= MIN_LIFT)
    allowed &= z > MIN_Z
    # A word that is boilerplate alone (nowhere MIN_LIFT times as common as in the corpus, or
    # spread evenly) is boilerplate inside a phrase too: "refund said" across a sentence end.
    top_lift = np.zeros(presence.shape[1])
    np.maximum.at(top_lift, cols, lift)
    plain = top_lift < MIN_LIFT
    if len(ids) >= MIN_CLUSTERS_FOR_SPREAD:
        plain |= spread(rows, cols, rate, len(ids), presence.shape[1]) >= MAX_SPREAD
    boilerplate = {str(vocabulary[j]) for j in np.flatnonzero(plain) if " " not in vocabulary[j]}
    rank = np.full(len(rate), -np.inf)
    keep = np.flatnonzero(allowed)
    totals = np.bincount(cols, weights=rate, minlength=presence.shape[1])
    exclusivity = rate / np.maximum(totals[cols], 1e-12)
    rank[keep] = frex(exclusivity[keep], rate[keep], rows[keep])
    result: list[tuple[float, int, int]] = []
    order = keep[np.lexsort((-rank[keep], rows[keep]))]
    bounds = np.searchsorted(rows[order], np.arange(len(ids) + 1))
    for row in range(len(ids)):
        taken = 0
        for i in order[bounds[row] : bounds[row + 1]]:
            if boilerplate.intersection(str(vocabulary[cols[i]]).split()):
                continue
            result.append((-float(rank[i]), row, int(cols[i])))
            taken += 1
            if taken == CANDIDATES:
                break
    return result


def frex(exclusivity: np.ndarray, rate: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """FREX (Bischof & Airoldi 2012; the stm package's labels): the harmonic mean of a term's
    rank among its cluster's candidate terms by exclusivity (its rate here over the sum of its
    rates in all clusters) and by frequency (its rate here), ranks as shares in (0, 1]."""
    by_exclusivity = np.zeros(len(rate))
    by_frequency = np.zeros(len(rate))
    order = np.argsort(rows, kind="stable")
    bounds = np.searchsorted(rows[order], np.arange(rows.max() + 2 if len(rows) else 1))
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[start:end]
        if len(idx):
            by_exclusivity[idx] = (np.argsort(np.argsort(exclusivity[idx])) + 1) / len(idx)
            by_frequency[idx] = (np.argsort(np.argsort(rate[idx])) + 1) / len(idx)
    w = FREX_WEIGHT
    return 1 / (w / by_exclusivity + (1 - w) / by_frequency)


def spread(
    rows: np.ndarray, cols: np.ndarray, rate: np.ndarray, n_clusters: int, n_terms: int
) -> np.ndarray:
    """Per term: normalised entropy of its per-cluster rates (1 = the same in every cluster)."""
    totals = np.bincount(cols, weights=rate, minlength=n_terms)
    share = rate / np.maximum(totals[cols], 1e-12)
    ent = np.bincount(cols, weights=-share * np.log(np.maximum(share, 1e-300)), minlength=n_terms)
    return ent / np.log(n_clusters)


def _hand_out(
    pairs: list[tuple[float, int, int]],
    vocabulary: np.ndarray,
    ids: list[int],
    n_keywords: int,
    owner: dict[str, int],
    chosen: list[list[str]],
) -> dict[int, tuple[str, ...]]:
    """Terms by decreasing score over all clusters, after the terms already ``chosen`` per
    cluster row; the first cluster to take a word owns it (``owner``: word -> cluster id, filled
    in)."""
    for _, row, j in sorted(pairs):
        if len(chosen[row]) >= n_keywords:
            continue
        term = str(vocabulary[j])
        if not fits(term, chosen[row], ids[row], owner):
            continue
        for w in term.split():
            owner[w] = ids[row]
        chosen[row].append(term)
    return {c: tuple(chosen[row]) for row, c in enumerate(ids)}


def _by_frequency(
    presence: sp.csr_matrix,
    vocabulary: np.ndarray,
    labels: np.ndarray,
    ids: list[int],
    n_keywords: int,
    owner: dict[str, int] | None = None,
) -> dict[int, tuple[str, ...]]:
    """The most common terms of each cluster, preferring words no other cluster owns."""
    result = {}
    for c in ids:
        counts = np.asarray(presence[np.flatnonzero(labels == c)].sum(axis=0)).ravel()
        top = [j for j in np.argsort(-counts, kind="stable") if counts[j] > 0]
        terms = [str(vocabulary[j]) for j in top]
        if owner is not None:
            free = [t for t in terms if all(owner.get(w, c) == c for w in t.split())]
            terms = free or terms
            for w in (w for t in terms[:n_keywords] for w in t.split()):
                owner.setdefault(w, c)
        result[c] = tuple(terms[:n_keywords])
    return result


def _count(docs: list[str]) -> tuple[sp.csr_matrix, np.ndarray, bool] | None:
    """Binary text x term matrix, the terms, and whether only stop words were found."""
    for stop_words, only in ((STOP_WORDS, False), (None, True)):
        try:
            vectorizer = CountVectorizer(
                ngram_range=NGRAM_RANGE,
                stop_words=list(stop_words) if stop_words else None,
                token_pattern=TOKEN_PATTERN,
                binary=True,
                # A term in one text cannot be a keyword (it needs two); dropping them keeps the
                # vocabulary of 100k texts small.
                min_df=2 if len(docs) >= MIN_DF_FROM else 1,
                dtype=np.float64,
            )
            matrix = vectorizer.fit_transform(docs)
            return sp.csr_matrix(matrix), vectorizer.get_feature_names_out(), only
        except ValueError:
            # Empty vocabulary: every word was a stop word (or there are no words at all).
            continue
    return None
