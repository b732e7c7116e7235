"""After an edit of a seeded run, its constraint report and novelty are checked again against
the seeds and pairs the run's request stored (issue 15): a seed moved into another class's
cluster, and a must-linked text moved away from its partner, show in the report, not stale."""

from __future__ import annotations

import pandas as pd

from clustering import PipelineConfig, read_corpus_bytes
from corpusmap import edits, workflow
from corpusmap.modes import ModeOptions
from corpusmap.request import RunRequest
from tests.reliability.conftest import TOPICS


def test_a_merge_rechecks_the_seeds_the_request_stored(sqlite_store, embedder):
    rows = [(text, topic) for topic, texts in TOPICS.items() for text in texts]
    frame = pd.DataFrame({"text": [t for t, _ in rows]})
    frame["seed"] = [topic if i % 5 < 2 else "" for i, (_, topic) in enumerate(rows)]
    info = sqlite_store.add_corpus(read_corpus_bytes(frame.to_csv(index=False).encode(), "s.csv"))
    request = RunRequest(
        corpus_id=info.id,
        pipeline=PipelineConfig(n_clusters=4),
        options=ModeOptions(seed_label_column="seed", must_link=((2, 3),)),
    )
    run_id = workflow.execute(sqlite_store, request, embedder=embedder)
    before = sqlite_store.get_run(run_id).constraints
    assert before["seeds_together"] == before["seeds_total"] == 6 and not before.get("stale")
    assert before["must_link_held"] == before["must_link_total"] == 1
    assignments = sqlite_store.load_assignments(run_id).set_index("position")["cluster_id"]
    elsewhere = int(assignments[5])  # the "pin" seed's cluster
    edits.move_rows(sqlite_store, run_id, [0, 2], elsewhere)  # a "card" seed and a must-link
    after = sqlite_store.get_run(run_id).constraints
    assert not after.get("stale") and after["seeds_total"] == 6
    assert after["seeds_together"] < 6
    assert after["must_link_held"] == 0
