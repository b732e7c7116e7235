"""The Context page in a real browser: colour the map by a column, filter on a value, download
the lens table and check it, read the time chart, add texts and see the drift report; a
screenshot of each view (artifacts/screenshots/context_*.png)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.test_browser import go_to, screenshot, settle, wait_for, wait_text

pytestmark = pytest.mark.e2e

N_INTENTS = 8


@pytest.fixture(scope="module")
def context_run(app_server, banking_rows: list[dict]) -> int:
    """A stored run (k-means, 6 clusters) of 320 Banking77 queries with a channel column that
    is ``app`` for one intent, and a date column on which that intent comes last."""
    from corpusmap import api
    from storage import Store

    rng = np.random.default_rng(0)
    intents = sorted({r["label"] for r in banking_rows})[:N_INTENTS]
    frame = pd.DataFrame(
        [{"text": r["text"], "label": r["label"]} for r in banking_rows if r["label"] in intents]
    )
    late = frame["label"] == intents[0]
    frame["channel"] = np.where(late, "app", rng.choice(["web", "phone"], len(frame)))
    days = rng.integers(0, 180, len(frame))
    days[late.to_numpy()] = rng.integers(150, 180, late.sum())
    frame["date"] = (pd.Timestamp("2025-01-01") + pd.to_timedelta(days, unit="D")).strftime(
        "%Y-%m-%d"
    )
    path = app_server["home"] / "tickets.csv"
    frame.to_csv(path, index=False)
    store = Store.open(f"sqlite:///{app_server['home'] / 'app.db'}")
    run_id = api.run(path, n_clusters=6, store=store).run_id
    store.close()
    return run_id


def choose(driver: WebDriver, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox or multiselect labelled ``label``."""
    xpath = f"//div[(@data-testid='stSelectbox' or @data-testid='stMultiSelect') and .//label[normalize-space(.)={json.dumps(label)}]]"
    widget = wait_for(
        driver,
        lambda d: next((w for w in d.find_elements(By.XPATH, xpath) if w.is_displayed()), None),
        30,
        f"no widget {label!r}",
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", widget)
    widget.find_element(By.CSS_SELECTOR, "input").click()
    item = wait_for(
        driver,
        lambda d: next(
            (
                o
                for o in d.find_elements(By.CSS_SELECTOR, "[role='option']")
                if o.text.strip().startswith(option)
            ),
            None,
        ),
        30,
        f"no option {option!r} in {label!r}",
    )
    item.click()
    widget.find_element(By.CSS_SELECTOR, "input").send_keys(Keys.ESCAPE)  # a multiselect stays open
    settle(driver)


def open_tab(driver: WebDriver, title: str) -> None:
    tab = wait_for(
        driver,
        lambda d: next(
            (
                t
                for t in d.find_elements(By.CSS_SELECTOR, "[role='tab']")
                if t.text.strip() == title
            ),
            None,
        ),
        30,
        f"no tab {title!r}",
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", tab)
    tab.click()
    time.sleep(0.5)


def click_visible(driver: WebDriver, label: str) -> None:
    xpath = f"//button[.//p[normalize-space(.)={json.dumps(label)}] or normalize-space(.)={json.dumps(label)}]"
    button = wait_for(
        driver,
        lambda d: next((b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed()), None),
        30,
        f"no visible button {label!r}",
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def test_colour_filter_download_time_and_add_texts(
    app_server, browser, context_run: int, tmp_path: Path
) -> None:
    driver = browser
    driver.get(app_server["url"])
    settle(driver, 120)
    go_to(driver, "Context")
    choose(driver, "Colour by", "channel")
    wait_text(driver, "coloured by channel (categorical)")
    # Read in one script call: plotly redraws the legend, and an element found in one call can
    # be gone by the next (a stale element).
    legend_script = (
        "return [...document.querySelectorAll('.js-plotly-plot .legendtext')]"
        ".map(e => e.textContent)"
    )
    wait_for(
        driver,
        lambda d: {"app", "web", "phone"} <= set(d.execute_script(legend_script)),
        30,
        "no legend with the channels",
    )
    screenshot(driver, "context_map_by_channel")

    open_tab(driver, "Over time")
    wait_text(driver, "Share of each cluster per")
    wait_for(
        driver,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2,
        30,
        "no time chart",
    )
    screenshot(driver, "context_time")

    choose(driver, "Filter on", "channel")
    wait_text(driver, "of 320 texts match the filters.")
    body = driver.find_element(By.TAG_NAME, "body").text
    shown = int(body.split(" of 320 texts match the filters.")[0].split()[-1])
    assert 0 < shown < 320
    screenshot(driver, "context_filtered")

    open_tab(driver, "Lens")
    wait_text(driver, "Each cluster × channel group")
    screenshot(driver, "context_lens")
    click_visible(driver, "CSV")
    downloads: Path = driver.downloads  # type: ignore[attr-defined]
    found = wait_for(
        driver,
        lambda d: next(iter(downloads.glob("*_lens_channel.csv")), None),
        60,
        "no lens CSV downloaded",
    )
    lens = pd.read_csv(found)
    assert {"cluster_id", "group", "share_in_cluster", "lift", "q_value", "significant"} <= set(
        lens.columns
    )
    assert (
        lens.groupby("cluster_id")["count"].sum().sum() == shown
    )  # the filter applies to the lens

    open_tab(driver, "Add texts")
    new = tmp_path / "new_texts.csv"
    pd.DataFrame(
        {
            "text": ["where is my new card?", "my card has still not arrived"] * 3
            + [f"Haskell monad transformer question {i}" for i in range(6)]
        }
    ).to_csv(new, index=False)
    field = wait_for(
        driver,
        lambda d: d.find_element(
            By.CSS_SELECTOR, '[data-testid="stFileUploader"] input[type="file"]'
        ),
    )
    field.send_keys(str(new))
    click_visible(driver, "Place the texts")
    wait_text(driver, "12 new texts:", 120)
    wait_text(driver, "1 possible new group(s) among the unassigned: haskell")
    settle(driver)
    screenshot(driver, "context_add_texts")
