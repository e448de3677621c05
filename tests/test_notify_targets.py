"""Where the HTTP channels may connect (server-side request forgery) and how much of a
hostile receiver they read, against the real API, real receivers on loopback and the
real resolver.

Link-local and metadata addresses are refused always, loopback and private ones unless
`notify.allow_private_targets` names them: when a channel is saved (422 naming the field)
and again when sending, after DNS resolution (a name resolving to a refused address fails
the attempt, not retried, and nothing reaches the receiver). A receiver that streams an
endless body costs the client `MAX_BODY` bytes, and one that never answers the timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from services.core.settings import ConfigError, load_settings
from services.protocols.notify.channels import webhook
from services.protocols.notify.http import MAX_BODY, Client, HttpError
from services.protocols.notify.targets import TargetRefusedError, Targets
from tests.notify_receivers import make_notice
from tests.test_api_support import api_settings, auth, client, make_keys

N = "/api/v1/notify"
SECRET = "s3cr3t-signing-key-0123456789"
REFUSED_ALWAYS = (
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://100.100.100.200/latest/meta-data/",
)
PRIVATE = ("http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://10.1.2.3/hook")
# Everything private allowed, link-local named too: metadata addresses stay refused.
EVERYTHING = ["127.0.0.0/8", "::1", "10.0.0.0/8", "169.254.0.0/16", "fe80::/10", "localhost"]


class Receiver:
    """A real HTTP server on loopback: counts requests, answers with `answer` (bytes, or
    an async function writing to the socket)."""

    def __init__(self, answer: bytes | Callable[[asyncio.StreamWriter], object]) -> None:
        self.answer = answer
        self.requests = 0
        self.port = 0
        self.sent = 0

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":", 1)[1]))
            self.requests += 1
            if isinstance(self.answer, bytes):
                writer.write(self.answer)
                await writer.drain()
            else:
                await self.answer(writer)  # type: ignore[misc]
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


# --------------------------------------------------------------------------- creation


async def test_channel_urls_are_checked_when_saved(new_database: Callable[..., str]) -> None:
    url = new_database()
    keys = await make_keys(url)

    async def create(settings_targets: list[str], target: str) -> tuple[int, str]:
        settings = api_settings(url)
        settings.notify.allow_private_targets = settings_targets
        async with client(settings) as (_, c):
            r = await c.post(
                f"{N}/channels",
                json={
                    "name": f"hook-{uuid.uuid4().hex[:8]}",
                    "type": "webhook",
                    "config": {"url": target, "secret": SECRET, "allow_insecure_http": True},
                },
                headers=auth(keys.admin),
            )
            return r.status_code, r.text

    for target in REFUSED_ALWAYS:
        for allowed in ([], EVERYTHING):
            status, text = await create(allowed, target)
            assert status == 422, (target, allowed, text)
            assert "config.url" in text, text
            assert "refused always" in text, text
    for target in PRIVATE:
        status, text = await create([], target)
        assert status == 422, (target, text)
        assert "config.url" in text, text
        assert "allow_private_targets" in text, text
        assert (await create(EVERYTHING, target))[0] == 201, target
    assert (await create([], "https://alarms.example.com/hook"))[0] == 201

    # A change is checked too, and a chat channel's base_url like a webhook's url.
    settings = api_settings(url)
    async with client(settings) as (_, c):
        r = await c.post(
            f"{N}/channels",
            json={"name": "hook-change", "type": "webhook",
                  "config": {"url": "https://alarms.example.com/h", "secret": SECRET}},
            headers=auth(keys.admin),
        )  # fmt: skip
        assert r.status_code == 201, r.text
        r = await c.patch(
            f"{N}/channels/{r.json()['id']}",
            json={"config": {"url": "https://169.254.169.254/h"}},
            headers=auth(keys.admin),
        )
        assert r.status_code == 422, r.text
        assert "config.url" in r.text
        r = await c.post(
            f"{N}/channels",
            json={"name": "robot", "type": "wecom",
                  "config": {"key": "k" * 20, "base_url": "https://127.0.0.1:8443"}},
            headers=auth(keys.admin),
        )  # fmt: skip
        assert r.status_code == 422, r.text
        assert "config.base_url" in r.text


def test_a_bad_allowed_entry_fails_at_start_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="F5G_NOTIFY__ALLOW_PRIVATE_TARGETS"):
        load_settings(notify={"allow_private_targets": ["not a host!"]})
    assert load_settings(
        notify={"allow_private_targets": ["10.0.0.0/8", "hooks.plant.local"]}
    ).notify.allow_private_targets == ["10.0.0.0/8", "hooks.plant.local"]


# --------------------------------------------------------------------------- send time


async def test_send_checks_every_resolved_address_and_sends_nothing_refused() -> None:
    async with Receiver(OK) as rx:
        # A name (resolved by the system's resolver, like any receiver's) and a literal,
        # both loopback: refused by default, before connecting.
        for target in (f"http://localhost:{rx.port}/h", f"http://127.0.0.1:{rx.port}/h"):
            async with Client() as default:
                with pytest.raises(TargetRefusedError, match="allow_private_targets"):
                    await default.post(target, b"{}", {}, 5)
        assert rx.requests == 0
        # Through the webhook channel: a failed attempt that is not retried.
        config = webhook.WebhookConfig(
            url=f"http://localhost:{rx.port}/h", secret=SecretStr(SECRET), allow_insecure_http=True
        )
        async with Client() as default:
            outcome = await webhook.send(config, make_notice(), "en", default)
        assert (outcome.ok, outcome.retryable, outcome.status) == (False, False, "refused target")
        assert "localhost" in outcome.answer
        assert "loopback" in outcome.answer
        assert rx.requests == 0
        # The opt-out by network or by host name: delivered.
        for allowed in (["127.0.0.0/8", "::1"], ["localhost"]):
            async with Client(targets=Targets(allowed)) as opted:
                outcome = await webhook.send(config, make_notice(), "en", opted)
            assert outcome.ok, (allowed, outcome)
        assert rx.requests == 2
    async with Client(targets=Targets(EVERYTHING)) as everything:
        for target in REFUSED_ALWAYS:
            started = time.monotonic()
            with pytest.raises(TargetRefusedError, match="refused always"):
                await everything.post(target, b"{}", {}, 30)
            assert time.monotonic() - started < 10  # refused, not a connect attempt


# --------------------------------------------------------------------------- hostile receivers


async def _endless_close_delimited(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n")
    while True:
        writer.write(b"x" * 65536)
        await writer.drain()


async def _endless_chunks(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(b"4000\r\n" + b"y" * 0x4000 + b"\r\n")
        await writer.drain()


async def _endless_chunk_size(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while True:
        writer.write(b"0" * 65536)
        await writer.drain()


async def _endless_trailers(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n")
    while True:
        writer.write(b"X-T: 1\r\n" * 1000)
        await writer.drain()


async def test_an_endless_body_costs_max_body_not_memory_or_time() -> None:
    assert MAX_BODY == 64 * 1024
    targets = Targets(["127.0.0.0/8"])
    async with Receiver(_endless_close_delimited) as rx, Client(targets=targets) as c:
        started = time.monotonic()
        response = await c.post(f"http://127.0.0.1:{rx.port}/h", b"{}", {}, 60)
        assert time.monotonic() - started < 30  # returned on the cap, not the timeout
        assert (response.status, len(response.body)) == (500, MAX_BODY)
    for endless in (_endless_chunks, _endless_chunk_size, _endless_trailers):
        async with Receiver(endless) as rx, Client(targets=targets) as c:
            started = time.monotonic()
            with pytest.raises(HttpError):
                await c.post(f"http://127.0.0.1:{rx.port}/h", b"{}", {}, 60)
            assert time.monotonic() - started < 30, endless.__name__


async def test_a_receiver_that_never_answers_is_bounded_by_the_channel_timeout() -> None:
    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    async with Receiver(silent) as rx, Client(targets=Targets(["127.0.0.0/8"])) as c:
        config = webhook.WebhookConfig(
            url=f"http://127.0.0.1:{rx.port}/h",
            secret=SecretStr(SECRET),
            allow_insecure_http=True,
            timeout_s=1.0,
        )
        started = time.monotonic()
        outcome = await webhook.send(config, make_notice(), "en", c)
        assert (outcome.ok, outcome.retryable, outcome.status) == (False, True, "timeout")
        assert time.monotonic() - started < 20
        assert rx.requests == 1
