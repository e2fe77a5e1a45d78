"""The dashboard in a real headless Chromium, served by a real daemon firing against the sandbox.

One daemon (`tallyfy-scheduler run`, a subprocess) with `[http] listen` on a free port, the
example jobs, a job every 3 seconds (6 fields), a job whose launches the sandbox refuses with
422 (an injected fault), and a job whose description is an XSS payload. The browser opens the
jobs page, sees the plain-words schedules, opens the 6-field job and watches a new fire appear
in its history, signs in with the admin token and pauses it (the CLI then says it is paused),
sees the 422 as an open incident, and sees the payload shown as text, never run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon.daemon_helpers import DaemonEnv
from dashboard_site import ADMIN, EVERY_3S, REFUSED, XSS, running_site
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By

from tallyfy_sandbox import SandboxServer


def wait_for(predicate, timeout: float = 30, interval: float = 0.25):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s")
        time.sleep(interval)


def text_of(chrome: webdriver.Chrome, element_id: str) -> str:
    """The element's text, or "" while the page that has it is still loading.

    A click that submits a form returns before the next page is there: read it until it is."""
    try:
        return str(chrome.find_element(By.ID, element_id).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, DaemonEnv, SandboxServer]]:
    with running_site(tmp_path) as site:
        yield site.url, site.env, site.sandbox


def history_rows(chrome: webdriver.Chrome) -> int:
    return len(chrome.find_elements(By.CSS_SELECTOR, "#history tr.fire"))


def test_the_dashboard_in_a_real_browser(
    chrome: webdriver.Chrome, served: tuple[str, DaemonEnv, SandboxServer]
) -> None:
    url, env, _sandbox = served
    chrome.get(url + "/")
    rows = {
        row.get_attribute("data-job"): row.text
        for row in chrome.find_elements(By.CSS_SELECTOR, "table.jobs tbody tr[data-job]")
    }
    assert "At 09:00, only on Monday" in rows["weekly-client-review"]
    assert "At 08:00, Monday through Friday" in rows["daily-approvals-follow-up"]
    assert "Every 3 seconds" in rows[EVERY_3S]

    # The XSS title is shown as text and never runs (autoescape; and the CSP).
    assert XSS in rows["xss"]
    assert chrome.execute_script("return window.pwned === undefined") is True
    assert not chrome.find_elements(By.CSS_SELECTOR, "table.jobs img")

    # Open the 6-field job and watch a new fire appear in its history.
    chrome.find_element(By.LINK_TEXT, EVERY_3S).click()
    wait_for(lambda: chrome.find_elements(By.ID, "history"), timeout=10)
    assert chrome.find_element(By.TAG_NAME, "h1").text == EVERY_3S
    before = history_rows(chrome)

    def grew() -> bool:
        chrome.refresh()
        return history_rows(chrome) > before

    wait_for(grew, timeout=30, interval=1)
    assert "succeeded" in chrome.find_element(By.ID, "history").text

    # Sign in with the admin token and pause it; the CLI sees the state.
    chrome.find_element(By.LINK_TEXT, "Sign in").click()
    wait_for(lambda: chrome.find_elements(By.ID, "token"), timeout=10)
    chrome.find_element(By.ID, "token").send_keys(ADMIN)
    chrome.find_element(By.ID, "signin").click()
    wait_for(lambda: chrome.find_elements(By.ID, "pause"), timeout=10)
    chrome.find_element(By.ID, "pause").click()
    wait_for(lambda: "paused by a person" in text_of(chrome, "state"), timeout=10)
    listed = json.loads(env.cli("jobs", "list", "--json").stdout)
    assert {j["id"]: j["enabled"] for j in listed["jobs"]}[EVERY_3S] is False

    # The injected 422 is an open incident, on top of every page and on /incidents.
    def incident_shown() -> bool:
        chrome.get(url + "/incidents")
        rows = chrome.find_elements(By.CSS_SELECTOR, "#incidents tbody tr.open")
        return any(REFUSED in r.text for r in rows) and bool(chrome.find_elements(By.ID, "alarms"))

    wait_for(incident_shown, timeout=40, interval=1)
    # Its `failed` incident (a catch-up at start may also have recorded a one-off `skipped`
    # incident for the job, cleared at once).
    kinds = {
        (cells[1].text, cells[0].text)
        for r in chrome.find_elements(By.CSS_SELECTOR, "#incidents tbody tr")
        if REFUSED in r.text
        for cells in [r.find_elements(By.TAG_NAME, "td")]
    }
    assert ("failed", "open") in kinds, kinds
    chrome.get(url + f"/jobs/{REFUSED}")
    assert "HTTP 422" in chrome.find_element(By.ID, "history").text
    assert "open incident" in chrome.find_element(By.ID, "alarms").text
