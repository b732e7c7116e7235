"""LLM faults through a whole `corpusmap run --labeler llm` against the scripted local server.

Each cluster's requests get one fault, chosen by a marker word of the cluster's topic, so the
faults do not depend on the order of worker threads, retries or response-format fallbacks.
The run must complete, mark the clusters whose label fell back (``llm_failed``) and say why.
"""

from __future__ import annotations

import json
import threading

import pytest

from tests.reliability.conftest import invoke
from tests.support.openai_server import (
    Reply,
    ScriptedOpenAIServer,
    closed_port,
    default_reply,
    keywords_of,
)

TOPICS = {
    "pizza": [
        "The pizza dough needs more yeast",
        "Best pizza oven temperature for crust",
        "Homemade pizza sauce with fresh tomatoes",
    ],
    "guitar": [
        "How to tune a guitar by ear",
        "New strings for my acoustic guitar",
        "Guitar chords for beginners",
    ],
    "passport": [
        "Renew my passport before the trip",
        "Lost passport at the airport",
        "Passport photo requirements",
    ],
    "football": [
        "The football match ended in a draw",
        "Football transfer news this week",
        "Who won the football league",
    ],
    "volcano": [
        "The volcano erupted last night",
        "Lava from the volcano reached the sea",
        "Volcano ash closed the airport",
    ],
}


def write_corpus(path):
    rows = [{"text": t, "topic": k} for k, texts in TOPICS.items() for t in texts]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


class FaultByTopic:
    """A responder: the fault of the first topic word found in the request's data part."""

    def __init__(self, faults: dict[str, Reply | list[Reply]]) -> None:
        self.faults = faults
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, body):
        # The cluster's own keywords: the data part also lists its neighbours' keywords.
        data = " ".join(keywords_of(body)).lower()
        for word, fault in self.faults.items():
            if word in data:
                with self.lock:
                    n = self.seen[word] = self.seen.get(word, 0) + 1
                if isinstance(fault, list):  # one reply per attempt, the last one repeats
                    return fault[min(n, len(fault)) - 1]
                return fault
        return default_reply(body)


def llm_env(base_url: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": "",
        "CORPUSMAP_LLM_MODEL": "scripted",
        "CORPUSMAP_LLM_MAX_RETRIES": "1",
    }


def run_llm(tmp_path, base_url: str, *extra: str):
    corpus = write_corpus(tmp_path / "topics.jsonl")
    db = tmp_path / "llm.db"
    out = tmp_path / "out.csv"
    args = ["run", str(corpus), "--out", str(out), "--db", str(db), "--labeler", "llm"]
    args += ["--n-clusters", "5", "--llm-timeout", "1", "--json", "-q", *extra]
    result = invoke(*args, env=llm_env(base_url))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr, db


def clusters_by_topic(db, run_id):
    from storage import Store

    store = Store.open(str(db))
    try:
        out = {}
        for c in store.load_clusters(run_id):
            text = " ".join(c.representatives).lower()
            topic = next(w for w in TOPICS if w in text)
            out[topic] = c
        return out
    finally:
        store.close()


def test_every_fault_falls_back_per_cluster_and_the_cli_says_why(tmp_path):
    faults = {
        "pizza": Reply.slow(5),  # time-out, every attempt
        "guitar": [
            Reply.http_error(429, "slow down", retry_after="1"),
            Reply.label(
                name="Guitar care",
                description="Players ask how to tune, restring and look after their guitar.",
                inclusion_criterion="The text asks how to care for or tune a guitar.",
            ),
        ],
        "passport": Reply.http_error(500, "internal error"),
        "football": Reply.text('{"name": "Football", "description": '),  # malformed JSON
        "volcano": Reply.empty(),
    }
    with ScriptedOpenAIServer(default=FaultByTopic(faults)) as server:
        summary, stderr, db = run_llm(tmp_path, server.base_url)
    assert summary["status"] == "completed"
    clusters = clusters_by_topic(db, summary["run_id"])
    assert len(clusters) == 5
    assert clusters["guitar"].label_status == "ok" and clusters["guitar"].name == "Guitar care"
    failed = {t: c for t, c in clusters.items() if c.label_status == "llm_failed"}
    assert set(failed) == {"pizza", "passport", "football", "volcano"}
    assert "no reply within 1 s" in failed["pizza"].label_error
    assert "HTTP 500" in failed["passport"].label_error
    assert "invalid reply" in failed["football"].label_error
    assert "empty reply" in failed["volcano"].label_error
    for c in failed.values():  # the keyword label stands in, never a placeholder
        assert c.name and c.name.lower() != "no label returned" and c.keywords
    assert "4 of 5 clusters kept their keyword label because the LLM failed" in stderr
    for c in failed.values():
        assert f"cluster {c.cluster_id}: {c.label_error}" in stderr
    assert summary["llm_usage"]["failures"] >= 4


def test_refusal_and_a_broken_body_fall_back(tmp_path):
    faults = {
        "pizza": Reply.refused("I can't help with that."),
        "guitar": Reply(status=200, body=b"<html>502 Bad Gateway</html>"),
    }
    with ScriptedOpenAIServer(default=FaultByTopic(faults)) as server:
        summary, stderr, db = run_llm(tmp_path, server.base_url)
    clusters = clusters_by_topic(db, summary["run_id"])
    assert "refused" in clusters["pizza"].label_error
    assert clusters["guitar"].label_status == "llm_failed" and clusters["guitar"].label_error
    assert {c.label_status for t, c in clusters.items() if t not in ("pizza", "guitar")} == {"ok"}
    assert "2 of 5 clusters kept their keyword label" in stderr


def test_connection_refused_completes_with_keyword_labels(tmp_path):
    summary, stderr, db = run_llm(tmp_path, f"http://127.0.0.1:{closed_port()}/v1")
    assert summary["status"] == "completed"
    clusters = clusters_by_topic(db, summary["run_id"])
    assert {c.label_status for c in clusters.values()} == {"llm_failed"}
    assert all("cannot reach" in c.label_error for c in clusters.values())
    assert "5 of 5 clusters kept their keyword label" in stderr


@pytest.mark.parametrize("retry_after", ["1", "0"])
def test_429_with_retry_after_is_waited_for(tmp_path, retry_after):
    faults = {
        "volcano": [
            Reply.http_error(429, "rate limited", retry_after=retry_after),
            Reply.label(
                name="Volcanic eruptions",
                description="Reports of volcanoes erupting, ash clouds and lava flows.",
                inclusion_criterion="The text is about a volcano or an eruption.",
            ),
        ]
    }
    with ScriptedOpenAIServer(default=FaultByTopic(faults)) as server:
        summary, stderr, db = run_llm(tmp_path, server.base_url)
        volcano = [r for r in server.chat_requests if "volcano" in keywords_of(r.body)]
    clusters = clusters_by_topic(db, summary["run_id"])
    assert clusters["volcano"].name == "Volcanic eruptions" and len(volcano) == 2
    assert "kept their keyword label" not in stderr
