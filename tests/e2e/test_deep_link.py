"""A bookmark to a page as the very first request of a fresh server: Streamlit serves the
``pages/`` folder the legacy way until ``st.navigation`` has run once, so the page would run
without ``app.py``'s frame. ``ui.frame`` sends it through the frame and back to the page."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.e2e.test_browser import wait_for, wait_idle, wait_text

pytestmark = pytest.mark.e2e


def test_a_deep_link_to_a_fresh_server_opens_the_page_inside_the_frame(app_server, browser) -> None:
    browser.get(f"{app_server['url']}/history")
    wait_text(browser, "Data")  # the frame's navigation section, absent from the legacy page list
    wait_idle(browser)
    links = wait_for(
        browser,
        lambda d: [
            a.text.strip()
            for a in d.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
        ],
    )
    assert [link.split("\n")[-1] for link in links] == [
        "Corpus",
        "Run",
        "Explore",
        "Context",
        "Edit",
        "Export",
        "History",
        "Evaluation",
    ]
    heading = wait_for(browser, lambda d: d.find_elements(By.TAG_NAME, "h1"))
    assert heading[0].text.strip() == "History"
    assert browser.current_url.rstrip("/").endswith("/history")
