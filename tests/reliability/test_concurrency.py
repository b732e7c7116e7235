"""Two runs at once on one SQLite file from two processes: both complete, nothing is locked.

(Tried by hand with three processes on a machine at load 20: all completed, integrity ok.)

Embedding writes every two texts here (``cli_shim``), so the two processes interleave many
short write transactions (WAL, ``BEGIN IMMEDIATE``, a busy time-out) instead of one each.
"""

from __future__ import annotations

import json

import pandas as pd

from tests.reliability.conftest import topic_texts
from tests.reliability.test_crash import base_env, integrity_ok, no_duplicates, query, start


def test_two_processes_run_on_one_sqlite_file_at_once(tmp_path):
    corpus = tmp_path / "topics.csv"
    pd.DataFrame({"text": topic_texts()}).to_csv(corpus, index=False)
    db = tmp_path / "shared.db"
    env = base_env(tmp_path, CORPUSMAP_TEST_EMBED_CHUNK="2", CORPUSMAP_TEST_EMBED_DELAY="0.05")
    procs = []
    # The same file from both (different seeds): they also race to store the corpus.
    for i, (path, seed) in enumerate([(corpus, "1"), (corpus, "2")]):
        args = [
            "run",
            str(path),
            "--out",
            str(tmp_path / f"out{i}.csv"),
            "--db",
            str(db),
            "--n-clusters",
            "3",
            "--seed",
            seed,
            "--json",
        ]
        procs.append((start(args, env, tmp_path / f"p{i}.log"), tmp_path / f"p{i}.log"))
    summaries = []
    for proc, log in procs:
        rc = proc.wait(timeout=600)
        output = log.read_text()
        assert rc == 0, output[-3000:]
        assert "database is locked" not in output
        summaries.append(json.loads(output[output.index("{") :]))
    assert {s["status"] for s in summaries} == {"completed"}
    assert len({s["run_id"] for s in summaries}) == 2
    # The same file stored once, although two processes stored it at the same moment.
    assert summaries[0]["corpus_id"] == summaries[1]["corpus_id"]
    assert query(db, "SELECT count(*) FROM corpora") == [(1,)]
    assert query(db, "SELECT count(*) FROM documents") == [(15,)]
    assert query(db, "SELECT count(*) FROM embeddings") == [(15,)]
    assert query(db, "SELECT count(*) FROM assignments") == [(30,)]
    assert query(db, "SELECT status FROM runs") == [("completed",)] * 2
    integrity_ok(db)
    no_duplicates(db)
