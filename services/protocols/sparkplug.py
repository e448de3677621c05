"""Sparkplug B wire format: topics, payload parsing, value conversion and host messages.

Stateless pieces shared by the ingest adapter (a Sparkplug primary host application) and
the simulator (an edge node). The host's per-node state lives in the adapter.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from google.protobuf.message import DecodeError

from services.core.contracts import ContractError, Reason, is_valid_id
from services.protocols import sparkplug_b_pb2 as pb

NAMESPACE: Final = "spBv1.0"
BD_SEQ: Final = "bdSeq"
REBIRTH: Final = "Node Control/Rebirth"
SEQ_MODULO: Final = 256
MAX_EPOCH_MS: Final = 4102444800000  # the native contract's upper bound (year 2100)

Payload = pb.Payload
Metric = pb.Payload.Metric
DataType = pb.DataType


class MessageType(StrEnum):
    NBIRTH = "NBIRTH"
    NDATA = "NDATA"
    NDEATH = "NDEATH"
    NCMD = "NCMD"
    DBIRTH = "DBIRTH"
    DDATA = "DDATA"
    DDEATH = "DDEATH"
    DCMD = "DCMD"


DEVICE_TYPES: Final = frozenset({MessageType.DBIRTH, MessageType.DDATA, MessageType.DDEATH})
INGESTED_TYPES: Final = frozenset(
    {
        MessageType.NBIRTH,
        MessageType.NDATA,
        MessageType.NDEATH,
        MessageType.DBIRTH,
        MessageType.DDATA,
        MessageType.DDEATH,
    }
)


@dataclass(frozen=True, slots=True)
class SpTopic:
    group: str
    message_type: MessageType
    node: str
    device: str | None


def parse_topic(topic: str) -> SpTopic:
    """Split `spBv1.0/{group}/{type}/{node}[/{device}]`; ids must fit the platform's grammar.

    Group and node become a project and device id, so they obey the same id rule as native
    topics; anything else would need an escaping scheme that operators cannot read.
    """
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE:
        raise ContractError(
            Reason.BAD_TOPIC, f"expected {NAMESPACE}/{{group}}/{{type}}/{{node}}[/{{device}}]"
        )
    try:
        mtype = MessageType(parts[2])
    except ValueError:
        raise ContractError(
            Reason.BAD_TOPIC, f"unknown Sparkplug message type {parts[2][:20]!r}"
        ) from None
    if (len(parts) == 5) != (mtype in DEVICE_TYPES or mtype == MessageType.DCMD):
        raise ContractError(Reason.BAD_TOPIC, f"{mtype} topic has the wrong number of levels")
    for label, value in (("group_id", parts[1]), ("edge_node_id", parts[3])):
        if not is_valid_id(value):
            raise ContractError(
                Reason.BAD_TOPIC, f"{label} {value[:80]!r} does not match [A-Za-z0-9_.-]{{1,64}}"
            )
    device = parts[4] if len(parts) == 5 else None
    if device is not None and not is_valid_id(device_id(parts[3], device)):
        raise ContractError(
            Reason.BAD_TOPIC,
            f"device id {device_id(parts[3], device)[:80]!r} does not match [A-Za-z0-9_.-]{{1,64}}",
        )
    return SpTopic(parts[1], mtype, parts[3], device)


def device_id(node: str, device: str | None) -> str:
    """Platform device id: the edge node itself, or `{node}.{device}` for its devices."""
    return node if device is None else f"{node}.{device}"


def parse_payload(raw: bytes) -> pb.Payload:
    try:
        return pb.Payload.FromString(raw)
    except DecodeError as exc:
        raise ContractError(Reason.PROTOCOL, f"not a Sparkplug B protobuf payload: {exc}") from None


# --------------------------------------------------------------------------- names

_NAME_BAD: Final = re.compile(r"[^A-Za-z0-9_./:-]")


def metric_name(raw: bytes) -> str | None:
    """Sparkplug metric name -> telemetry metric name, or None when it cannot be stored.

    Sparkplug names are free UTF-8 (`Motor 1/Speed RPM`); telemetry names follow
    `^[A-Za-z0-9_./:-]{1,128}$`. Every other character (spaces included) becomes `_`, so
    `/` folders survive and the result stays readable. Longer names are not cut, because
    two cut names could collide into one series.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    mapped = _NAME_BAD.sub("_", text)
    if not 1 <= len(mapped) <= 128:
        return None
    return mapped


def is_control_metric(raw: bytes) -> bool:
    """Session bookkeeping (bdSeq, Node/Device Control) that is not process data."""
    return raw == b"bdSeq" or raw.startswith((b"Node Control/", b"Device Control/"))


# --------------------------------------------------------------------------- values


def _signed(bits: int) -> Callable[[int], float]:
    mask = (1 << bits) - 1
    sign = 1 << (bits - 1)

    # Producers disagree on how negative Int8/Int16 travel in a uint32 (sign-extended to 32
    # bits or two's complement at the type's width); masking to the width accepts both.
    def convert(v: int) -> float:
        return float(((v & mask) ^ sign) - sign)

    return convert


def _bool(v: bool) -> float:
    return 1.0 if v else 0.0


# datatype -> (oneof field that must carry the value, conversion to float)
NUMERIC: Final[dict[int, tuple[str, Callable[..., float]]]] = {
    DataType.Int8: ("int_value", _signed(8)),
    DataType.Int16: ("int_value", _signed(16)),
    DataType.Int32: ("int_value", _signed(32)),
    DataType.Int64: ("long_value", _signed(64)),
    DataType.UInt8: ("int_value", float),
    DataType.UInt16: ("int_value", float),
    DataType.UInt32: ("int_value", float),
    DataType.UInt64: ("long_value", float),
    DataType.Float: ("float_value", float),
    DataType.Double: ("double_value", float),
    DataType.Boolean: ("boolean_value", _bool),
}


# Datatypes stored as text (`telemetry_text`); both travel in `string_value`.
TEXT: Final[frozenset[int]] = frozenset({DataType.String, DataType.Text})
MAX_TEXT_CHARS: Final = 4096


def text_value(metric: pb.Payload.Metric, datatype: int) -> str | None:
    """The metric's text for storage, or None when it carries none we store: not a text
    type, no string value, not UTF-8, a NUL (PostgreSQL text cannot hold one) or over
    `MAX_TEXT_CHARS` (cutting would store a value the device never sent)."""
    if datatype not in TEXT or metric.WhichOneof("value") != "string_value":
        return None
    raw = metric.string_value
    if len(raw) > 4 * MAX_TEXT_CHARS or b"\x00" in raw:
        return None
    try:
        value = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return value if len(value) <= MAX_TEXT_CHARS else None


def metric_value(metric: pb.Payload.Metric, datatype: int) -> float | None:
    """The metric's value as a float for storage, or None when it carries none we store."""
    spec = NUMERIC.get(datatype)
    if spec is None:
        return None
    field, convert = spec
    if metric.WhichOneof("value") != field:
        return None
    value = convert(getattr(metric, field))
    if not math.isfinite(value) or abs(value) > 1e300:
        return None
    return value


# --------------------------------------------------------------------------- host messages


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def state_topic(host_id: str) -> str:
    return f"{NAMESPACE}/STATE/{host_id}"


def host_state(host_id: str, timestamp_ms: int, online: bool) -> OutMessage:
    """Sparkplug 3.0 host STATE: retained QoS 1 JSON. Birth and will share one timestamp,
    which is how edge nodes tell a stale will from the current session's."""
    body = json.dumps({"online": online, "timestamp": timestamp_ms}, separators=(",", ":"))
    return OutMessage(state_topic(host_id), body.encode(), qos=1, retain=True)


def rebirth_request(group: str, node: str, timestamp_ms: int) -> OutMessage:
    """NCMD `Node Control/Rebirth = true`: asks the node to resend NBIRTH and DBIRTHs."""
    payload = pb.Payload(timestamp=timestamp_ms)
    payload.metrics.add(
        name=REBIRTH.encode(),
        timestamp=timestamp_ms,
        datatype=DataType.Boolean,
        boolean_value=True,
    )
    return OutMessage(
        f"{NAMESPACE}/{group}/NCMD/{node}", payload.SerializeToString(), qos=0, retain=False
    )


def shard_of(group: str, node: str, shard_count: int) -> int:
    """Replica that owns an edge node. CRC-32 is stable across processes and versions,
    unlike Python's salted `hash()`, so every replica agrees without talking."""
    return zlib.crc32(f"{group}/{node}".encode()) % shard_count
