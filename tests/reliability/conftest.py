"""Helpers of the reliability suite: the CLI in-process on a seeded SQLite file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from clustering.types import Corpus
from corpusmap.cli import main

REPO = Path(__file__).resolve().parents[2]
TOPICS = {
    "card": [
        "My card payment was declined at the shop",
        "Why is my card payment still pending?",
        "A card payment went through twice",
        "The card payment was refused abroad",
        "Card payment shows the wrong amount",
    ],
    "pin": [
        "I forgot my PIN number",
        "How can I change my PIN?",
        "My PIN is blocked after three tries",
        "Where do I find my PIN?",
        "Can I unblock my PIN in the app?",
    ],
    "transfer": [
        "How do I send money to a friend abroad?",
        "My transfer has not arrived yet",
        "Can I cancel a bank transfer?",
        "What is the fee for an international transfer?",
        "The transfer was sent to the wrong account",
    ],
}
"""Fifteen texts in three topics: small enough that the pipeline takes its PCA path."""


def topic_texts() -> list[str]:
    return [t for texts in TOPICS.values() for t in texts]


@pytest.fixture
def seeded_db(tmp_path: Path) -> Path:
    """A SQLite file that already holds one corpus, so "unchanged" means something."""
    from storage import Store

    path = tmp_path / "seeded.db"
    store = Store.open(str(path))
    frame = pd.DataFrame({"text": ["an earlier corpus", "with two texts"]})
    store.add_corpus(Corpus("earlier.csv", frame, "text", frame["text"].tolist()))
    store.close()
    return path


def table_counts(db: Path) -> dict[str, int]:
    from storage import Store

    store = Store.open(str(db))
    try:
        return store.table_counts()
    finally:
        store.close()


def invoke(*args: str, env: dict[str, str] | None = None):
    """The CLI in-process; stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
