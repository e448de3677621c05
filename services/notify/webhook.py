"""Interim generic webhook sender: one JSON POST per notice.

Why here: the notify service needs a sender to be tested end to end before the channel
package (`services.protocols.notify.channels`) lands; `registry.py` points at this module
in one line, which is swapped for the channel package's webhook at merge.

The receiver de-duplicates on the `Idempotency-Key` header; `X-Factory5g-Signature` is
HMAC-SHA256 over `<timestamp>.<body>` with the channel's secret, when one is set.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import fields
from typing import Any

import orjson
from pydantic import BaseModel, Field, SecretStr

from services.notify.http import Client, HttpError
from services.protocols.notify.message import AlarmNotice, Language, Outcome


class WebhookConfig(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(pattern=r"^https?://", description="Where the JSON is POSTed.")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of the signature.")
    timeout_s: float = Field(10.0, gt=0, le=300)


_clients: dict[int, Client] = {}


def _client() -> Client:
    """One connection pool per event loop: a new client per send would open a connection
    per notice."""
    loop = id(asyncio.get_running_loop())
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = Client()
    return client


async def close() -> None:
    loop = id(asyncio.get_running_loop())
    client = _clients.pop(loop, None)
    if client is not None:
        await client.close()


def body(notice: AlarmNotice, language: Language) -> bytes:
    # Shallow: dataclasses.asdict deep-copies the evidence, a third of the sender's CPU.
    data: dict[str, Any] = {f.name: getattr(notice, f.name) for f in fields(notice)}
    data["language"] = language
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)


async def send(config: WebhookConfig, notice: AlarmNotice, language: Language) -> Outcome:
    payload = body(notice, language)
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": notice.idempotency_key,
        "X-Factory5g-Timestamp": ts,
    }
    if config.secret is not None:
        key = config.secret.get_secret_value().encode()
        mac = hmac.new(key, ts.encode() + b"." + payload, hashlib.sha256).hexdigest()
        headers["X-Factory5g-Signature"] = f"sha256={mac}"
    try:
        response = await _client().post(config.url, payload, headers, config.timeout_s)
    except TimeoutError:
        return Outcome(ok=False, retryable=True, status="timeout")
    except HttpError as exc:
        return Outcome(ok=False, retryable=True, status="connection failed", answer=str(exc)[:500])
    answer = response.text[:500]
    code = response.status
    if 200 <= code < 300:
        return Outcome(ok=True, retryable=False, status=str(code), answer=answer)
    # 408, 425, 429 and 5xx may pass; any other 4xx will not.
    retryable = code >= 500 or code in (408, 425, 429)
    return Outcome(ok=False, retryable=retryable, status=str(code), answer=answer)
