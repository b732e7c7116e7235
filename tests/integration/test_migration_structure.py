"""Migration 0003 on a database written by the 0002 schema: rules, hierarchy, constraint results
and novelty leave the runs' metrics JSON for their tables, and come back on a downgrade."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

from storage import Store, migrate
from storage.engine import make_engine

OLD_METRICS = {
    "n_clusters": 3,
    "nmi": 0.7,
    "rules": {
        "0": {"rule": "“card”", "rule_precision": 0.9, "rule_recall": 0.8},
        "2": {"rule": "“pin”", "rule_precision": 0.5, "rule_recall": 0.25},
    },
    "parent_rules": {
        "1000": {"rule": "“card” or “pin”", "rule_precision": 0.7, "rule_recall": 0.6}
    },
    "hierarchy": {
        "parent_of": {"0": 1000, "1": 1000, "2": 1001},
        "n_parents": 2,
        "choice": {"k": 2, "method": "silhouette", "scores": {"2": 0.31, "3": 0.2}},
        "parent_id_base": 1000,
    },
    "constraints": {
        "n_seeds": 10,
        "n_seed_classes": 2,
        "n_must_link": 1,
        "n_cannot_link": 0,
        "must_link_held": 1,
        "must_link_total": 1,
        "cannot_link_held": 0,
        "cannot_link_total": 0,
        "seeds_together": 9,
        "seeds_total": 10,
        "satisfied_share": 0.9091,
    },
    "novelty": {"known": {"0": "card", "1": "pin"}, "novel": [2], "purity": {"0": 1.0, "1": 0.8}},
}


def old_database(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate.upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO corpora (id, name, format, encoding, text_column, columns, n_rows, "
                "n_empty, n_duplicates, content_hash, warnings, created_at) VALUES (1, 'c', 'csv', "
                "'utf-8', 'text', '[\"text\"]', 0, 0, 0, 'h', '[]', '2026-11-30 10:00:00')"
            )
        )
        for run_id, metrics in ((1, OLD_METRICS), (2, {"n_clusters": 4})):
            connection.execute(
                text(
                    "INSERT INTO runs (id, corpus_id, name, status, stage, mode, goal, config, "
                    "seed, embedder, labeler, label_column, versions, timings, metrics, "
                    "llm_usage, error, created_at) VALUES (:id, 1, '', 'completed', 'done', "
                    "'cluster', '', '{}', 42, 'm', 'keywords', '', '{}', '{}', :metrics, '{}', "
                    "'', '2026-11-30 10:00:00')"
                ),
                {"id": run_id, "metrics": json.dumps(metrics)},
            )
        connection.execute(
            text(
                "INSERT INTO edits (run_id, kind, payload, created_at) VALUES "
                "(1, 'merge', '{\"clusters\": [1, 2]}', '2026-11-30 10:00:00')"
            )
        )
    engine.dispose()
    return url


def test_upgrade_moves_structure_out_of_metrics(tmp_path: Path) -> None:
    store = Store.open(old_database(tmp_path / "old.db"))
    run = store.get_run(1)
    assert run.metrics == {"n_clusters": 3, "nmi": 0.7}
    assert run.rules == {
        0: {"rule": "“card”", "rule_precision": 0.9, "rule_recall": 0.8},
        2: {"rule": "“pin”", "rule_precision": 0.5, "rule_recall": 0.25},
    }
    assert run.parent_rules[1000]["rule"] == "“card” or “pin”"
    assert run.hierarchy == {
        "n_parents": 2,
        "choice": {"k": 2, "method": "silhouette", "scores": {"2": 0.31, "3": 0.2}},
        "parent_id_base": 1000,
    }
    assert run.constraints["seeds_together"] == 9 and run.constraints["stale"] is False
    assert run.novelty == {"known": {0: "card", 1: "pin"}, "novel": [2], "purity": {0: 1.0, 1: 0.8}}
    assert run.next_cluster_id == 0
    other = store.get_run(2)
    assert other.metrics == {"n_clusters": 4} and not other.rules and not other.hierarchy
    counts = store.table_counts()
    assert counts["cluster_rules"] == 3 and counts["cluster_novelty"] == 3
    (edit,) = store.list_edits(1)
    assert edit.kind == "merge" and not edit.undoable and edit.sentence == ""
    store.delete_run(1)
    assert store.table_counts()["cluster_rules"] == 0
    store.close()


def test_downgrade_puts_it_back(tmp_path: Path) -> None:
    url = old_database(tmp_path / "old.db")
    Store.open(url).close()
    engine = make_engine(url)
    from alembic import command

    with engine.begin() as connection:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    with engine.connect() as connection:
        metrics = json.loads(
            connection.execute(text("SELECT metrics FROM runs WHERE id = 1")).scalar_one()
        )
    engine.dispose()
    assert metrics["rules"]["0"] == OLD_METRICS["rules"]["0"]
    assert metrics["novelty"]["novel"] == [2]
    assert metrics["constraints"]["seeds_total"] == 10
    assert metrics["hierarchy"]["n_parents"] == 2


def test_save_metrics_routes_structure_to_tables(sqlite_store: Store) -> None:
    """Writers that still pass rules or a hierarchy inside the metrics land in the tables."""
    store = sqlite_store
    import pandas as pd

    from clustering.types import Corpus

    corpus = Corpus(
        name="c", frame=pd.DataFrame({"text": ["a", "b"]}), text_column="text", texts=["a", "b"]
    )
    info = store.add_corpus(corpus)
    run_id = store.create_run(info.id, config={}, seed=1, embedder="m", labeler="keywords")
    store.save_metrics(
        run_id,
        {"n_clusters": 2, "rules": {1: {"rule": "x", "rule_precision": 1.0, "rule_recall": 0.5}}},
    )
    run = store.get_run(run_id)
    assert run.metrics == {"n_clusters": 2} and run.rules[1]["rule"] == "x"
    store.save_metrics(run_id, {"n_clusters": 2})  # no rules key: the stored rules stay
    assert store.get_run(run_id).rules[1]["rule_recall"] == 0.5


def test_clusters_saved_again_keep_their_edit_marks(sqlite_store: Store) -> None:
    """A hierarchy added after edits re-saves the leaves: their stale and edited marks stay."""
    import pandas as pd

    from clustering.types import ClusterSummary, Corpus

    store = sqlite_store
    corpus = Corpus(
        name="c", frame=pd.DataFrame({"text": ["a", "b"]}), text_column="text", texts=["a", "b"]
    )
    run_id = store.create_run(
        store.add_corpus(corpus).id, config={}, seed=1, embedder="m", labeler="x"
    )
    summaries = [ClusterSummary(c, 1, 0.5, ("a",), ("a",)) for c in (0, 1)]
    store.save_clusters(run_id, summaries)
    store.mark_stale(run_id, [1])
    store.save_clusters(
        run_id, [ClusterSummary(c, 1, 0.5, ("a",), ("a",), parent_id=1000) for c in (0, 1)]
    )
    assert [(c.cluster_id, c.stale, c.parent_id) for c in store.load_clusters(run_id)] == [
        (0, False, 1000),
        (1, True, 1000),
    ]
