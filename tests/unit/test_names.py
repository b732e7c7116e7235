"""Offline cluster names (issue 14) on slices of two real corpora, clustered by k-means on the
real bundled MiniLM embeddings, named with and without the encoder: no word in two clusters'
names, no stop word, no word that is frequent everywhere in the corpus, no markup residue or
number; and on Banking77's gold intents a reader-proxy finds the cluster from its name."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from clustering.cluster import KMeansClusterer
from clustering.keywords import class_tfidf, strip_markup
from clustering.labels import KeywordLabeler, keyword_name
from clustering.summarize import summarize_clusters
from tests.conftest import read_jsonl_gz

BOILERPLATE = "Said officials on Monday."
"""Appended to every text of a slice: a word in every text must never name a cluster."""


def words_of(name: str) -> list[str]:
    return [w for part in name.lower().split(" · ") for w in part.split()]


def evenly_frequent(texts: list[str], labels: np.ndarray, top: int = 10) -> set[str]:
    """The corpus's most common non-stop words (share of texts) that are nowhere more than
    twice as common as in the whole corpus: boilerplate of this corpus, not topics."""
    docs = [set(re.findall(r"[a-z][a-z']+", t.lower())) - ENGLISH_STOP_WORDS for t in texts]
    df = Counter(w for d in docs for w in d)
    result = set()
    for word, count in df.most_common(top):
        rate = count / len(docs)
        in_clusters = [
            np.mean([word in docs[i] for i in np.flatnonzero(labels == c)])
            for c in np.unique(labels)
        ]
        if max(in_clusters) < 2 * rate:
            result.add(word)
    return result


@pytest.fixture(scope="module", params=["ag_news_test", "banking77_test"])
def named_slice(request, shared_data, embedder):
    name = request.param
    rows = read_jsonl_gz(f"{name}.jsonl.gz")
    picked = np.random.default_rng(0).choice(len(rows), 600, replace=False)
    texts = [rows[i]["text"] for i in sorted(picked)]
    vectors = embedder.embed(texts)
    k = 8 if name == "ag_news_test" else 25
    assignment = KMeansClusterer(k, random_state=0, n_init=3).fit_predict(vectors)
    texts = [f"{t} {BOILERPLATE}" for t in texts]
    names = {}
    for how, encoder in (("frex", None), ("encoder", embedder)):
        summaries = summarize_clusters(texts, vectors, assignment, embedder=encoder)
        names[how] = [label.name for label in KeywordLabeler().label(summaries)]
    return name, texts, assignment.labels, names


@pytest.mark.parametrize("how", ["frex", "encoder"])
def test_no_word_is_shared_by_two_clusters_names(named_slice, how) -> None:
    _, _, labels, named = named_slice
    names = named[how]
    assert len(names) == len(np.unique(labels))
    owners = Counter(w for name in names for w in set(words_of(name)))
    shared = {w: n for w, n in owners.items() if n > 1}
    assert not shared, f"words in several names: {shared}; names: {names}"
    assert not [n for n in names if n.startswith("Cluster ")], names


@pytest.mark.parametrize("how", ["frex", "encoder"])
def test_names_hold_no_stop_word_boilerplate_number_or_markup(named_slice, how) -> None:
    _, texts, labels, named = named_slice
    names = named[how]
    frequent = evenly_frequent(texts, labels) | {"said", "officials", "monday"}
    for name in names:
        for word in words_of(name):
            assert word not in ENGLISH_STOP_WORDS, (word, name)
            assert word not in frequent, (word, name)
            assert re.fullmatch(r"[^\W\d_][\w'’]*", word), (word, name)
            assert word not in {"quot", "amp", "lt", "gt", "href", "http", "www", "com"}, name


def keyword_words(texts: list[str]) -> set[str]:
    """The words of the keywords of six texts, the first three one cluster, the rest another."""
    keywords = class_tfidf(texts, np.array([0, 0, 0, 1, 1, 1]))
    return {w for terms in keywords.values() for t in terms for w in t.split()}


def test_markup_residue_never_becomes_a_keyword() -> None:
    texts = [
        "Stocks fall &lt;b&gt;sharply&lt;/b&gt; #39; again http://x.com/a?b=1 <A HREF=x>quot;</A>",
        "Stocks fall again as oil prices rise 2004 &amp; 39",
        "Stocks drop, oil 39 quot; 2004 www.reuters.com",
        "Team wins the final game in overtime",
        "Team loses the final game 3-2",
        "Coach says team played the final game well",
    ]
    words = keyword_words(texts)
    assert {"stocks", "team"} <= words
    assert not words & {"lt", "gt", "amp", "quot", "39", "2004", "href", "http", "com", "www"}
    assert "39" not in strip_markup("it#39;s")


def test_contractions_of_stop_words_never_become_keywords() -> None:
    """The token pattern keeps "hasn't" whole, so the stop list's "hasn" never matched it:
    "Payment cancelled · Days · Hasn't" was a Banking77 name."""
    texts = [
        "my card payment hasn't arrived and I don't know why",
        "the card payment still hasn’t shown, I can't see it",
        "card payment hasn't gone through, don't understand",
        "transfer failed twice today",
        "my transfer failed again",
        "why has the transfer failed",
    ]
    words = keyword_words(texts)
    assert {"payment", "transfer"} <= words
    assert not {w for w in words if re.search(r"['’]", w)}, words


READER_FLOOR = 0.82
"""Reader top-1 the names must reach on 1,200 Banking77 texts in their 77 gold intents. Measured:
0.909 with the encoder (c-TF-IDF names on the full test set: 0.870), 0.727 without it (FREX
alone, words given by frequency rather than by what the name needs)."""


def test_a_reader_finds_the_intent_from_its_name(shared_data, embedder) -> None:
    rows = read_jsonl_gz("banking77_test.jsonl.gz")
    picked = np.sort(np.random.default_rng(0).choice(len(rows), 1200, replace=False))
    texts = [rows[i]["text"] for i in picked]
    _, labels = np.unique([rows[i]["label"] for i in picked], return_inverse=True)
    vectors = embedder.embed(texts)
    keywords = class_tfidf(texts, labels, vectors=vectors, embedder=embedder)
    ids = sorted(keywords)
    names = [keyword_name(keywords[c], c) for c in ids]
    owners = Counter(w for name in names for w in set(words_of(name)))
    assert not {w for w, n in owners.items() if n > 1}, names
    centres = np.vstack([vectors[labels == c].mean(axis=0) for c in ids])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    nearest = np.argmax(embedder.embed(names) @ centres.T, axis=1)
    top1 = float(np.mean(nearest == np.arange(len(ids))))
    assert top1 >= READER_FLOOR, (top1, names)


def test_a_shared_head_word_needs_the_switch_and_a_word_of_its_own(monkeypatch) -> None:
    import clustering.name_choice as name_choice

    owner = {"card": 1, "declined": 1}
    # Off (the default): a phrase holding another cluster's word is refused.
    assert not name_choice.fits("card fee", [], 2, owner)
    assert name_choice.fits("fee charged", [], 2, owner)
    monkeypatch.setattr(name_choice, "SHARED_HEAD_WORDS", True)
    assert name_choice.fits("card fee", [], 2, owner)
    # Never a term made only of other clusters' words: the names would not differ by it.
    assert not name_choice.fits("card", [], 2, owner)
    assert not name_choice.fits("card declined", [], 2, owner)
