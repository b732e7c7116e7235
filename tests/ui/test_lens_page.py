"""The Context page ("lens") in AppTest: colour the map by a column, filter, read the lens,
balance and time tables, add texts and save them as a new run."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.ui.conftest import assert_clean, click, open_app, widget

pytestmark = pytest.mark.slow


@pytest.fixture
def lens_run(app_db: Path, small_rows: list[dict]) -> int:
    """A stored run (k-means, 6 clusters) of 303 Banking77 queries with a channel, a date and a
    score column; the channel is ``app`` for exactly the 30 queries of the first intent."""
    from corpusmap import api
    from storage import Store

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(small_rows)
    frame["channel"] = np.where(
        frame["label"] == frame["label"].iloc[0], "app", rng.choice(["web", "phone"], len(frame))
    )
    frame["date"] = (
        pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 200, len(frame)), unit="D")
    ).strftime("%Y-%m-%d")
    frame["score"] = rng.normal(3, 1, len(frame)).round(2)
    path = app_db.parent / "tickets.csv"
    frame.to_csv(path, index=False)
    store = Store.open(f"sqlite:///{app_db}")
    run_id = api.run(path, n_clusters=6, store=store).run_id
    store.close()
    return run_id


def test_colour_filter_lens_and_downloads(lens_run: int) -> None:
    at = open_app("lens")
    assert widget(at.selectbox, "Colour by").options == ["label", "channel", "date", "score"]
    at.selectbox(key="context_colour").set_value("channel").run()
    assert_clean(at)
    assert at.get("plotly_chart"), "no map"
    captions = " ".join(c.value for c in at.caption)
    assert "coloured by channel (categorical)" in captions

    lens = [d.value for d in at.dataframe if "lift" in d.value.columns][0]
    app_cells = lens[(lens["group"] == "app") & lens["significant"] & (lens["direction"] == "over")]
    assert len(app_cells) >= 1 and app_cells["share_in_cluster"].max() > 0.5
    keys = {b.key for b in at.get("download_button")}
    assert {
        "lens_csv",
        "lens_xlsx",
        "balance_csv",
        "balance_xlsx",
        "time_csv",
        "time_xlsx",
        "lens_report",
    } <= keys

    # Untrusted texts stay data: the injection texts are in a dataframe, never markdown.
    texts = [d.value for d in at.dataframe if "text" in d.value.columns][0]
    assert any("<script>" in t for t in texts["text"])
    assert not any("<script>" in m.value for m in at.markdown)

    at.multiselect(key="context_filter_columns").set_value(["channel"]).run()
    at.multiselect(key="context_filter_channel").set_value(["app"]).run()
    assert_clean(at)
    n_app = 30
    assert f"{n_app} of 303 texts match the filters." in [c.value for c in at.caption]
    texts = [d.value for d in at.dataframe if "text" in d.value.columns][0]
    assert len(texts) == n_app and set(texts["channel"]) == {"app"}

    at.selectbox(key="context_colour").set_value("date").run()
    assert_clean(at)
    assert "coloured by date (datetime)" in " ".join(c.value for c in at.caption)
    assert any(
        "change" in d.value.columns and "share_last" in d.value.columns for d in at.dataframe
    )


def test_add_texts_shows_the_drift_report_and_saves_a_new_run(lens_run: int, app_db: Path) -> None:
    from storage import Store

    at = open_app("lens")
    new = pd.DataFrame(
        {
            "text": [
                "where is my new card?",
                "my card still has not arrived",
                "has my card been sent yet",
            ]
            * 3
            + [f"How do I pattern match on a Haskell list of tuples {i}" for i in range(6)]
        }
    )
    buffer = io.BytesIO()
    new.to_csv(buffer, index=False)
    at.file_uploader(key="context_upload").set_value(
        ("new.csv", buffer.getvalue(), "text/csv")
    ).run()
    click(at, "Place the texts")
    lines = [t.value for t in at.text]
    assert any(line.startswith("15 new texts:") for line in lines), lines
    assert any("1 possible new group(s)" in line and "haskell" in line for line in lines), lines
    placed = [d.value for d in at.dataframe if "new_group" in d.value.columns][0]
    assert (placed["cluster_id"].iloc[:9] != -1).all()
    assert (placed["cluster_id"].iloc[9:] == -1).all()
    assert {"placed_csv", "placed_xlsx"} <= {b.key for b in at.get("download_button")}

    store = Store.open(f"sqlite:///{app_db}")
    runs_before = len(store.list_runs())
    click(at, "Save as a new run")
    assert len(store.list_runs()) == runs_before + 1
    assert any("Saved run" in s.value for s in at.success)
    store.close()
