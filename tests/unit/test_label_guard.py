"""``prefer_faithful``: an LLM label whose explanation is less faithful than the keyword one
gives way to it and stays as an alternative (issue 18). Real embedder, real Banking77 queries."""

from __future__ import annotations

import numpy as np
import pytest

from clustering.faithfulness import KEYWORDS_KEPT, prefer_faithful
from clustering.types import ClusterLabel

INTENTS = {
    "card_arrival": ("Customers waiting for a new card that has not arrived yet.",
                     "The text asks where an ordered card is or when it will arrive."),
    "pin_blocked": ("Customers whose PIN is blocked after wrong attempts.",
                    "The text asks how to unblock a PIN."),
    "exchange_rate": ("Questions about the exchange rates the bank uses.",
                      "The text asks what exchange rate applies."),
}  # fmt: skip


@pytest.fixture(scope="module")
def clusters(banking_rows, embedder):
    rows = [r for r in banking_rows if r["label"] in INTENTS]
    ids = {name: i for i, name in enumerate(INTENTS)}
    labels = np.array([ids[r["label"]] for r in rows])
    return embedder.embed([r["text"] for r in rows]), labels


def llm_labels(bad: set[int]) -> list[ClusterLabel]:
    out = []
    for c, (description, criterion) in enumerate(INTENTS.values()):
        if c in bad:  # what SmolLM2 wrote for Banking77 clusters
            out.append(
                ClusterLabel(c, "Ava", "A-1025 is a person.", "The text is Ava.", labeler="llm")
            )
        else:
            out.append(ClusterLabel(c, f"intent {c}", description, criterion, labeler="llm"))
    return out


def keyword_labels() -> list[ClusterLabel]:
    words = ["card · arrive · delivered", "pin · blocked · unblock", "exchange · rate · currency"]
    return [
        ClusterLabel(c, w, f"Texts about {w}.", f"The text mentions {w}.", status="keywords")
        for c, w in enumerate(words)
    ]


def test_an_unfaithful_llm_label_gives_way_to_the_keyword_label(clusters, embedder):
    vectors, labels = clusters
    choice = prefer_faithful(vectors, labels, llm_labels({1}), keyword_labels(), embedder)
    shown = {lab.cluster_id: lab for lab in choice.labels}
    assert shown[1].status == KEYWORDS_KEPT and shown[1].name == "pin · blocked · unblock"
    assert choice.alternatives[1].name == "Ava"  # kept, to show as an alternative
    assert shown[0].name == "intent 0" and shown[2].name == "intent 2"
    assert choice.kept_keywords == 1
    assert "1 of 3 clusters keep their keyword label" in choice.summary()
    assert choice.to_dict()["clusters"] == [1]


def test_faithful_llm_labels_all_stand(clusters, embedder):
    vectors, labels = clusters
    choice = prefer_faithful(vectors, labels, llm_labels(set()), keyword_labels(), embedder)
    assert choice.kept_keywords == 0
    assert [lab.name for lab in choice.labels] == ["intent 0", "intent 1", "intent 2"]
    assert "every LLM explanation" in choice.summary()
