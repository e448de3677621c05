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

from services.core.mqtt import ConnectOptions, Endpoint, Will
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


def mqtt_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS (verifying the broker against `ca_file`) and mTLS (`cert_file`) when enabled."""
    m = settings.mqtt
    if not m.tls:
        return None
    ctx = ssl.create_default_context(cafile=m.ca_file)
    if m.cert_file:
        ctx.load_cert_chain(m.cert_file, m.key_file)
    return ctx


def mqtt_client_kwargs(settings: Settings, client_id: str, **extra: Any) -> dict[str, Any]:
    """Keyword arguments for `aiomqtt.Client` from the MQTT settings section (simulator)."""
    m = settings.mqtt
    kwargs: dict[str, Any] = {
        "hostname": m.host,
        "port": m.port,
        "identifier": client_id,
        "keepalive": m.keepalive_s,
        "username": m.username,
        "password": m.password.get_secret_value() if m.password else None,
    }
    ctx = mqtt_tls_context(settings)
    if ctx is not None:
        kwargs["tls_context"] = ctx
    kwargs.update(extra)
    return kwargs


def mqtt_endpoint(settings: Settings, connect_timeout_s: float = 10.0) -> Endpoint:
    """Where and how the services' MQTT session (`services.core.mqtt`) connects."""
    m = settings.mqtt
    return Endpoint(m.host, m.port, mqtt_tls_context(settings), connect_timeout_s)


def mqtt_connect_options(
    settings: Settings,
    client_id: str,
    *,
    clean_start: bool,
    session_expiry_s: int = 0,
    receive_maximum: int = 65535,
    will: Will | None = None,
) -> ConnectOptions:
    """CONNECT of the services' MQTT session: identity and credentials from the settings."""
    m = settings.mqtt
    return ConnectOptions(
        client_id=client_id,
        keepalive_s=m.keepalive_s,
        clean_start=clean_start,
        session_expiry_s=session_expiry_s,
        receive_maximum=receive_maximum,
        username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        will=will,
    )


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
