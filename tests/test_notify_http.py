"""The notifier's HTTP client against real servers on loopback: the response framings a
receiver may use, a pooled connection the server closed, oversize and non-HTTP answers,
and a server that never answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from services.protocols.notify.http import MAX_BODY, Client, HttpError
from services.protocols.notify.targets import Targets

# The receivers listen on loopback: the opt-out the local stack also sets.
LOOPBACK_TARGETS = Targets(["127.0.0.0/8"])


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


class Server:
    """Answers each request with the next of `answers` (raw bytes); after the last one, or
    when an answer is None, closes the connection."""

    def __init__(self, answers: list[bytes | None], close_after_each: bool = False) -> None:
        self.answers = answers
        self.close_after_each = close_after_each
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.answers:
                self.requests.append(await _read_request(reader))
                answer = self.answers.pop(0)
                if answer is None:
                    await asyncio.sleep(3600)  # never answers
                writer.write(answer or b"")
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    c = Client(targets=LOOPBACK_TARGETS)
    yield c
    await c.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_framings_and_keep_alive(client: Client) -> None:
    chunked = (
        b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\nwiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\n"
    )
    async with Server([OK, chunked, OK]) as srv:
        r1 = await client.post(srv.url, b'{"a":1}', {"Idempotency-Key": "k1"}, 5)
        r2 = await client.post(srv.url, b"{}", {}, 5)
        r3 = await client.post(srv.url, b"{}", {}, 5)
    assert (r1.status, r1.text, r2.status, r2.text, r3.status) == (200, "ok", 202, "wikipedia", 200)
    assert srv.requests[0] == b'{"a":1}'
    assert srv.connections == 1  # one kept-alive connection for all three


async def test_close_delimited_body_and_connection_close(client: Client) -> None:
    answer = b"HTTP/1.0 500 Internal Server Error\r\n\r\nboom, " + b"x" * 70000
    async with Server([answer], close_after_each=True) as srv:
        r = await client.post(srv.url, b"{}", {}, 5)
    assert r.status == 500
    # More than one read, cut at the cap (64 KiB: the channels need a status and a small
    # vendor answer; tests/test_notify_targets.py streams an endless one).
    assert MAX_BODY < 70000
    assert r.body == (b"boom, " + b"x" * 70000)[:MAX_BODY]


async def test_a_pooled_connection_the_server_closed_is_replaced(client: Client) -> None:
    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with Server([closing, closing, closing], close_after_each=True) as srv:
        for _ in range(3):
            assert (await client.post(srv.url, b"{}", {}, 5)).status == 200
    assert srv.connections == 3


async def test_bad_answers_are_errors_not_crashes(client: Client) -> None:
    async with Server([b"SSH-2.0-OpenSSH\r\n\r\n"]) as srv:
        with pytest.raises(HttpError, match="not an HTTP response"):
            await client.post(srv.url, b"{}", {}, 5)
    huge = f"HTTP/1.1 200 OK\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n".encode()
    async with Server([huge]) as srv:
        with pytest.raises(HttpError, match="too large"):
            await client.post(srv.url, b"{}", {}, 5)
    with pytest.raises(HttpError, match="connect"):
        await client.post("http://127.0.0.1:9/hook", b"{}", {}, 5)
    with pytest.raises(HttpError, match="not an http"):
        await client.post("ftp://127.0.0.1/x", b"{}", {}, 5)


async def test_a_server_that_never_answers_times_out(client: Client) -> None:
    async with Server([None]) as srv:
        with pytest.raises(TimeoutError):
            await client.post(srv.url, b"{}", {}, 0.5)
        assert client._idle.get(("http", "127.0.0.1", srv.port)) in (None, [])


async def test_request_target_and_header_values_cannot_break_the_request(client: Client) -> None:
    """What httpx did for the channels: non-ASCII in the URL is percent-encoded (UTF-8),
    an encoded query is sent as it is; a header value with a line break or outside
    Latin-1 is refused before anything is written, so it can never add a header."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        await _read_rest(reader, head)
        writer.write(OK)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        url = f"http://127.0.0.1:{port}/robot/发送?access_token=a%2Bb&sign=x%3D"
        assert (await client.post(url, b"{}", {"X-Key": "k"}, 5)).status == 200
        for bad in ({"X-Key": "a\r\nInjected: yes"}, {"X-Key": "a\nb"}, {"X-Key": "告警"}):
            with pytest.raises(HttpError):
                await client.post(url, b"{}", bad, 5)
    finally:
        server.close()
    assert len(heads) == 1
    request_line = heads[0].split(b"\r\n")[0]
    assert request_line == (b"POST /robot/%E5%8F%91%E9%80%81?access_token=a%2Bb&sign=x%3D HTTP/1.1")
    assert b"injected" not in heads[0].lower()


async def _read_rest(reader: asyncio.StreamReader, head: bytes) -> None:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":", 1)[1]))
