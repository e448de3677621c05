"""The device contract: published JSON Schemas and the hot-path decoders agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.core.contracts import (
    STREAMS,
    ContractError,
    Reason,
    decode,
    load_schema,
    parse_topic,
    parse_ts,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "services" / "core" / "schemas" / "examples"


def _examples(label: str) -> list[tuple[str, Path]]:
    return sorted((p.parts[-3], p) for p in EXAMPLES.glob(f"*/{label}/*.json"))


def _validator(stream: str) -> jsonschema.Draft202012Validator:
    schema = load_schema(stream)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_every_stream_has_a_schema_and_examples() -> None:
    for stream in STREAMS:
        assert (EXAMPLES / stream / "valid").is_dir(), stream
        assert (EXAMPLES / stream / "invalid").is_dir(), stream
        assert any((EXAMPLES / stream / "valid").iterdir())
        assert any((EXAMPLES / stream / "invalid").iterdir())


@pytest.mark.parametrize(("stream", "path"), _examples("valid"), ids=lambda v: str(v)[-40:])
def test_valid_examples_pass_schema_and_decoder(stream: str, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    _validator(stream).validate(doc)
    decoded = decode(stream, path.read_bytes())
    assert len(decoded.records) == (len(doc) if isinstance(doc, list) else 1)
    assert all(t.tzinfo is not None for t in decoded.times)


@pytest.mark.parametrize(("stream", "path"), _examples("invalid"), ids=lambda v: str(v)[-40:])
def test_invalid_examples_fail_schema_and_decoder(stream: str, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    assert list(_validator(stream).iter_errors(doc)), f"schema accepted {path.name}"
    with pytest.raises(ContractError) as exc:
        decode(stream, path.read_bytes())
    assert exc.value.reason is Reason.SCHEMA
    assert exc.value.detail


def test_invalid_json_is_its_own_reason() -> None:
    with pytest.raises(ContractError) as exc:
        decode("link", b'{"ts": 1, "seq": ')
    assert exc.value.reason is Reason.INVALID_JSON
    with pytest.raises(ContractError) as exc:
        decode("link", b'{"ts": 1, "seq": 1, "rsrp": NaN, "sinr": 1, "latency_ms": 1}')
    assert exc.value.reason is Reason.INVALID_JSON


def test_timestamps_normalise_to_utc() -> None:
    a = decode("telemetry", b'{"ts": "2026-11-24T16:00:00+08:00", "seq": 1, "metrics": {"a": 1}}')
    b = decode("telemetry", b'{"ts": 1795507200000, "seq": 1, "metrics": {"a": 1}}')
    c = decode(
        "telemetry", b'{"ts": "2026-11-24T08:00:00.000000123Z", "seq": 1, "metrics": {"a": 1}}'
    )
    assert a.times == b.times
    assert c.times[0].isoformat() == "2026-11-24T08:00:00+00:00"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("f5g/v1/p1/agv/agv-07/agv", ("p1", "agv", "agv-07", "agv")),
        (
            "f5g/v1/Plant_A.2/vision/st.03/inspection",
            ("Plant_A.2", "vision", "st.03", "inspection"),
        ),
    ],
)
def test_topic_grammar_accepts(topic: str, expected: tuple[str, ...]) -> None:
    t = parse_topic(topic)
    assert (t.project, t.kind, t.device, t.stream) == expected


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("f5g/v2/p/agv/a/agv", Reason.BAD_TOPIC),
        ("f5g/v1/p/agv/a", Reason.BAD_TOPIC),
        ("f5g/v1/p/agv/a/agv/extra", Reason.BAD_TOPIC),
        ("f5g/v1/p q/agv/a/agv", Reason.BAD_TOPIC),
        ("f5g/v1/p/agv/" + "x" * 65 + "/agv", Reason.BAD_TOPIC),
        ("f5g/v1/p/agv//agv", Reason.BAD_TOPIC),
        ("f5g/v1/p/agv/a/video", Reason.UNKNOWN_STREAM),
        ("f5g/v1/p/agv/a\u0430/agv", Reason.BAD_TOPIC),
    ],
)
def test_topic_grammar_rejects(topic: str, reason: Reason) -> None:
    with pytest.raises(ContractError) as exc:
        parse_topic(topic)
    assert exc.value.reason is reason


# Generated records: the decoder must accept exactly what the schema accepts.
_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_link = st.fixed_dictionaries(
    {
        "ts": st.one_of(st.integers(-5, 4102444800005), st.just("2026-11-24T08:00:00Z")),
        "seq": st.integers(-3, 2**63 + 3),
        "rsrp": st.one_of(_finite, st.integers(-200, 0)),
        "sinr": st.one_of(_finite, st.integers(-30, 50)),
        "latency_ms": st.one_of(_finite, st.booleans(), st.text(max_size=3)),
    },
    optional={
        "loss_pct": st.one_of(_finite, st.none()),
        "slice": st.text(max_size=70),
        "cell_id": st.one_of(st.text(max_size=3), st.integers()),
    },
)


@settings(max_examples=300, deadline=None)
@given(doc=st.one_of(_link, st.lists(_link, max_size=3)))
def test_decoder_agrees_with_schema_on_generated_link_records(doc: Any) -> None:
    schema_ok = _validator("link").is_valid(doc)
    try:
        decode("link", json.dumps(doc).encode())
        decoder_ok = True
    except ContractError:
        decoder_ok = False
    # Optional fields sent as JSON null: the schema says absent-or-typed, the decoder
    # treats null as absent. That is the one documented leniency.
    if isinstance(doc, dict) and doc.get("loss_pct", 0) is None and decoder_ok:
        return
    if isinstance(doc, list) and any(d.get("loss_pct", 0) is None for d in doc) and decoder_ok:
        return
    assert schema_ok == decoder_ok, doc


def test_alarm_topics_are_never_device_streams() -> None:
    from services.protocols.alarms import alarm_filter, alarm_topic

    topic = alarm_topic("f5g/v1", "p1", "agv", "agv-01", "battery_low")
    assert topic == "f5g/v1/p1/alarms/agv/agv-01/battery_low"
    with pytest.raises(ContractError) as exc:
        parse_topic(topic)
    assert exc.value.reason is Reason.BAD_TOPIC
    assert alarm_filter("f5g/v1") == "f5g/v1/+/alarms/+/+/+"


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
@settings(max_examples=2000, deadline=None)
def test_epoch_ms_timestamps_are_exact(ms: int) -> None:
    # The hot path converts through a float; it must still land on the exact millisecond.
    assert parse_ts(ms) == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
