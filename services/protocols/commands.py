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

import math
import uuid
from datetime import datetime
from typing import Any, Final, Literal

import msgspec
import orjson

from services.core.contracts import ContractError, Reason, check_depth
from services.protocols import sparkplug as spb
from services.protocols import sparkplug_b_pb2 as pb
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
    # `result` is free JSON (decoded as `Any`, recursively): its nesting is bounded first.
    check_depth(payload, "command reply")
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


# --------------------------------------------------------------------------- VDA 5050 2.x

VDA_VERSION: Final = "2.0.0"
# Instant actions the platform sends (VDA 5050 2.0 section 6.8, predefined actions), and
# `order`, forwarded on the order topic.
VDA_INSTANT: Final = frozenset(
    {"startPause", "stopPause", "cancelOrder", "stateRequest", "factsheetRequest"}
)
VDA_ORDER: Final = "order"
VDA_NAMES: Final = VDA_INSTANT | {VDA_ORDER}
_VDA_NONBLOCKING: Final = frozenset({"stateRequest", "factsheetRequest"})
_VDA_ORDER_FIELDS: Final = ("orderId", "orderUpdateId", "nodes", "edges")
# actionStatus -> our state: the action is known and not over (accepted), or over.
VDA_ACTION_STATES: Final[dict[str, str]] = {
    "WAITING": "accepted",
    "INITIALIZING": "accepted",
    "RUNNING": "accepted",
    "PAUSED": "accepted",
    "FINISHED": "completed",
    "FAILED": "failed",
}


def vda_check(name: str, params: dict[str, Any]) -> str | None:
    """Why a VDA 5050 command cannot be sent, or None."""
    if name not in VDA_NAMES:
        return f"{name!r} is no VDA 5050 command; one of {', '.join(sorted(VDA_NAMES))}"
    if name == VDA_ORDER:
        missing = [f for f in _VDA_ORDER_FIELDS if f not in params]
        if missing:
            return f"an order needs {', '.join(missing)} in params"
        if not isinstance(params["orderId"], str) or not params["orderId"]:
            return "params.orderId must be a non-empty string"
    blocking = params.get("blockingType")
    if name != VDA_ORDER and blocking not in (None, "NONE", "SOFT", "HARD"):
        return "params.blockingType must be NONE, SOFT or HARD"
    return None


def vda_topic(interface: str, manufacturer: str, serial: str, name: str) -> str:
    sub = VDA_ORDER if name == VDA_ORDER else "instantActions"
    return f"{interface}/v2/{manufacturer}/{serial}/{sub}"


def vda_payload(
    command_id: str,
    name: str,
    params: dict[str, Any],
    header_id: int,
    manufacturer: str,
    serial: str,
    at: datetime,
) -> bytes:
    """An `instantActions` message with one action whose actionId is the command id, or the
    order in `params` with the header fields set by the platform."""
    header = {
        "headerId": header_id,
        "timestamp": iso(at),
        "version": VDA_VERSION,
        "manufacturer": manufacturer,
        "serialNumber": serial,
    }
    if name == VDA_ORDER:
        return orjson.dumps({**params, **header})
    rest = {k: v for k, v in params.items() if k != "blockingType"}
    action: dict[str, Any] = {
        "actionType": name,
        "actionId": command_id,
        "blockingType": params.get("blockingType", "NONE" if name in _VDA_NONBLOCKING else "HARD"),
    }
    if rest:
        action["actionParameters"] = [{"key": k, "value": v} for k, v in rest.items()]
    return orjson.dumps({**header, "actions": [action]})


class VdaActionState(msgspec.Struct):
    actionId: str  # noqa: N815 - VDA 5050 field names
    actionStatus: str  # noqa: N815
    resultDescription: str | None = None  # noqa: N815


class VdaState(msgspec.Struct):
    """The fields of a VDA 5050 `state` the commander reads; the rest passes."""

    manufacturer: str
    serialNumber: str  # noqa: N815
    orderId: str = ""  # noqa: N815
    actionStates: list[VdaActionState] = []  # noqa: N815
    nodeStates: list[Any] = []  # noqa: N815
    edgeStates: list[Any] = []  # noqa: N815


_VDA_STATE: Final = msgspec.json.Decoder(VdaState)


def decode_vda_state(payload: bytes) -> VdaState:
    # Unread fields pass (skipped recursively) and node/edge states are `Any`: the nesting
    # is bounded first.
    check_depth(payload, "VDA 5050 state")
    try:
        return _VDA_STATE.decode(payload)
    except msgspec.ValidationError as exc:
        raise ContractError(Reason.SCHEMA, f"VDA 5050 state: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ContractError(Reason.INVALID_JSON, f"VDA 5050 state: {exc}") from None


# --------------------------------------------------------------------------- Sparkplug B

SPB_WRITE: Final = "write"
_INT_RANGES: Final[dict[int, tuple[int, int, str]]] = {
    spb.DataType.Int8: (-(2**7), 2**7 - 1, "int_value"),
    spb.DataType.Int16: (-(2**15), 2**15 - 1, "int_value"),
    spb.DataType.Int32: (-(2**31), 2**31 - 1, "int_value"),
    spb.DataType.Int64: (-(2**63), 2**63 - 1, "long_value"),
    spb.DataType.UInt8: (0, 2**8 - 1, "int_value"),
    spb.DataType.UInt16: (0, 2**16 - 1, "int_value"),
    spb.DataType.UInt32: (0, 2**32 - 1, "int_value"),
    spb.DataType.UInt64: (0, 2**64 - 1, "long_value"),
}
_WIDTH: Final[dict[str, int]] = {"int_value": 32, "long_value": 64}

# One metric of a birth certificate: (datatype, alias or None).
MetricDef = tuple[int, int | None]


def spb_check(metrics: dict[str, MetricDef], params: dict[str, Any]) -> str | None:
    """Why a Sparkplug B write cannot be sent, or None: every metric must be in the birth
    certificate and every value fit its datatype."""
    writes = params.get("metrics")
    if not isinstance(writes, dict) or not writes:
        return 'a write needs params {"metrics": {"<metric name>": <value>, ...}}'
    for name, value in writes.items():
        d = metrics.get(name)
        if d is None:
            return f"metric {name!r} is not in the birth certificate"
        problem = _value_problem(d[0], value)
        if problem is not None:
            return f"metric {name!r}: {problem}"
    return None


def _value_problem(datatype: int, value: Any) -> str | None:
    kind = spb.DataType.Name(datatype) if datatype in spb.DataType.values() else str(datatype)
    if datatype in _INT_RANGES:
        lo, hi, _ = _INT_RANGES[datatype]
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{kind} needs an integer, not {value!r}"
        if not lo <= value <= hi:
            return f"{value} is outside {kind} ({lo}..{hi})"
        return None
    if datatype in (spb.DataType.Float, spb.DataType.Double):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{kind} needs a number, not {value!r}"
        if not math.isfinite(value) or (datatype == spb.DataType.Float and abs(value) > 3.4e38):
            return f"{value} does not fit {kind}"
        return None
    if datatype == spb.DataType.Boolean:
        return None if isinstance(value, bool) else f"Boolean needs true or false, not {value!r}"
    if datatype in spb.TEXT:
        return None if isinstance(value, str) else f"{kind} needs a string, not {value!r}"
    return f"writing {kind} metrics is not supported"


def spb_topic(group: str, node: str, device: str | None) -> str:
    if device is None:
        return f"{spb.NAMESPACE}/{group}/NCMD/{node}"
    return f"{spb.NAMESPACE}/{group}/DCMD/{node}/{device}"


def spb_payload(metrics: dict[str, MetricDef], writes: dict[str, Any], at_ms: int) -> bytes:
    """NCMD/DCMD with one metric per write: alias when the birth declared one (then no
    name, as Sparkplug 3.0 asks), else the name; the birth's datatype; checked values."""
    payload = pb.Payload(timestamp=at_ms)
    for name, value in writes.items():
        datatype, alias = metrics[name]
        m = payload.metrics.add(timestamp=at_ms, datatype=datatype)
        if alias is not None:
            m.alias = alias
        else:
            m.name = name.encode()
        if datatype in _INT_RANGES:
            field = _INT_RANGES[datatype][2]
            setattr(m, field, value & ((1 << _WIDTH[field]) - 1))  # two's complement
        elif datatype == spb.DataType.Float:
            m.float_value = float(value)
        elif datatype == spb.DataType.Double:
            m.double_value = float(value)
        elif datatype == spb.DataType.Boolean:
            m.boolean_value = bool(value)
        else:
            m.string_value = str(value).encode()
    out: bytes = payload.SerializeToString()
    return out


def spb_reported(metric: Any, datatype: int) -> float | str | None:
    """A DATA metric's value, comparable with `spb_written`."""
    if datatype in spb.TEXT:
        return spb.text_value(metric, datatype)
    return spb.metric_value(metric, datatype)


def spb_written(value: Any, datatype: int) -> float | str:
    if datatype in spb.TEXT:
        return str(value)
    return float(value)


def spb_matches(reported: float | str | None, written: float | str, datatype: int) -> bool:
    if reported is None:
        return False
    if isinstance(reported, str) or isinstance(written, str):
        return reported == written
    if datatype == spb.DataType.Float:  # float32 on the wire
        return abs(reported - written) <= 1e-6 * max(1.0, abs(written))
    return reported == written
