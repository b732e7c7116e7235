"""Team mode in a real browser, signed in through a real OpenID Connect provider: the
``oidc-provider-mock`` server, started here on loopback, with this app registered as its client
(Streamlit's own ``st.login`` does the authorization-code flow; the provider's authorize page
lets the test type who signs in).

The database (``tests/ui/team_data.py``) holds workspace A (alice, admin, with a corpus and a
finished run; carol, viewer) and workspace B (bob, admin, with a corpus of his own). Bob, a
valid user with full rights in his own workspace, tries every page with alice's run and corpus
ids as query parameters, and a missing id beside them: each says "not found" in the same words,
and nothing of alice's data reaches his browser; he cannot pick her corpus to delete or her run
to export. Carol sees alice's run but no upload, run, edit or delete button, and her export is
in the audit trail.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver

from storage import Store
from tests.e2e.conftest import ARTIFACTS, chromium, free_port, streamlit_server
from tests.e2e.test_browser import (
    click_button,
    go_to,
    screenshot,
    settle,
    wait_for,
    wait_idle,
    wait_text,
)
from tests.ui.team_data import (
    ALICE,
    ALICE_CORPUS,
    BOB,
    BOB_CORPUS,
    CAROL,
    PASSWORD,
    SECRET,
    WRITE_BUTTONS,
    build_team_db,
)

pytestmark = pytest.mark.e2e

PAGES = {
    "": "Corpus",
    "run": "Run",
    "explore": "Explore",
    "lens": "Context",
    "edit": "Edit",
    "export": "Export",
    "history": "History",
    "evaluation": "Evaluation",
    "team": "Team",
}
"""Every page by its address (the Corpus page is the root)."""
MISSING = 987_654
NO_RUN = "No finished run yet"


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[str]:
    from oidc_provider_mock import run_server_in_thread

    # Clients must register (RFC 7591), as with a real provider: no client id is accepted blind.
    with run_server_in_thread(require_client_registration=True) as server:
        yield f"http://localhost:{server.server_port}"


def register_client(provider: str, redirect_uri: str) -> dict:
    request = urllib.request.Request(
        f"{provider}/oauth2/clients",
        data=json.dumps({"redirect_uris": [redirect_uri]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


@pytest.fixture(scope="module")
def team_server(tmp_path_factory: pytest.TempPathFactory, oidc_provider: str) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("e2e_team")
    data = build_team_db(home, passwords=False)
    port = free_port()
    # The browser must use the host of redirect_uri: the identity cookie is set for it.
    url = f"http://localhost:{port}"
    client = register_client(oidc_provider, f"{url}/oauth2callback")
    secrets = home / "secrets.toml"
    auth = {
        "redirect_uri": f"{url}/oauth2callback",
        "cookie_secret": os.urandom(16).hex(),
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        "server_metadata_url": f"{oidc_provider}/.well-known/openid-configuration",
    }
    secrets.write_text(
        "[auth]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in auth.items())
    )
    env = {
        **os.environ,
        "CORPUSMAP_DATABASE_URL": data.url,
        "CORPUSMAP_HOME": str(home),
        "CORPUSMAP_TEAM": "1",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    env.pop("CORPUSMAP_SIGN_IN", None)  # oidc: chosen because [auth] is configured
    log = ARTIFACTS / "e2e" / "streamlit_team.log"
    with streamlit_server(env, log, port, ("--secrets.files", str(secrets))):
        yield {"url": url, "data": data, "log": log}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Chromium that logs every WebSocket message the app sends it: what reached the browser,
    dataframes (drawn on a canvas, absent from the DOM) included."""
    with chromium(tmp_path_factory.mktemp("team_downloads"), performance_log=True) as driver:
        yield driver


def received(driver: WebDriver) -> bytes:
    """The WebSocket messages the page received since the last call (protobuf and Arrow bytes,
    in which strings are plain UTF-8)."""
    frames = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.webSocketFrameReceived":
            response = message["params"]["response"]
            payload = response["payloadData"]
            frames.append(
                base64.b64decode(payload) if response["opcode"] == 2 else payload.encode()
            )
    return b"\n".join(frames)


def body(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def errors(driver: WebDriver) -> list[str]:
    """The error messages shown (their text, without the icon's ligature name)."""
    return [
        e.find_element(By.CSS_SELECTOR, '[data-testid="stMarkdownContainer"]').text.strip()
        for e in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stAlertContentError"]')
    ]


def button_labels(driver: WebDriver) -> set[str]:
    """Every button's label, shown or in a hidden tab (the icon's ligature name left out)."""
    labels = set()
    for button in driver.find_elements(By.TAG_NAME, "button"):
        paragraphs = button.find_elements(By.TAG_NAME, "p")
        text = paragraphs[0].get_attribute("textContent") if paragraphs else None
        labels.add((text or button.get_attribute("textContent") or "").strip())
    return labels


def open_page(driver: WebDriver, url: str, title: str) -> None:
    """Load ``url`` and wait for its page: its title, or the note of a page that needs a run
    (or a corpus) the user does not have."""
    driver.get(url)
    wait_for(
        driver,
        lambda d: (
            d.find_elements(By.XPATH, f"//h1[normalize-space(.)={json.dumps(title)}]")
            or NO_RUN in body(d)
        ),
        60,
        f"{url} did not open {title}",
    )
    settle(driver)


def sign_in(driver: WebDriver, url: str, email: str) -> None:
    """Through the provider's authorize page, as the person who types ``email``."""
    driver.get(url)
    wait_for(
        driver,
        lambda d: d.find_elements(By.XPATH, "//h1[normalize-space(.)='Sign in']"),
        90,
        "no sign-in page",
    )
    wait_idle(driver)
    assert not driver.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
    click_button(driver, "Sign in")
    field = wait_for(driver, lambda d: d.find_elements(By.NAME, "sub"), 30, "no authorize page")
    assert "Authorize Client" in body(driver)
    field[0].send_keys(email)
    driver.find_element(By.XPATH, "//button[normalize-space(.)='Authorize']").click()
    wait_text(driver, f"Signed in as\n{email}", 90)
    assert driver.current_url.startswith(url)
    settle(driver)


def sign_out(driver: WebDriver, url: str) -> None:
    click_button(driver, "Sign out")
    # Streamlit ends the provider's session too when it offers an end_session endpoint.
    found = wait_for(
        driver,
        lambda d: (
            d.find_elements(By.XPATH, "//button[normalize-space(.)='End session']")
            or d.find_elements(By.XPATH, "//h1[normalize-space(.)='Sign in']")
        ),
        60,
        "sign-out went nowhere",
    )
    if found[0].tag_name == "button":
        found[0].click()
    wait_for(
        driver,
        lambda d: (
            d.current_url.startswith(url)
            and d.find_elements(By.XPATH, "//h1[normalize-space(.)='Sign in']")
        ),
        60,
        "not back at the sign-in page",
    )


def options_of(driver: WebDriver, label: str) -> list[str]:
    """The choices of the main area's selectbox labelled ``label`` (opened, read, closed)."""
    xpath = (
        "//*[@data-testid='stMain']//div[@data-testid='stSelectbox' and "
        f".//label[normalize-space(.)={json.dumps(label)}]]"
    )
    box = wait_for(driver, lambda d: d.find_elements(By.XPATH, xpath), 30, f"no {label!r}")[0]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    field = box.find_element(By.CSS_SELECTOR, "input")
    field.click()
    choices = wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[role='option']"))
    texts = [c.text.strip() for c in choices]
    field.send_keys(Keys.ESCAPE)
    return texts


def not_found(kind: str, object_id: int) -> str:
    lister = {"run": "runs", "corpus": "corpora"}[kind]
    return f"no {kind} #{object_id}; corpusmap {lister} lists them"


def assert_nothing_of_alice(driver: WebDriver, where: str) -> None:
    """Neither the page nor any message the server sent since the last check names alice's
    corpus, her secret text or alice herself."""
    source, messages = driver.page_source, received(driver)
    for secret in (SECRET, ALICE_CORPUS, ALICE):
        assert secret not in source, f"{where}: {secret!r} is on bob's page"
        assert secret.encode() not in messages, f"{where}: {secret!r} reached bob's browser"


def test_alice_signs_in_through_the_identity_provider(team_server, browser) -> None:
    url, data = team_server["url"], team_server["data"]
    sign_in(browser, url, ALICE)
    assert "Admin in workspace A" in body(browser)
    assert re.search(r"Storage [\d.]+ of 500 MB · LLM calls today 0 of 1,000", body(browser))
    links = [
        a.text.strip().split("\n")[-1]
        for a in browser.find_elements(By.CSS_SELECTOR, '[data-testid="stSidebarNavLink"]')
    ]
    assert links[-1] == "Team"
    screenshot(browser, "team_alice_corpus")
    received(browser)
    open_page(browser, f"{url}/explore?run={data.alice_run}", "Explore")
    assert not errors(browser)
    assert f"run {data.alice_run}" in body(browser)
    # The detector bob's checks rely on sees alice's data when it is sent (the map's texts).
    assert SECRET.encode() in received(browser)
    screenshot(browser, "team_alice_explore")
    go_to(browser, "Team")
    assert "Audit trail (CSV)" in button_labels(browser)
    screenshot(browser, "team_alice_team_page")
    # A user name from the provider shows as text, never as a link.
    assert not browser.find_elements(By.CSS_SELECTOR, 'a[href^="mailto:"]')
    # Two browser sessions (two page loads) on one sign-in with the provider: one event.
    trail = Store.open(data.url).audit_events()
    assert [e.action for e in trail if e.actor == ALICE].count("sign-in") == 1
    sign_out(browser, url)


def test_bob_cannot_see_open_export_or_delete_alices_corpus_and_run(team_server, browser):
    url, data = team_server["url"], team_server["data"]
    received(browser)  # forget what alice's session was sent
    sign_in(browser, url, BOB)
    assert "Admin in workspace B" in body(browser)
    assert_nothing_of_alice(browser, "sign-in and Corpus page")
    # His only corpus is his own, in the page's picker (where Delete acts).
    choices = options_of(browser, "Corpus")
    assert len(choices) == 1 and BOB_CORPUS in choices[0], choices
    assert "Delete…" in button_labels(browser), "bob is an admin: he deletes in his workspace"

    for path, title in PAGES.items():
        for kind, object_id in (("run", data.alice_run), ("corpus", data.alice_corpus)):
            seen = {}
            for tried in (object_id, MISSING):
                open_page(browser, f"{url}/{path}?{kind}={tried}", title)
                seen[tried] = errors(browser)
                assert_nothing_of_alice(browser, f"/{path}?{kind}={tried}")
                assert f"{kind}=" not in browser.current_url, "the link is followed once"
            assert seen[object_id] == [not_found(kind, object_id)], (path, kind, seen)
            assert seen[MISSING] == [not_found(kind, MISSING)], (path, kind, seen)
        if path == "export":
            assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stDownloadButton"]')
            assert NO_RUN in body(browser)
        if path == "history":
            assert "No runs yet" in body(browser)
        if path == "team":
            screenshot(browser, "team_bob_team_page")
    screenshot(browser, "team_bob_not_found")

    store = Store.open(data.url)
    assert store.get_corpus(data.alice_corpus).name.startswith(ALICE_CORPUS)
    assert store.get_run(data.alice_run).status == "completed"
    sign_out(browser, url)


def test_carol_the_viewer_reads_and_exports_but_changes_nothing(team_server, browser) -> None:
    url, data = team_server["url"], team_server["data"]
    sign_in(browser, url, CAROL)
    assert "Viewer in workspace A" in body(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, '[data-testid="stFileUploader"]')
    for path, title in PAGES.items():
        open_page(browser, f"{url}/{path}", title)
        shown = button_labels(browser) & set(WRITE_BUTTONS)
        assert not shown, f"/{path}: {shown}"
    open_page(browser, f"{url}/edit", "Edit")
    assert "You are a viewer in this workspace" in body(browser)
    screenshot(browser, "team_carol_edit")

    open_page(browser, f"{url}/export", "Export")
    before = set(browser.downloads.iterdir())  # type: ignore[attr-defined]
    click_button(browser, "CSV")
    wait_for(
        browser,
        lambda d: any(
            p.suffix == ".csv"
            for p in set(d.downloads.iterdir()) - before  # type: ignore[attr-defined]
        ),
        60,
        "no CSV downloaded",
    )
    events = wait_for(
        browser,
        lambda d: [
            e
            for e in Store.open(data.url).audit_events()
            if e.action == "export" and e.actor == CAROL
        ],
        30,
        "the export is not in the audit trail",
    )
    assert events[0].object_id == data.alice_run and events[0].detail["format"] == "csv"
    time.sleep(0.5)
    sign_out(browser, url)


@pytest.fixture(scope="module")
def builtin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("e2e_builtin")
    data = build_team_db(home, passwords=True)
    env = {
        **os.environ,
        "CORPUSMAP_DATABASE_URL": data.url,
        "CORPUSMAP_HOME": str(home),
        "CORPUSMAP_TEAM": "1",
        "CORPUSMAP_SIGN_IN": "builtin",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    log = ARTIFACTS / "e2e" / "streamlit_builtin.log"
    with streamlit_server(env, log) as url:
        yield {"url": url, "data": data, "log": log, "home": home}


def type_into(driver: WebDriver, label: str, text: str) -> None:
    xpath = (
        "//div[@data-testid='stTextInput' and "
        f".//label[normalize-space(.)={json.dumps(label)}]]//input"
    )
    field = wait_for(driver, lambda d: d.find_elements(By.XPATH, xpath), 30, f"no {label!r}")[0]
    field.clear()
    field.send_keys(text)


def test_a_built_in_password_never_reaches_the_page_the_log_or_the_database(
    builtin_server, browser
) -> None:
    url = builtin_server["url"]
    wrong = "Wrong-Secret-Pass-9"
    browser.get(url)
    wait_for(browser, lambda d: d.find_elements(By.XPATH, "//h1[normalize-space(.)='Sign in']"))
    settle(browser)
    received(browser)
    password_field = browser.find_element(
        By.XPATH, "//div[@data-testid='stTextInput' and .//label[normalize-space(.)='Password']]"
    ).find_element(By.TAG_NAME, "input")
    assert password_field.get_attribute("type") == "password"

    type_into(browser, "Username", ALICE)
    type_into(browser, "Password", wrong)
    click_button(browser, "Sign in")
    wait_text(browser, "wrong user name or password")
    settle(browser)
    assert password_field.get_attribute("value") == "", "the form is cleared after a try"
    assert wrong not in browser.page_source
    assert wrong.encode() not in received(browser)
    screenshot(browser, "team_builtin_wrong_password")

    type_into(browser, "Username", ALICE)
    type_into(browser, "Password", PASSWORD)
    click_button(browser, "Sign in")
    wait_text(browser, f"Signed in as\n{ALICE}", 60)
    settle(browser)
    assert PASSWORD not in browser.page_source
    assert PASSWORD.encode() not in received(browser)
    click_button(browser, "Sign out")
    wait_for(browser, lambda d: d.find_elements(By.XPATH, "//h1[normalize-space(.)='Sign in']"))

    home: Path = builtin_server["home"]
    stored = b"".join(p.read_bytes() for p in home.glob("team.db*"))
    logged = builtin_server["log"].read_bytes()
    for secret in (wrong, PASSWORD):
        assert secret.encode() not in stored, f"{secret!r} is in the database"
        assert secret.encode() not in logged, f"{secret!r} is in the server's log"
    assert b"failed sign-in" in logged, "the log records the failure (without the password)"
