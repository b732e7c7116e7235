"""Shared fixtures: real SQLite files under tmp_path, the real bundled embedding model, and
slices of the real corpora in ../shared/data."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CORPUSMAP_SHARED_DATA", REPO.parent / "shared" / "data"))


def read_jsonl_gz(name: str, limit: int | None = None) -> list[dict]:
    rows = []
    with gzip.open(SHARED_DATA / name, "rt", encoding="utf-8") as handle:
        for line in handle:
            rows.append(json.loads(line))
            if limit is not None and len(rows) >= limit:
                break
    return rows


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"the shared corpora are not at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def banking_rows(shared_data: Path) -> list[dict]:
    return read_jsonl_gz("banking77_test.jsonl.gz")


@pytest.fixture(scope="session")
def banking_slice_path(tmp_path_factory: pytest.TempPathFactory, banking_rows: list[dict]) -> Path:
    """600 Banking77 queries from 15 intents (40 each), as a JSONL file."""
    labels = sorted({r["label"] for r in banking_rows})[:15]
    rows = [r for r in banking_rows if r["label"] in labels]
    path = tmp_path_factory.mktemp("corpora") / "banking_slice.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def embedder():
    """The real bundled all-MiniLM-L6-v2, loaded once per test session."""
    from clustering.embed import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder()
    model.embed(["warm up"])
    return model


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "corpusmap.db"


POSTGRES_URL_ENV = "CORPUSMAP_TEST_POSTGRES_URL"
"""A PostgreSQL URL (``postgresql+psycopg2://user:pw@127.0.0.1/db``); .ci/run sets it."""


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards; yields a URL that uses only it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, db_path: Path) -> Iterator[str]:
    """Each storage test runs on a SQLite file under tmp_path and on a clean PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(db_path)
        return
    if request.node.get_closest_marker("llamacpp"):
        # Bound by the local model's speed, not by storage: once, on SQLite, is enough.
        pytest.skip("local-LLM tests run on SQLite only")
    base_url = os.environ.get(POSTGRES_URL_ENV)
    if not base_url:
        if os.environ.get("CORPUSMAP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"CORPUSMAP_REQUIRE_POSTGRES=1 but {POSTGRES_URL_ENV} is not set")
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_URL_ENV} (.ci/run starts one)")
    with postgres_schema(base_url) as url:
        yield url


@pytest.fixture
def store(store_url: str):
    from storage import Store

    s = Store.open(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(db_path: Path):
    """The real store on a SQLite file only, for tests whose subject is not storage."""
    from storage import Store

    s = Store.open(str(db_path))
    yield s
    s.close()


@pytest.fixture
def openai_server():
    """A scripted OpenAI-compatible server on 127.0.0.1 (tests/support/openai_server.py)."""
    from tests.support.openai_server import ScriptedOpenAIServer

    with ScriptedOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory):
    """The real local model: llama.cpp's server with SmolLM2-135M on a free loopback port, once
    per test module (mark the module with ``tests.support.local_llm.LOCAL_LLM_MARKS``)."""
    from llm import serve_local_model
    from tests.support.openai_server import free_port

    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with serve_local_model(port=free_port(), n_threads=2, log_path=log_path) as server:
        yield server
