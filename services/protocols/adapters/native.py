"""The native JSON contract as an adapter: `{root}/{project}/{kind}/{device_id}/{stream}`.

Besides the data streams of `services.core.contracts`, one more topic level is reserved:

    {root}/{project}/{kind}/{device_id}/status

carries the device's online state, meant as its MQTT last will. The payload is either the
JSON object `{"online": false}` / `{"online": true}` (optionally with `"ts"`, RFC 3339 or
epoch ms, which is then the time of the change) or one of the bare words `offline` /
`online` (with or without JSON quotes). A device typically sets the will
`{"online": false}` when it connects and publishes `{"online": true}` right after. Any
other payload on a status topic is dead-lettered with reason `schema`.

One more is the devices' answer to commands (`services.protocols.commands`):

    {root}/{project}/{kind}/{device_id}/reply

It is the commander's, not a stream: ingest acknowledges it and stores nothing (the
commander records the outcome), so a reply is never dead-lettered as an unknown stream.

Topic strings repeat for every message of a device, so parsed topics are cached.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Final

import msgspec

from services.core.contracts import (
    ContractError,
    Decoded,
    Reason,
    Topic,
    decode,
    is_valid_id,
    parse_topic,
    parse_ts,
)
from services.protocols.adapters.base import AdapterResult, DeviceEvent

STATUS: Final = "status"
REPLY: Final = "reply"
_OWN_LEVELS: Final = (STATUS, REPLY)
_TOPIC_CACHE_MAX: Final = 200_000
# PostgreSQL text cannot hold NUL; JSON can only express it as an escape.
_NUL_ESCAPE: Final = b"\\u0000"


class _Status(msgspec.Struct, forbid_unknown_fields=True):
    online: bool
    ts: str | int | None = None


_STATUS_DECODER: Final = msgspec.json.Decoder(_Status)
_WORDS: Final = {
    b"online": True,
    b"offline": False,
    b'"online"': True,
    b'"offline"': False,
}


def parse_status(payload: bytes) -> tuple[bool, datetime | None]:
    """Online state and optional time of a status message; `ContractError` if malformed."""
    word = _WORDS.get(payload.strip())
    if word is not None:
        return word, None
    try:
        status = _STATUS_DECODER.decode(payload)
    except msgspec.ValidationError as exc:
        raise ContractError(Reason.SCHEMA, f"status: {exc}") from None
    except msgspec.DecodeError:
        raise ContractError(
            Reason.SCHEMA,
            'status payload must be {"online": true|false} or the word online/offline',
        ) from None
    at = parse_ts(status.ts) if status.ts is not None else None
    return status.online, at


class NativeAdapter:
    """The native JSON contract.

    Replicas split native devices one of two ways. With a shared subscription (`shared()`,
    `ingest.share_group`) the broker deals messages out; Mosquitto 2.0 does not restore
    shared subscriptions after a restart, so that loses what is published before the
    replicas resubscribe. Sharded (`shard_count` > 1, no share group), every replica has
    its own persistent session with a plain subscription, which the broker keeps across a
    restart, and keeps the devices whose stable hash falls on its shard (`owns`), the way
    rules replicas split devices (services/rules/sharding.py); the others are acknowledged
    and left to their owner. Each replica then reads every message but decodes and writes
    only its share.
    """

    name = "native"

    def __init__(self, root: str = "f5g/v1", shard_index: int = 0, shard_count: int = 1) -> None:
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index {shard_index} outside 0..{shard_count - 1}")
        self.root = root
        self._prefix = root + "/"
        self._topics: dict[str, Topic | ContractError] = {}
        self.shard_index = shard_index
        self.shard_count = shard_count
        self._owned: dict[str, bool] = {}

    def topic_filters(self) -> list[str]:
        return [f"{self.root}/+/+/+/+"]

    def shared(self) -> bool:
        return self.shard_count == 1

    def owns(self, topic: str) -> bool:
        """Whether this replica's shard stores `topic`'s messages: the CRC-32 of
        `project/device` (services/rules/sharding.py's hash), or of the whole topic when it
        names no device, so that a broken topic is dead-lettered by exactly one replica."""
        if self.shard_count == 1:
            return True
        mine = self._owned.get(topic)
        if mine is None:
            project, device = self.attribute(topic)
            key = f"{project}/{device}" if project and device else topic
            mine = zlib.crc32(key.encode()) % self.shard_count == self.shard_index
            if len(self._owned) >= _TOPIC_CACHE_MAX:
                self._owned.clear()
            self._owned[topic] = mine
        return mine

    def matches(self, topic: str) -> bool:
        return topic.startswith(self._prefix)

    def topic(self, topic: str) -> Topic:
        """Parse a topic (cached); raises `ContractError` for a topic breaking the grammar."""
        parsed = self._topics.get(topic)
        if parsed is None:
            try:
                parsed = self._parse(topic)
            except ContractError as exc:
                parsed = exc
            if len(self._topics) >= _TOPIC_CACHE_MAX:
                self._topics.clear()
            self._topics[topic] = parsed
        if isinstance(parsed, ContractError):
            raise parsed
        return parsed

    def _parse(self, topic: str) -> Topic:
        if topic.startswith(self._prefix):
            parts = topic[len(self._prefix) :].split("/")
            if (
                len(parts) == 4
                and parts[3] in _OWN_LEVELS
                and all(is_valid_id(p) for p in parts[:3])
            ):
                return Topic(parts[0], parts[1], parts[2], parts[3])
        return parse_topic(topic, self.root)

    def attribute(self, topic: str) -> tuple[str | None, str | None]:
        """Project and device of a rejected message's topic, even one that breaks the
        grammar elsewhere (an unknown stream, a bad kind): each level that is a valid id."""
        if not topic.startswith(self._prefix):
            return None, None
        parts = topic[len(self._prefix) :].split("/")
        if not is_valid_id(parts[0]):
            return None, None
        if len(parts) == 4 and is_valid_id(parts[2]):
            return parts[0], parts[2]
        return parts[0], None

    def decode(self, topic: str, payload: bytes, received_at: datetime) -> AdapterResult:
        t = self.topic(topic)
        if t.stream == REPLY:
            return AdapterResult()  # the commander's: nothing to store
        if t.stream == STATUS:
            online, at = parse_status(payload)
            event = DeviceEvent(t.project, t.device, t.kind, online, at or received_at)
            return AdapterResult(events=[event])
        return AdapterResult(items=[(t, self.decode_stream(t, payload))])

    def decode_stream(self, t: Topic, payload: bytes) -> Decoded:
        """The hot path's shortcut around `AdapterResult` for plain stream messages."""
        if _NUL_ESCAPE in payload:
            raise ContractError(Reason.SCHEMA, "strings must not contain NUL (\\u0000)")
        return decode(t.stream, payload)
