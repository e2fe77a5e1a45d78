"""A real headless Chromium for the dashboard's browser tests (Debian's `chromium` and
`chromium-driver`, driven by Selenium through that driver's path; never a downloaded browser).

Without them the tests fail in CI (`.ci/run` installs them) and are skipped elsewhere with the
command that installs them, as the PostgreSQL tests do without a server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

INSTALL = "apt-get install chromium chromium-driver"


def browser_paths() -> tuple[str, str]:
    """(chromium, chromedriver); fail in CI, skip elsewhere, when either is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        missing = "chromium" if browser is None else "chromedriver"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is not installed; CI must run the browser tests ({INSTALL})")
        pytest.skip(f"{missing} is not installed: {INSTALL}")
    return browser, driver


def make_driver(width: int = 1280, height: int = 900) -> webdriver.Chrome:
    browser, driver = browser_paths()
    options = Options()
    options.binary_location = browser
    options.add_argument("--headless=new")
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    options.add_argument("--disable-dev-shm-usage")
    options.add_argument("--disable-gpu")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture
def chrome() -> Iterator[webdriver.Chrome]:
    driver = make_driver()
    try:
        yield driver
    finally:
        driver.quit()
