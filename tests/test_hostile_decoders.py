"""Property-based fuzzing of every decoder and of topic parsing.

For any topic and payload, each adapter either returns a result or raises `ContractError`
with a known reason and a detail; nothing else may escape (the pipeline's catch-all for
adapter bugs must never be needed). Accepted records carry only finite numbers and ids
that match the contract, whatever the input.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from f5gdev import hostile
from services.core.contracts import (
    STREAMS,
    ContractError,
    Reason,
    decode,
    is_valid_id,
    parse_topic,
)
from services.core.settings import load_settings
from services.protocols import sparkplug_b_pb2 as pb
from services.protocols.adapters.base import Adapter, AdapterResult
from services.protocols.adapters.registry import load_adapters

T = TypeVar("T")
EXAMPLES = Path(__file__).resolve().parents[1] / "services" / "core" / "schemas" / "examples"
NOW = datetime.now(UTC)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_JSON = {
    stream: [p.read_bytes() for p in sorted((EXAMPLES / stream / "valid").glob("*.json"))]
    for stream in STREAMS
}

_tricky_text = st.sampled_from(
    ["", "..", "+", "#", "$SYS", "/", "\u202e", "\u200b", "\x00", "\n", "é", "\uff43", "x" * 70]
) | st.text(max_size=20)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()  # NaN and +-Infinity included
    | _tricky_text,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(_tricky_text, kids, max_size=5),
    max_leaves=25,
)


def _adapters() -> list[Adapter]:
    return load_adapters(load_settings(ingest={"metrics_port": 0}))


def _topics() -> st.SearchStrategy[str]:
    levels = st.lists(_tricky_text, min_size=0, max_size=7)
    valid = st.sampled_from(
        [
            "f5g/v1/p1/machine/m-1/telemetry",
            "f5g/v1/p1/camera/cam-1/inspection",
            "f5g/v1/p1/agv/agv-1/agv",
            "f5g/v1/p1/cpe/cpe-1/link",
            "f5g/v1/p1/machine/m-1/status",
            "spBv1.0/p1/NBIRTH/line1",
            "spBv1.0/p1/DBIRTH/line1/m1",
            "spBv1.0/p1/DDATA/line1/m1",
            "spBv1.0/p1/NDEATH/line1",
            "uagv/v2/SimRobotics/AGV-1/state",
            "uagv/v2/SimRobotics/AGV-1/connection",
        ]
    )

    def mutate(args: tuple[str, int, str]) -> str:
        topic, index, text = args
        parts = topic.split("/")
        parts[index % len(parts)] = text
        return "/".join(parts)

    return (
        valid
        | st.tuples(valid, st.integers(0, 10), _tricky_text).map(mutate)
        | st.tuples(st.sampled_from(["f5g/v1", "spBv1.0", "uagv/v2"]), levels).map(
            lambda a: "/".join([a[0], *a[1]])
        )
        | st.text(max_size=60)
    )


def _payloads() -> st.SearchStrategy[bytes]:
    valid = [p for items in VALID_JSON.values() for p in items]

    def flip(args: tuple[bytes, int, int]) -> bytes:
        raw, index, byte = args
        i = index % len(raw)
        return raw[:i] + bytes([byte]) + raw[i + 1 :]

    return (
        st.binary(max_size=300)
        | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())
        | st.tuples(st.sampled_from(valid), st.integers(0, 10_000), st.integers(0, 255)).map(flip)
        | st.tuples(
            st.sampled_from(_sparkplug_payloads()), st.integers(0, 500), st.integers(0, 255)
        ).map(flip)
        | st.sampled_from([h.payload for h in hostile.corpus("p1", 10**7)])
    )


def _sparkplug_payloads() -> list[bytes]:
    nbirth = pb.Payload(timestamp=1, seq=0)
    m = nbirth.metrics.add(name=b"bdSeq", datatype=8)  # UInt64
    m.long_value = 0
    dbirth = pb.Payload(timestamp=1, seq=1)
    m = dbirth.metrics.add(name=b"temp", alias=1, datatype=10)  # Double
    m.double_value = 20.5
    ddata = pb.Payload(timestamp=1, seq=2)
    m = ddata.metrics.add(alias=1, datatype=10)
    m.double_value = float("nan")
    return [p.SerializeToString() for p in (nbirth, dbirth, ddata)]


def _check_result(result: AdapterResult) -> None:
    assert isinstance(result, AdapterResult)
    for topic, decoded in result.items:
        assert all(is_valid_id(x) for x in (topic.project, topic.kind, topic.device))
        assert len(decoded.records) == len(decoded.times) > 0
        for record in decoded.records:
            for value in _numbers(msgspec.to_builtins(record)):
                assert math.isfinite(value), (topic, record)


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def attempt(fn: Callable[..., T], *args: Any) -> tuple[T | None, ContractError | None]:
    """Call `fn`; a `ContractError` is returned, any other exception fails the test."""
    try:
        return fn(*args), None
    except ContractError as exc:
        return None, exc


def _explained(err: ContractError, allowed: Iterable[Reason] = tuple(Reason)) -> bool:
    return err.reason in set(allowed) and bool(err.detail)


def _decode_checked(adapter: Adapter, topic: str, payload: bytes) -> None:
    result, err = attempt(adapter.decode, topic, payload, NOW)
    if err is not None:
        assert _explained(err)
    else:
        assert result is not None
        _check_result(result)


@FUZZ
@given(topic=_topics(), payload=_payloads())
def test_every_adapter_rejects_only_with_a_reason(topic: str, payload: bytes) -> None:
    for adapter in _adapters():
        # Stateful adapters see a birth first, so data messages reach the deep paths too.
        births = _sparkplug_payloads()[:2]
        if adapter.name == "sparkplug":
            for t, p in (
                ("spBv1.0/p1/NBIRTH/line1", births[0]),
                ("spBv1.0/p1/DBIRTH/line1/m1", births[1]),
            ):
                adapter.decode(t, p, NOW)
        if adapter.matches(topic):
            _decode_checked(adapter, topic, payload)


@FUZZ
@given(stream=st.sampled_from(sorted(STREAMS)), payload=_payloads())
def test_native_decode_rejects_only_with_a_reason(stream: str, payload: bytes) -> None:
    decoded, err = attempt(decode, stream, payload)
    if err is not None:
        assert _explained(err, (Reason.INVALID_JSON, Reason.SCHEMA))
        return
    assert decoded is not None
    for record in decoded.records:
        for value in _numbers(msgspec.to_builtins(record)):
            assert math.isfinite(value)


@FUZZ
@given(
    stream=st.sampled_from(sorted(STREAMS)),
    field=_tricky_text,
    value=json_values,
    index=st.integers(0, 10),
)
def test_valid_records_with_one_field_replaced(
    stream: str, field: str, value: Any, index: int
) -> None:
    """Start from a published example and break one field: accepted or rejected, never a crash."""
    examples = VALID_JSON[stream]
    doc = json.loads(examples[index % len(examples)])
    target = doc[0] if isinstance(doc, list) else doc
    keys = sorted(target)
    target[keys[index % len(keys)] if index % 3 else field] = value
    decoded, err = attempt(decode, stream, json.dumps(doc, allow_nan=True).encode())
    if err is not None:
        assert _explained(err, (Reason.INVALID_JSON, Reason.SCHEMA))
        return
    assert decoded is not None
    for record in decoded.records:
        for number in _numbers(msgspec.to_builtins(record)):
            assert math.isfinite(number)


@FUZZ
@given(topic=_topics())
def test_topic_parsing_accepts_only_contract_ids(topic: str) -> None:
    t, err = attempt(parse_topic, topic)
    if err is not None:
        assert _explained(err, (Reason.BAD_TOPIC, Reason.UNKNOWN_STREAM))
        return
    assert t is not None
    assert topic == f"f5g/v1/{t.project}/{t.kind}/{t.device}/{t.stream}"
    assert all(is_valid_id(x) for x in (t.project, t.kind, t.device))
    assert t.stream in STREAMS
    assert all(ord(c) < 128 and c.isprintable() for c in topic)


def test_hostile_corpus_is_rejected_by_the_decoders() -> None:
    """The corpus the broker test publishes, checked offline against every adapter."""
    max_payload = load_settings().ingest.max_payload_bytes
    for h in hostile.corpus("p1", max_payload):
        if len(h.payload) > max_payload:
            continue  # the pipeline rejects these before any decoder runs
        adapter = next(a for a in _adapters() if a.matches(h.topic))
        if h.topic.endswith("/status"):
            _, err = attempt(adapter.decode, h.topic, h.payload, NOW)
        else:
            _, err = attempt(decode_native, h.topic, h.payload)
        assert err is not None, f"{h.name} was accepted"
        assert _explained(err), h.name


def decode_native(topic: str, payload: bytes) -> None:
    t = parse_topic(topic)
    decoded = decode(t.stream, payload)
    max_future = load_settings().ingest.max_future_s
    if max(decoded.times).timestamp() > NOW.timestamp() + max_future:
        raise ContractError(Reason.TS_FUTURE, "ts in the future")
    if min(decoded.times).timestamp() < NOW.timestamp() - load_settings().ingest.max_past_s:
        raise ContractError(Reason.TS_PAST, "ts in the past")
