"""Headless Chromium for the dashboard: screenshots for the README, and the browser tests.

The machines have no internet, so the browser is Debian's `chromium` (never Playwright's
own download) and it is started with everything that phones home switched off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM: Final = os.environ.get("F5G_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROJECT_CHARTS: Final = ("defect_rate", "throughput", "agv_states", "battery", "latency", "rsrp")
WAIT_MS: Final = 20_000
_FIRST_DEVICE: Final = """async (p) => {
  const r = await fetch(`/api/v1/devices?project=${encodeURIComponent(p)}&limit=1`,
    {headers: {Authorization: `Bearer ${localStorage.getItem('f5g.key')}`}});
  return r.ok ? ((await r.json()).items[0] || {}).device_id || null : null;
}"""


def launch(pw: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise FileNotFoundError(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def sign_in(page: Page, url: str, key: str, lang: str = "en") -> None:
    """Open the dashboard with a key, in a language, and wait for the portfolio."""
    page.add_init_script(f"localStorage.setItem('f5g.lang', {lang!r})")
    page.goto(url.rstrip("/") + "/#/")
    page.fill("#key", key)
    page.click("#signin")
    page.wait_for_selector("body[data-page=portfolio] .project-card", timeout=WAIT_MS)


def wait_charts(page: Page, names: tuple[str, ...] | list[str]) -> None:
    """Wait until each named chart has drawn at least one point."""
    for name in names:
        page.wait_for_selector(
            f'[data-chart="{name}"][data-points]:not([data-points="0"]) canvas', timeout=WAIT_MS
        )


def take_screenshots(
    url: str,
    key: str,
    out: Path,
    project: str | None = None,
    device: str | None = None,
    lang: str = "en",
    size: tuple[int, int] = (1920, 1080),
) -> list[Path]:
    """Portfolio, project and device page as PNGs, in a browser of its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            return screenshot_pages(browser, url, key, out, project, device, lang, size)
        finally:
            browser.close()


def screenshot_pages(
    browser: Browser,
    url: str,
    key: str,
    out: Path,
    project: str | None = None,
    device: str | None = None,
    lang: str = "en",
    size: tuple[int, int] = (1920, 1080),
) -> list[Path]:
    """The first project, and a device from its alarm feed, unless given."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"dashboard-{n}.png" for n in ("portfolio", "project", "device")]
    base = url.rstrip("/")
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    try:
        page = context.new_page()
        sign_in(page, url, key, lang)
        wait_charts(page, ["devices"])
        page.screenshot(path=str(paths[0]), full_page=True)
        project = project or page.locator(".project-card").first.get_attribute("data-project")
        page.goto(f"{base}/#/p/{project}")
        wait_charts(page, PROJECT_CHARTS)
        page.screenshot(path=str(paths[1]), full_page=True)
        if device is None:
            link = page.locator("#alarm-feed a").first
            href = link.get_attribute("href") if link.count() else None
            device = href.rsplit("/", 1)[-1] if href else None
        if device is None:  # else the project's first device
            device = page.evaluate(_FIRST_DEVICE, project)
        if not device:
            raise LookupError("no device to show: pass --device")
        page.goto(f"{base}/#/p/{project}/d/{device}")
        page.wait_for_selector(
            '.device-page [data-points]:not([data-points="0"]) canvas', timeout=WAIT_MS
        )
        page.screenshot(path=str(paths[2]), full_page=True)
    finally:
        context.close()
    return paths
