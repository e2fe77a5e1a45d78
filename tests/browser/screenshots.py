"""`make screenshots`: PNGs of each dashboard page under docs/screenshots/, taken with the same
headless Chromium as the browser tests, from a real daemon against the sandbox (checked in;
CI never writes them).

    .venv/bin/python tests/browser/screenshots.py docs/screenshots
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # conftest's driver, the daemon helpers

from conftest import make_driver  # noqa: E402
from daemon.daemon_helpers import write_job  # noqa: E402
from dashboard_site import ADMIN, EVERY_3S, REFUSED, running_site  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch, running_site(Path(scratch)) as site:
        driver = make_driver(1360, 900)
        try:
            time.sleep(12)  # a few fires, a few failures, the incident opened
            for name, path in (("jobs", "/"), ("incidents", "/incidents")):
                driver.get(site.url + path)
                _save(driver, out / f"dashboard-{name}.png")
            driver.get(site.url + f"/signin?next=/jobs/{EVERY_3S}")
            driver.find_element(By.ID, "token").send_keys(ADMIN)
            driver.find_element(By.ID, "signin").click()
            _save(driver, out / "dashboard-job.png")
            driver.get(site.url + f"/jobs/{REFUSED}")
            _save(driver, out / "dashboard-job-failing.png")
            # Then 150 stand-ups at 09:00 on weekdays, more than the rate limit's 100 a
            # minute: the crowded minute /upcoming is for. (Its view reads the store alone.)
            crowd = Path(scratch) / "crowd"
            for n in range(150):
                write_job(crowd, f"standup-{n:03d}", "0 9 * * MON-FRI", description="Stand-up")
            done = site.env.cli("jobs", "apply", str(crowd))
            assert done.returncode == 0, done.stderr
            driver.get(site.url + "/upcoming")
            _save(driver, out / "dashboard-upcoming.png")
        finally:
            driver.quit()


def _save(driver: object, path: Path) -> None:
    # The whole page's height, so the screenshot shows more than the first screen (capped).
    height = driver.execute_script("return document.body.scrollHeight")  # type: ignore[attr-defined]
    driver.set_window_size(1360, min(max(int(height), 700), 1800))  # type: ignore[attr-defined]
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screenshots"))
