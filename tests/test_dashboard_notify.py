"""The notifications page and an alarm's notification history in real headless Chromium,
against the real stack (API, rules service, PostgreSQL) with the real notifier sending to a
real webhook receiver on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from f5gdev.dashboard.browser import sign_in
from services.notify.service import NotifyService
from tests.notify_support import SECRET, Receiver, connect, open_alarm
from tests.test_dashboard import Console, browser  # noqa: F401
from tests.test_dashboard_support import Stack, stack_fixture  # noqa: F401
from tests.test_notify import FAST

N = "/api/v1/notify"


@pytest.fixture(scope="module")
def notifier_and_receiver(stack: Stack) -> Iterator[Receiver]:
    """A webhook receiver and the notifier, on the stack's event loop."""
    rx = Receiver()
    stack.loop.run(rx.start())
    settings = stack.settings.model_copy(
        update={"notify": stack.settings.notify.model_copy(update=FAST)}
    )
    service = NotifyService(settings)
    stop = asyncio.Event()

    async def start() -> asyncio.Task[None]:
        return asyncio.create_task(service.run(stop))

    task = stack.loop.run(start())
    try:
        yield rx
    finally:

        async def shutdown() -> None:
            stop.set()
            await asyncio.wait_for(task, 60)
            await rx.stop()

        stack.loop.run(shutdown())


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    p = ctx.new_page()
    p.console = Console(p)
    yield p
    ctx.close()


def test_notifications_page_sends_a_test_and_alarm_page_shows_deliveries(
    stack: Stack, page: Any, notifier_and_receiver: Receiver
) -> None:
    rx = notifier_and_receiver
    admin = {"Authorization": f"Bearer {stack.keys.admin}"}
    with httpx.Client(base_url=stack.url, headers=admin) as c:
        channel = c.post(
            f"{N}/channels",
            json={
                "project_id": "p1",
                "name": "ops-hook",
                "type": "webhook",
                "config": {"url": rx.url, "secret": SECRET, "allow_insecure_http": True},
            },
        ).json()
        route = c.post(
            f"{N}/routes",
            json={"project_id": "p1", "name": "ops", "channel_id": channel["id"]},
        ).json()
    sign_in(page, stack.url, stack.keys.admin)
    page.goto(f"{stack.url}/#/notify")
    page.wait_for_selector(f"#notify-channels tr[data-channel-id='{channel['id']}']")
    assert SECRET not in page.content()
    page.wait_for_selector(f"#notify-routes tr[data-route-id='{route['id']}']")
    # A locator survives a redraw of the row between finding and clicking it.
    page.locator(f"#notify-routes tr[data-route-id='{route['id']}'] button.send-test").click()
    page.wait_for_selector(
        f"#notify-routes tr[data-route-id='{route['id']}'] .test-result[data-state='sent']",
        timeout=30000,
    )
    assert [b["kind"] for b in rx.bodies] == ["test"]

    # An alarm of p1: its page lists the notification the notifier sent for it.
    async def make_alarm() -> int:
        conn = await connect(stack.db_url)
        try:
            return await open_alarm(conn, "p1", "agv-notify-1")
        finally:
            await conn.close()

    alarm = stack.loop.run(make_alarm())
    page.goto(f"{stack.url}/#/a/{alarm}")
    page.wait_for_selector("#alarm-history tr")
    page.wait_for_selector("#alarm-deliveries tr[data-state='sent']", timeout=30000)
    assert "opened" in page.inner_text("#alarm-deliveries")

    # In Chinese, and the page still has no console errors.
    page.click("#lang")
    page.wait_for_selector("#alarm-deliveries tr[data-state='sent']")
    assert "已送达" in page.inner_text("#alarm-deliveries")
    page.goto(f"{stack.url}/#/notify")
    page.wait_for_selector("text=发送测试")
    assert page.console.errors == []


def test_notifications_page_needs_an_admin_key(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.operate_p1)
    page.goto(f"{stack.url}/#/notify")
    page.wait_for_selector("text=Only an admin key may see the notification settings")
    assert page.query_selector("#nav-notify") is None
