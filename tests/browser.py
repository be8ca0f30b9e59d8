"""Headless Chromium for browser tests (Debian's ``chromium`` and ``chromium-driver``). Without
them the tests skip, unless ``OUTPOOL_REQUIRE_SERVICES=1`` (CI) makes that a failure."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
WAIT_S = 10.0


def unavailable() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (path.is_file() and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@contextlib.contextmanager
def headless_chromium(profile: Path) -> Iterator[Any]:
    """A Selenium driver of headless Chromium with its profile in ``profile``; skips the test
    where Chromium is missing."""
    reason = unavailable()
    if reason is not None:
        if os.environ.get("OUTPOOL_REQUIRE_SERVICES") == "1":
            pytest.fail(f"OUTPOOL_REQUIRE_SERVICES=1 but the browser test cannot run: {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", "--window-size=1000,900"):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager is never asked (it would try to download one).
    service = Service(executable_path=str(CHROMEDRIVER))
    browser = webdriver.Chrome(service=service, options=options)
    browser.set_page_load_timeout(WAIT_S)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)
