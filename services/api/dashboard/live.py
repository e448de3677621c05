"""`GET /api/v1/live`: server-sent events for the dashboard, filtered by the key's projects.

Events: `hello` (once, with whether the alarm feed is live), `alarm` (every alarm
transition the rules service publishes, as on the MQTT topic, plus `rule_name`; its
`message` in the reader's language when `lang` or Accept-Language asks for one),
`record` (with `device`: that device's messages as it publishes them), `status` (the
broker went away or came back) and `tick` every few seconds, telling pages to refresh what
ingest has written since. The key travels in a header (the page reads the stream with
fetch), never in the URL, so it stays out of access logs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from services.api.auth.guard import Reader
from services.api.dashboard.hub import AlarmHub
from services.api.errors import invalid, not_found
from services.api.texts import Lang
from services.core.contracts import ID_PATTERN, is_valid_id

router = APIRouter(prefix="/api/v1", tags=["dashboard"])
TICK_S = 5.0
HELLO_WAIT_S = 2.0
EVENTS = ("hello", "alarm", "record", "status", "tick")
# One event of the stream, as OpenAPI 3.1 describes server-sent events: `data` is JSON.
EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": list(EVENTS)},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get(
    "/live",
    summary="Live alarm transitions, device records and refresh ticks (text/event-stream).",
    description="Server-sent events (see docs/dashboard.md): `hello`, `alarm`, `record`, "
    "`status` and `tick`. The server ends the stream after `api.live_max_s` seconds; clients "
    "reconnect.",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An event stream.",
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
        }
    },
)
async def live(
    request: Request,
    key: Reader,
    reading: Lang,
    project: Annotated[
        str | None, Query(max_length=64, description="Only this project's events.")
    ] = None,
    device: Annotated[
        str | None, Query(max_length=64, description="Also this device's records (needs project).")
    ] = None,
) -> StreamingResponse:
    # Both end up in an MQTT topic filter: `#`, `+` or `$share` there would watch (or break)
    # far more than one device, so only the id grammar of the device contract gets through.
    for name, value in (("project", project), ("device", device)):
        if value is not None and not is_valid_id(value):
            raise invalid(f"{name} must match {ID_PATTERN}")
    if project is not None and not key.sees(project):
        raise not_found(f"project {project!r}")
    if device is not None and project is None:
        raise invalid("device needs project")
    projects = frozenset([project]) if project is not None else key.projects
    hub: AlarmHub = request.app.state.alarm_hub
    watcher = hub.watch(projects, None if device is None else (str(project), device))

    ends = asyncio.get_running_loop().time() + request.app.state.settings.api.live_max_s

    async def stream() -> AsyncIterator[bytes]:
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.connected.wait(), HELLO_WAIT_S)
                if watcher.device is not None:
                    await asyncio.wait_for(hub.subscribed(watcher.device), HELLO_WAIT_S)
            yield frame("hello", {"live": hub.connected.is_set(), "tick_s": TICK_S})
            loop = asyncio.get_running_loop()
            # Ticks keep their own clock: a steady flow of events must not hold them back,
            # or pages that refresh on them (the floor map) would freeze while alarms flow.
            next_tick = loop.time() + TICK_S
            while (left := ends - loop.time()) > 0:
                if loop.time() >= next_tick:
                    next_tick = loop.time() + TICK_S
                    yield frame("tick", {})
                    continue
                wait = min(next_tick - loop.time(), left)
                try:
                    event, data = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    continue
                if event == "alarm":  # shared by every watcher: rendered into a copy
                    data = reading.alarm(data)
                yield frame(event, data)
        finally:
            hub.leave(watcher)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
