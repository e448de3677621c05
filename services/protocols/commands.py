"""Commands as MQTT messages: topics, the command and reply payloads, the announcements.

What the API (which queues commands) and the commander (which sends them and records what
comes back) must say identically lives here, beside the alarm topics.

- A native device receives `{root}/{project}/{kind}/{device}/cmd/{name}` (QoS 1, never
  retained) with the MQTT v5 response topic `{root}/{project}/{kind}/{device}/reply`, the
  command id as correlation data and a message expiry up to the deadline. Its account may
  already read its own `cmd/#` and publish under its own subtree; `reply` is a reserved
  word, so no stream or device can be named so, and ingest ignores that level.
- Every lifecycle transition is announced on
  `{root}/{project}/commands/{kind}/{device}/{command_id}`: five levels after the project,
  so no device-stream subscription (`{root}/+/+/+/+`) can mistake one for a record, and
  `commands` is a reserved id, so no device subtree overlaps it.
- The payloads are JSON Schema contracts (`services/core/schemas/command*.schema.json`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import orjson

from services.core.contracts import ContractError, Reason
from services.protocols.alarms import iso

COMMAND_LEVEL: Final = "commands"
CMD_LEVEL: Final = "cmd"
REPLY_LEVEL: Final = "reply"
# Lifecycle: queued -> sent -> accepted | rejected -> completed | failed; or expired.
STATES: Final = ("queued", "sent", "accepted", "rejected", "completed", "failed", "expired")
OPEN_STATES: Final = ("queued", "sent", "accepted")
FINAL_STATES: Final = ("rejected", "completed", "failed", "expired")
# What a reply may move a command to, from each state a reply may find it in. `queued`:
# the device answered a message whose PUBACK the commander never saw (the connection
# dropped); the answer proves delivery, and the command is not sent again.
REPLY_FROM: Final[dict[str, tuple[str, ...]]] = {
    "accepted": ("queued", "sent"),
    "rejected": ("queued", "sent"),
    "completed": ("queued", "sent", "accepted"),
    "failed": ("queued", "sent", "accepted"),
}
MESSAGE_MAX: Final = 1000
PROTOCOLS: Final = ("native", "vda5050", "sparkplug")


def command_topic(root: str, project: str, kind: str, device: str, name: str) -> str:
    return f"{root}/{project}/{kind}/{device}/{CMD_LEVEL}/{name}"


def reply_topic(root: str, project: str, kind: str, device: str) -> str:
    return f"{root}/{project}/{kind}/{device}/{REPLY_LEVEL}"


def reply_filter(root: str) -> str:
    return f"{root}/+/+/+/{REPLY_LEVEL}"


def parse_reply_topic(root: str, topic: str) -> tuple[str, str, str] | None:
    """(project, kind, device) of a reply topic, None for any other topic."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 4 or parts[3] != REPLY_LEVEL:
        return None
    return parts[0], parts[1], parts[2]


def announce_topic(root: str, project: str, kind: str, device: str, command_id: str) -> str:
    return f"{root}/{project}/{COMMAND_LEVEL}/{kind}/{device}/{command_id}"


def announce_filter(root: str, project: str = "+") -> str:
    return f"{root}/{project}/{COMMAND_LEVEL}/+/+/+"


def command_payload(
    command_id: str, name: str, params: dict[str, Any], deadline: datetime, reply_to: str
) -> bytes:
    """The message a native device receives (schema `command.schema.json`). The id and the
    reply topic are in the payload too, for devices whose MQTT library hides properties."""
    return orjson.dumps(
        {
            "id": command_id,
            "name": name,
            "params": params,
            "deadline": iso(deadline),
            "reply_to": reply_to,
        }
    )


def announcement(row: dict[str, Any], state: str, at: datetime, actor: str | None) -> bytes:
    """One transition of a command as every subscriber (the dashboard's feed) sees it."""
    return orjson.dumps(
        {
            "command_id": str(row["id"]),
            "project": row["project_id"],
            "kind": row["kind"],
            "device": row["device_id"],
            "name": row["name"],
            "state": state,
            "at": iso(at),
            "actor": actor,
            "message": row.get("message"),
        }
    )


class Reply(msgspec.Struct, forbid_unknown_fields=True):
    """A native device's answer (schema `command-reply.schema.json`)."""

    status: Literal["accepted", "rejected", "completed", "failed"]
    message: str | None = None
    result: dict[str, Any] | None = None


_REPLY: Final = msgspec.json.Decoder(Reply)


def decode_reply(payload: bytes) -> Reply:
    try:
        reply = _REPLY.decode(payload)
    except msgspec.ValidationError as exc:
        raise ContractError(Reason.SCHEMA, f"command reply: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ContractError(Reason.INVALID_JSON, f"command reply: {exc}") from None
    if reply.message is not None and len(reply.message) > MESSAGE_MAX:
        raise ContractError(Reason.SCHEMA, f"command reply: message over {MESSAGE_MAX} chars")
    if reply.message is not None and "\x00" in reply.message:
        raise ContractError(Reason.SCHEMA, "command reply: message contains NUL")
    return reply


def parse_correlation(data: object) -> uuid.UUID:
    """The command id a reply's correlation data names; `ContractError` if it names none."""
    if not isinstance(data, bytes) or not data:
        raise ContractError(Reason.UNKNOWN_COMMAND, "reply without correlation data")
    try:
        return uuid.UUID(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise ContractError(
            Reason.UNKNOWN_COMMAND, f"correlation data {data[:64]!r} is no command id"
        ) from None
