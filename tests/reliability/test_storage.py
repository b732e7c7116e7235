"""The store on real databases (SQLite file and PostgreSQL schema): rollback, migrations from
the first schema, race-free corpus reuse and run claims, and safe upload paths."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import inspect, text

from clustering.types import Corpus
from storage import (
    StorageError,
    Store,
    UnsafeFilenameError,
    database_url,
    migrate,
    safe_upload_path,
)
from storage.engine import make_engine
from storage.models import DocumentRow


def small_corpus(name: str = "c.csv", texts: tuple[str, ...] = ("alpha", "beta", "")) -> Corpus:
    frame = pd.DataFrame({"text": list(texts), "n": list(range(len(texts)))})
    return Corpus(name=name, frame=frame, text_column="text", texts=list(texts))


def test_a_failure_inside_a_transaction_writes_nothing(store):
    store.add_corpus(small_corpus())
    before = store.table_counts()
    with pytest.raises(RuntimeError, match="boom"), store._tx() as session:
        session.execute(
            DocumentRow.__table__.insert(),
            [{"corpus_id": 1, "position": 99, "text": "x", "text_hash": "h", "meta": "{}"}],
        )
        raise RuntimeError("boom")
    assert store.table_counts() == before


def test_a_failing_insert_rolls_back_the_whole_corpus(store, monkeypatch):
    before = store.table_counts()
    # A document row that violates the unique (corpus, position) index half-way through.
    corpus = small_corpus(texts=("a", "b", "c"))
    import storage.repository as repository

    real = repository._chunks

    def duplicated(items, size):
        for chunk in real(items, size):
            yield list(chunk) + [dict(chunk[0])]

    monkeypatch.setattr(repository, "_chunks", duplicated)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        store.add_corpus(corpus)
    assert store.table_counts() == before


def test_the_same_corpus_is_stored_once(store):
    first = store.add_corpus(small_corpus())
    second = store.add_corpus(small_corpus(name="renamed.csv"))
    assert first.id == second.id
    assert store.table_counts()["documents"] == 3


def test_run_warnings_and_owner_are_stored(store):
    corpus = store.add_corpus(small_corpus())
    run_id = store.create_run(
        corpus.id, config={"a": 1}, seed=1, embedder="e", labeler="keywords", owner="h:1"
    )
    store.save_run_warnings(run_id, ["3 texts were cut"])
    run = store.get_run(run_id)
    assert run.warnings == ["3 texts were cut"] and run.owner == "h:1"
    assert run.heartbeat_at is not None


def test_only_one_process_claims_an_unfinished_run(store):
    corpus = store.add_corpus(small_corpus())
    settings = dict(config={"a": 1}, embedder="e", labeler="keywords")
    run_id = store.create_run(corpus.id, seed=1, owner="host:1", **settings)
    store.create_run(corpus.id, seed=1, owner="host:2", **{**settings, "config": {"a": 2}})
    store.save_stage(run_id, "cluster", {})
    found = store.unfinished_runs(corpus.id, **settings)
    assert [r.id for r in found] == [run_id]
    assert store.claim_run(found[0], "host:3")
    assert not store.claim_run(found[0], "host:4")  # the row changed since it was read
    assert store.get_run(run_id).owner == "host:3"
    store.finish_run(run_id)
    assert store.unfinished_runs(corpus.id, **settings) == []


def test_open_reports_an_unreachable_server_without_its_password():
    url = "postgresql+psycopg2://user:s3cret-pw@127.0.0.1:1/nothing"
    with pytest.raises(StorageError, match="cannot open the database") as info:
        Store.open(url)
    assert "s3cret-pw" not in str(info.value)


# --- migrations ---------------------------------------------------------------------------


def test_a_database_made_with_the_first_schema_opens_at_head_with_its_data(store_url):
    engine = make_engine(database_url(store_url))
    migrate.upgrade(engine, "0001")
    assert "warnings" not in {c["name"] for c in inspect(engine).get_columns("runs")}
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO corpora (name, format, encoding, text_column, columns, n_rows, "
                "n_empty, n_duplicates, content_hash, warnings, created_at) VALUES ('old.csv', "
                "'csv', 'utf-8', 'text', '[\"text\"]', 1, 0, 0, 'h', '[]', '2026-01-01 00:00:00')"
            )
        )
        # No explicit ids: PostgreSQL's sequences must hand out the next ones after the upgrade.
        corpus_id = connection.execute(text("SELECT max(id) FROM corpora")).scalar()
        connection.execute(
            text(
                "INSERT INTO documents (corpus_id, position, text, text_hash, meta) "
                "VALUES (:c, 0, 'an old text', 'h1', '{\"text\": \"an old text\"}')"
            ),
            {"c": corpus_id},
        )
        connection.execute(
            text(
                "INSERT INTO runs (corpus_id, name, status, stage, mode, goal, config, seed, "
                "embedder, labeler, label_column, versions, timings, metrics, llm_usage, error, "
                "created_at) VALUES (:c, 'old run', 'completed', 'done', 'cluster', '', '{}', "
                "42, 'm', 'keywords', '', '{}', '{}', '{\"n_clusters\": 1}', '{}', '', "
                "'2026-01-01 00:00:00')"
            ),
            {"c": corpus_id},
        )
        run_id = connection.execute(text("SELECT max(id) FROM runs")).scalar()
    engine.dispose()

    store = Store.open(store_url)
    try:
        with store.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0004"
        assert store.load_corpus(corpus_id).texts == ["an old text"]
        run = store.get_run(run_id)
        assert (run.name, run.status, run.metrics) == ("old run", "completed", {"n_clusters": 1})
        assert run.warnings == [] and run.owner == ""
        # The new schema is usable on the migrated file.
        new_run = store.create_run(
            corpus_id, config={}, seed=1, embedder="m", labeler="k", owner="x:1"
        )
        store.save_run_warnings(new_run, ["w"])
        assert store.get_run(new_run).warnings == ["w"]
    finally:
        store.close()


def test_sqlite_file_passes_integrity_check_after_migration(db_path):
    Store.open(str(db_path)).close()
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


# --- upload paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tickets.csv", "tickets.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/etc/passwd", "passwd"),
        ("C:\\Users\\me\\data.xlsx", "data.xlsx"),
        ("data\x00.csv", "data.csv"),
        ("evil.csv\x00.png", "evil.csv.png"),
        (".bashrc", "bashrc"),
        ("rapport été 2024.csv", "rapport été 2024.csv"),
        ("a;rm -rf $HOME.csv", "a_rm -rf _HOME.csv"),
    ],
)
def test_upload_names_cannot_leave_the_data_directory(tmp_path, name, expected):
    path = safe_upload_path(tmp_path, name)
    assert path.parent == (tmp_path / "uploads").resolve()
    assert path.name == expected


def test_very_long_upload_names_are_cut_and_stay_distinct(tmp_path):
    a = safe_upload_path(tmp_path, "x" * 5000 + "a.csv.gz")
    b = safe_upload_path(tmp_path, "x" * 5000 + "b.csv.gz")
    assert a != b and len(a.name) <= 120 and a.name.endswith(".csv.gz")
    a.parent.mkdir(parents=True)
    a.write_text("ok")  # the file system takes the name


@pytest.mark.parametrize("name", ["", "..", "/", "../..", "\x00", "...", "\x00/\x00"])
def test_upload_names_with_nothing_usable_are_refused(tmp_path, name):
    with pytest.raises(UnsafeFilenameError, match="rename the file"):
        safe_upload_path(tmp_path, name)


def test_symlinked_data_directory_is_still_contained(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    assert safe_upload_path(link, "../x.csv") == (real / "uploads" / "x.csv").resolve()
    assert Path(safe_upload_path(link, "x.csv")).is_relative_to(real.resolve())


def test_the_models_and_the_migrations_agree(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.models import Base

    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], f"the models changed without a migration: {diff}"
