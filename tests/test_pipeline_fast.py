"""The pipeline's fast path gives exactly what the exact path gives, message by message.

`Pipeline.fill` takes native stream messages through one generated function per stream
(`rows.FAST_BUILDERS`) and falls back to the exact path (`Pipeline._fill_exact`, every
check spelled out) for whatever it cannot accept as is. The fast path only changes the
cost of a message, so this test sends the same messages both ways, valid ones and
attacks (times at and around both edges of the clock window, RFC 3339 and epoch ms, NUL,
non-finite metrics, wrong types, empty arrays, oversize, unknown devices, broken topics),
and compares every row, dead letter, span, lag and device touch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.core.settings import load_settings
from services.protocols.adapters.native import NativeAdapter
from services.protocols.batch import Batch
from services.protocols.pipeline import Pipeline

RECEIVED = datetime(2026, 12, 2, 1, 2, 3, 456789, tzinfo=UTC)
FUTURE_S, PAST_S = 300.0, 3600.0


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _link(ts: Any, seq: int = 1, **over: Any) -> dict[str, Any]:
    return {"ts": ts, "seq": seq, "rsrp": -90.5, "sinr": 15.2, "latency_ms": 8.25, **over}


def _arrays(edge_future: datetime, edge_past: datetime) -> list[list[Any]]:
    """Arrays of 50 `link` records, valid and with one bad record at the start, middle or
    end: the exact path dead-letters such a message whole (it lands whole or not at all),
    and so must the fast path, keeping none of the 49 good records' rows."""
    now = _ms(RECEIVED)
    iso = (RECEIVED - timedelta(seconds=7)).isoformat().replace("+00:00", "Z")
    valid = [_link(now - i, i + 1) for i in range(50)]
    bad: list[dict[str, Any]] = [
        _link(_ms(edge_future) + 10),  # outside the window
        _link(_ms(edge_past) - 10),
        _link(_ms(edge_future) - 1),  # inside, but too near the edge for the fast bounds
        _link(iso),  # RFC 3339: converted exactly, stored
        _link(now, rsrp="loud"),
        _link(now, extra=1),
        _link(now, cell_id="a\u0000b"),
        _link(now, cell_id="x" * 300),
        _link(True),
        _link(now, seq=-1),
        {"seq": 1, "rsrp": -90.5, "sinr": 15.2, "latency_ms": 8.25},  # no ts
        [],  # not an object
    ]
    out: list[list[Any]] = [valid, [*valid, _link(iso, 51)]]
    for k, record in enumerate(bad):
        at = (0, 25, 49)[k % 3]
        arr = [dict(r) for r in valid]
        arr[at] = record
        out.append(arr)
    # Mixed times in one array: epoch ms and RFC 3339 alternating, all valid.
    out.append([_link(now - i if i % 2 else iso, i + 1) for i in range(50)])
    return out


def _messages() -> list[tuple[str, bytes]]:
    topic = "f5g/v1/p1/module/m-1/link"
    edge_future = RECEIVED + timedelta(seconds=FUTURE_S)
    edge_past = RECEIVED - timedelta(seconds=PAST_S)
    times: list[Any] = []
    for edge in (edge_future, edge_past):
        for delta_ms in (-5, -2, -1, 0, 1, 2, 5):
            t = edge + timedelta(milliseconds=delta_ms)
            times.append(_ms(t))
            times.append(t.isoformat().replace("+00:00", "Z"))
    times += [_ms(RECEIVED), "2026-12-02T01:00:00.123456789+08:00", True, 1.5, None, -1]
    docs: list[tuple[str, Any]] = [(topic, _link(t, i + 1)) for i, t in enumerate(times)]
    docs += [
        (topic, [_link(_ms(RECEIVED) - i, i + 1) for i in range(50)]),
        (topic, [_link(_ms(RECEIVED)), _link(_ms(edge_future) + 10, 2)]),  # one bad record
        *((topic, arr) for arr in _arrays(edge_future, edge_past)),
        (topic, []),
        (topic, _link(_ms(RECEIVED), cell_id="a\u0000b")),
        (topic, _link(_ms(RECEIVED), rsrp="loud")),
        (topic, _link(_ms(RECEIVED), extra=1)),
        (topic, _link(_ms(RECEIVED), cell_id="x" * 300)),
        ("f5g/v1/p1/machine/m-2/telemetry", {"ts": _ms(RECEIVED), "seq": 3, "metrics": {"a": 1}}),
        ("f5g/v1/p1/machine/m-2/telemetry", {"ts": _ms(RECEIVED), "seq": 4, "metrics": {}}),
        ("f5g/v1/p1/station/s-1/inspection", {"ts": _ms(RECEIVED), "seq": 1}),
        ("f5g/v1/p1/module/unknown-9/link", _link(_ms(RECEIVED))),
        ("f5g/v1/p1/module/m-1/nostream", _link(_ms(RECEIVED))),
        ("f5g/v1/p!/module/m-1/link", _link(_ms(RECEIVED))),
        ("f5g/v1/p1/module/m-1/status", {"online": True}),
        ("f5g/v1/p1/module/m-1/reply", {"ok": True}),
    ]
    out = [(t, json.dumps(d).encode()) for t, d in docs]
    out += [
        (topic, b'{"ts": 1e999, "seq": 1}'),
        (
            "f5g/v1/p1/machine/m-2/telemetry",
            b'{"ts": %d, "seq": 5, "metrics": {"a": 1e999}}' % _ms(RECEIVED),
        ),
        (topic, b"not json"),
        (
            topic,
            b'{"ts": %d, "seq": 1, "rsrp": -90, "sinr": 1, "latency_ms": 1, "cell_id": '
            b'"\\u0000"}' % _ms(RECEIVED),
        ),
        (topic, b" " * 9000),  # oversize (max_payload_bytes 8192 below)
    ]
    return out


def _pipeline(known: bool) -> Pipeline:
    settings = load_settings(
        ingest={"max_future_s": FUTURE_S, "max_past_s": PAST_S, "max_payload_bytes": 8192}
    )
    check = (lambda project, device: device != "unknown-9") if known else None
    return Pipeline(settings.ingest, [NativeAdapter("f5g/v1")], known=check)


def _view(b: Batch) -> dict[str, Any]:
    return {
        "rows": b.rows,
        "dead": b.dead,
        "spans": b.spans,
        "lags": b.lags,
        "touches": b.touches,
        "mids": b.mids,
        "sources": b.sources,
        "nrows": b.nrows,
        "nbytes": b.nbytes,
        "rejected": b.rejected,
        "dup": b.dup,
    }


@pytest.mark.parametrize("known", [False, True])
def test_fast_path_equals_exact_path(known: bool) -> None:
    messages = _messages()
    fast, exact = _pipeline(known), _pipeline(known)
    a, b = Batch(1), Batch(1)
    for mid, (topic, payload) in enumerate(messages, 1):
        dup = mid % 7 == 0
        fast.fill(a, topic, payload, RECEIVED, mid, 1, dup)
        b.mids.append(mid)
        exact._fill_exact(b, topic, payload, RECEIVED, dup)
    assert _view(a) == _view(b)
    # The attacks were attacks: both paths dead-lettered the same, and stored the rest.
    assert len(a.dead) >= 20
    assert sum(len(rows) for rows in a.rows.values()) >= 60


def test_an_array_with_one_bad_record_is_dead_lettered_whole_both_ways() -> None:
    """What the exact path does with the 49 good records of an array whose 26th is bad:
    none is stored, the message is one dead letter naming the device. The fast path keeps
    that: it appends 25 rows before it meets the bad record and must take them back."""
    now = _ms(RECEIVED)
    records = [_link(now - i, i + 1) for i in range(50)]
    records[25] = _link(now + int(FUTURE_S * 1000) + 10_000, 26)  # decodes, then fails
    payload = json.dumps(records).encode()
    topic = "f5g/v1/p1/module/m-1/link"
    fast, exact = _pipeline(True), _pipeline(True)
    a, b = Batch(1), Batch(1)
    # A valid array before it in the same batch, so taking back rows must stop at its own.
    before = json.dumps([_link(now - i, 100 + i) for i in range(50)]).encode()
    for pipeline, batch in ((fast, a), (exact, b)):
        pipeline.fill(batch, topic, before, RECEIVED, 1, 1, False)
        if pipeline is fast:
            pipeline.fill(batch, topic, payload, RECEIVED, 2, 1, False)
        else:
            batch.mids.append(2)
            pipeline._fill_exact(batch, topic, payload, RECEIVED, False)
    assert _view(a) == _view(b)
    assert [r[3] for r in a.rows["link_kpis"]] == list(range(100, 150))
    assert len(a.dead) == 1
    assert a.rejected == {"ts_future": 1}
    assert a.spans == [(0, "link_kpis", 0, 50)]


def test_valid_messages_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Else the comparison above would compare the exact path with itself."""
    pipeline = _pipeline(True)
    exact: list[str] = []
    monkeypatch.setattr(pipeline, "_fill_exact", lambda b, topic, *a: exact.append(topic))
    b = Batch(1)
    now = datetime.now(UTC)
    iso = (now - timedelta(seconds=5)).isoformat()
    for seq in range(1, 101):
        doc = _link(_ms(now) - seq if seq % 2 else iso, seq)
        pipeline.fill(b, "f5g/v1/p1/module/m-1/link", json.dumps(doc).encode(), now, seq, 1, False)
    assert exact == []
    assert len(b.rows["link_kpis"]) == 100
    # Arrays too: one call per message, 50 rows each, epoch ms and RFC 3339 times mixed.
    for seq in range(1, 21):
        records = [_link(_ms(now) - k if k % 3 else iso, seq * 100 + k) for k in range(50)]
        payload = json.dumps(records).encode()
        pipeline.fill(b, "f5g/v1/p1/module/m-1/link", payload, now, 1000 + seq, 1, False)
    assert exact == []
    assert len(b.rows["link_kpis"]) == 100 + 20 * 50


def test_another_shards_device_is_skipped_and_acknowledged() -> None:
    settings = load_settings()
    shards = [Pipeline(settings.ingest, [NativeAdapter("f5g/v1", i, 2)]) for i in range(2)]
    batches = [Batch(1), Batch(1)]
    topics = [f"f5g/v1/p1/module/m-{d}/link" for d in range(40)]
    now = datetime.now(UTC)
    for mid, topic in enumerate(topics, 1):
        for shard, batch in zip(shards, batches, strict=True):
            shard.fill(batch, topic, json.dumps(_link(_ms(now), mid)).encode(), now, mid, 1, False)
    stored = [len(b.rows.get("link_kpis", [])) for b in batches]
    assert sum(stored) == len(topics)
    assert min(stored) > 0
    assert [b.mids for b in batches] == [list(range(1, 41))] * 2
