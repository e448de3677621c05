"""Feishu / Lark (飞书) custom bot: an interactive card (default) or a `post` rich text.

Vendor documentation, "自定义机器人使用指南":
https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot

    POST https://open.feishu.cn/open-apis/bot/v2/hook/<hook id>
    {"timestamp": "<unix seconds>", "sign": "<sign>",          (signature mode only)
     "msg_type": "interactive", "card": {...}}                 or
     "msg_type": "post", "content": {"post": {"zh_cn": {"title": ..., "content": [[...]]}}}
    answer {"code": 0, "msg": "success", "data": {}}

Signature mode ("签名校验"): sign = base64(HmacSHA256(key=f"{timestamp}\\n{secret}",
msg=b"")), the timestamp in seconds and within an hour of Feishu's clock; note the key is
the string to sign and the message is empty, the reverse of DingTalk. Keyword mode: set
`keyword` and it is put in the title. Lark (international) uses https://open.larksuite.com:
set `base_url`.

Rate limit: 100 requests a minute and 5 a second per bot; beyond that code 9499 ("Too Many
Request") or 11232 (frequency limited): retried later. A failed signature (19021), keyword
(19024), an invalid hook id (19001) and every other code are not. Request body up to 30 KB
(the card is cut to fit).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Final, Literal
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
from services.protocols.notify.templates import clean, render, truncate_utf8

DEFAULT_BASE_URL: Final = "https://open.feishu.cn"
PATH: Final = "/open-apis/bot/v2/hook/"
BODY_MAX_BYTES: Final = 30000
RETRYABLE: Final = frozenset({9499, 11232})
_TEMPLATE: Final = {"critical": "red", "major": "orange", "warning": "yellow", "minor": "yellow"}


class FeishuConfig(HttpChannelConfig):
    hook_id: SecretStr = Field(min_length=1, description="The last part of the bot's webhook URL.")
    secret: SecretStr | None = Field(None, description="The bot's signing secret (signature mode).")
    keyword: str | None = Field(None, max_length=64, description="A keyword of the bot.")
    msg_type: Literal["interactive", "post"] = Field(
        "interactive", description="A message card, or a `post` rich text."
    )
    base_url: str = Field(DEFAULT_BASE_URL, description="Feishu's (or Lark's) API host.")

    @model_validator(mode="after")
    def _url(self) -> FeishuConfig:
        check_url(self.base_url, self.allow_insecure_http, "base_url")
        if self.keyword is not None and clean(self.keyword) != self.keyword:
            raise ValueError("keyword must be one line without control characters")
        return self


def signature(secret: str, timestamp_s: str) -> str:
    """Feishu's `sign`: the HMAC key is f"{timestamp}\\n{secret}", the message empty."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def content(
    config: FeishuConfig, notice: AlarmNotice, language: Language, tz: ZoneInfo | None = None
) -> dict[str, Any]:
    """`msg_type` plus `card` or `content`, sized to leave room for the signature."""
    rendered = render(notice, language, tz)
    title = rendered.title if config.keyword is None else f"{config.keyword} {rendered.title}"
    title = truncate_utf8(title, 512)
    budget = BODY_MAX_BYTES - 2048
    if config.msg_type == "post":
        rows: list[list[dict[str, str]]] = [
            [{"tag": "text", "text": truncate_utf8(f"{k}: {v}", 2048)}] for k, v in rendered.fields
        ]
        if rendered.link:
            rows.append([{"tag": "a", "text": rendered.link_label, "href": rendered.link}])
        while len(orjson.dumps(rows)) > budget and len(rows) > 1:
            rows.pop(len(rows) // 2)
        locale = "zh_cn" if language == "zh" else "en_us"
        post_body = {locale: {"title": title, "content": rows}}
        return {"msg_type": "post", "content": {"post": post_body}}
    colour = "green" if notice.kind == "cleared" else _TEMPLATE.get(notice.severity, "blue")
    elements: list[dict[str, Any]] = [
        {"tag": "markdown", "content": truncate_utf8(rendered.markdown, budget)}
    ]
    return {
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": title}, "template": colour},
            "elements": elements,
        },
    }


async def send(
    config: FeishuConfig,
    notice: AlarmNotice,
    language: Language,
    client: Client,
    *,
    tz: ZoneInfo | None = None,
    publish: Publish | None = None,
) -> Outcome:
    payload: dict[str, Any] = {}
    if config.secret is not None:
        timestamp = str(int(time.time()))
        payload["timestamp"] = timestamp
        payload["sign"] = signature(config.secret.get_secret_value(), timestamp)
    payload.update(content(config, notice, language, tz))
    target = f"{config.base_url}{PATH}{quote(config.hook_id.get_secret_value(), safe='')}"
    response = await post(client, target, orjson.dumps(payload), {}, config.timeout_s)
    if isinstance(response, Outcome):
        return response
    return vendor_outcome(response, "code", RETRYABLE)
