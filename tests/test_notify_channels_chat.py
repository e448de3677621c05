"""WeCom, DingTalk and Feishu robots against real HTTP receivers on loopback that check
each request as the vendor documents it (path, query, JSON shape, signature recomputed in
tests/notify_receivers.py from the vendor's algorithm, timestamp window) and answer with the
vendor's success and error codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from services.protocols.notify.channels import CHANNELS, parse_config
from services.protocols.notify.channels import dingtalk as dt
from services.protocols.notify.channels import feishu as fs
from services.protocols.notify.channels import wecom as wc
from services.protocols.notify.http import Client
from services.protocols.notify.message import Outcome
from services.protocols.notify.targets import Targets
from tests.notify_receivers import DingTalkReceiver, FeishuReceiver, WeComReceiver, make_notice

# The receivers listen on loopback: the opt-out the local stack also sets.
LOOPBACK_TARGETS = Targets(["127.0.0.0/8"])

WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "b1e2f3a4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2"
FEISHU_HOOK = "0f8e2b7c-1d4a-4e3b-9c5d-6a7b8c9d0e1f"
FEISHU_SECRET = "qwertyuiopASDFGHJKL1"
DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"


async def _send(channel: str, data: dict[str, Any], language: str = "en", **notice: Any) -> Outcome:
    config = parse_config(channel, {"allow_insecure_http": True, **data})
    async with Client(targets=LOOPBACK_TARGETS) as client:
        return await CHANNELS[channel].send(config, make_notice(**notice), language, client)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- WeCom


@pytest.fixture
def wecom() -> Iterator[WeComReceiver]:
    with WeComReceiver(WECOM_KEY) as receiver:
        assert isinstance(receiver, WeComReceiver)
        yield receiver


def _wecom(receiver: WeComReceiver, **kw: Any) -> dict[str, Any]:
    return {"key": WECOM_KEY, "base_url": receiver.url, **kw}


async def test_wecom_markdown_in_both_languages(wecom: WeComReceiver) -> None:
    for language in ("en", "zh"):
        outcome = await _send("wecom", _wecom(wecom), language)
        assert (outcome.ok, outcome.status) == (True, "errcode=0"), outcome
    assert wecom.problems == []
    en, zh = (r.json()["markdown"]["content"] for r in wecom.requests)
    assert en.startswith('### <font color="warning">\uff3bCritical\uff3d Alarm opened')
    assert "【紧急】告警触发" in zh
    assert "**设备**" in zh
    assert "[Open in dashboard](https://factory.example/alarms/42)" in en


async def test_wecom_long_alarm_is_cut_to_4096_bytes_on_a_character(wecom: WeComReceiver) -> None:
    long = {"message": "急停" * 50_000, "device": "叉" * 300, "project_name": "厂" * 300,
            "rule": "规" * 300, "line": "线" * 300}  # fmt: skip
    outcome = await _send("wecom", _wecom(wecom), "zh", **long)
    assert outcome.ok, outcome
    assert wecom.problems == []
    content = wecom.requests[0].json()["markdown"]["content"]
    assert 4000 < len(content.encode()) <= 4096
    assert content.endswith("…")


@pytest.mark.parametrize(
    ("status", "answer", "retryable", "shown"),
    [
        (200, {"errcode": 45009, "errmsg": "api freq out of limit"}, True, "errcode=45009"),
        (200, {"errcode": -1, "errmsg": "system busy"}, True, "errcode=-1"),
        (200, {"errcode": 40058, "errmsg": "invalid parameter"}, False, "errcode=40058"),
        (502, {"error": "bad gateway"}, True, "502"),
        (200, b"<html>portal</html>", True, "200 unexpected answer"),
    ],
)
async def test_wecom_error_answers(
    wecom: WeComReceiver, status: int, answer: Any, retryable: bool, shown: str
) -> None:
    wecom.fail_next(1, status, answer)
    outcome = await _send("wecom", _wecom(wecom))
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, retryable, shown)


async def test_wecom_invalid_key_is_not_retried(wecom: WeComReceiver) -> None:
    outcome = await _send("wecom", _wecom(wecom, key="deleted-robot"))
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "errcode=93000")
    assert "invalid webhook url" in outcome.answer
    assert wecom.problems == ["wrong key"]


async def test_wecom_key_is_url_encoded(wecom: WeComReceiver) -> None:
    wecom.key = "a&b=c d"
    assert (await _send("wecom", _wecom(wecom, key="a&b=c d"))).ok
    assert wecom.problems == []
    assert wecom.requests[0].path == wc.PATH


def test_wecom_default_host_is_the_vendors_over_https() -> None:
    config = parse_config("wecom", {"key": "k"})
    assert isinstance(config, wc.WeComConfig)
    assert config.base_url == "https://qyapi.weixin.qq.com"


# ------------------------------------------------------------------------------ DingTalk


def _ding(receiver: DingTalkReceiver, **kw: Any) -> dict[str, Any]:
    return {"access_token": DING_TOKEN, "base_url": receiver.url, **kw}


async def test_dingtalk_signed_markdown_with_mentions() -> None:
    with DingTalkReceiver(DING_TOKEN, secret=DING_SECRET) as receiver:
        assert isinstance(receiver, DingTalkReceiver)
        data = _ding(receiver, secret=DING_SECRET, at_mobiles=["13800001111"])
        for language in ("en", "zh"):
            outcome = await _send("dingtalk", data, language)
            assert (outcome.ok, outcome.status) == (True, "errcode=0"), outcome
        assert receiver.problems == []
        en, zh = receiver.requests
    for request in (en, zh):
        timestamp = request.one("timestamp")
        assert timestamp is not None
        assert len(timestamp) == 13  # milliseconds
        assert "+" not in request.raw_query.split("sign=")[1]  # the sign is URL-encoded
        assert request.json()["at"] == {"atMobiles": ["13800001111"], "isAtAll": False}
    assert en.json()["markdown"]["title"] == "[Critical] Alarm opened: agv_estop on agv-07"
    assert "@13800001111" in zh.json()["markdown"]["text"]
    assert "**设备**" in zh.json()["markdown"]["text"]


def test_dingtalk_sign_matches_the_documented_example_encoding() -> None:
    # The sign of DingTalk's documentation: quote_plus(base64(HmacSHA256)): '+', '/' and
    # '=' appear percent-encoded.
    signs = {dt.signature(DING_SECRET, str(1_700_000_000_000 + i)) for i in range(50)}
    assert all("+" not in s and "/" not in s and s.endswith("%3D") for s in signs)
    assert any("%2B" in s or "%2F" in s for s in signs)


async def test_dingtalk_wrong_secret_or_missing_sign_is_not_retried() -> None:
    with DingTalkReceiver(DING_TOKEN, secret=DING_SECRET) as receiver:
        wrong = await _send("dingtalk", _ding(receiver, secret="SECwrong"))
        unsigned = await _send("dingtalk", _ding(receiver))
        assert receiver.problems == ["sign mismatch", "signed robot without timestamp/sign"]
    for outcome in (wrong, unsigned):
        assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "errcode=310000")


async def test_dingtalk_keyword_mode() -> None:
    with DingTalkReceiver(DING_TOKEN, keyword="告警") as receiver:
        assert (await _send("dingtalk", _ding(receiver, keyword="告警"), "en")).ok
        missing = await _send("dingtalk", _ding(receiver), "en")
        assert receiver.problems == ["keyword missing"]
    assert (missing.ok, missing.retryable, missing.status) == (False, False, "errcode=310000")


@pytest.mark.parametrize(
    ("answer", "retryable"),
    [
        ({"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}, True),
        ({"errcode": -1, "errmsg": "system busy"}, True),
        ({"errcode": 400013, "errmsg": "group is dissolved"}, False),
    ],
)
async def test_dingtalk_error_codes(answer: dict[str, Any], retryable: bool) -> None:
    with DingTalkReceiver(DING_TOKEN) as receiver:
        receiver.fail_next(1, 200, answer)
        outcome = await _send("dingtalk", _ding(receiver))
    assert (outcome.ok, outcome.retryable) == (False, retryable)
    assert outcome.status == f"errcode={answer['errcode']}"
    assert answer["errmsg"] in outcome.answer


async def test_dingtalk_wrong_token_is_not_retried() -> None:
    with DingTalkReceiver(DING_TOKEN) as receiver:
        outcome = await _send("dingtalk", _ding(receiver, access_token="gone"))
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "errcode=300001")


async def test_dingtalk_long_alarm_fits_20000_bytes() -> None:
    with DingTalkReceiver(DING_TOKEN) as receiver:
        outcome = await _send("dingtalk", _ding(receiver), "zh", message="停" * 100_000)
        assert outcome.ok, outcome
        assert receiver.problems == []
        assert len(receiver.requests[0].body) <= 20000


def test_dingtalk_default_host_is_the_vendors_over_https() -> None:
    config = parse_config("dingtalk", {"access_token": "t"})
    assert isinstance(config, dt.DingTalkConfig)
    assert config.base_url == "https://oapi.dingtalk.com"


# -------------------------------------------------------------------------------- Feishu


def _feishu(receiver: FeishuReceiver, **kw: Any) -> dict[str, Any]:
    return {"hook_id": FEISHU_HOOK, "base_url": receiver.url, **kw}


async def test_feishu_signed_card_in_both_languages() -> None:
    with FeishuReceiver(FEISHU_HOOK, secret=FEISHU_SECRET) as receiver:
        assert isinstance(receiver, FeishuReceiver)
        for language in ("en", "zh"):
            outcome = await _send("feishu", _feishu(receiver, secret=FEISHU_SECRET), language)
            assert (outcome.ok, outcome.status) == (True, "code=0"), outcome
        cleared = await _send(
            "feishu", _feishu(receiver, secret=FEISHU_SECRET), kind="cleared", state="cleared"
        )
        assert cleared.ok
        assert receiver.problems == []
        en, zh, clr = (r.json() for r in receiver.requests)
    assert len(en["timestamp"]) == 10  # seconds
    assert en["card"]["header"]["template"] == "red"
    assert clr["card"]["header"]["template"] == "green"
    assert zh["card"]["header"]["title"]["content"] == "【紧急】告警触发：agv_estop · agv-07"  # noqa: RUF001
    assert "**设备**" in zh["card"]["elements"][0]["content"]


async def test_feishu_post_rich_text() -> None:
    with FeishuReceiver(FEISHU_HOOK) as receiver:
        for language in ("en", "zh"):
            outcome = await _send("feishu", _feishu(receiver, msg_type="post"), language)
            assert outcome.ok, outcome
        assert receiver.problems == []
        en, zh = (r.json() for r in receiver.requests)
    assert "timestamp" not in en
    assert en["msg_type"] == "post"
    post = en["content"]["post"]["en_us"]
    assert post["title"].startswith("[Critical]")
    assert [e["text"] for e in post["content"][2]] == ["Device: agv-07 (agv)"]
    assert {"tag": "a", "text": "Open in dashboard",
            "href": "https://factory.example/alarms/42"} in post["content"][-1]  # fmt: skip
    assert "zh_cn" in zh["content"]["post"]


async def test_feishu_wrong_secret_is_not_retried() -> None:
    with FeishuReceiver(FEISHU_HOOK, secret=FEISHU_SECRET) as receiver:
        outcome = await _send("feishu", _feishu(receiver, secret="another-secret"))
        assert receiver.problems == ["sign or timestamp wrong"]
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "code=19021")


def test_feishu_sign_is_key_timestamp_secret_over_an_empty_message() -> None:
    import base64
    import hashlib
    import hmac

    key = f"1599360473\n{FEISHU_SECRET}".encode()
    expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert fs.signature(FEISHU_SECRET, "1599360473") == expected
    # DingTalk's algorithm (key = secret, message = timestamp + secret) must not match
    swapped = hmac.new(FEISHU_SECRET.encode(), key, hashlib.sha256).digest()
    assert fs.signature(FEISHU_SECRET, "1599360473") != base64.b64encode(swapped).decode()


async def test_feishu_keyword_mode() -> None:
    with FeishuReceiver(FEISHU_HOOK, keyword="告警") as receiver:
        assert (await _send("feishu", _feishu(receiver, keyword="告警"), "en")).ok
        missing = await _send("feishu", _feishu(receiver), "en")
        assert receiver.problems == ["keyword missing"]
    assert (missing.ok, missing.retryable, missing.status) == (False, False, "code=19024")


@pytest.mark.parametrize(
    ("status", "answer", "retryable", "shown"),
    [
        (200, {"code": 9499, "msg": "Too Many Request"}, True, "code=9499"),
        (200, {"code": 11232, "msg": "frequency limited"}, True, "code=11232"),
        (429, {"code": 9499, "msg": "Too Many Request"}, True, "429"),
        (200, {"code": 19002, "msg": "params error"}, False, "code=19002"),
        (200, {"StatusCode": 0, "StatusMessage": "success"}, False, "code=0"),
    ],
)
async def test_feishu_answers(status: int, answer: Any, retryable: bool, shown: str) -> None:
    with FeishuReceiver(FEISHU_HOOK) as receiver:
        receiver.fail_next(1, status, answer)
        outcome = await _send("feishu", _feishu(receiver))
    assert (outcome.ok, outcome.status) == (shown == "code=0", shown)
    assert outcome.retryable == retryable


async def test_feishu_wrong_hook_is_not_retried() -> None:
    with FeishuReceiver(FEISHU_HOOK) as receiver:
        outcome = await _send("feishu", _feishu(receiver, hook_id="gone"))
    assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "code=19001")


@pytest.mark.parametrize("msg_type", ["interactive", "post"])
async def test_feishu_long_alarm_fits_30_kb(msg_type: str) -> None:
    big = {"message": "停" * 100_000, "evidence": {"x": "y" * 100_000}}
    with FeishuReceiver(FEISHU_HOOK, secret=FEISHU_SECRET) as receiver:
        data = _feishu(receiver, secret=FEISHU_SECRET, msg_type=msg_type)
        outcome = await _send("feishu", data, "zh", **big)
        assert outcome.ok, outcome
        assert receiver.problems == []
        assert json.loads(receiver.requests[0].body)["msg_type"] == msg_type


def test_feishu_default_host_is_the_vendors_over_https() -> None:
    config = parse_config("feishu", {"hook_id": "h"})
    assert isinstance(config, fs.FeishuConfig)
    assert config.base_url == "https://open.feishu.cn"


async def test_wecom_receiver_refuses_what_wecom_refuses(wecom: WeComReceiver) -> None:
    """The receiver's checks are live: an over-long or non-markdown message is refused."""
    url = f"{wecom.url}{wc.PATH}?key={WECOM_KEY}"
    async with Client(targets=LOOPBACK_TARGETS) as client:
        long_body = {"msgtype": "markdown", "markdown": {"content": "告" * 1366}}
        long = await client.post(url, json.dumps(long_body).encode(), {}, 10.0)
        text_body = {"msgtype": "text", "text": {"content": "x"}}
        text = await client.post(url, json.dumps(text_body).encode(), {}, 10.0)
    assert json.loads(long.body)["errcode"] == 40058
    assert json.loads(text.body)["errcode"] == 40008
    assert len(wecom.problems) == 2
