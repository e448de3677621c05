"""The project page's report buttons in real headless Chromium against the real stack: the
HTML report opens in a new tab, styled (its one inline stylesheet is allowed by hash by the
dashboard's content security policy, which the blob page inherits) and without a console
error, in the dashboard's language; the CSV downloads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from f5gdev.dashboard.browser import CHROMIUM, WAIT_MS, launch, sign_in
from services.api.app import make_engine
from services.api.report import ledger
from tests.test_dashboard import Console
from tests.test_dashboard_support import Stack, browser_required, stack_fixture  # noqa: F401


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if browser_required():
            pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
        pytest.skip(f"{CHROMIUM} is missing (CI would fail): run scripts/install-browser.sh")
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def _build_ledger(stack: Stack) -> None:
    async def go() -> None:
        engine = make_engine(stack.settings)
        try:
            await ledger.catch_up(engine)
        finally:
            await engine.dispose()

    stack.loop.run(go())


@pytest.mark.parametrize(("lang", "title"), [("en", "Evidence report"), ("zh", "成效报告")])
def test_report_opens_styled_and_csv_downloads(
    stack: Stack, browser: Any, lang: str, title: str
) -> None:
    _build_ledger(stack)
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    try:
        page = ctx.new_page()
        console = Console(page)
        sign_in(page, stack.url, stack.keys.read_p1, lang=lang)
        page.goto(f"{stack.url}/#/p/p1")
        page.wait_for_selector(".report-open", timeout=WAIT_MS)
        with page.expect_popup(timeout=WAIT_MS) as popup_info:
            page.click(".report-open")
        report = popup_info.value
        report_console = Console(report)
        report.wait_for_selector(f"h1:has-text('{title}')", timeout=WAIT_MS)
        # The inline stylesheet applied: the section headings carry its blue rule.
        color = report.evaluate("getComputedStyle(document.querySelector('h2')).borderBottomColor")
        assert color == "rgb(21, 101, 192)"
        # Seeded devices count their records without gaps: every one complete.
        rows = report.locator("h2 ~ table tr").count()
        assert rows > 1
        with page.expect_download(timeout=WAIT_MS) as download_info:
            page.click(".report-csv")
        path = download_info.value.path()
        assert path is not None
        text = Path(path).read_text(encoding="utf-8")
        assert text.splitlines()[0] == "section,subject,measure,value"
        assert "completeness," in text
        assert download_info.value.suggested_filename.startswith("p1-report-")
        assert console.errors == []
        assert report_console.errors == []
    finally:
        ctx.close()
