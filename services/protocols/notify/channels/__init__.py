"""The notification channels: one module per channel, each with a strict pydantic config
model and `send(config, notice, language, client, *, tz=None, publish=None) -> Outcome`.

`client` is the notify service's shared HTTP client (`services.protocols.notify.http`: the
HTTP channels use it, the e-mail and MQTT channels do not); `tz` is the route's plant time
zone for the texts (UTC when None); `publish` is the service's MQTT publisher, used by the
mqtt channel only. A channel never raises for what a receiver does: every answer, refusal
and network error becomes an `Outcome` with its retry classification. `CHANNELS` maps the
type name stored with a channel's configuration to its model and sender; `parse_config`
validates a stored configuration and names the offending key when it is wrong.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo

from services.protocols.notify.channels import dingtalk, email, feishu, mqtt, webhook, wecom
from services.protocols.notify.channels.base import ChannelConfig, Publish
from services.protocols.notify.http import Client
from services.protocols.notify.message import AlarmNotice, Language, Outcome


class Send(Protocol):
    def __call__(
        self,
        config: Any,
        notice: AlarmNotice,
        language: Language,
        client: Client,
        *,
        tz: ZoneInfo | None = None,
        publish: Publish | None = None,
    ) -> Awaitable[Outcome]: ...


@dataclass(frozen=True, slots=True)
class ChannelType:
    name: str
    config: type[ChannelConfig]
    send: Send
    # Fields holding secrets: written by administrators, never returned by the API.
    secrets: tuple[str, ...]


CHANNELS: Final[Mapping[str, ChannelType]] = {
    "email": ChannelType("email", email.EmailConfig, email.send, ("password",)),
    "webhook": ChannelType("webhook", webhook.WebhookConfig, webhook.send, ("secret",)),
    "wecom": ChannelType("wecom", wecom.WeComConfig, wecom.send, ("key",)),
    "dingtalk": ChannelType(
        "dingtalk", dingtalk.DingTalkConfig, dingtalk.send, ("access_token", "secret")
    ),
    "feishu": ChannelType("feishu", feishu.FeishuConfig, feishu.send, ("hook_id", "secret")),
    "mqtt": ChannelType("mqtt", mqtt.MqttConfig, mqtt.send, ()),
}


def parse_config(channel_type: str, data: Mapping[str, Any]) -> ChannelConfig:
    """The validated config of a channel of `channel_type`; ValueError for an unknown type,
    pydantic's ValidationError (naming each bad key) for a bad config."""
    try:
        entry = CHANNELS[channel_type]
    except KeyError:
        raise ValueError(
            f"unknown channel type {channel_type!r}; known: {', '.join(CHANNELS)}"
        ) from None
    return entry.config.model_validate(dict(data))


__all__ = ["CHANNELS", "ChannelConfig", "ChannelType", "Publish", "Send", "parse_config"]
