"""Process plumbing shared by the services: logging, the uvloop event loop, MQTT options."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

from services.core.settings import Settings

T = TypeVar("T")


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def run_async(main: Coroutine[Any, Any, T], log_level: str = "INFO") -> T:
    """Run a service's main coroutine on uvloop (faster sockets and timers than asyncio's)."""
    setup_logging(log_level)
    return uvloop.run(main)


def mqtt_client_kwargs(settings: Settings, client_id: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `aiomqtt.Client` from the MQTT settings section."""
    m = settings.mqtt
    kwargs: dict[str, Any] = {
        "hostname": m.host,
        "port": m.port,
        "identifier": client_id,
        "keepalive": m.keepalive_s,
        "username": m.username,
        "password": m.password.get_secret_value() if m.password else None,
    }
    if m.tls:
        ctx = ssl.create_default_context(cafile=m.ca_file)
        if m.cert_file:
            ctx.load_cert_chain(m.cert_file, m.key_file)
        kwargs["tls_context"] = ctx
    kwargs.update(extra)
    return kwargs


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
