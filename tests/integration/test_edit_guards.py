"""Edits refuse what they cannot do, with a sentence that says what to do instead."""

from __future__ import annotations

import pandas as pd
import pytest

from clustering.types import Corpus
from corpusmap import edits, service
from storage import Store


def stored_run(store: Store, **kwargs) -> int:  # type: ignore[no-untyped-def]
    corpus = Corpus(
        name="c", frame=pd.DataFrame({"text": ["a", "b"]}), text_column="text", texts=["a", "b"]
    )
    return store.create_run(
        store.add_corpus(corpus).id, config={}, seed=1, embedder="m", labeler="keywords", **kwargs
    )


def test_a_run_still_running_is_not_edited(sqlite_store: Store) -> None:
    run_id = stored_run(sqlite_store, owner=service.process_owner())
    with pytest.raises(edits.EditError, match="still running"):
        edits.merge_clusters(sqlite_store, run_id, [0, 1])


def test_nothing_to_undo_or_redo_is_said_plainly(sqlite_store: Store) -> None:
    run_id = stored_run(sqlite_store)
    sqlite_store.finish_run(run_id)
    with pytest.raises(edits.EditError, match="no edit to undo"):
        edits.undo(sqlite_store, run_id)
    with pytest.raises(edits.EditError, match="no undone edit to redo"):
        edits.redo(sqlite_store, run_id)
    with pytest.raises(edits.EditError, match="has no cluster 7"):
        edits.split_cluster(sqlite_store, run_id, 7)
    # An edit logged before undo existed is named, not silently skipped.
    sqlite_store.add_edit(run_id, "merge", {"clusters": [1, 2]})
    with pytest.raises(edits.EditError, match="stored before edits could be undone"):
        edits.undo(sqlite_store, run_id)


def test_a_run_without_a_coarser_grain_says_so(sqlite_store: Store) -> None:
    run_id = stored_run(sqlite_store)
    sqlite_store.finish_run(run_id)
    with pytest.raises(edits.EditError, match="offers no coarser grain"):
        edits.take_coarse_grain(sqlite_store, run_id)


def test_an_edit_after_an_undo_gives_a_new_version(sqlite_store: Store) -> None:
    """Split, undo, then another edit: SQLite gives the new edit row the id of the undone one it
    replaced, so a version of counts and ids alone repeated the split's and the app's cache
    showed the split's clusters (a KeyError on the Edit page)."""
    run_id = stored_run(sqlite_store)
    sqlite_store.finish_run(run_id)
    state = sqlite_store.read_state(run_id, [])

    def edit(kind: str) -> str:
        sqlite_store.record_edit(
            run_id, kind=kind, payload={}, sentence=kind, before=state, after=state
        )
        return sqlite_store.edit_version(run_id)

    after_split = edit("split")
    sqlite_store.undo_edit(run_id)
    assert edit("merge") != after_split
