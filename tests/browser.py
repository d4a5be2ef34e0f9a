"""Headless Chromium for tests that look at pages, e.g. ``fmnist serve``'s page or an HTML report.

Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them through ``make browser``),
driven by Selenium through ``/usr/bin/chromedriver``: nothing is downloaded (Selenium Manager is kept
offline and never asked for a driver). Chromium starts with the flags that keep it from reaching for the
network, which it would otherwise wait for on this closed machine, and a fresh profile folder.

Use the ``browser`` fixture (conftest.py imports it): the session's ``selenium.webdriver.Chrome``, clean for
each test.
Tests that use it are skipped, with the reason, where Chromium, its driver or Selenium is missing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
    "--window-size=1000,760",
)


def missing() -> str | None:
    """Why the browser cannot start here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (make browser, or: sudo apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ModuleNotFoundError:
        return "selenium is not installed (make install installs the test extras)"
    return None


def start_browser(profile: Path):
    """A headless Chromium with a fresh profile in ``profile``; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never downloads a driver or browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console, for driver.get_log
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="session")
def chromium(tmp_path_factory):
    """One headless Chromium for the session (starting one takes seconds)."""
    reason = missing()
    if reason:
        pytest.skip(f"no headless browser: {reason}")
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = start_browser(profile)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser(chromium):
    """The session's Chromium as a test of its own finds it: a blank page, an empty console log (what an
    earlier test's pages logged is drained), the network as it is."""
    chromium.get("about:blank")
    chromium.get_log("browser")  # reading the log empties it
    with contextlib.suppress(Exception):  # nothing to delete when no test set conditions
        chromium.delete_network_conditions()
    return chromium
