"""Issue 15's small display fixes: search greys the map in place, the toolbar clears the sizes
chart, History's run table has no mixed-type column and shows settings in words."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pyarrow as pa

from corpusmap import figures, history
from storage import RunInfo


def points(n: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "document_id": range(n),
            "x": [float(i) for i in range(n)],
            "y": [float(i % 4) for i in range(n)],
            "cluster_id": [i % 3 - 1 for i in range(n)],  # -1, 0, 1
            "hover": ["t"] * n,
        }
    )


def test_search_keeps_every_point_in_place() -> None:
    frame = points()
    plain = figures.cluster_map(frame, [0, 1], {0: "a", 1: "b"})
    matching = frame["document_id"] % 2 == 0
    searched = figures.cluster_map(frame, [0, 1], {0: "a", 1: "b"}, highlight=matching)
    assert sum(len(t.x) for t in searched.data) == len(frame)
    faded = searched.data[0]
    assert faded.name == "not matching" and len(faded.x) == int((~matching).sum())
    assert faded.marker.color == figures.FADED_COLOUR
    # Same axes as without a search: the map neither moves nor re-zooms.
    assert searched.layout.xaxis.range == plain.layout.xaxis.range
    assert searched.layout.yaxis.range == plain.layout.yaxis.range
    assert searched.layout.uirevision == plain.layout.uirevision


def test_sizes_chart_leaves_room_for_the_toolbar() -> None:
    table = pd.DataFrame({"cluster_id": [0, 1], "name": ["a", "b"], "size": [5, 3]})
    chart = figures.size_chart(table)
    assert chart.layout.margin.t >= figures.TOOLBAR_MARGIN >= 30


def run_info(run_id: int, config: dict) -> RunInfo:
    return RunInfo(
        id=run_id,
        corpus_id=1,
        name="",
        status="completed",
        stage="done",
        mode="cluster",
        goal="",
        config=config,
        seed=42,
        embedder="m",
        labeler="keywords",
        label_column="",
        versions={"torch": "2"},
        timings={"embed": 1.5},
        metrics={"nmi": 0.81234, "n_clusters": 5, "silhouette_per_cluster": {"0": 0.2}},
        llm_usage={},
        error="",
        created_at=datetime(2026, 12, 6, 12, 0),
        finished_at=None,
    )


def test_run_table_k_column_is_one_type() -> None:
    rows = [
        history._run_row(run_info(1, {"n_clusters": 12}), "c"),
        history._run_row(
            run_info(2, {"pipeline": {"n_clusters": None, "min_cluster_size": 15}}), "c"
        ),
    ]
    table = pd.DataFrame(rows)
    assert table["K"].tolist() == ["12", "auto"]
    assert table["min size"].tolist() == ["auto", "15"]
    pa.Table.from_pandas(table)  # what st.dataframe does: raised ArrowInvalid on a mixed column


def test_run_details_read_as_words() -> None:
    run = run_info(1, {"pipeline": {"n_clusters": 12, "reassign_outliers": False, "goal": None}})
    details = history.run_details(run)
    settings = history.details_table(details["config"])
    assert settings.values.tolist() == [
        ["pipeline · n clusters", "12"],
        ["pipeline · reassign outliers", "no"],
    ]
    figures_table = history.details_table(details["metrics"])
    assert ["nmi", "0.812"] in figures_table.values.tolist()
    assert not any("{" in str(v) for v in figures_table["value"])
