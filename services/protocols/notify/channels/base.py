"""What every channel shares: a strict config base, URL checks (https unless a named
opt-out), the HTTP round trip with its retry classification, and answer truncation.

Retry classification is the channel's to make because only the channel knows what its
receiver's answer means: a 5xx or a vendor's rate-limit code will pass if retried later, a
4xx or an invalid robot key will not, and the outbox gives up at once on those instead of
filling the history with hopeless attempts.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from services.protocols.notify.http import Client, HttpError, Response
from services.protocols.notify.message import Outcome
from services.protocols.notify.targets import TargetRefusedError

ANSWER_MAX: Final = 500
USER_AGENT: Final = "factory5g-notify/1"

# How the notify service lends its MQTT session to the mqtt channel: publish(topic, payload)
# at QoS 1, True once the broker acknowledged it with a success reason code.
Publish = Callable[[str, bytes], Awaitable[bool]]


class ChannelConfig(BaseModel):
    """Base of every channel's config: unknown keys are an error naming the key."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpChannelConfig(ChannelConfig):
    timeout_s: float = Field(10.0, gt=0, le=120, description="Connect + read timeout per call.")
    allow_insecure_http: bool = Field(
        False,
        description="Allow plain http:// URLs. Off by default: secrets and alarm contents "
        "would cross the network in clear. The local stack and tests set it for loopback.",
    )


def check_url(url: str, allow_insecure_http: bool, field: str) -> str:
    """`url` if it is an absolute https URL (http only with the opt-out), without user
    info or fragment; else a ValueError naming `field`."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{field} must be an absolute https:// URL, got {url!r}")
    if parts.scheme == "http" and not allow_insecure_http:
        raise ValueError(
            f"{field} uses http://, which sends the alarm and its secrets in clear; use "
            "https:// or set allow_insecure_http: true (loopback and tests only)"
        )
    if parts.username or parts.password or parts.fragment:
        raise ValueError(f"{field} must not contain user info or a fragment")
    return url.rstrip("/")


def short(text: str | bytes) -> str:
    """A receiver's answer as kept in the delivery history."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return text if len(text) <= ANSWER_MAX else text[: ANSWER_MAX - 1] + "…"


def http_retryable(status: int) -> bool:
    """429, 408 and 5xx pass with time; every other 4xx (and a 3xx: redirects are not
    followed, a moved robot URL is a configuration error) will not."""
    return status in (408, 425, 429) or status >= 500


async def post(
    client: Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> Response | Outcome:
    """POST `body`; the response, or a retryable Outcome when the receiver was not reached
    or did not answer in time."""
    try:
        return await client.post(
            url,
            body,
            {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT,
             **headers},
            timeout_s,
        )  # fmt: skip
    except TimeoutError:
        return Outcome(False, True, "timeout", "TimeoutError")
    except TargetRefusedError as exc:  # the address will not change by retrying
        return Outcome(False, False, "refused target", short(str(exc)))
    except HttpError as exc:
        return Outcome(False, True, "connect error", short(str(exc)))


def vendor_json(response: Response) -> dict[str, Any] | None:
    """The JSON object a vendor answered, or None when the answer is not one."""
    try:
        data = json.loads(response.body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def vendor_outcome(
    response: Response,
    code_key: str,
    retryable_codes: frozenset[int],
) -> Outcome:
    """Outcome of a chat vendor's answer: HTTP status first, then its JSON error code
    (`code_key`, 0 = sent); codes in `retryable_codes` (rate limits, "system busy") are
    retried, every other code is a configuration error that retrying will not fix."""
    answer = short(response.body)
    if not 200 <= response.status < 300:
        return Outcome(False, http_retryable(response.status), str(response.status),
                       answer)  # fmt: skip
    data = vendor_json(response)
    code = None if data is None else data.get(code_key)
    if data is not None and code is None and code_key == "code":
        code = data.get("StatusCode")  # Feishu's older answer shape
    if not isinstance(code, int):
        # 200 without the vendor's JSON: a proxy or captive portal in between; may pass.
        return Outcome(False, True, f"{response.status} unexpected answer", answer)
    status = f"{code_key}={code}"
    if code == 0:
        return Outcome(True, False, status, answer)
    return Outcome(False, code in retryable_codes, status, answer)
