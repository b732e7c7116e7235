"""A team-mode database for the app's tests (AppTest and the browser): two workspaces and four
people, made through corpusmap's own API with scoped stores, no LLM.

- workspace A: alice (admin) with a stored corpus and a finished run (3 clusters, keywords);
  carol (viewer). Limits: 500 MB, 1,000 LLM calls a day.
- workspace B: bob (admin: he may delete, but only what is B's) with a corpus of his own and no
  run; erin (editor).
- dave belongs to no workspace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clustering import read_corpus
from corpusmap import accounts, api, service
from storage import Store

ALICE, BOB, CAROL, DAVE, ERIN = (
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dave@example.com",
    "erin@example.com",
)
PASSWORD = "correct horse battery"
SECRET = "ALICE-SECRET-7731"
"""A text in alice's corpus: it must never reach a page bob sees."""
ALICE_CORPUS = "alice_confidential_tickets"
BOB_CORPUS = "bob_own_notes"
TOPICS = {
    "card": [
        f"{SECRET} my card has not arrived yet",
        "when will my new card arrive",
        "card delivery is late",
        "still waiting for the card in the post",
        "the card I ordered never came",
        "how long does card delivery take",
        "my debit card is not here",
        "card not delivered after two weeks",
        "where is my replacement card",
        "I have not received my card",
    ],
    "refund": [
        "I want a refund for this purchase",
        "how do I get my money back",
        "refund has not appeared",
        "the merchant promised a refund",
        "request a refund please",
        "refund still pending",
        "when will the refund arrive",
        "cancel and refund my order",
        "my refund was declined",
        "I was charged twice, refund one",
    ],
    "pin": [
        "I forgot my PIN",
        "how to change my PIN",
        "PIN blocked after three tries",
        "reset the PIN of my card",
        "my PIN does not work at the ATM",
        "unblock my PIN",
        "where can I see my PIN",
        "PIN change is not possible",
        "can I choose a new PIN",
        "PIN locked, what now",
    ],
}


WRITE_BUTTONS = (
    "Store and use this corpus",
    "Start run",
    "Undo",
    "Redo",
    "Save",
    "Merge",
    "Split",
    "Move selected",
    "Mark selected as outliers",
    "Add keyword rules",
    "Build a hierarchy",
    "Place the texts",
    "Save as a new run",
    "Delete…",
    "Add or change role",
    "Remove…",
    "Save limits",
)
"""Every button that writes: none may be shown to a viewer (nor Delete to an editor)."""


@dataclass(frozen=True)
class TeamData:
    url: str
    alice_corpus: int
    alice_run: int
    bob_corpus: int


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def build_team_db(folder: Path, *, passwords: bool) -> TeamData:
    """The database under ``folder``; ``passwords``: built-in accounts (else OpenID Connect
    users, who have none)."""
    url = f"sqlite:///{folder / 'team.db'}"
    store = Store.open(url)
    store.create_workspace("A", storage_quota_mb=500, llm_calls_per_day=1000)
    store.create_workspace("B")
    secret = accounts.hash_password(PASSWORD) if passwords else None
    for name in (ALICE, BOB, CAROL, DAVE, ERIN):
        store.add_user(name, password_hash=secret)
    store.set_member(ALICE, "admin", workspace="A")
    store.set_member(CAROL, "viewer", workspace="A")
    store.set_member(BOB, "admin", workspace="B")
    store.set_member(ERIN, "editor", workspace="B")

    alice = store.scoped(store.access_for(ALICE, "A"))
    rows = [{"text": t, "label": label} for label, texts in TOPICS.items() for t in texts]
    source = write_rows(folder / f"{ALICE_CORPUS}.jsonl", rows)
    handle = api.run(source, store=alice, n_clusters=3, random_state=0)

    bob = store.scoped(store.access_for(BOB, "B"))
    notes = write_rows(
        folder / f"{BOB_CORPUS}.jsonl",
        [{"text": f"bob's note number {i} about the weather"} for i in range(12)],
    )
    bob_corpus = service.store_corpus(bob, read_corpus(notes))
    store.close()
    return TeamData(url, handle.corpus_info.id, handle.run_id, bob_corpus.id)
