"""AppTest helpers: the real app (app.py with st.navigation) on a temporary SQLite file, with the
real bundled embedding model."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120
INJECTION_TEXTS = [
    "<script>window.__pwned = 1</script> my card has not arrived yet",
    "<b>bold</b> <img src=x onerror=alert(1)> where is my new card",
    "**not bold** [a link](http://example.com) :red[red] my card arrival is late",
]


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=TIMEOUT)
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No traceback on the page."""
    assert not at.exception, [e.value for e in at.exception]


def widget(elements, label: str):  # type: ignore[no-untyped-def]
    found = [w for w in elements if w.label == label]
    assert found, f"no widget labelled {label!r}: {[w.label for w in elements]}"
    return found[0]


def click(at: AppTest, label: str) -> AppTest:
    widget(at.button, label).click()
    at.run()
    assert_clean(at)
    return at


def metric(at: AppTest, label: str) -> str:
    return widget(at.metric, label).value


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "application/octet-stream"))
    at.run()
    assert_clean(at)
    return at


def corpus_bytes(rows: list[dict], fmt: str) -> bytes:
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        return frame.to_csv(index=False).encode()
    if fmt == "tsv":
        return frame.to_csv(index=False, sep="\t").encode()
    if fmt == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in rows).encode()
    if fmt == "json":
        return json.dumps(rows).encode()
    if fmt == "txt":
        return "\n".join(r["text"] for r in rows).encode()
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buffer, index=False)
    elif fmt == "xlsx":
        frame.to_excel(buffer, index=False)
    return buffer.getvalue()


RUN_TIMEOUT = 600


def wait_for_jobs() -> None:
    """Wait for every background run of this process to end; each must have succeeded."""
    from ui import resources

    registry = resources.run_registry()
    for job in list(registry._jobs.values()):
        assert registry.wait(job, RUN_TIMEOUT), f"run job {job.job_id} did not finish"
        assert job.error is None, job.error


def start_run(at: AppTest) -> int:
    """Click Start run on the Run page, wait for the background run, return its run id."""
    from ui import keys, resources

    click(at, "Start run")
    # The page returned at once: the run works in the background, with no page polling it.
    job = resources.run_registry().get(at.session_state[keys.JOB_ID])
    assert job is not None
    wait_for_jobs()
    at.run()
    assert_clean(at)
    return job.run_id


@contextmanager
def app_with_corpus(home: Path, rows: list[dict]) -> Iterator[AppTest]:
    """The app on a fresh database under ``home`` with ``rows`` uploaded and stored (the
    environment holds for the block: background runs read it too)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CORPUSMAP_DATABASE_URL", f"sqlite:///{home / 'app.db'}")
        mp.setenv("CORPUSMAP_HOME", str(home))
        mp.delenv("OPENAI_API_KEY", raising=False)
        mp.delenv("OPENAI_BASE_URL", raising=False)
        at = upload(open_app(), "banking.jsonl", corpus_bytes(rows, "jsonl"))
        click(at, "Store and use this corpus")
        yield at


@pytest.fixture
def app_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database file and data home for one test."""
    db = tmp_path / "app.db"
    monkeypatch.setenv("CORPUSMAP_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("CORPUSMAP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    return db


@pytest.fixture(scope="module")
def small_rows(banking_rows: list[dict]) -> list[dict]:
    """300 Banking77 queries from 10 intents (30 each) plus texts that try to inject markup."""
    labels = sorted({r["label"] for r in banking_rows})[:10]
    rows: list[dict] = []
    for label in labels:
        rows.extend([r for r in banking_rows if r["label"] == label][:30])
    rows = [{"text": r["text"], "label": r["label"]} for r in rows]
    rows.extend({"text": t, "label": "card_arrival"} for t in INJECTION_TEXTS)
    return rows
