"""The device contract: topic grammar and payload decoders for the native JSON streams.

`services/core/schemas/*.schema.json` (JSON Schema 2020-12) is the published contract. The hot path
cannot afford a generic JSON Schema validator (tens of microseconds per record), so each
stream is mirrored here as a msgspec `Struct` that parses and validates in one pass in C.
`tests/test_contracts.py` proves the two agree on every example and on generated records.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Final, Literal

import msgspec
from msgspec import Meta

ID_PATTERN: Final = r"^[A-Za-z0-9_.-]{1,64}$"
_ID_RE: Final = re.compile(ID_PATTERN)
MAX_RECORDS_PER_MESSAGE: Final = 5000
# Deepest JSON nesting a device may send where a decoder walks what it does not type (VDA
# 5050 fields that pass, a command result). The deepest real document, a VDA 5050 state's
# action parameter values, needs well under ten levels.
MAX_JSON_DEPTH: Final = 32
# The published schemas ship inside the package (package data), so an installed wheel finds
# them wherever it is installed; nothing is read relative to a source checkout.
SCHEMAS: Final = resources.files("services.core") / "schemas"


class Reason(StrEnum):
    """Why a message was rejected; the dead-letter table and metrics use these codes."""

    BAD_TOPIC = "bad_topic"
    UNKNOWN_STREAM = "unknown_stream"
    OVERSIZE = "oversize"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    TS_FUTURE = "ts_future"
    TS_PAST = "ts_past"
    UNSUPPORTED = "unsupported"
    PROTOCOL = "protocol"
    # The device is not registered and ingest is set to refuse such devices
    # (F5G_INGEST__UNKNOWN_DEVICES=dead_letter).
    UNKNOWN_DEVICE = "unknown_device"
    # A command reply whose correlation data names no command of the replying device.
    UNKNOWN_COMMAND = "unknown_command"


class ContractError(Exception):
    """A message that breaks the contract; `reason` is a stable code, `detail` says where."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


def is_valid_id(value: str) -> bool:
    return _ID_RE.match(value) is not None and "\n" not in value


# --------------------------------------------------------------------------- nesting

# Every bracket becomes `[` or `]` (which kind does not matter for depth: a mismatch is an
# error where the parser stops), every other byte is dropped.
_SKELETON: Final = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET: Final = bytes(b for b in range(256) if b not in b"[]{}")


def check_depth(payload: bytes, what: str = "payload", limit: int = MAX_JSON_DEPTH) -> None:
    """`ContractError` if the JSON in `payload` nests more than `limit` arrays/objects deep.

    Why: msgspec skips the fields a struct does not type (and decodes `Any`) by recursing
    in C, one level per bracket, up to Python's recursion limit; `[[[[...` 100,000 deep in
    such a field ends in a `RecursionError` somewhere inside the decoder, and a `json`/dict
    walk after decoding would do the same. Bounding the depth first turns that into a
    clear contract error before any recursive walk starts. Brackets inside strings do not
    count. Cost: two `bytes.count` calls for a payload with at most `limit` brackets (the
    common case); otherwise a few passes of C byte operations, at most `limit + 1` of them
    over the bracket skeleton, none per byte in Python."""
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return
    # Outside strings: escaped backslashes, then escaped quotes, go first; what is left
    # between quotes alternates outside, inside, outside...
    unescaped = payload.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[0::2])
    skeleton = outside.translate(_SKELETON, _NOT_BRACKET)
    # Each pass removes the innermost pairs, one level, until none is left or more than
    # `limit` levels were removed.
    passes = 0
    while passes <= limit:
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            break
        skeleton = shorter
        passes += 1
    # Left now, unless the limit stopped the passes: unmatched brackets only, closes before
    # opens (invalid JSON, which the decoder reports), above at most `passes` levels.
    if passes + skeleton.count(b"[") > limit:
        raise ContractError(Reason.SCHEMA, f"{what}: JSON nested more than {limit} levels deep")


# --------------------------------------------------------------------------- topics


@dataclass(frozen=True, slots=True)
class Topic:
    project: str
    kind: str
    device: str
    stream: str


def parse_topic(topic: str, root: str = "f5g/v1") -> Topic:
    """Split `{root}/{project}/{kind}/{device_id}/{stream}`, checking every id."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        raise ContractError(Reason.BAD_TOPIC, f"topic does not start with {prefix!r}")
    parts = topic[len(prefix) :].split("/")
    if len(parts) != 4:
        raise ContractError(
            Reason.BAD_TOPIC,
            f"expected {root}/{{project}}/{{kind}}/{{device_id}}/{{stream}}, got {len(parts)} "
            "levels after the root",
        )
    names = ("project", "kind", "device_id", "stream")
    for name, part in zip(names, parts, strict=True):
        if not is_valid_id(part):
            raise ContractError(
                Reason.BAD_TOPIC, f"{name} {part[:80]!r} does not match {ID_PATTERN}"
            )
    project, kind, device, stream = parts
    if stream not in STREAMS:
        raise ContractError(
            Reason.UNKNOWN_STREAM, f"stream {stream!r} is not one of {', '.join(sorted(STREAMS))}"
        )
    return Topic(project, kind, device, stream)


# --------------------------------------------------------------------------- records

Id = Annotated[str, Meta(pattern=ID_PATTERN)]
Seq = Annotated[int, Meta(ge=0, le=9223372036854775807)]
EpochMs = Annotated[int, Meta(ge=0, le=4102444800000)]
Unit = Annotated[float, Meta(ge=0, le=1)]
Ts = str | EpochMs


# What a field means beyond its JSON type lives next to it, in msgspec's `Meta(extra=...)`,
# so each stream is defined once, here; services/core/streams.py derives its table columns,
# row builder, rollup fields and replay decoder, and loadtests its generated payloads:
# - "rollup": True - the rollups keep count, sum, min, max and last of the stored value;
# - "typical": values a healthy device sends ((low, high, decimals) for a number, choices for
#   text, `{device}` and `{n}` filled in), for the load generator;
# - "stored": the columns a field is stored in when it is not one column of its own name;
# - "explode": a name -> value map stored as one row per entry, in these two columns;
# - "appended": the column was added to an existing table by a later migration, so it sits
#   after the frame's tail (`received_at`), where PostgreSQL adds columns.


@dataclass(frozen=True)
class Stored:
    """A column a field is stored in when it is not the field itself.

    `store` is a Python expression of the field value `{v}` (the row builders are
    generated from it once, at import); `load` turns the column value `c` back into the
    field value for replay (None: derived from the field, not read back)."""

    column: str
    sql: str
    store: str
    load: str | None = None
    nullable: bool = False
    rollup: bool = False


def _extra(rollup: bool, typical: object, degraded: object = None) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if rollup:
        extra["rollup"] = True
    if typical is not None:
        extra["typical"] = typical
    if degraded is not None:
        extra["degraded"] = degraded
    return extra


def _text(max_length: int, typical: tuple[str, ...] | None = None) -> Any:
    return Annotated[str, Meta(min_length=1, max_length=max_length, extra=_extra(False, typical))]


def _num(
    lo: float,
    hi: float,
    *,
    rollup: bool = False,
    typical: tuple[float, float, int] | None = None,
    degraded: tuple[float, float, int] | None = None,
) -> Any:
    return Annotated[float, Meta(ge=lo, le=hi, extra=_extra(rollup, typical, degraded))]


def _choice(choices: Any, typical: tuple[str, ...], **extra: Any) -> Any:
    return Annotated[choices, Meta(extra={"typical": typical, **extra})]


class Defect(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    type: _text(64)  # type: ignore[valid-type]
    confidence: Unit


_PASSED = Stored("passed", "boolean", "{v} == 'pass'", load="'pass' if c else 'fail'")
_DEFECTS = (
    Stored("defect_count", "smallint", "len({v})", rollup=True),
    Stored(
        "defects",
        "jsonb",
        "_encode({v}).decode() if {v} else None",
        load="_defects(c)",
        nullable=True,
    ),
)


class Inspection(msgspec.Struct, forbid_unknown_fields=True):
    ts: Ts
    seq: Seq
    station: Annotated[
        str,
        Meta(pattern=ID_PATTERN, min_length=1, max_length=64, extra={"typical": ("{device}",)}),
    ]
    part_id: _text(128, ("P-{device}-{n:07d}",))  # type: ignore[valid-type]
    result: _choice(Literal["pass", "fail"], ("pass",), stored=(_PASSED,))  # type: ignore[valid-type]
    defects: Annotated[
        list[Defect], Meta(max_length=256, extra={"typical": [], "stored": _DEFECTS})
    ]
    confidence: _num(0, 1, rollup=True, typical=(0.93, 0.999, 4))  # type: ignore[valid-type]
    inference_ms: _num(0, 600000, rollup=True, typical=(18, 30, 2))  # type: ignore[valid-type]
    model: _text(128, ("defect-yolo-v5.2",)) | None = None  # type: ignore[valid-type]


_AGV_STATES = Literal["idle", "moving", "charging", "loading", "error", "estop"]
# Optional in VDA 5050, required in the native stream: declared once, used by both structs.
_X = _num(-1e6, 1e6, rollup=True, typical=(-20, 20, 3))
_HEADING = _num(-360, 360, rollup=True, typical=(0, 360, 2))
_SPEED = _num(0, 50, rollup=True, typical=(1.1, 1.3, 3))
_LOCALIZATION = _num(0, 1, rollup=True, typical=(0.9, 1.0, 3))


class AgvRecord(msgspec.Struct, kw_only=True):
    """An AGV status as stored and judged: what the AGV did not report is None, never a
    made-up value. VDA 5050 makes `agvPosition` and `velocity` optional (a line-guided AGV
    has no map position), so position, heading, speed and localisation may be absent; the
    columns are nullable and the rules skip what is absent."""

    ts: Ts
    seq: Seq
    x: _X | None = None  # type: ignore[valid-type]
    y: _X | None = None  # type: ignore[valid-type]
    heading: _HEADING | None = None  # type: ignore[valid-type]
    speed: _SPEED | None = None  # type: ignore[valid-type]
    battery: _num(0, 100, rollup=True, typical=(20, 100, 2))  # type: ignore[valid-type]
    state: _choice(_AGV_STATES, ("moving",))  # type: ignore[valid-type]
    localization: _LOCALIZATION | None = None  # type: ignore[valid-type]
    task_id: _text(128, ("T-{n:05d}",)) | None = None  # type: ignore[valid-type]
    error_code: _text(64) | None = None  # type: ignore[valid-type]
    # The map x/y refer to (VDA 5050 `agvPosition.mapId`); None: the AGV's only map. Its
    # column was added by 0014_floor_maps, so it follows the frame's tail ("appended").
    map_id: Annotated[str, Meta(min_length=1, max_length=64, extra={"appended": True})] | None = (
        None
    )


class AgvStatus(AgvRecord, kw_only=True, forbid_unknown_fields=True):
    """The native `agv` stream (`schemas/agv.schema.json` here): position and the rest required."""

    x: _X  # type: ignore[valid-type]
    y: _X  # type: ignore[valid-type]
    heading: _HEADING  # type: ignore[valid-type]
    speed: _SPEED  # type: ignore[valid-type]
    localization: _LOCALIZATION  # type: ignore[valid-type]


_DL_MBPS = _num(0, 100000, rollup=True, typical=(400, 440, 1), degraded=(60, 120, 1))


class LinkKpi(msgspec.Struct, forbid_unknown_fields=True):
    """A 5G module's link measurements. `typical` is what a healthy link reports, `degraded`
    what the same module reports under interference (both feed the simulator and the load
    generator, never validation). A link with several typical cells or slices stays on one
    and changes rarely (a handover), more often while degraded."""

    ts: Ts
    seq: Seq
    rsrp: _num(-156, -31, rollup=True, typical=(-95, -85, 1), degraded=(-130, -119, 1))  # type: ignore[valid-type]
    sinr: _num(-23, 40, rollup=True, typical=(12, 18, 1), degraded=(-6, 0, 1))  # type: ignore[valid-type]
    latency_ms: _num(0, 60000, rollup=True, typical=(5, 13, 2), degraded=(30, 60, 2))  # type: ignore[valid-type]
    rsrq: _num(-43, 20, rollup=True, typical=(-12, -8, 1), degraded=(-18, -14, 1)) | None = None  # type: ignore[valid-type]
    jitter_ms: _num(0, 60000, rollup=True, typical=(0.5, 1.5, 2), degraded=(5, 7, 2)) | None = None  # type: ignore[valid-type]
    loss_pct: _num(0, 100, rollup=True, typical=(0, 0.03, 3), degraded=(1.5, 3.5, 3)) | None = None  # type: ignore[valid-type]
    ul_mbps: _num(0, 100000, rollup=True, typical=(80, 90, 1), degraded=(12, 28, 1)) | None = None  # type: ignore[valid-type]
    dl_mbps: _DL_MBPS | None = None  # type: ignore[valid-type]
    cell_id: _text(64, ("460-00-0000001", "460-00-0000002", "460-00-0000003")) | None = None  # type: ignore[valid-type]
    slice: _text(64, ("URLLC", "eMBB")) | None = None  # type: ignore[valid-type]


MetricName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_./:-]{1,128}$")]
_METRIC_ROWS = (
    Stored("metric", "text", "name", load="name"),
    Stored("value", "double", "value", load="value", rollup=True),
)


class Telemetry(msgspec.Struct, forbid_unknown_fields=True):
    ts: Ts
    seq: Seq
    metrics: Annotated[
        dict[MetricName, _num(-1e300, 1e300)],  # type: ignore[valid-type]
        Meta(min_length=1, max_length=1000, extra={"explode": _METRIC_ROWS}),
    ]


class TelemetryText(msgspec.Struct):
    """Text values of one device at one time (Sparkplug String/Text metrics). Not a native
    stream: only adapters build it, from values they have already checked."""

    ts: Ts
    seq: Seq
    metrics: Annotated[
        dict[str, str],
        Meta(
            extra={"explode": (Stored("metric", "text", "name"), Stored("value", "text", "value"))}
        ),
    ]


Record = Inspection | AgvStatus | LinkKpi | Telemetry

RECORD_TYPES: Final[dict[str, type[msgspec.Struct]]] = {
    "inspection": Inspection,
    "agv": AgvStatus,
    "link": LinkKpi,
    "telemetry": Telemetry,
}
STREAMS: Final = frozenset(RECORD_TYPES)


def _payload_type(record: type[msgspec.Struct]) -> Any:
    return record | Annotated[list[record], Meta(min_length=1, max_length=MAX_RECORDS_PER_MESSAGE)]  # type: ignore[valid-type]


_DECODERS: Final = {
    name: msgspec.json.Decoder(_payload_type(rec)) for name, rec in RECORD_TYPES.items()
}


def payload_decoder(stream: str) -> msgspec.json.Decoder[Any] | None:
    """The decoder `decode` uses for a native stream (None: unknown stream); ingest's fast
    path decodes with the very same one, so both accept exactly the same payloads."""
    return _DECODERS.get(stream)


_RFC3339_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_ts(value: str | int) -> datetime:
    """Normalise a contract timestamp (RFC 3339 or epoch ms) to an aware UTC datetime."""
    if isinstance(value, int):
        # Twice as fast as adding a timedelta to the epoch on the hot path, and exact: within the
        # contract's range (0 .. year 2100) a double's error is under 0.25 us, so the
        # rounding to whole microseconds always lands on the millisecond.
        return datetime.fromtimestamp(value / 1000, UTC)
    if _RFC3339_RE.match(value) is None:
        raise ContractError(
            Reason.SCHEMA, f"ts {value[:40]!r} is not RFC 3339 with an offset or epoch ms"
        )
    text = value
    dot = text.find(".")
    if dot != -1:  # Python keeps microseconds; devices may send nanoseconds.
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[: dot + 1] + text[dot + 1 : end][:6].ljust(6, "0") + text[end:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ContractError(Reason.SCHEMA, f"ts {value[:40]!r}: {exc}") from None
    return parsed.astimezone(UTC)


@dataclass(slots=True)
class Decoded:
    """A validated payload: its records and each record's timestamp as aware UTC datetime."""

    records: list[Any]
    times: list[datetime]


def decode(stream: str, payload: bytes) -> Decoded:
    """Parse and validate a native payload (one record or an array of them)."""
    decoder = _DECODERS.get(stream)
    if decoder is None:
        raise ContractError(Reason.UNKNOWN_STREAM, f"stream {stream!r} is unknown")
    try:
        value = decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise ContractError(Reason.SCHEMA, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ContractError(Reason.INVALID_JSON, str(exc)) from None
    except UnicodeDecodeError as exc:  # msgspec raises it for bad UTF-8 inside a string
        raise ContractError(Reason.INVALID_JSON, f"invalid UTF-8: {exc.reason}") from None
    records = value if isinstance(value, list) else [value]
    times: list[datetime] = []
    for i, rec in enumerate(records):
        try:
            times.append(parse_ts(rec.ts))
        except ContractError as exc:
            where = f" - at `$[{i}].ts`" if isinstance(value, list) else " - at `$.ts`"
            raise ContractError(exc.reason, exc.detail + where) from None
        if stream == "telemetry":
            for name, v in rec.metrics.items():
                if not math.isfinite(v):
                    raise ContractError(Reason.SCHEMA, f"metric {name!r} is not a finite number")
    return Decoded(records, times)


def load_schema(stream: str) -> dict[str, Any]:
    """The published JSON Schema of a stream."""
    result: dict[str, Any] = msgspec.json.decode((SCHEMAS / f"{stream}.schema.json").read_bytes())
    return result
