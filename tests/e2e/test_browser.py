"""The app in a real browser: upload a Banking77 slice, run, see the map and the cluster table,
download the CSV export and check it, a screenshot of every page; and corpus text holding
<script>, HTML and markdown shows as text in the DOM."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

SCREENSHOTS = ARTIFACTS / "screenshots"
RUN_TIMEOUT = 1200
N_TEXTS = 600
MARKUP_TEXTS = [
    "<script>window.__pwned = 1</script> my card has not arrived",
    '<b>bold</b> card not arrived <img src=x onerror="window.__pwned=2">',
    "**not bold** my card has not arrived [a link](http://example.com)",
    "# not a heading: my card has not arrived",
]


def wait_for(driver: WebDriver, condition, timeout: float = 60, message: str = ""):  # type: ignore[no-untyped-def]
    # A page that navigates (a sign-in redirect) or a Streamlit rerun replaces the element a
    # condition just found: try again at the next poll instead of failing.
    return WebDriverWait(
        driver, timeout, poll_frequency=0.25, ignored_exceptions=[StaleElementReferenceException]
    ).until(condition, message)


def wait_idle(driver: WebDriver, timeout: float = 60) -> None:
    """Streamlit's own signal that the script finished (its e2e suite waits on the same)."""
    wait_for(
        driver,
        lambda d: d.find_elements(
            By.CSS_SELECTOR, '[data-testid="stApp"][data-test-script-state="notRunning"]'
        ),
        timeout,
        "the script did not finish",
    )


def wait_text(driver: WebDriver, text: str, timeout: float = 60) -> None:
    wait_for(
        driver,
        lambda d: text in d.find_element(By.TAG_NAME, "body").text,
        timeout,
        f"no {text!r} on the page",
    )


def click_button(driver: WebDriver, label: str) -> None:
    xpath = f"//button[normalize-space(.)={json.dumps(label)}] | //button[.//p[normalize-space(.)={json.dumps(label)}]]"
    button = wait_for(
        driver,
        lambda d: next((b for b in d.find_elements(By.XPATH, xpath) if b.is_displayed()), None),
        30,
        f"no button {label!r}",
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def go_to(driver: WebDriver, title: str) -> None:
    links = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
    link = next(a for a in links if a.text.strip().endswith(title))
    link.click()
    wait_for(
        driver,
        lambda d: d.find_elements(By.XPATH, f"//h1[normalize-space(.)={json.dumps(title)}]"),
        60,
        f"page {title} did not open",
    )
    settle(driver)


def settle(driver: WebDriver, timeout: float = 60) -> None:
    """The script finished and every element is drawn (no skeleton placeholders left)."""
    wait_idle(driver, timeout)
    wait_for(
        driver,
        lambda d: not d.find_elements(By.CSS_SELECTOR, '[data-testid="stSkeleton"]'),
        timeout,
        "the page did not finish drawing",
    )


def screenshot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(0.5)  # let charts finish their first paint
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def upload(driver: WebDriver, path: Path) -> None:
    field = wait_for(
        driver,
        lambda d: d.find_element(
            By.CSS_SELECTOR, '[data-testid="stFileUploader"] input[type="file"]'
        ),
    )
    field.send_keys(str(path))
    wait_text(driver, "Texts to cluster", 120)
    wait_idle(driver)


def start_run_and_wait(driver: WebDriver) -> float:
    go_to(driver, "Run")
    click_button(driver, "Start run")
    start = time.time()
    wait_text(driver, "finished in", RUN_TIMEOUT)
    wait_idle(driver)
    return time.time() - start


@pytest.fixture(scope="module")
def banking_file(tmp_path_factory: pytest.TempPathFactory, banking_rows: list[dict]) -> Path:
    labels = sorted({r["label"] for r in banking_rows})[:15]
    rows = [{"text": r["text"], "label": r["label"]} for r in banking_rows if r["label"] in labels][
        :N_TEXTS
    ]
    path = tmp_path_factory.mktemp("e2e_data") / "banking77_slice.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def markup_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Every text carries every kind of markup, so whichever cluster the page shows has them all.
    topics = ["card", "transfer", "refund", "account"]
    rows = [
        {"text": f"{' '.join(MARKUP_TEXTS)} about my {topics[i % 4]} (case {i})"} for i in range(32)
    ]
    path = tmp_path_factory.mktemp("e2e_markup") / "markup.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_upload_run_explore_export_in_the_browser(app_server, browser, banking_file: Path) -> None:
    driver = browser
    driver.get(app_server["url"])
    wait_idle(driver, 120)
    wait_for(driver, lambda d: d.find_elements(By.XPATH, "//h1[normalize-space(.)='Corpus']"), 60)
    started = time.time()

    upload(driver, banking_file)
    body = driver.find_element(By.TAG_NAME, "body").text
    assert "utf-8" in body and "jsonl" in body
    screenshot(driver, "1_corpus")
    click_button(driver, "Store and use this corpus")
    wait_text(driver, "is stored and selected")
    wait_idle(driver)

    go_to(driver, "Run")
    screenshot(driver, "2_run")
    run_seconds = start_run_and_wait(driver)
    screenshot(driver, "3_run_done")

    go_to(driver, "Explore")
    wait_for(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, '[data-testid="stPlotlyChart"] .main-svg'),
        60,
        "no map",
    )
    wait_for(
        driver,
        lambda d: d.find_elements(
            By.CSS_SELECTOR, ".js-plotly-plot .gl-container canvas, .js-plotly-plot canvas"
        ),
        30,
        "no WebGL points",
    )
    screenshot(driver, "4_explore_map")
    tab = wait_for(
        driver,
        lambda d: d.find_element(By.XPATH, "//*[@role='tab'][normalize-space(.)='Clusters']"),
        30,
        "no Clusters tab",
    )
    tab.click()
    wait_for(
        driver,
        lambda d: any(
            e.is_displayed()
            for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="stDataFrame"]')
        ),
        30,
        "no cluster table",
    )
    screenshot(driver, "5_explore_clusters")

    go_to(driver, "Export")
    click_button(driver, "CSV")
    downloads: Path = driver.downloads  # type: ignore[attr-defined]
    csv_path = wait_for(
        driver,
        lambda d: next((p for p in downloads.glob("*.csv") if p.stat().st_size > 0), None),
        120,
        "the CSV export did not arrive",
    )
    time.sleep(0.5)  # the file is renamed from .crdownload when complete
    upload_to_export = time.time() - started
    frame = pd.read_csv(csv_path)
    assert len(frame) == N_TEXTS
    assert {
        "text",
        "label",
        "cluster_id",
        "cluster_label",
        "cluster_description",
        "cluster_probability",
    } <= set(frame.columns)
    assert frame["cluster_id"].nunique() > 3
    screenshot(driver, "6_export")

    for page, name in (
        ("Edit", "7_edit"),
        ("History", "8_history"),
        ("Evaluation", "9_evaluation"),
    ):
        go_to(driver, page)
        screenshot(driver, name)
    timings = {
        "texts": N_TEXTS,
        "run_s": round(run_seconds, 1),
        "upload_to_export_s": round(upload_to_export, 1),
    }
    (ARTIFACTS / "e2e").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "e2e" / "timings.json").write_text(json.dumps(timings, indent=1))
    print("e2e timings", timings)


def test_markup_in_texts_shows_as_text(app_server, browser, markup_file: Path) -> None:
    driver = browser
    driver.get(app_server["url"])
    wait_idle(driver, 120)
    upload(driver, markup_file)
    click_button(driver, "Store and use this corpus")
    wait_text(driver, "is stored and selected")
    wait_idle(driver)
    start_run_and_wait(driver)
    go_to(driver, "Explore")
    wait_text(driver, "Representative texts")
    screenshot(driver, "10_explore_markup")
    body = driver.find_element(By.TAG_NAME, "body").text
    # The texts show literally: tags, markdown markers and all.
    assert "<script>window.__pwned = 1</script>" in body
    assert "<b>bold</b>" in body
    assert "**not bold**" in body
    assert "[a link](http://example.com)" in body
    # And nothing of them became markup: no script ran, no element was made from them.
    assert driver.execute_script("return window.__pwned === undefined")
    scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.textContent)")
    assert not any("__pwned" in s for s in scripts)
    made = driver.find_elements(
        By.XPATH,
        "//b[normalize-space(.)='bold'] | //img[@src='x'] | //a[@href='http://example.com']"
        " | //strong[normalize-space(.)='not bold'] | //h1[starts-with(normalize-space(.), 'not a heading')]",
    )
    assert not made, [element.get_attribute("outerHTML")[:300] for element in made]
