"""WeCom (企业微信) group robot: a markdown message to the robot's webhook.

Vendor documentation, "群机器人配置说明":
https://developer.work.weixin.qq.com/document/path/91770

    POST https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=<robot key>
    {"msgtype": "markdown", "markdown": {"content": "<markdown, at most 4096 bytes UTF-8>"}}
    answer {"errcode": 0, "errmsg": "ok"}

A robot may send 20 messages a minute; beyond that WeCom answers errcode 45009 ("api freq
out of limit"), which is retried later, as is -1 ("system busy"). An invalid or deleted
robot key (93000 "invalid webhook url") and every other code are configuration errors: not
retried. The key is the robot's whole credential, so it is a secret.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote
from zoneinfo import ZoneInfo

import orjson
from pydantic import Field, SecretStr, model_validator

from services.protocols.notify.channels.base import (
    HttpChannelConfig,
    Publish,
    check_url,
    post,
    vendor_outcome,
)
from services.protocols.notify.http import Client
from services.protocols.notify.message import AlarmNotice, Language, Outcome
from services.protocols.notify.templates import md_escape, render, truncate_utf8

DEFAULT_BASE_URL: Final = "https://qyapi.weixin.qq.com"
PATH: Final = "/cgi-bin/webhook/send"
MARKDOWN_MAX_BYTES: Final = 4096
RETRYABLE: Final = frozenset({-1, 45009})
# Colours of WeCom's markdown <font> tag: info = green, comment = grey, warning = orange.
_COLOUR: Final = {"critical": "warning", "major": "warning", "cleared": "info"}


class WeComConfig(HttpChannelConfig):
    key: SecretStr = Field(min_length=1, description="The robot's webhook key (`key=` in its URL).")
    base_url: str = Field(DEFAULT_BASE_URL, description="WeCom's API host.")

    @model_validator(mode="after")
    def _url(self) -> WeComConfig:
        check_url(self.base_url, self.allow_insecure_http, "base_url")
        return self


def markdown(notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None) -> str:
    """The message content: a coloured title line, then the fields; at most 4096 bytes."""
    rendered = render(notice, language, tz)
    colour = _COLOUR.get("cleared" if notice.kind == "cleared" else notice.severity, "comment")
    head = f'### <font color="{colour}">{md_escape(rendered.title)}</font>\n'
    return truncate_utf8(head + rendered.markdown, MARKDOWN_MAX_BYTES)


async def send(
    config: WeComConfig,
    notice: AlarmNotice,
    language: Language,
    client: Client,
    *,
    tz: ZoneInfo | None = None,
    publish: Publish | None = None,
) -> Outcome:
    url = f"{config.base_url}{PATH}?key={quote(config.key.get_secret_value(), safe='')}"
    body = orjson.dumps(
        {"msgtype": "markdown", "markdown": {"content": markdown(notice, language, tz)}}
    )
    response = await post(client, url, body, {}, config.timeout_s)
    if isinstance(response, Outcome):
        return response
    return vendor_outcome(response, "errcode", RETRYABLE)
