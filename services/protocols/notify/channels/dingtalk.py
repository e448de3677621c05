"""DingTalk (钉钉) custom robot: a markdown message, optionally @-mentioning mobiles.

Vendor documentation, "自定义机器人接入" and "自定义机器人安全设置":
https://open.dingtalk.com/document/orgapp/custom-robot-access
https://open.dingtalk.com/document/robots/customize-robot-security-settings

    POST https://oapi.dingtalk.com/robot/send?access_token=<token>[&timestamp=<ms>&sign=<sign>]
    {"msgtype": "markdown",
     "markdown": {"title": "<shown in the notification list>", "text": "<markdown>"},
     "at": {"atMobiles": ["138..."], "isAtAll": false}}
    answer {"errcode": 0, "errmsg": "ok"}

Security settings (a robot has at least one):
- signed ("加签"): `timestamp` = now in milliseconds (DingTalk accepts one hour of skew),
  `sign` = urlEncode(base64(HmacSHA256(key=secret, msg=f"{timestamp}\\n{secret}"))), both
  as query parameters. The secret is the `SEC...` string of the robot's settings.
- keyword ("自定义关键词"): the message must contain one of the robot's keywords; set
  `keyword` and it is put in the title and the first line.
- IP allow-list: configured on DingTalk's side only.
@-mentions work only when the mobile number also appears in the text, so it is appended.

Rate limit: 20 messages a minute per robot; beyond that errcode 130101 ("send too fast")
and the robot is throttled for 10 minutes: retried later, as is -1 ("system busy"). A wrong
token (300001), a failed signature or keyword check (310000) and every other code are not.
Messages up to 20,000 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from typing import Any, Final
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from services.protocols.notify.channels.base import (
    HttpChannelConfig,
    Publish,
    check_url,
    post,
    vendor_outcome,
)
from services.protocols.notify.http import Client
from services.protocols.notify.message import AlarmNotice, Language, Outcome
from services.protocols.notify.templates import clean, md_escape, render, truncate_utf8

DEFAULT_BASE_URL: Final = "https://oapi.dingtalk.com"
PATH: Final = "/robot/send"
MESSAGE_MAX_BYTES: Final = 20000
RETRYABLE: Final = frozenset({-1, 130101})


class DingTalkConfig(HttpChannelConfig):
    access_token: SecretStr = Field(
        min_length=1, description="`access_token=` of the robot's webhook URL."
    )
    secret: SecretStr | None = Field(
        None, description="The robot's signing secret (`SEC...`) for the signed mode."
    )
    keyword: str | None = Field(
        None, max_length=64, description="One of the robot's keywords, for the keyword mode."
    )
    at_mobiles: list[str] = Field(default_factory=list, description="Mobiles to @-mention.")
    at_all: bool = Field(False, description="@-mention everyone in the group.")
    base_url: str = Field(DEFAULT_BASE_URL, description="DingTalk's API host.")

    @field_validator("at_mobiles")
    @classmethod
    def _mobiles(cls, value: list[str]) -> list[str]:
        for mobile in value:
            if not re.fullmatch(r"\+?[0-9-]{5,20}", mobile):
                raise ValueError(f"not a mobile number: {mobile!r}")
        return value

    @model_validator(mode="after")
    def _url(self) -> DingTalkConfig:
        check_url(self.base_url, self.allow_insecure_http, "base_url")
        if self.keyword is not None and clean(self.keyword) != self.keyword:
            raise ValueError("keyword must be one line without control characters")
        return self


def signature(secret: str, timestamp_ms: str) -> str:
    """DingTalk's `sign` query value, already URL-encoded as its documentation does."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return quote_plus(base64.b64encode(mac.digest()))


def message(
    config: DingTalkConfig, notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None
) -> dict[str, Any]:
    rendered = render(notice, language, tz)
    title = rendered.title if config.keyword is None else f"{config.keyword} {rendered.title}"
    head = f"### {md_escape(title)}\n\n"
    mentions = " ".join(f"@{m}" for m in config.at_mobiles)
    tail = f"\n\n{mentions}" if mentions else ""
    budget = MESSAGE_MAX_BYTES - len(head.encode()) - len(tail.encode()) - 1024
    text = head + truncate_utf8(rendered.markdown, budget) + tail
    return {
        "msgtype": "markdown",
        "markdown": {"title": truncate_utf8(title, 256), "text": text},
        "at": {"atMobiles": list(config.at_mobiles), "isAtAll": config.at_all},
    }


def url(config: DingTalkConfig, now_ms: int | None = None) -> str:
    token = quote(config.access_token.get_secret_value(), safe="")
    target = f"{config.base_url}{PATH}?access_token={token}"
    if config.secret is not None:
        timestamp = str(int(time.time() * 1000) if now_ms is None else now_ms)
        sign = signature(config.secret.get_secret_value(), timestamp)
        target += f"&timestamp={timestamp}&sign={sign}"
    return target


async def send(
    config: DingTalkConfig,
    notice: AlarmNotice,
    language: Language,
    client: Client,
    *,
    tz: ZoneInfo | None = None,
    publish: Publish | None = None,
) -> Outcome:
    body = orjson.dumps(message(config, notice, language, tz))
    response = await post(client, url(config), body, {}, config.timeout_s)
    if isinstance(response, Outcome):
        return response
    return vendor_outcome(response, "errcode", RETRYABLE)
