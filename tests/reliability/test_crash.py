"""Crash safety: ``kill -9`` the CLI (a real process) while it embeds and while it labels; the
same command again resumes the run: cached embeddings reused, stored stages kept, answered LLM
calls taken from the call cache, no duplicated rows, ``PRAGMA integrity_check`` ok."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from corpusmap.cli import main
from tests.reliability.conftest import REPO, topic_texts
from tests.support.openai_server import Reply, ScriptedOpenAIServer, default_reply

SHIM = REPO / "tests" / "reliability" / "cli_shim.py"


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CORPUSMAP_"))}
    env.update(
        {"CORPUSMAP_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    )
    env.update(extra)
    return env


def scripted_llm_env(tmp_path: Path, server: ScriptedOpenAIServer) -> dict[str, str]:
    """``base_env`` pointed at the scripted server, patient enough for its slow replies."""
    return base_env(
        tmp_path,
        OPENAI_BASE_URL=server.base_url,
        CORPUSMAP_LLM_MODEL="scripted",
        CORPUSMAP_LLM_TIMEOUT="300",
    )


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    handle = log.open("wb")  # output to a file, never a pipe that could fill up
    return subprocess.Popen(
        [sys.executable, str(SHIM), *args],
        cwd=REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )


def query(db: Path, sql: str) -> list[tuple]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as connection:
            return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def wait_for(predicate, proc: subprocess.Popen, log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(
                f"the CLI ended (rc {proc.returncode}) before the kill:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"timed out waiting; output:\n{log.read_text()[-3000:]}")


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)  # reaped: its pid is gone, so the next run may take its run over
    assert proc.returncode == -signal.SIGKILL


def integrity_ok(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []


def no_duplicates(db: Path) -> None:
    checks = {
        "documents": "SELECT corpus_id, position, count(*) FROM documents GROUP BY 1, 2 HAVING count(*) > 1",
        "embeddings": "SELECT model_id, text_hash, count(*) FROM embeddings GROUP BY 1, 2 HAVING count(*) > 1",
        "assignments": "SELECT run_id, document_id, count(*) FROM assignments GROUP BY 1, 2 HAVING count(*) > 1",
        "clusters": "SELECT run_id, cluster_id, level, count(*) FROM clusters GROUP BY 1, 2, 3 HAVING count(*) > 1",
        "corpora": "SELECT content_hash, count(*) FROM corpora GROUP BY 1 HAVING count(*) > 1",
    }
    for table, sql in checks.items():
        assert query(db, sql) == [], table


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "topics.csv"
    pd.DataFrame({"text": topic_texts()}).to_csv(path, index=False)
    return path


def test_kill_during_embedding_then_rerun_resumes_with_cached_embeddings(tmp_path, corpus):
    db = tmp_path / "crash.db"
    args = [
        "run",
        str(corpus),
        "--out",
        str(tmp_path / "out.csv"),
        "--db",
        str(db),
        "--n-clusters",
        "3",
        "--json",
    ]
    slow = base_env(tmp_path, CORPUSMAP_TEST_EMBED_CHUNK="3", CORPUSMAP_TEST_EMBED_DELAY="1.5")
    first = start(args, slow, tmp_path / "first.log")
    wait_for(
        lambda: (query(db, "SELECT count(*) FROM embeddings") or [(0,)])[0][0] >= 6,
        first,
        tmp_path / "first.log",
    )
    kill9(first)
    integrity_ok(db)
    cached = query(db, "SELECT count(*) FROM embeddings")[0][0]
    assert 6 <= cached < 15
    assert query(db, "SELECT id, status, stage FROM runs") == [(1, "running", "created")]
    # Its process is gone: `corpusmap runs` says so instead of "running" forever.
    listing = CliRunner().invoke(main, ["runs", "--db", str(db)])
    assert listing.exit_code == 0 and " interrupted " in listing.output.splitlines()[1]

    again = start(args, base_env(tmp_path, CORPUSMAP_TEST_EMBED_CHUNK="3"), tmp_path / "again.log")
    assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-3000:]
    output = (tmp_path / "again.log").read_text()
    summary = json.loads(output[output.index("{") :])
    assert summary["run_id"] == 1 and summary["status"] == "completed"
    assert summary["timings"]["embed_cache_hits"] >= cached
    assert summary["timings"]["embed_embedded"] == 15 - summary["timings"]["embed_cache_hits"]
    assert "continued interrupted run #1 after its saved stage 'created'" in output
    integrity_ok(db)
    no_duplicates(db)
    assert query(db, "SELECT count(*) FROM runs") == [(1,)]
    assert query(db, "SELECT count(*) FROM documents") == [(15,)]
    assert query(db, "SELECT count(*) FROM embeddings") == [(15,)]
    assert query(db, "SELECT count(*) FROM assignments") == [(15,)]
    assert query(db, "SELECT count(*) FROM clusters") == [(3,)]
    assert len(pd.read_csv(tmp_path / "out.csv")) == 15


class SlowAfterFirst:
    """Answers the first label request at once, then hangs every other until ``fast`` is set."""

    def __init__(self) -> None:
        self.fast = False
        self.count = 0

    def __call__(self, body):
        self.count += 1
        if self.fast or self.count == 1:
            return default_reply(body)
        return Reply.slow(120, default_reply(body))


@pytest.mark.slow  # two CLI processes and a kill; CI runs it (make test-slow)
def test_kill_during_labeling_then_rerun_keeps_clusters_and_cached_llm_answers(tmp_path, corpus):
    db = tmp_path / "crash.db"
    args = [
        "run",
        str(corpus),
        "--out",
        str(tmp_path / "out.csv"),
        "--db",
        str(db),
        "--n-clusters",
        "3",
        "--labeler",
        "llm",
        "--llm-max-in-flight",
        "1",
        "--json",
    ]
    responder = SlowAfterFirst()
    with ScriptedOpenAIServer(default=responder) as server:
        env = scripted_llm_env(tmp_path, server)
        first = start(args, env, tmp_path / "first.log")
        wait_for(
            lambda: (
                len(server.chat_requests) >= 2
                and query(db, "SELECT count(*) FROM llm_calls WHERE status = 'ok'") == [(1,)]
            ),
            first,
            tmp_path / "first.log",
        )
        kill9(first)
        integrity_ok(db)
        assert query(db, "SELECT status, stage FROM runs") == [("running", "summarize")]
        before = {
            "assignments": query(
                db, "SELECT document_id, cluster_id, probability, x, y FROM assignments ORDER BY 1"
            ),
            "timings": json.loads(query(db, "SELECT timings FROM runs")[0][0]),
            "embeddings": query(db, "SELECT count(*) FROM embeddings"),
        }
        answered = query(db, "SELECT cache_key FROM llm_calls WHERE status = 'ok'")[0][0]

        responder.fast = True
        sent_before = len(server.chat_requests)
        again = start(args, env, tmp_path / "again.log")
        assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-3000:]
        new_requests = server.chat_requests[sent_before:]
    output = (tmp_path / "again.log").read_text()
    summary = json.loads(output[output.index("{") :])
    assert summary["run_id"] == 1 and summary["status"] == "completed"
    assert "continued interrupted run #1 after its saved stage 'summarize'" in output
    # Clusters kept: the same assignment, the earlier stages' timings untouched (not redone).
    assert (
        query(db, "SELECT document_id, cluster_id, probability, x, y FROM assignments ORDER BY 1")
        == before["assignments"]
    )
    timings = summary["timings"]
    for stage in ("embed", "reduce", "cluster"):
        assert timings[stage] == before["timings"][stage]
    assert query(db, "SELECT count(*) FROM embeddings") == before["embeddings"]
    # The answered cluster came from the call cache: two new requests for three clusters.
    assert len(new_requests) == 2
    assert summary["llm_usage"]["cache_hits"] == 1
    # Every cluster got its LLM answer: shown, or kept as the alternative of a more faithful
    # keyword label (the scripted answers all describe card payments).
    labels = query(db, "SELECT label_status FROM clusters")
    assert len(labels) == 3 and {s for (s,) in labels} <= {"ok", "keywords_kept"}
    assert query(
        db, f"SELECT count(*) FROM llm_calls WHERE cache_key = '{answered}' AND status = 'ok'"
    ) == [(1,)]
    integrity_ok(db)
    no_duplicates(db)
    assert query(db, "SELECT count(*) FROM runs") == [(1,)]
    assert query(db, "SELECT count(*) FROM clusters") == [(3,)]
