"""Every mode resumes after ``kill -9`` in its longest stage (issue 12): the goal-driven modes
while they ask the LLM, seeded clustering while it embeds. The same command again continues the
same run and completes it; answers already received come from the call cache, and nothing is
stored twice."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.reliability.conftest import TOPICS
from tests.reliability.test_crash import (
    base_env,
    integrity_ok,
    kill9,
    no_duplicates,
    query,
    scripted_llm_env,
    start,
    wait_for,
)
from tests.support.goal_replies import GoalOracle
from tests.support.openai_server import ScriptedOpenAIServer

pytestmark = pytest.mark.slow  # two CLI processes and a kill per mode; CI runs them

ROWS = [(text, topic) for topic, texts in TOPICS.items() for text in texts]


class HangAfter:
    """Answers like the oracle for ``quick`` requests, then hangs every later one until
    ``fast`` is set (the process is killed while it waits)."""

    def __init__(self, oracle: GoalOracle, quick: int) -> None:
        self.oracle, self.quick = oracle, quick
        self.count = 0
        self.fast = False

    def __call__(self, body):
        self.count += 1
        reply = self.oracle(body)
        if self.fast or self.count <= self.quick:
            return reply
        return dataclasses.replace(reply, delay_s=120)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "topics.csv"
    frame = pd.DataFrame({"text": [t for t, _ in ROWS], "label": [label for _, label in ROWS]})
    frame["seed"] = [label if i % 5 == 0 else "" for i, (_, label) in enumerate(ROWS)]
    frame.to_csv(path, index=False)
    return path


def command(corpus: Path, db: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(corpus), "--out", str(out), "--db", str(db), "--json", *extra]


def finished(log: Path) -> dict:
    output = log.read_text()
    return json.loads(output[output.index("{") :])


@pytest.mark.parametrize("mode", ["propose", "classify"])
def test_a_goal_driven_mode_killed_while_asking_resumes_from_the_call_cache(tmp_path, corpus, mode):
    db = tmp_path / "crash.db"
    args = command(
        corpus,
        db,
        tmp_path / "out.csv",
        "--mode",
        mode,
        "--n-clusters",
        "3",
        "--goal",
        "what the customer needs",
        "--llm-budget",
        "12",
        "--llm-max-in-flight",
        "1",
    )
    responder = HangAfter(GoalOracle(dict(ROWS)), quick=1)
    with ScriptedOpenAIServer(default=responder) as server:
        env = scripted_llm_env(tmp_path, server)
        first = start(args, env, tmp_path / "first.log")
        wait_for(
            lambda: (
                query(db, "SELECT count(*) FROM llm_calls WHERE status = 'ok'") == [(1,)]
                and len(server.chat_requests) >= 2
            ),
            first,
            tmp_path / "first.log",
        )
        kill9(first)
        integrity_ok(db)
        assert query(db, "SELECT id, status FROM runs") == [(1, "running")]
        answered = query(db, "SELECT cache_key FROM llm_calls WHERE status = 'ok'")[0][0]
        responder.fast = True
        again = start(args, env, tmp_path / "again.log")
        assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-3000:]
    summary = finished(tmp_path / "again.log")
    assert summary["run_id"] == 1 and summary["status"] == "completed"
    assert "continued interrupted run #1" in (tmp_path / "again.log").read_text()
    assert summary["llm_usage"]["cache_hits"] >= 1  # the answer received before the kill
    assert query(
        db, f"SELECT count(*) FROM llm_calls WHERE cache_key = '{answered}' AND status = 'ok'"
    ) == [(1,)]
    integrity_ok(db)
    no_duplicates(db)
    assert query(db, "SELECT count(*) FROM runs") == [(1,)]
    assert query(db, "SELECT count(*) FROM assignments") == [(15,)]
    assert len(pd.read_csv(tmp_path / "out.csv")) == 15


def test_seeded_clustering_killed_while_embedding_resumes_with_cached_vectors(tmp_path, corpus):
    db = tmp_path / "crash.db"
    args = command(
        corpus, db, tmp_path / "out.csv", "--seed-label-column", "seed", "--n-clusters", "3"
    )
    slow = base_env(tmp_path, CORPUSMAP_TEST_EMBED_CHUNK="3", CORPUSMAP_TEST_EMBED_DELAY="3")
    first = start(args, slow, tmp_path / "first.log")
    wait_for(
        lambda: (query(db, "SELECT count(*) FROM embeddings") or [(0,)])[0][0] >= 3,
        first,
        tmp_path / "first.log",
    )
    kill9(first)
    cached = query(db, "SELECT count(*) FROM embeddings")[0][0]
    again = start(args, base_env(tmp_path), tmp_path / "again.log")
    assert again.wait(timeout=300) == 0, (tmp_path / "again.log").read_text()[-3000:]
    summary = finished(tmp_path / "again.log")
    assert summary["run_id"] == 1 and summary["status"] == "completed"
    if cached < 15:  # killed inside the embed stage: the rest came from the cache
        assert summary["timings"]["embed_cache_hits"] >= cached
    from storage import Store

    assert Store.open(str(db)).get_run(1).constraints["seeds_together"] == 3
    integrity_ok(db)
    no_duplicates(db)
    assert query(db, "SELECT count(*) FROM runs") == [(1,)]
    assert query(db, "SELECT count(*) FROM embeddings") == [(15,)]
    assert query(db, "SELECT count(*) FROM assignments") == [(15,)]
