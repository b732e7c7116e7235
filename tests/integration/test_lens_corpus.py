"""Clusters in context on real texts: 300 AG News items and 300 StackOverflow titles in one
corpus with a ``source`` column, a column of random groups, a date column on which every
Sports item comes in the last two months, the same dates shuffled, and the text length.

One real run (bundled MiniLM, UMAP, k-means K=8) for the module; the lens, balance, time view,
CLI and report are checked against what is known of the rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import read_jsonl_gz

pytestmark = pytest.mark.slow

N_CLUSTERS = 8
SO_TAGS = ("excel", "haskell", "svn", "matlab", "drupal", "qt", "bash", "scala", "oracle", "ajax")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    """(store, run id, the corpus frame) of the mixed corpus."""
    from corpusmap import api
    from storage import Store

    rng = np.random.default_rng(0)
    news = read_jsonl_gz("ag_news_test.jsonl.gz", 2000)
    titles = read_jsonl_gz("stackoverflow.jsonl.gz")
    rows = []
    for label in ("World", "Sports", "Business", "Sci/Tech"):
        rows += [
            {"text": r["text"], "source": "ag_news", "label": label}
            for r in news
            if r["label"] == label
        ][:75]
    for tag in SO_TAGS:
        rows += [
            {"text": r["text"], "source": "stackoverflow", "label": tag}
            for r in titles
            if r["label"] == tag
        ][:30]
    frame = pd.DataFrame(rows)
    frame["group"] = rng.choice(["a", "b", "c"], len(frame))
    days = rng.integers(0, 366, len(frame))
    sports = (frame["label"] == "Sports").to_numpy()
    days[sports] = rng.integers(305, 366, sports.sum())
    frame["date"] = (pd.Timestamp("2024-01-01") + pd.to_timedelta(days, unit="D")).strftime(
        "%Y-%m-%d"
    )
    frame["shuffled_date"] = rng.permutation(frame["date"].to_numpy())
    frame["length"] = frame["text"].str.len()
    home = tmp_path_factory.mktemp("lens")
    path = home / "mixed.csv"
    frame.to_csv(path, index=False)
    store = Store.open(str(home / "lens.db"))
    handle = api.run(path, n_clusters=N_CLUSTERS, store=store)
    yield store, handle.run_id, frame, home
    store.close()


def _truth(store, run_id: int, frame: pd.DataFrame) -> pd.DataFrame:
    """Per cluster: its size and the share of its largest source and of Sports, from the rows."""
    assigned = store.load_assignments(run_id)
    rows = frame.iloc[assigned["position"].to_numpy()].assign(
        cluster_id=assigned["cluster_id"].to_numpy()
    )
    return rows.groupby("cluster_id").agg(
        size=("source", "size"),
        top_source=("source", lambda s: s.value_counts().index[0]),
        purity=("source", lambda s: s.value_counts(normalize=True).iloc[0]),
        sports=("label", lambda s: (s == "Sports").mean()),
    )


def test_lens_finds_the_clusters_that_are_almost_all_one_source(mixed) -> None:
    from corpusmap import lens

    store, run_id, frame, _ = mixed
    truth = _truth(store, run_id, frame)
    table = lens.lens_table(store, run_id, "source")
    assert table.attrs["kind"] == "categorical"
    found = table[
        table["significant"] & (table["direction"] == "over") & (table["share_in_cluster"] >= 0.9)
    ]
    pure = truth[truth["purity"] >= 0.9]
    print(
        f"\nsource lens: {len(found)} of {N_CLUSTERS} clusters >= 90% one source, significant after FDR;"
    )
    print(truth.to_string())
    assert len(pure) >= 6  # the two corpora barely mix on MiniLM
    assert (
        dict(zip(found["cluster_id"], found["group"], strict=True)) == pure["top_source"].to_dict()
    )
    assert (found["q_value"] < 1e-3).all()
    assert set(table["name"]) <= {c.name for c in store.load_clusters(run_id)} | {"outliers"}


def test_random_groups_give_no_significant_cell_after_correction(mixed) -> None:
    from corpusmap import lens

    store, run_id, _, _ = mixed
    table = lens.lens_table(store, run_id, "group")
    assert len(table) == N_CLUSTERS * 3
    assert not table["significant"].any(), table.sort_values("q_value").head()
    print(
        f"\nrandom groups: smallest q-value {table['q_value'].min():.2f}, smallest p {table['p_value'].min():.3f}"
    )


def test_numeric_lens_sees_news_items_are_longer(mixed) -> None:
    from corpusmap import lens

    store, run_id, frame, _ = mixed
    truth = _truth(store, run_id, frame)
    table = lens.lens_table(store, run_id, "length").set_index("cluster_id")
    assert table.attrs["kind"] == "numeric"
    for cluster_id, row in truth[truth["purity"] >= 0.9].iterrows():
        expected = "higher" if row["top_source"] == "ag_news" else "lower"
        assert (
            table.loc[cluster_id, "direction"] == expected and table.loc[cluster_id, "significant"]
        )


def test_time_view_flags_the_late_cluster_and_not_shuffled_dates(mixed) -> None:
    from corpusmap import lens

    store, run_id, frame, _ = mixed
    truth = _truth(store, run_id, frame)
    view = lens.time_view(store, run_id, "date")
    assert view.period == "month"
    rose = view.changes[view.changes["significant"] & (view.changes["direction"] == "rose")]
    sports_clusters = set(truth.index[truth["sports"] >= 0.5])
    print(
        f"\ntime view: rose {rose[['cluster_id', 'share_first', 'share_last', 'q_value']].to_dict('records')}"
    )
    assert sports_clusters and set(rose["cluster_id"]) == sports_clusters
    assert view.changes.iloc[0]["cluster_id"] in sports_clusters

    shuffled = lens.over_time(store, run_id, "shuffled_date")
    assert not shuffled["significant"].any(), shuffled.head()
    assert shuffled.attrs["period"] == "month"


def test_balance_puts_the_one_source_clusters_first_and_filters_restrict(mixed) -> None:
    from corpusmap import lens

    store, run_id, frame, _ = mixed
    truth = _truth(store, run_id, frame)
    report = lens.balance_report(store, run_id, "source")
    assert list(report["balance"]) == sorted(report["balance"])
    least = report.iloc[0]
    assert least["balance"] < 0.1 and truth.loc[least["cluster_id"], "purity"] > 0.95

    news_only = lens.lens_table(store, run_id, "label", filters={"source": ["ag_news"]})
    assert set(news_only["group"]) == {"World", "Sports", "Business", "Sci/Tech"}
    assert news_only.groupby("cluster_id")["count"].sum().sum() == 300
    with pytest.raises(lens.LensUsageError, match="no column 'nope'"):
        lens.lens_table(store, run_id, "nope")
    with pytest.raises(lens.LensUsageError, match="no hierarchy"):
        lens.lens_table(store, run_id, "source", level="parent")


def test_cli_commands_write_the_tables(mixed) -> None:
    from corpusmap.cli import main

    store, run_id, _, home = mixed
    runner = CliRunner()
    out = home / "lens.xlsx"
    result = runner.invoke(
        main, ["lens", str(run_id), "source", "--db", store.url, "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_excel(out)) == N_CLUSTERS * 2
    result = runner.invoke(main, ["balance", str(run_id), "source", "--db", store.url])
    assert result.exit_code == 0 and "least_group" in result.output
    out = home / "time.csv"
    result = runner.invoke(
        main,
        [
            "over-time",
            str(run_id),
            "date",
            "--period",
            "quarter",
            "--db",
            store.url,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out).columns) >= {"cluster_id", "share_first", "share_last", "q_value"}
    result = runner.invoke(main, ["lens", str(run_id), "nope", "--db", store.url])
    assert result.exit_code == 2 and "no column 'nope'" in result.output


def test_report_gets_the_lens_and_balance_tables(mixed) -> None:
    from corpusmap.report import render_report

    store, run_id, _, _ = mixed
    html = render_report(store, run_id, context_column="source")
    assert "Clusters in context: source" in html and "Balance on source" in html
    assert "Clusters in context" not in render_report(store, run_id)


def test_the_run_handle_returns_the_same_frames(mixed, tmp_path: Path) -> None:
    from corpusmap import api, lens

    store, run_id, frame, _ = mixed
    handle = api.open_run(run_id, db=store.url)
    pd.testing.assert_frame_equal(handle.lens("source"), lens.lens_table(store, run_id, "source"))
    assert handle.balance("source")["balance"].iloc[0] < 0.1
    assert handle.over_time("date", period="quarter").attrs["period"] == "quarter"
    new = tmp_path / "new.csv"
    pd.DataFrame({"text": frame["text"].iloc[:5], "source": "again"}).to_csv(new, index=False)
    placed = handle.assign(new)
    expected = store.load_assignments(run_id)["cluster_id"].iloc[:5].tolist()
    # A stored text goes back to its own cluster (k-means fitted in UMAP space, placed by centroid).
    assert sum(a == b for a, b in zip(placed["cluster_id"], expected, strict=True)) >= 4


def test_parent_level_after_a_hierarchy_is_built(mixed) -> None:
    """Last in the module: it adds a hierarchy to the shared run."""
    from clustering import lens as stats
    from corpusmap import lens, structure

    store, run_id, frame, _ = mixed
    structure.add_hierarchy(store, run_id, n_parents=2, llm_budget=0)
    parents = {c.cluster_id for c in store.load_clusters(run_id, level=1)}
    leaf_parent = {c.cluster_id: c.parent_id for c in store.load_clusters(run_id)}
    assert len(parents) == 2

    table = lens.lens_table(store, run_id, "source", level="parent")
    assert set(table["cluster_id"]) == parents and set(table["level"]) == {"parent"}
    assigned = store.load_assignments(run_id)
    parent_ids = np.array([leaf_parent[c] for c in assigned["cluster_id"]])
    direct = stats.categorical_lens(parent_ids, frame["source"].iloc[assigned["position"]])
    merged = table.merge(direct, on=["cluster_id", "group"], suffixes=("", "_direct"))
    np.testing.assert_allclose(merged["q_value"], merged["q_value_direct"])
    top = table[table["direction"] == "over"].groupby("cluster_id")["share_in_cluster"].max()
    print(f"\nparent level: share of each parent's main source {top.round(3).to_dict()}")
    # How the hierarchy groups the clusters is its own business (here one parent held a single
    # StackOverflow cluster): the lens must count every text once under its parent.
    assert table.groupby("cluster_id")["count"].sum().sum() == len(frame)

    report = lens.balance_report(store, run_id, "source")
    assert (report["level"] == "parent").sum() == 2
    assert len(report) == N_CLUSTERS + 2
