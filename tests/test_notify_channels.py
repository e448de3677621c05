"""Notification channels: templates, configs and the generic webhook against a real HTTP
receiver on loopback that verifies the signature independently."""

# ruff: noqa: RUF001 (the Chinese texts under test use the full-width colon)

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiomqtt
import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from f5gdev.devstack.servers import Mosquitto
from services.protocols.notify.channels import CHANNELS, parse_config
from services.protocols.notify.channels import dingtalk as dt
from services.protocols.notify.channels import email as em
from services.protocols.notify.channels import feishu as fs
from services.protocols.notify.channels import mqtt as mq
from services.protocols.notify.channels import webhook as wh
from services.protocols.notify.channels import wecom as wc
from services.protocols.notify.http import Client
from services.protocols.notify.targets import Targets
from services.protocols.notify.templates import render, truncate_utf8
from tests.notify_receivers import LOOPBACK, WebhookReceiver, make_notice

# The receivers listen on loopback: the opt-out the local stack also sets.
LOOPBACK_TARGETS = Targets(["127.0.0.0/8"])

SECRET = "s3cret-webhook-key-0123456789"
MAIL = em.EmailConfig(host="smtp.example", sender="a@plant.example", recipients=["b@plant.example"])


# ---------------------------------------------------------------------------- templates


def test_render_english_has_every_field_and_plant_time() -> None:
    notice = make_notice(value=87.25, unit="°C", count=3)
    out = render(notice, "en", ZoneInfo("Asia/Shanghai"))
    assert out.title == "[Critical] Alarm opened: agv_estop on agv-07"
    for part in ("Plant A Assembly (plant-a)", "line-2", "agv-07 (agv)", "agv_estop (estop)",
                 "87.25 °C", "emergency stop pressed", "Occurrences: 3",
                 "2026-12-02 03:03:04 Asia/Shanghai (UTC+08:00)",
                 "https://factory.example/alarms/42", "alarm-42:opened:route-1"):  # fmt: skip
        assert part in out.text, part
    assert "**Device**: agv-07 (agv)" in out.markdown
    assert "[Open in dashboard](https://factory.example/alarms/42)" in out.markdown


def test_render_chinese_and_transitions() -> None:
    ack = make_notice(kind="acknowledged", state="acknowledged", actor="张工", escalation_level=2)
    out = render(ack, "zh")
    assert out.title == "【紧急】告警已确认：agv_estop · agv-07"
    for part in ("项目：Plant A Assembly", "设备：agv-07 (agv)", "级别：紧急", "状态：已确认",
                 "操作人：张工", "升级层级：2", "触发时间：2026-12-01 19:03:04 UTC (UTC+00:00)",
                 "在看板中查看"):  # fmt: skip
        assert part in out.text, part
    kinds = ("opened", "escalated", "acknowledged", "cleared", "reminder", "escalation", "test")
    titles = {render(make_notice(kind=k), lang).title for k in kinds for lang in ("en", "zh")}
    assert len(titles) == 14


def test_untrusted_fields_cannot_inject_lines_links_or_mentions() -> None:
    evil = make_notice(
        device="agv\r\nBcc: all@corp [click](https://evil.example) <at id=all></at>",
        message='**urgent** <font color="warning">x</font>\n# fake heading',
        dashboard_url="javascript:alert(1)",
    )
    for language in ("en", "zh"):
        out = render(evil, language)
        assert "\n" not in out.title
        assert "\r" not in out.title
        assert "\nBcc:" not in out.text
        assert "](https://evil" not in out.markdown
        assert "\uff3bclick\uff3d(https://evil.example)" in out.markdown  # shown, inert
        assert "<at" not in out.markdown
        assert "<font" not in out.markdown
        assert "\n# fake" not in out.markdown
        assert out.link is None
        assert "javascript:" not in out.markdown


def test_long_fields_are_capped() -> None:
    out = render(make_notice(message="告" * 50_000, device="d" * 5000), "zh")
    assert len(out.text) < 3000


@given(st.text(), st.integers(min_value=0, max_value=64))
def test_truncate_utf8_never_splits_a_character(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    assert len(cut.encode()) <= max(limit, 0) or cut == text
    if len(text.encode()) <= limit:
        assert cut == text
    else:
        assert cut == "" or (cut.endswith("…") and text.startswith(cut[:-1]))


# ------------------------------------------------------------------------------ configs


def test_registry_has_every_channel_and_secret_fields_are_secret() -> None:
    assert set(CHANNELS) == {"email", "webhook", "wecom", "dingtalk", "feishu", "mqtt"}
    for entry in CHANNELS.values():
        for name in entry.secrets:
            assert name in entry.config.model_fields, (entry.name, name)
    config = parse_config("webhook", {"url": "https://x.example/h", "secret": SECRET})
    assert SECRET not in config.model_dump_json()
    assert SECRET not in repr(config)


@pytest.mark.parametrize(
    ("channel", "data", "named"),
    [
        ("webhook", {"url": "http://x.example/h", "secret": SECRET}, "allow_insecure_http"),
        ("webhook", {"url": "https://x.example/h", "secret": SECRET, "extra": 1}, "extra"),
        ("webhook", {"url": "https://x.example/h", "secret": "short"}, "secret"),
        ("webhook", {"url": "ftp://x.example/h", "secret": SECRET}, "https://"),
        ("wecom", {"key": "k", "base_url": "http://127.0.0.1:1"}, "allow_insecure_http"),
        ("dingtalk", {"access_token": "t", "at_mobiles": ["not a phone"]}, "at_mobiles"),
        ("feishu", {"hook_id": "h", "msg_type": "text"}, "msg_type"),
        (
            "email",
            {"host": "smtp", "sender": "a@b.c", "recipients": ["x@y.z"], "security": "none"},
            "allow_plaintext_smtp",
        ),
        (
            "email",
            {"host": "smtp", "sender": "a@b.c", "recipients": ["x@y.z\r\nBcc: q@r.s"]},
            "recipients",
        ),
        ("mqtt", {"topic": "alarms/#"}, "topic"),
    ],
)
def test_bad_configs_fail_naming_the_key(channel: str, data: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_config(channel, data)
    assert named in str(info.value)


def test_unknown_channel_type() -> None:
    with pytest.raises(ValueError, match="unknown channel type 'sms'"):
        parse_config("sms", {})


# ------------------------------------------------------------------------------ webhook


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as r:
        assert isinstance(r, WebhookReceiver)
        yield r


def _config(receiver: WebhookReceiver, **kw: object) -> wh.WebhookConfig:
    return wh.WebhookConfig.model_validate(
        {"url": receiver.hook_url, "secret": SECRET, "allow_insecure_http": True, **kw}
    )


async def test_webhook_delivers_signed_json(receiver: WebhookReceiver) -> None:
    notice = make_notice(evidence={"speed": 0.0, 3: "non-string key"})
    async with Client(targets=LOOPBACK_TARGETS) as client:
        for language in ("en", "zh"):
            outcome = await wh.send(_config(receiver), notice, language, client)
            assert (outcome.ok, outcome.status) == (True, "200"), outcome
    assert receiver.problems == []
    assert receiver.accepted == {notice.idempotency_key: 2}
    en, zh = (r.json() for r in receiver.requests)
    assert en["alarm"]["device"] == "agv-07"
    assert en["alarm"]["severity"] == "critical"
    assert en["kind"] == "opened"
    assert en["version"] == 1
    assert en["language"] == "en"
    assert zh["title"].startswith("【紧急】")
    assert en["title"].startswith("[Critical]")
    assert en["alarm"]["at"] == "2026-12-01T19:03:04+00:00"


async def test_webhook_document_matches_its_json_schema(receiver: WebhookReceiver) -> None:
    async with Client(targets=LOOPBACK_TARGETS) as client:
        notice = make_notice(value=None, opened_at=None, line=None, evidence={"a": [1, 2]})
        for n in (make_notice(), notice):
            assert (await wh.send(_config(receiver), n, "en", client)).ok
    for request in receiver.requests:
        jsonschema.validate(request.json(), wh.schema())


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (408, True),
                              (400, False), (401, False), (404, False), (301, False)],
)  # fmt: skip
async def test_webhook_classifies_answers(
    receiver: WebhookReceiver, status: int, retryable: bool
) -> None:
    receiver.fail_next(1, status, b'{"error":"scripted"}')
    async with Client(targets=LOOPBACK_TARGETS) as client:
        outcome = await wh.send(_config(receiver), make_notice(), "en", client)
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, retryable, str(status))
    assert "scripted" in outcome.answer
    assert receiver.accepted == {}


async def test_webhook_receiver_down_and_timeout_are_retryable(
    receiver: WebhookReceiver,
) -> None:
    async with Client(targets=LOOPBACK_TARGETS) as client:
        # a kept-alive connection first: stopping must cut it, as a crashed receiver would
        assert (await wh.send(_config(receiver), make_notice(), "en", client)).ok
        receiver.stop()
        down = await wh.send(_config(receiver), make_notice(), "en", client)
        assert (down.ok, down.retryable, down.status) == (False, True, "connect error")
        receiver.start()
        receiver.hold()
        slow = await wh.send(_config(receiver, timeout_s=0.5), make_notice(), "en", client)
        assert (slow.ok, slow.retryable, slow.status) == (False, True, "timeout")
        receiver.release()
        back = await wh.send(_config(receiver), make_notice(), "en", client)
        assert back.ok
    assert receiver.problems == []


async def test_webhook_wrong_secret_is_refused_and_not_retried(
    receiver: WebhookReceiver,
) -> None:
    config = _config(receiver, secret="another-secret-of-length")
    async with Client(targets=LOOPBACK_TARGETS) as client:
        outcome = await wh.send(config, make_notice(), "en", client)
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "401")
    assert receiver.problems == ["signature mismatch"]
    assert receiver.accepted == {}


def test_verify_helper_accepts_fresh_and_rejects_replay_and_tampering() -> None:
    body = b'{"idempotency_key":"k"}'
    now = time.time()
    ts = str(int(now))
    mac = hmac.new(SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    signature = "sha256=" + mac
    assert wh.sign(SECRET, ts, body) == signature  # the documented algorithm
    wh.verify(SECRET, ts, signature, body, now=now)
    wh.verify(SECRET, ts, signature, body, now=now + 299)
    for args, reason in [
        ((SECRET, ts, signature, body + b" "), "does not match"),
        ((SECRET, ts, signature.replace("sha256=", "sha256=0"), body), "does not match"),
        (("other-secret", ts, signature, body), "does not match"),
        ((SECRET, str(int(now) - 1), signature, body), "does not match"),
        ((SECRET, None, signature, body), "missing"),
        ((SECRET, "12ab", signature, body), "unix seconds"),
    ]:
        with pytest.raises(wh.VerificationError, match=reason):
            wh.verify(*args, now=now)  # type: ignore[arg-type]
    with pytest.raises(wh.VerificationError, match="replay"):
        wh.verify(SECRET, ts, signature, body, now=now + 301)  # a recorded call, replayed
    with pytest.raises(wh.VerificationError, match="replay"):
        wh.verify(SECRET, ts, signature, body, now=now - 301)


def test_webhook_document_is_json_with_unicode() -> None:
    body = wh.encode_notice(make_notice(device="叉车-1"), "zh")
    assert json.loads(body)["alarm"]["device"] == "叉车-1"
    assert datetime.fromisoformat(json.loads(body)["alarm"]["at"]).tzinfo == UTC


# --------------------------------------------------------------------------------- mqtt


async def test_mqtt_publishes_the_document_at_qos1_through_the_lent_publisher(
    broker: Mosquitto,
) -> None:
    config = parse_config("mqtt", {"topic": "factory5g/notify/plant-a"})
    assert isinstance(config, mq.MqttConfig)
    async with (
        aiomqtt.Client(LOOPBACK, broker.port, identifier="notify-sub") as sub,
        aiomqtt.Client(LOOPBACK, broker.port, identifier="notify-pub") as pub,
    ):
        await sub.subscribe("factory5g/notify/#", qos=1)

        async def publish(topic: str, payload: bytes) -> bool:
            await pub.publish(topic, payload, qos=1)  # returns once PUBACKed
            return True

        async with Client(targets=LOOPBACK_TARGETS) as client:
            outcome = await CHANNELS["mqtt"].send(
                config, make_notice(), "zh", client, publish=publish
            )
        assert (outcome.ok, outcome.status) == (True, "puback")
        message = await asyncio.wait_for(anext(aiter(sub.messages)), 30)
    assert message.qos == 1
    assert str(message.topic) == "factory5g/notify/plant-a"
    assert isinstance(message.payload, bytes)
    document = json.loads(message.payload)
    jsonschema.validate(document, wh.schema())
    assert document["title"].startswith("【紧急】")
    assert document["alarm"]["device"] == "agv-07"


async def test_mqtt_refusal_and_errors_are_retryable_missing_publisher_is_not() -> None:
    config = mq.MqttConfig(topic="t/notify")

    async def refused(topic: str, payload: bytes) -> bool:
        return False

    async def broken(topic: str, payload: bytes) -> bool:
        raise ConnectionResetError("connection lost")

    async with Client(targets=LOOPBACK_TARGETS) as client:
        first = await mq.send(config, make_notice(), "en", client, publish=refused)
        second = await mq.send(config, make_notice(), "en", client, publish=broken)
        third = await mq.send(config, make_notice(), "en", client)
    assert (first.ok, first.retryable) == (False, True)
    assert (second.ok, second.retryable, second.status) == (False, True, "publish error")
    assert (third.ok, third.retryable, third.status) == (False, False, "no publisher")


# -------------------------------------------------------------------- hostile text fields

# Any character, plus what JSON "\\ud800" escapes and binary protocols can smuggle in:
# lone surrogates, NUL, line breaks, bidi overrides.
_ODD = st.sampled_from(["\ud800", "\udfff", "\x00", "\r\n", "\u202e", "\u2028", "<at id=all>"])
_HOSTILE = st.lists(st.one_of(st.characters(), _ODD), max_size=3000).map("".join)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(device=_HOSTILE, message=_HOSTILE, project_name=_HOSTILE, unit=_HOSTILE, rule=_HOSTILE)
@example(device="agv\ud800", message="\udfff", project_name="p", unit="u", rule="r")
def test_any_device_text_renders_within_every_vendor_limit(
    device: str, message: str, project_name: str, unit: str, rule: str
) -> None:
    """Whatever text reaches a notice, every channel builds a valid message within its
    vendor's limit, or the delivery would fail for good on one bad field."""
    notice = make_notice(device=device, message=message, project_name=project_name, unit=unit,
                         rule=rule, evidence={"raw": message})  # fmt: skip
    for language in ("en", "zh"):
        assert len(wc.markdown(notice, language).encode()) <= wc.MARKDOWN_MAX_BYTES
        ding = parse_config("dingtalk", {"access_token": "t", "at_mobiles": ["13800001111"]})
        assert isinstance(ding, dt.DingTalkConfig)
        assert len(orjson.dumps(dt.message(ding, notice, language))) <= dt.MESSAGE_MAX_BYTES
        for msg_type in ("interactive", "post"):
            feishu = fs.FeishuConfig.model_validate({"hook_id": "h", "msg_type": msg_type})
            body = orjson.dumps(fs.content(feishu, notice, language))
            assert len(body) <= fs.BODY_MAX_BYTES - 1024
        mail = em.build(MAIL, notice, language)
        assert mail.as_bytes()
        assert "\n" not in str(mail["Subject"])
        document = json.loads(wh.encode_notice(notice, language))
        jsonschema.validate(document, wh.schema())


async def test_any_idempotency_key_reaches_the_receiver_unambiguously(
    receiver: WebhookReceiver,
) -> None:
    """Keys are the notify service's, but may embed device ids: non-ASCII or control
    characters must not fail the request nor add a header (the client refuses such values)."""
    keys = ["alarm-1:opened:r1", "告警-7:opened:路由", "a\r\nInjected: yes", "sp ace:%41"]
    async with Client(targets=LOOPBACK_TARGETS) as client:
        for key in keys:
            outcome = await wh.send(
                _config(receiver), make_notice(idempotency_key=key), "en", client
            )
            assert outcome.ok, (key, outcome)
    assert receiver.problems == []
    headers = [r.headers["idempotency-key"] for r in receiver.requests]
    assert headers[0] == "alarm-1:opened:r1"  # plain keys are sent as they are
    assert len(set(headers)) == len(keys)
    assert all(h.isascii() and h.isprintable() for h in headers)
    assert [wh.header_key(k) for k in keys] == headers
    assert "injected" not in {k.lower() for r in receiver.requests for k in r.headers}
