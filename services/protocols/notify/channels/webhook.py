"""Generic webhook: the notice as JSON, POSTed with an HMAC-SHA256 signature, a timestamp
against replay and an idempotency key, for ticketing systems and in-house receivers.

Request (JSON Schema: `services/protocols/notify/webhook-notice.schema.json`):

    POST <url>
    Content-Type: application/json; charset=utf-8
    X-Factory5g-Timestamp: <unix seconds>
    X-Factory5g-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    Idempotency-Key: <the notice's idempotency key (`header_key`: percent-encoded when
                     it holds "%" or anything but printable ASCII)>

The scheme is the one Stripe and GitHub made common: the timestamp is inside the signed
string, so a receiver that rejects timestamps older than five minutes (`verify`) cannot be
fed a recorded call again, and the key lets it drop the retries it already handled. 2xx is
delivered; 408/429/5xx and network errors are retried; any other answer is not.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.resources
import json
import time
from typing import Any, Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
from pydantic import Field, SecretStr, model_validator

from services.protocols.notify.channels.base import (
    HttpChannelConfig,
    Publish,
    check_url,
    http_retryable,
    post,
    short,
)
from services.protocols.notify.http import Client
from services.protocols.notify.message import AlarmNotice, Language, Outcome
from services.protocols.notify.templates import format_time, render, scrub, utf8

SCHEMA_VERSION: Final = 1
TIMESTAMP_HEADER: Final = "X-Factory5g-Timestamp"
SIGNATURE_HEADER: Final = "X-Factory5g-Signature"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
REPLAY_WINDOW_S: Final = 300


class WebhookConfig(HttpChannelConfig):
    url: str = Field(description="The receiver's URL (https://).")
    secret: SecretStr = Field(
        min_length=16, description="Shared HMAC key; the receiver verifies the signature with it."
    )

    @model_validator(mode="after")
    def _url(self) -> WebhookConfig:
        check_url(self.url, self.allow_insecure_http, "url")
        return self


@functools.cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the notice document (package data, also for receivers' docs)."""
    text = importlib.resources.files("services.protocols.notify").joinpath(
        "webhook-notice.schema.json"
    )
    data: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return data


def notice_document(
    notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None
) -> dict[str, Any]:
    """The JSON document of a notice (webhook body and MQTT payload): the data as stored,
    plus the rendered title and text so a receiver can show it as it is."""
    rendered = render(notice, language, tz)
    document = {
        "version": SCHEMA_VERSION,
        "idempotency_key": notice.idempotency_key,
        "kind": notice.kind,
        "language": language,
        "title": rendered.title,
        "text": rendered.text,
        "dashboard_url": rendered.link,
        "alarm": {
            "id": notice.alarm_id,
            "project": notice.project,
            "project_name": notice.project_name,
            "line": notice.line,
            "device": notice.device,
            "device_kind": notice.device_kind,
            "rule": notice.rule,
            "rule_type": notice.rule_type,
            "severity": notice.severity,
            "state": notice.state,
            "message": notice.message,
            "value": notice.value,
            "unit": notice.unit,
            "count": notice.count,
            "at": notice.at.isoformat(),
            "at_local": format_time(notice.at, tz),
            "opened_at": notice.opened_at.isoformat() if notice.opened_at else None,
            "actor": notice.actor,
            "escalation_level": notice.escalation_level,
            "evidence": notice.evidence,
        },
    }
    # Device data as it came, except what no JSON encoder can write (lone surrogates).
    result: dict[str, Any] = scrub(document)
    return result


def encode_notice(notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None) -> bytes:
    # OPT_NON_STR_KEYS: evidence is free-form; a non-string key must not fail the delivery.
    return orjson.dumps(notice_document(notice, language, tz), option=orjson.OPT_NON_STR_KEYS)


_PRINTABLE_ASCII: Final = frozenset(chr(c) for c in range(0x20, 0x7F))


def header_key(key: str) -> str:
    """The idempotency key as a header value: as it is when printable ASCII without "%",
    else percent-encoded as UTF-8 (RFC 3986), so a key that embeds a device id in Chinese
    or a line break neither fails the request nor adds a header; `unquote` gives the
    body's `idempotency_key` back, and two keys never share a header value."""
    if "%" not in key and set(key) <= _PRINTABLE_ASCII:
        return key
    return quote(utf8(key), safe="".join(sorted(_PRINTABLE_ASCII - {"%"})))


def sign(secret: str | bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, f"{timestamp}.{body}")."""
    key = secret.encode() if isinstance(secret, str) else secret
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class VerificationError(ValueError):
    """Why a receiver must reject a call: missing or malformed headers, a stale or future
    timestamp (replay), or a signature that does not match."""


def verify(
    secret: str | bytes,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    window_s: int = REPLAY_WINDOW_S,
) -> None:
    """For receivers: raise VerificationError unless `signature` signs `timestamp` and the
    exact `body` bytes, and `timestamp` is within `window_s` of `now` (either side)."""
    if not timestamp or not signature:
        raise VerificationError("missing timestamp or signature header")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise VerificationError("timestamp is not unix seconds")
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > window_s:
        raise VerificationError(f"timestamp {age:.0f} s away from now (replay window {window_s} s)")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise VerificationError("signature does not match")


async def send(
    config: WebhookConfig,
    notice: AlarmNotice,
    language: Language,
    client: Client,
    *,
    tz: ZoneInfo | None = None,
    publish: Publish | None = None,
) -> Outcome:
    body = encode_notice(notice, language, tz)
    timestamp = str(int(time.time()))
    headers = {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(config.secret.get_secret_value(), timestamp, body),
        IDEMPOTENCY_HEADER: header_key(notice.idempotency_key),
    }
    response = await post(client, config.url, body, headers, config.timeout_s)
    if isinstance(response, Outcome):
        return response
    status = response.status
    ok = 200 <= status < 300
    return Outcome(ok, not ok and http_retryable(status), str(status), short(response.body))
