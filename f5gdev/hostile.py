"""A corpus of hostile MQTT messages, to prove ingest rejects each with a reason.

Every entry is something a broken or malicious device could send: pathological JSON
(deep nesting, huge arrays, NaN and Infinity, wrong types), ids with unicode tricks,
oversized payloads, and topics that try to escape the grammar. The tests publish it
through a real broker beside valid traffic; it is also a ready-made input for audits.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Final

ROOT: Final = "f5g/v1"


@dataclass(frozen=True)
class Hostile:
    name: str
    topic: str
    payload: bytes


def _telemetry(value: object = 1.0, **extra: object) -> dict[str, object]:
    return {"ts": int(time.time() * 1000), "seq": 1, "metrics": {"m": value}, **extra}


def _dump(obj: object) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


# Ids that look like a real one to a person but are not ASCII, or smuggle controls.
UNICODE_IDS: Final = (
    "cam\u20111",  # non-breaking hyphen
    "c\u0430m-1",  # Cyrillic a
    "cam-1\u202e",  # right-to-left override
    "cam\u200b-1",  # zero-width space
    "\uff43\uff41\uff4d-1",  # fullwidth letters
    "x" * 65,
)


def corpus(project: str, max_payload: int) -> list[Hostile]:
    """Hostile messages under `project`, whose devices must never get a row."""
    good = f"{ROOT}/{project}/machine/m-1/telemetry"
    items = [
        Hostile("deep_nesting", good, b"[" * 100_000 + b"]" * 100_000),
        Hostile("deep_nesting_object", good, b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
        Hostile("huge_array", good, _dump([_telemetry()] * 6000)),
        Hostile(
            "huge_metric_map", good, _dump(_telemetry(metrics={f"k{i}": 1 for i in range(9000)}))
        ),
        Hostile("nan", good, _dump(_telemetry(float("nan")))),
        Hostile("infinity", good, _dump(_telemetry(float("inf")))),
        Hostile("neg_infinity", good, _dump(_telemetry(float("-inf")))),
        Hostile("huge_number", good, b'{"ts":1,"seq":1,"metrics":{"m":1e999}}'),
        Hostile("huge_int", good, _dump(_telemetry(10**400))),
        Hostile("string_value", good, _dump(_telemetry("1.0"))),
        Hostile("bool_value", good, _dump(_telemetry(True))),
        Hostile("null_value", good, _dump(_telemetry(None))),
        Hostile("seq_negative", good, _dump({**_telemetry(), "seq": -1})),
        Hostile("seq_float", good, _dump({**_telemetry(), "seq": 1.5})),
        Hostile("ts_garbage", good, _dump({**_telemetry(), "ts": "yesterday"})),
        Hostile("ts_far_future", good, _dump({**_telemetry(), "ts": 4102444800000})),
        Hostile("unknown_field", good, _dump({**_telemetry(), "admin": True})),
        Hostile("not_json", good, b"\xff\xfe\x00garbage"),
        Hostile("empty", good, b""),
        Hostile("json_scalar", good, b"42"),
        Hostile("empty_array", good, b"[]"),
        Hostile("duplicate_keys", good, b'{"ts":1,"ts":2,"seq":1,"metrics":{"m":1}}'),
        Hostile("utf16", good, json.dumps(_telemetry()).encode("utf-16")),
        Hostile("bom", good, b"\xef\xbb\xbf" + _dump(_telemetry())),
        Hostile("oversize", good, b" " * (max_payload + 1)),
        Hostile(
            "inspection_as_telemetry",
            f"{ROOT}/{project}/machine/m-1/inspection",
            _dump(_telemetry()),
        ),
        Hostile("unknown_stream", f"{ROOT}/{project}/machine/m-1/shell", _dump(_telemetry())),
        Hostile("empty_kind", f"{ROOT}/{project}//m-1/telemetry", _dump(_telemetry())),
        Hostile("status_garbage", f"{ROOT}/{project}/machine/m-1/status", b'{"online":"yes"}'),
    ]
    for i, bad in enumerate(UNICODE_IDS):
        items.append(
            Hostile(
                f"unicode_device_{i}",
                f"{ROOT}/{project}/machine/{bad}/telemetry",
                _dump(_telemetry()),
            )
        )
    items.append(
        Hostile(
            "unicode_project", f"{ROOT}/{project}\u200b/machine/m-1/telemetry", _dump(_telemetry())
        )
    )
    return items


def broker_refused(project: str, max_packet: int) -> list[Hostile]:
    """PUBLISH packets a broker must refuse outright: wildcards or NUL in the topic, a
    topic that is not UTF-8, a packet over the broker's size limit."""
    body = _dump(_telemetry())
    return [
        # A lone surrogate: encoded with "surrogatepass" it is not valid UTF-8.
        Hostile("bad_utf8_topic", f"{ROOT}/{project}/machine/m\ud800/telemetry", body),
        Hostile("plus_wildcard", f"{ROOT}/{project}/machine/+/telemetry", body),
        Hostile("hash_wildcard", f"{ROOT}/{project}/machine/#", body),
        # Control characters: a trailing newline would pass a careless `$`-anchored regex.
        Hostile("newline_in_topic", f"{ROOT}/{project}/machine/m-1\n/telemetry", body),
        Hostile("nul_in_topic", f"{ROOT}/{project}/machine/m\u00001/telemetry", body),
        Hostile(
            "over_packet_limit", f"{ROOT}/{project}/machine/m-1/telemetry", b" " * (max_packet + 1)
        ),
    ]


def never_delivered(project: str) -> list[Hostile]:
    """Topics with extra or missing levels: ingest's `f5g/v1/+/+/+/+` filter never sees them."""
    body = _dump(_telemetry())
    return [
        Hostile("extra_level", f"{ROOT}/{project}/machine/m-1/telemetry/../../x", body),
        Hostile("path_traversal", f"{ROOT}/{project}/../other/m-1/telemetry", body),
        Hostile("missing_level", f"{ROOT}/{project}/m-1/telemetry", body),
    ]
