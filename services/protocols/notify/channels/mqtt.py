"""MQTT: the notice's JSON document (the webhook body, same schema) published at QoS 1 to a
configured topic, for plant systems that already listen to the broker.

The channel holds no MQTT session: the notify service passes `publish(topic, payload)`,
which returns True once the broker acknowledged with a success reason code. A refusal
(False) or a lost connection is retried; a missing publisher is a wiring error.
"""

from __future__ import annotations

from typing import Final
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from services.protocols.notify.channels.base import ChannelConfig, Publish, short
from services.protocols.notify.channels.webhook import encode_notice
from services.protocols.notify.http import Client
from services.protocols.notify.message import AlarmNotice, Language, Outcome

TOPIC_MAX: Final = 1024


class MqttConfig(ChannelConfig):
    topic: str = Field(min_length=1, max_length=TOPIC_MAX, description="Topic to publish to.")

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        # MQTT 5 4.7: no wildcards in a PUBLISH topic, no NUL; `$` topics are the broker's.
        if any(c in value for c in "+#\x00") or value.startswith("$"):
            raise ValueError(f"not a topic one can publish to: {value!r}")
        return value


async def send(
    config: MqttConfig,
    notice: AlarmNotice,
    language: Language,
    client: Client | None = None,
    *,
    tz: ZoneInfo | None = None,
    publish: Publish | None = None,
) -> Outcome:
    if publish is None:
        return Outcome(False, False, "no publisher", "the mqtt channel needs a publish function")
    try:
        acknowledged = await publish(config.topic, encode_notice(notice, language, tz))
    except Exception as exc:  # whatever the lent session raises, a later try may pass
        return Outcome(False, True, "publish error", short(f"{type(exc).__name__}: {exc}"))
    if not acknowledged:
        return Outcome(False, True, "puback refused", "the broker did not accept the message")
    return Outcome(True, False, "puback", config.topic)
