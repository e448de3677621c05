# The expected Chinese texts are written with their full-width brackets, as shown to readers.
# ruff: noqa: RUF001
"""Alarm messages, rule and KPI names in the reader's language through the real API on a
real database: alarms made by the real rules engine from records and stored by its store,
read with `Accept-Language: zh-CN`, `lang=`, or neither (the stored English text, as
before); old rows without facts; a cleared alarm keeps the message of its opening; the live
stream over real TCP and a real broker."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import paho.mqtt.publish as mqtt_publish
import pytest

from services.core.contracts import Topic, decode
from services.core.db import asyncpg_dsn
from services.protocols.alarms import alarm_payload
from services.rules import store
from services.rules.config import parse_rules
from services.rules.engine import Engine, Transition
from tests.test_api_support import (
    Keys,
    api_settings,
    auth,
    client,
    insert_alarms,
    make_keys,
    seed_small,
)
from tests.test_live_api import Served, bearer, events, served  # noqa: F401
from tests.test_rules_scenarios import agv, insp

RULES = """
version: 1
defaults:
  vision:
    defect_rate: {window: 10, min_samples: 10, raise: 0.1, clear: 0.05,
                  baseline_samples: 100000,
                  name: {en: Scratch rate at the paint line, zh: 喷涂线划伤率}}
  agv:
    battery_low: {}
"""


@dataclass
class Env:
    c: httpx.AsyncClient
    keys: Keys
    ids: dict[str, int]
    stored: dict[str, str]


def _feed(engine: Engine, topic: Topic, records: list[dict[str, Any]]) -> list[Transition]:
    out: list[Transition] = []
    for rec in records:
        out += engine.process(topic, decode(topic.stream, orjson.dumps(rec)), rec["ts"] / 1000)
    return out


def transitions(t0: float) -> list[Transition]:
    """cam-1: 8 passes then 2 fails, 2 of 10 = 20 % >= 10 %: opened. agv-1: battery 18 %
    (<= 20 %) opens, 35 % (>= 30 %) clears."""
    engine = Engine(parse_rules(RULES, "rules.yaml"))
    cam = Topic("p1", "vision", "cam-1", "inspection")
    out = _feed(
        engine,
        cam,
        [insp(t0 + i, i + 1, result="fail" if i >= 8 else "pass") for i in range(10)],
    )
    bot = Topic("p1", "agv", "agv-1", "agv")
    out += _feed(engine, bot, [agv(t0 + 20, 1, battery=18.0), agv(t0 + 21, 2, battery=35.0)])
    return out


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    await seed_small(url)
    t0 = time.time() - 120
    trs = transitions(t0)
    assert [(t.device, t.transition) for t in trs] == [
        ("cam-1", "opened"),
        ("agv-1", "opened"),
        ("agv-1", "cleared"),
    ]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await store.apply(conn, trs)
        rows = await conn.fetch(
            "SELECT id, device_id, message FROM alarms WHERE project_id = 'p1'"
            " AND device_id IN ('cam-1', 'agv-1')"
        )
    finally:
        await conn.close()
    ids = {r["device_id"]: r["id"] for r in rows}
    stored = {r["device_id"]: r["message"] for r in rows}
    # A row written before alarms carried facts: its text is all there is.
    (ids["old"],) = await insert_alarms(
        url,
        [
            {
                "project_id": "p1",
                "device_id": "old-1",
                "rule": "rsrp_low",
                "message": "5G signal weak (RSRP): RSRP -112 dBm (<= -110 dBm)",
                "last_value": -112.0,
                "evidence": {"rsrp": -112.0, "thresholds": {"raise": -110.0}},
                "opened_at": datetime.fromtimestamp(t0, UTC),
            }
        ],
    )
    keys = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield Env(c, keys, ids, stored)


async def _alarm(env: Env, device: str, **kw: Any) -> dict[str, Any]:
    r = await env.c.get(f"/api/v1/alarms/{env.ids[device]}", **kw)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_alarm_in_chinese_with_accept_language_zh_cn(env: Env) -> None:
    h = {**auth(env.keys.read_p1), "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    a = await _alarm(env, "cam-1", headers=h)
    assert a["message"] == "不良率 20 %（≥ 10 %）"
    assert a["rule_name"] == "喷涂线划伤率"
    assert a["rule"] == "defect_rate"
    listed = (await env.c.get("/api/v1/alarms", params={"project": "p1"}, headers=h)).json()
    by_device = {i["device_id"]: i for i in listed["items"]}
    assert by_device["cam-1"]["message"] == "不良率 20 %（≥ 10 %）"
    assert by_device["agv-1"]["rule_name"] == "AGV 电量低"


async def test_lang_parameter_wins_and_english_uses_units(env: Env) -> None:
    h = {**auth(env.keys.read_p1), "Accept-Language": "zh-CN"}
    a = await _alarm(env, "cam-1", headers=h, params={"lang": "en"})
    assert a["message"] == "defect rate 20 % (≥ 10 %)"
    assert a["rule_name"] == "Scratch rate at the paint line"
    a = await _alarm(env, "cam-1", headers=auth(env.keys.read_p1), params={"lang": "zh-Hans"})
    assert a["message"] == "不良率 20 %（≥ 10 %）"
    # A language the platform does not speak: English.
    h = {**auth(env.keys.read_p1), "Accept-Language": "de-DE"}
    assert (await _alarm(env, "cam-1", headers=h))["message"] == "defect rate 20 % (≥ 10 %)"


async def test_no_language_asked_reads_the_stored_english_text(env: Env) -> None:
    a = await _alarm(env, "cam-1", headers=auth(env.keys.read_p1))
    assert a["message"] == env.stored["cam-1"] == "defect rate high: defect rate 0.2 (>= 0.1)"
    assert a["rule_name"] == "Scratch rate at the paint line"


async def test_bad_lang_is_a_422_naming_the_choices(env: Env) -> None:
    r = await env.c.get(
        f"/api/v1/alarms/{env.ids['cam-1']}", params={"lang": "fr"}, headers=auth(env.keys.read_p1)
    )
    assert r.status_code == 422
    assert "lang must be one of en, zh" in r.json()["error"]["message"]


async def test_old_rows_show_their_stored_text_in_any_language(env: Env) -> None:
    for lang in ("zh", "en"):
        a = await _alarm(env, "old", headers=auth(env.keys.read_p1), params={"lang": lang})
        assert a["message"] == "5G signal weak (RSRP): RSRP -112 dBm (<= -110 dBm)"
    a = await _alarm(env, "old", headers=auth(env.keys.read_p1), params={"lang": "zh"})
    assert a["rule_name"] == "5G 信号弱（RSRP）"  # a built-in rule's id still names it


async def test_a_cleared_alarm_keeps_the_message_of_its_opening(env: Env) -> None:
    """The clear (battery back at 35 %) replaces the alarm's evidence; its message facts
    stay those of the opening (18 %), as its stored message does."""
    a = await _alarm(env, "agv-1", headers=auth(env.keys.read_p1), params={"lang": "zh"})
    assert a["state"] == "cleared"
    assert a["last_value"] == 35.0
    assert a["message"] == "电量 18 %（≤ 20 %）"
    assert a["evidence"]["battery"] == 35.0
    cleared = [e for e in a["history"] if e["transition"] == "cleared"]
    assert cleared[0]["evidence"]["text"]["value"] == 35.0  # the event keeps its own


async def test_acknowledge_answers_in_the_readers_language(env: Env) -> None:
    h = {**auth(env.keys.operate_p1), "Accept-Language": "zh-CN"}
    r = await env.c.post(f"/api/v1/alarms/{env.ids['cam-1']}/acknowledge", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "不良率 20 %（≥ 10 %）"
    assert r.json()["state"] == "acknowledged"


async def test_kpi_labels_in_both_languages(env: Env) -> None:
    path = "/api/v1/projects/p1/kpis"
    zh = await env.c.get(path, headers={**auth(env.keys.read_p1), "Accept-Language": "zh-CN"})
    en = await env.c.get(path, headers=auth(env.keys.read_p1))
    assert zh.status_code == en.status_code == 200, zh.text
    labels_zh, labels_en = zh.json()["labels"], en.json()["labels"]
    assert labels_zh["inspection.defect_rate"] == "产品不良率"
    assert labels_zh["inspection.first_pass_yield"] == "一次合格率 (FPY)"
    assert labels_zh["agv.utilisation"] == "AGV 利用率"
    assert labels_zh["link.latency_ms.p95"] == "5G 网络时延 P95"
    assert labels_en["inspection.defect_rate"] == "Product defect rate"
    assert set(labels_zh) == set(labels_en)
    # The figures are the same whatever the language.
    assert zh.json()["inspection"] == en.json()["inspection"]


def test_live_stream_in_the_readers_language(served: Served) -> None:  # noqa: F811
    """Two readers of one transition: one asking for Chinese gets it rendered, the other
    (no language) the payload's stored text; neither changes what the other sees."""
    facts = {"rule_type": "battery_low", "raise": 20.0, "direction": "below", "value": 18.0}
    body = alarm_payload(
        alarm_id=7,
        transition="opened",
        state="open",
        project="p1",
        kind="agv",
        device="agv-9",
        rule="battery_low",
        rule_type="battery_low",
        severity="warning",
        at=time.time(),
        opened_at=time.time(),
        value=18.0,
        count=1,
        message="AGV battery low: battery 18 % (<= 20 %)",
        evidence={"battery": 18.0, "text": facts},
    )
    url = f"{served.url}/api/v1/live"
    timeout = httpx.Timeout(10.0)
    zh_headers = {**bearer(served.keys.read_p1), "Accept-Language": "zh-CN"}
    with (
        httpx.stream("GET", url, headers=zh_headers, timeout=timeout) as zh_feed,
        httpx.stream("GET", url, headers=bearer(served.keys.read_p1), timeout=timeout) as plain,
    ):
        zh_events, plain_events = events(zh_feed), events(plain)
        assert next(zh_events)[0] == "hello"
        assert next(plain_events)[0] == "hello"
        got: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + 60

        def send() -> float:
            mqtt_publish.single(
                "f5g/v1/p1/alarms/agv/agv-9/battery_low",
                body,
                qos=1,
                hostname="127.0.0.1",
                port=served.broker.port,
            )
            return time.monotonic()

        last = send()
        for name, stream in (("zh", zh_events), ("plain", plain_events)):
            for event, data in stream:
                if event == "alarm" and data.get("device") == "agv-9":
                    got[name] = data
                    break
                assert time.monotonic() < deadline, f"no alarm on the {name} feed"
                if time.monotonic() - last > 2:  # the hub may have been still subscribing
                    last = send()
    assert got["zh"]["message"] == "电量 18 %（≤ 20 %）"
    assert got["zh"]["rule_name"] == "AGV 电量低"
    assert got["plain"]["message"] == "AGV battery low: battery 18 % (<= 20 %)"
    assert got["plain"]["rule_name"] == "AGV battery low"
