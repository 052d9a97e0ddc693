"""The report in a real browser: Playwright driving the system Chromium (Debian's package).

Every section's heading renders, the charts have a size, a story's `<script>` stays
text, and opening the page makes no request but for the file itself. Playwright's own
browser download is not used: `.ci/run` installs Debian's `chromium` when it is missing.
"""

import os
from pathlib import Path

import pytest

from components.report.config import ReportConfig
from components.report.page import SECTIONS
from components.report.stage import run_report
from tests import report_fixtures as fx

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)


def test_report_in_chromium(tmp_path):
    if CHROMIUM is None:
        reason = "no Chromium at /usr/bin/chromium or /usr/bin/chromium-browser; install it with: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(reason + " (.ci/run installs it)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    result = run_report(fx.build(tmp_path / "evaluations"), tmp_path / "out", ReportConfig())
    url = Path(result["html"]).resolve().as_uri()
    outside, dialogs = [], []

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:  # recorded and refused: the test never reaches the network
            outside.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        # Root (as in CI) needs --no-sandbox; containers often have a small /dev/shm.
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(15_000)
            page.route("**/*", route)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="load")
            for key, title in SECTIONS:
                heading = page.locator(f"section#{key} > h2")
                assert heading.inner_text() == title and heading.is_visible(), key
            charts = page.locator("figure.chart svg")
            assert charts.count() == 7
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box and box["width"] > 100 and box["height"] > 100, (i, box)
            # The evil story is text in the page, not markup; opening its list runs nothing.
            page.locator("summary", has_text="All 6 stories of smollm2-135m level 2").click()
            assert page.get_by_text("It ended <script>alert('boo')</script>").first.is_visible()
            assert page.evaluate("document.scripts.length") == 0 and dialogs == []
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            made = list(outside)
            # The net is live: a request the page does not make would have been caught.
            page.evaluate("fetch('https://example.invalid/probe').catch(() => null)")
            page.wait_for_timeout(200)
        finally:
            browser.close()
    assert made == [], f"the report fetched {made}"
    assert outside == ["https://example.invalid/probe"]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 100_000
