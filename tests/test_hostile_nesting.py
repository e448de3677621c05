"""Deeply nested JSON from devices, through the real broker into the real ingest and rules.

A decoder that walks what it does not type (msgspec skipping an unread field, an `Any`
field, a dict walk after `json.loads`) recurses once per bracket; 100,000 brackets then end
in a `RecursionError` deep inside the decoder. Every device-facing topic gets such a
payload here, between honest messages of the same kind: each nested one must become a dead
letter with a contract reason (never the "adapter error" of the pipeline's catch-all) under
the device its topic names, every honest message must be stored, and the services must go
on. Command replies are covered by `tests/test_commands.py` (the commander reads them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto
from services.core.contracts import MAX_JSON_DEPTH, ContractError, check_depth
from services.protocols import sparkplug_b_pb2 as pb
from services.protocols.commands import decode_reply, decode_vda_state
from tests.test_ingest_edges import _settings, _vda_state
from tests.test_ingest_helpers import publish, query, running, scalar, wait_until
from tests.test_rules_scenarios import TEST_RULES, agv
from tests.test_rules_service import events_of, start_service

DEEP = 100_000  # brackets: 200 kB, under ingest's 256 KiB payload limit
DEEP_OBJECTS = 40_000  # `{"a":` five bytes a level
P, G = "deep", "deep-g"


def _arrays(n: int = DEEP) -> bytes:
    return b"[" * n + b"]" * n


def _objects(n: int = DEEP_OBJECTS) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


def _with(doc: dict[str, Any], key: str, nested: bytes) -> bytes:
    """`doc` as JSON with `key` set to the raw nested value (too deep for any encoder)."""
    head = json.dumps({**doc, key: 0}).encode()
    return head[: head.rindex(b"0")] + nested + b"}"


def _telemetry(seq: int) -> dict[str, Any]:
    return {"ts": int(time.time() * 1000), "seq": seq, "metrics": {"m": float(seq)}}


def _native(stream: str, kind: str, device: str) -> str:
    return f"f5g/v1/{P}/{kind}/{device}/{stream}"


def _hostile(now: datetime) -> list[tuple[str, bytes, str]]:
    """(topic, nested payload, device the dead letter must name)."""
    tel = _telemetry(1)
    cases: list[tuple[str, bytes, str]] = [
        (_native("telemetry", "machine", "t1"), _arrays(), "t1"),
        (_native("telemetry", "machine", "t1"), _objects(), "t1"),
        (_native("telemetry", "machine", "t1"), _with(tel, "extra", _arrays()), "t1"),
        (_native("telemetry", "machine", "t1"), _with(tel, "metrics", _objects()), "t1"),
        (
            _native("inspection", "camera", "c1"),
            _with({"ts": 1, "seq": 1}, "defects", _arrays()),
            "c1",
        ),
        (_native("agv", "agv", "a1"), _with({"ts": 1, "seq": 1}, "x", _arrays()), "a1"),
        (_native("link", "cpe", "l1"), _with({"ts": 1, "seq": 1}, "rsrp", _objects()), "l1"),
        (_native("status", "machine", "t1"), _with({"online": True}, "ts", _arrays()), "t1"),
        (_native("status", "machine", "t1"), _arrays(), "t1"),
    ]
    # VDA 5050: the structs type only what the platform reads; everything else passes.
    state = json.loads(_vda_state("AGV-1", 1, now))
    for key, nested in (("information", _arrays()), ("loads", _objects()), ("x", _arrays())):
        cases.append(("uagv/v2/Acme/AGV-1/state", _with(state, key, nested), "Acme.AGV-1"))
    conn = {
        "headerId": 1,
        "timestamp": state["timestamp"],
        "version": "2.0.0",
        "manufacturer": "Acme",
        "serialNumber": "AGV-1",
        "connectionState": "ONLINE",
    }
    cases.append(("uagv/v2/Acme/AGV-1/connection", _with(conn, "x", _objects()), "Acme.AGV-1"))
    cases.append(("uagv/v2/Acme/AGV-1/state", _arrays(), "Acme.AGV-1"))
    # Sparkplug B: protobuf; unknown groups nest without length, one level per tag.
    spb = pb.Payload(timestamp=int(now.timestamp() * 1000), seq=0).SerializeToString()
    groups = spb + bytes([(15 << 3) | 3]) * DEEP + bytes([(15 << 3) | 4]) * DEEP
    cases.append((f"spBv1.0/{G}/NBIRTH/n1", groups, "n1"))
    cases.append((f"spBv1.0/{G}/DDATA/n1/d1", groups, "n1.d1"))
    return cases


def test_depth_is_bounded_exactly_and_strings_do_not_count() -> None:
    n = MAX_JSON_DEPTH
    for ok in (_arrays(n), _objects(n), b"[" * n, b'["' + b"[" * 1000 + b'"]'):
        check_depth(ok)
    for deep in (_arrays(n + 1), _objects(n + 1), b"[" * (n + 1), b'[{"a":[' * 12 + b"]"):
        with pytest.raises(ContractError) as err:
            check_depth(deep)
        assert err.value.reason.value == "schema"
        assert f"more than {n} levels" in err.value.detail
    # Escaped quotes and backslashes do not end a string early.
    check_depth(b'["\\\\\\"' + b"[" * 1000 + b'"]')
    with pytest.raises(ContractError):
        check_depth(b'["\\\\"' + b",[" * (n + 1) + b"]")


def test_command_decoders_refuse_nesting_before_decoding() -> None:
    nested = b'{"status":"completed","result":' + _objects() + b"}"
    for decode, payload in (
        (decode_reply, nested),
        (decode_vda_state, b'{"manufacturer":"A","serialNumber":"1","x":' + _arrays() + b"}"),
    ):
        with pytest.raises(ContractError) as err:
            decode(payload)
        assert "levels deep" in err.value.detail


async def test_nested_payloads_are_dead_letters_and_honest_ones_all_land(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    settings = _settings(url, broker.port, vda5050_projects={"Acme": P})
    now = datetime.now(UTC)
    hostile = _hostile(now)
    messages: list[tuple[str, bytes]] = []
    honest_native = honest_vda = 0

    def honest(vda: bool) -> None:
        nonlocal honest_native, honest_vda
        honest_native += 1
        body = orjson.dumps(_telemetry(honest_native))
        messages.append((_native("telemetry", "machine", "t1"), body))
        if vda:
            honest_vda += 1
            messages.append(("uagv/v2/Acme/AGV-1/state", _vda_state("AGV-1", honest_vda, now)))

    # An honest message of the same kind before and after each nested one.
    for topic, payload, _device in hostile:
        honest(topic.startswith("uagv/"))
        messages.append((topic, payload))
    honest(True)
    async with running(settings) as service:
        assert await publish(broker.port, messages) == len(messages)

        async def settled() -> bool:
            dead = int(await scalar(url, "SELECT count(*) FROM dead_letters"))
            rows = int(await scalar(url, "SELECT count(*) FROM telemetry"))
            agvs = int(await scalar(url, "SELECT count(*) FROM agv_status"))
            return dead >= len(hostile) and rows >= honest_native and agvs >= honest_vda

        await wait_until(settled, 60)
        assert service.consumer.connected
    dead = await query(url, "SELECT topic, reason, detail, device_id FROM dead_letters")
    buggy = [d for d in dead if d["detail"].startswith("adapter error")]
    assert not buggy, (
        f"{len(buggy)} of {len(hostile)} nested payloads hit the decoder's recursion: "
        + "; ".join(f"{d['topic']}: {d['detail'][:80]}" for d in buggy)
    )
    want = sorted((topic, device) for topic, _, device in hostile)
    assert sorted((d["topic"], d["device_id"]) for d in dead) == want
    assert {d["reason"] for d in dead} <= {"schema", "protocol"}, "none oversize: all decoded"
    stored = int(await scalar(url, "SELECT count(*) FROM telemetry"))
    agvs = int(await scalar(url, "SELECT count(*) FROM agv_status"))
    assert (stored, agvs) == (honest_native, honest_vda), "honest messages lost"


async def test_rules_skip_nested_payloads_as_contract_errors_and_go_on(
    new_database: Callable[[], str], broker: Mosquitto, tmp_path: Path
) -> None:
    url = new_database()
    svc = await start_service(url, broker.port, tmp_path, "t-rules-deep", rules=TEST_RULES)
    try:
        hostile = [
            (t.replace(f"/{P}/", "/deep-rules/"), p) for t, p, _ in _hostile(datetime.now(UTC))
        ]
        low = orjson.dumps(agv(time.time(), 1, battery=5))
        await publish(broker.port, [*hostile, ("f5g/v1/deep-rules/agv/after/agv", low)])

        async def opened() -> list[dict[str, Any]]:
            return await events_of(url, "deep-rules", "after")

        rows = await wait_until_rows(opened)
        assert [(r["rule"], r["transition"]) for r in rows][:1] == [("battery_low", "opened")]
        registry = svc.service.metrics.registry
        internal = registry.get_sample_value(
            "factory5g_rules_rejected_messages_total", {"reason": "internal"}
        )
        assert not internal, f"{internal:.0f} nested payloads failed inside the rules service"
        assert not svc.task.done()
    finally:
        await svc.close()


async def wait_until_rows(check: Callable[[], Any], within: float = 60) -> Any:
    found: list[Any] = []

    async def any_rows() -> bool:
        found[:] = await check()
        return bool(found)

    await wait_until(any_rows, within)
    return found
