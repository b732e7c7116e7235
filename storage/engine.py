"""Database engines: SQLite by default (WAL, foreign keys, busy time-out), any SQLAlchemy URL."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

DATABASE_URL_ENV = "CORPUSMAP_DATABASE_URL"
HOME_ENV = "CORPUSMAP_HOME"
BUSY_TIMEOUT_MS = 60_000
"""How long a writer waits for another process's write transaction before failing."""


def data_home() -> Path:
    """Where corpusmap keeps its files: $CORPUSMAP_HOME, else ~/.corpusmap."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".corpusmap").expanduser()


def default_database_url() -> str:
    return os.environ.get(DATABASE_URL_ENV) or f"sqlite:///{data_home() / 'corpusmap.db'}"


def database_url(url_or_path: str | Path | None = None) -> str:
    """A SQLAlchemy URL from a URL, a file path, or (None) the environment/default."""
    if url_or_path is None or str(url_or_path) == "":
        return default_database_url()
    text = str(url_or_path)
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser().resolve()}"


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as its scheme only
        return url.split("://", 1)[0] + "://…"


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, future=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        # IMMEDIATE takes the write lock up front: two processes queue on the busy time-out
        # instead of failing with "database is locked" when a reader upgrades to a writer.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
