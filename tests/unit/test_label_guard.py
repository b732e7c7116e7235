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


class TableEmbedder:
    """An ``Embedder`` that looks explanations up in a table (the scores below follow from
    the geometry alone)."""

    model_id = "table"

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def embed(self, texts):
        return np.vstack([self.table[t] for t in texts]).astype(np.float32)


def test_a_correct_name_less_faithful_than_the_keywords_but_over_half_of_them_stands():
    """Four clusters; the LLM's explanation of cluster 0 takes 7 of its 10 texts (the keyword
    one all 10): less faithful by 0.3, over the margin, but over half the keyword score, so it
    stands (a judge always right had 46 of 73 correct Banking77 names set aside by the margin
    alone). An explanation that takes none of its texts still gives way."""
    e = np.eye(4)
    vectors = np.vstack(
        [np.tile(e[0], (7, 1)), np.tile(0.8 * e[0] + 0.5 * e[1], (3, 1))]
        + [np.tile(e[j], (10, 1)) for j in (1, 2, 3)]
    )
    labels = np.repeat(np.arange(4), 10)
    keywords = [
        ClusterLabel(c, f"kw{c}", f"kw{c}", "", status="keywords", labeler="keywords")
        for c in range(4)
    ]
    table = {f"kw{c}": e[c] for c in range(4)}
    table |= {f"llm{c}": e[c] for c in range(1, 4)}
    table["llm0"] = 0.6 * e[0] + 0.8 * e[2]  # the 3 texts leaning to cluster 1 go there
    table["ava"] = -e[0]  # none of its texts
    embedder = TableEmbedder(table)

    def llm(first: str) -> list[ClusterLabel]:
        names = [first] + [f"llm{c}" for c in range(1, 4)]
        return [ClusterLabel(c, n, n, "", labeler="llm") for c, n in enumerate(names)]

    choice = prefer_faithful(vectors, labels, llm("llm0"), keywords, embedder)
    assert choice.llm.per_cluster[0] == pytest.approx(0.7)
    assert choice.kept_keywords == 0 and choice.labels[0].name == "llm0"
    choice = prefer_faithful(vectors, labels, llm("ava"), keywords, embedder)
    assert set(choice.alternatives) == {0} and choice.labels[0].status == KEYWORDS_KEPT
