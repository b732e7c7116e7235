"""A real Streamlit server (``streamlit run app.py``) on a free loopback port with a temporary
SQLite file, and Debian's headless Chromium driven by selenium. Never downloads a browser: the
driver and the binary are given by path, so selenium-manager is not run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CORPUSMAP_ARTIFACTS", REPO / "artifacts"))
CHROMIUM = os.environ.get("CORPUSMAP_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CORPUSMAP_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1440,1500",
)
SERVER_START_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(
    env: dict[str, str], log_path: Path, port: int | None = None, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """``streamlit run app.py`` on a loopback port with ``env``, its output in ``log_path``;
    yields its URL once ``/_stcore/health`` answers."""
    port = port or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [
        str(streamlit),
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        *extra,
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(
                    f"streamlit did not start; see {log_path}:\n{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "CORPUSMAP_DATABASE_URL": f"sqlite:///{home / 'app.db'}",
        "CORPUSMAP_HOME": str(home),
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
    }
    log_path = ARTIFACTS / "e2e" / "streamlit.log"
    with streamlit_server(env, log_path) as url:
        yield {"url": url, "home": home, "log": log_path}


@contextmanager
def chromium(downloads: Path, *, performance_log: bool = False) -> Iterator[Any]:
    """Headless Chromium saving downloads to ``downloads``; ``performance_log``: it also logs
    the DevTools network events (every WebSocket message the page receives)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (make system-deps)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    if performance_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    (ARTIFACTS / "e2e").mkdir(parents=True, exist_ok=True)
    service = Service(CHROMEDRIVER, log_output=str(ARTIFACTS / "e2e" / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(downloads, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with chromium(tmp_path_factory.mktemp("downloads")) as driver:
        yield driver
