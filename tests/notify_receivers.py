"""Real receivers on loopback for the notification channels: an SMTP server (aiosmtpd) and
HTTP servers that check each vendor's request exactly as the vendor documents it and answer
like the vendor does.

Each check recomputes signatures here, from the vendor's documented algorithm, not with the
product's helpers, so a wrong implementation cannot agree with itself. What a receiver
found wrong with a request goes to `problems` (and the request gets the vendor's error);
tests assert `problems == []` besides the outcome.

For fault tests and benchmarks, every HTTP receiver can be stopped and started again on the
same port (live keep-alive connections are cut, as a crashed receiver would), can hold
requests open until released, can answer a scripted sequence of errors, and counts the
accepted calls per idempotency key (`WebhookReceiver.accepted`).
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import hashlib
import hmac
import http.server
import json
import socket
import ssl
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from f5gdev.devstack.servers import free_port

LOOPBACK = "127.0.0.1"


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Poll `predicate` until true; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or predicate}")


# --------------------------------------------------------------------------------- HTTP


@dataclass
class Request:
    method: str
    path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float
    status: int = 0  # what the receiver answered
    answer: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values and len(values) == 1 else None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: HttpReceiver


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the vendors' servers
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.receiver._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            raw_query=parts.query,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            at=time.time(),
        )
        status, answer = self.server.receiver._serve(request)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = _handle  # noqa: N815 (http.server's method names)
    do_GET = _handle  # noqa: N815
    do_PUT = _handle  # noqa: N815


class HttpReceiver:
    """A real HTTP/1.1 server on 127.0.0.1 in a thread. Subclasses implement `answer`."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests: list[Request] = []
        self.problems: list[str] = []
        # Scripted answers, consumed one per request before `answer` is asked.
        self.script: deque[tuple[int, bytes]] = deque()
        self.held = 0
        self._gate = threading.Event()
        self._gate.set()
        self._cond = threading.Condition()
        self._conns: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> HttpReceiver:
        server = _Server((LOOPBACK, self.port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and cut live connections: calls fail as if the receiver died."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> HttpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.stop()

    # faults
    def hold(self) -> None:
        """Hold every request from now on until `release` (the answer is not sent)."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_next(self, count: int, status: int, body: bytes | dict[str, Any] = b"") -> None:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        with self._cond:
            self.script.extend([(status, raw)] * count)

    # observation
    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"timed out after {timeout:.0f} s waiting for {predicate}")

    def wait_requests(self, count: int, timeout: float = 60.0) -> list[Request]:
        self.wait_for(lambda: len(self.requests) >= count, timeout)
        with self._cond:
            return list(self.requests)

    # internals
    def _track(self, conn: socket.socket, live: bool) -> None:
        with self._cond:
            (self._conns.add if live else self._conns.discard)(conn)

    def _serve(self, request: Request) -> tuple[int, bytes]:
        with self._cond:
            self.held += 1
            self._cond.notify_all()
        self._gate.wait(300)
        with self._cond:
            self.held -= 1
            scripted = self.script.popleft() if self.script else None
        status, answer = scripted if scripted is not None else self.answer(request)
        request.status, request.answer = status, answer
        with self._cond:
            self.requests.append(request)
            self._after(request)
            self._cond.notify_all()
        return status, answer

    def _after(self, request: Request) -> None:
        """Bookkeeping under the lock once answered (subclasses count)."""

    def problem(self, text: str) -> None:
        with self._cond:
            self.problems.append(text)

    def answer(self, request: Request) -> tuple[int, bytes]:
        raise NotImplementedError


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode()


class WebhookReceiver(HttpReceiver):
    """The generic webhook: checks the HMAC-SHA256 signature of "{timestamp}.{body}" and the
    5-minute replay window; counts accepted calls per idempotency key."""

    def __init__(self, secret: str, port: int | None = None, path: str = "/hook") -> None:
        super().__init__(port)
        self.secret = secret.encode()
        self.path = path
        self.accepted: Counter[str] = Counter()

    @property
    def hook_url(self) -> str:
        return self.url + self.path

    def answer(self, request: Request) -> tuple[int, bytes]:
        if request.method != "POST" or request.path != self.path:
            self.problem(f"{request.method} {request.path}")
            return 404, b'{"error":"not found"}'
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.problem("content type " + request.headers.get("content-type", ""))
        ts = request.headers.get("x-factory5g-timestamp", "")
        given = request.headers.get("x-factory5g-signature", "")
        key = request.headers.get("idempotency-key", "")
        expected = "sha256=" + hmac.new(self.secret, f"{ts}.".encode() + request.body,
                                        hashlib.sha256).hexdigest()  # fmt: skip
        if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            self.problem(f"timestamp {ts!r} outside the 5 min window")
            return 401, b'{"error":"stale timestamp"}'
        if not hmac.compare_digest(expected, given):
            self.problem("signature mismatch")
            return 401, b'{"error":"bad signature"}'
        try:
            document = request.json()
        except ValueError:
            self.problem("body is not JSON")
            return 400, b'{"error":"not json"}'
        # header_key: percent-encoded when not plain printable ASCII
        if not key or document.get("idempotency_key") != unquote(key):
            self.problem(f"idempotency key header {key!r} != body")
        return 200, b'{"ok":true}'

    def _after(self, request: Request) -> None:
        if 200 <= request.status < 300:
            self.accepted[request.headers.get("idempotency-key", "")] += 1


class WeComReceiver(HttpReceiver):
    """WeCom group robot: POST /cgi-bin/webhook/send?key=<key>, markdown content of at most
    4096 bytes; answers {"errcode":0,"errmsg":"ok"} or WeCom's error codes."""

    def __init__(self, key: str, port: int | None = None) -> None:
        super().__init__(port)
        self.key = key

    def answer(self, request: Request) -> tuple[int, bytes]:
        if request.method != "POST" or request.path != "/cgi-bin/webhook/send":
            self.problem(f"{request.method} {request.path}")
            return 404, b""
        if request.one("key") != self.key:
            self.problem("wrong key")
            return 200, _json({"errcode": 93000, "errmsg": "invalid webhook url"})
        try:
            data = request.json()
        except ValueError:
            self.problem("body is not JSON")
            return 200, _json({"errcode": 40000, "errmsg": "invalid json"})
        content = data.get("markdown", {}).get("content")
        if data.get("msgtype") != "markdown" or not isinstance(content, str) or not content:
            self.problem(f"not a markdown message: {list(data)}")
            return 200, _json({"errcode": 40008, "errmsg": "invalid message type"})
        if len(content.encode()) > 4096:
            self.problem(f"markdown content {len(content.encode())} bytes > 4096")
            return 200, _json({"errcode": 40058, "errmsg": "markdown.content exceed max length"})
        return 200, _json({"errcode": 0, "errmsg": "ok"})


class DingTalkReceiver(HttpReceiver):
    """DingTalk custom robot: POST /robot/send?access_token=..[&timestamp=ms&sign=..]; the
    sign is urlencode(base64(HmacSHA256(secret, f"{timestamp}\\n{secret}"))), the timestamp
    within one hour; keyword mode needs the keyword in the message."""

    def __init__(
        self,
        access_token: str,
        secret: str | None = None,
        keyword: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(port)
        self.access_token, self.secret, self.keyword = access_token, secret, keyword

    def answer(self, request: Request) -> tuple[int, bytes]:
        if request.method != "POST" or request.path != "/robot/send":
            self.problem(f"{request.method} {request.path}")
            return 404, b""
        if request.one("access_token") != self.access_token:
            self.problem("wrong access token")
            return 200, _json({"errcode": 300001, "errmsg": "token is not exist"})
        if self.secret is not None:
            ts, sign = request.one("timestamp"), request.one("sign")
            if ts is None or sign is None or not ts.isdigit():
                self.problem("signed robot without timestamp/sign")
                return 200, _json({"errcode": 310000, "errmsg": "sign not match"})
            if abs(time.time() * 1000 - int(ts)) > 3600 * 1000:
                self.problem("timestamp outside one hour")
                return 200, _json({"errcode": 310000, "errmsg": "invalid timestamp"})
            mac = hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256)
            if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(), sign):
                self.problem("sign mismatch")
                return 200, _json({"errcode": 310000, "errmsg": "sign not match"})
        try:
            data = request.json()
        except ValueError:
            self.problem("body is not JSON")
            return 200, _json({"errcode": 40035, "errmsg": "invalid json"})
        markdown = data.get("markdown") or {}
        text, title = markdown.get("text"), markdown.get("title")
        if data.get("msgtype") != "markdown" or not isinstance(text, str) or not title:
            self.problem(f"not a markdown message: {data}")
            return 200, _json({"errcode": 40035, "errmsg": "missing markdown"})
        if len(request.body) > 20000:
            self.problem(f"message {len(request.body)} bytes > 20000")
        if self.keyword is not None and self.keyword not in text + title:
            self.problem("keyword missing")
            return 200, _json({"errcode": 310000, "errmsg": "keywords not in content"})
        for mobile in (data.get("at") or {}).get("atMobiles", []):
            if f"@{mobile}" not in text:
                self.problem(f"@{mobile} mentioned but not in the text")
        return 200, _json({"errcode": 0, "errmsg": "ok"})


class FeishuReceiver(HttpReceiver):
    """Feishu custom bot: POST /open-apis/bot/v2/hook/<id>; in signature mode the body has
    `timestamp` (s, within one hour) and `sign` = base64(HmacSHA256(key=f"{timestamp}\\n
    {secret}", msg="")); `interactive` card or `post` rich text; answers {"code":0,...}."""

    def __init__(
        self,
        hook_id: str,
        secret: str | None = None,
        keyword: str | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(port)
        self.hook_id, self.secret, self.keyword = hook_id, secret, keyword

    def answer(self, request: Request) -> tuple[int, bytes]:
        prefix = "/open-apis/bot/v2/hook/"
        if request.method != "POST" or not request.path.startswith(prefix):
            self.problem(f"{request.method} {request.path}")
            return 404, b""
        if request.path[len(prefix) :] != self.hook_id:
            self.problem("wrong hook id")
            return 200, _json(
                {"code": 19001, "msg": "param invalid: incoming webhook access token invalid"}
            )
        try:
            data = request.json()
        except ValueError:
            self.problem("body is not JSON")
            return 200, _json({"code": 9499, "msg": "Bad Request"})
        if len(request.body) > 30 * 1024:
            self.problem(f"body {len(request.body)} bytes > 30 KB")
        if self.secret is not None:
            ts, sign = data.get("timestamp"), data.get("sign")
            ok = isinstance(ts, str) and ts.isdigit() and abs(time.time() - int(ts)) <= 3600
            if ok:
                key = f"{ts}\n{self.secret}".encode()
                expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
                ok = isinstance(sign, str) and hmac.compare_digest(expected, sign)
            if not ok:
                self.problem("sign or timestamp wrong")
                return 200, _json({"code": 19021, "msg": "sign match fail or timestamp is not "
                                   "within one hour from current time"})  # fmt: skip
        shown = ""
        if data.get("msg_type") == "interactive":
            card = data.get("card") or {}
            title = (((card.get("header") or {}).get("title")) or {}).get("content")
            elements = card.get("elements")
            if not title or not isinstance(elements, list) or not elements:
                self.problem(f"card without header title or elements: {card}")
                return 200, _json({"code": 11246, "msg": "card content invalid"})
            shown = title + json.dumps(elements, ensure_ascii=False)
        elif data.get("msg_type") == "post":
            post = ((data.get("content") or {}).get("post")) or {}
            if not post or not all(
                isinstance(v, dict) and v.get("title") and isinstance(v.get("content"), list)
                for v in post.values()
            ):
                self.problem(f"post without title/content: {post}")
                return 200, _json({"code": 9499, "msg": "Bad Request"})
            shown = json.dumps(post, ensure_ascii=False)
        else:
            self.problem(f"msg_type {data.get('msg_type')!r}")
            return 200, _json({"code": 19002, "msg": "params error, msg_type need"})
        if self.keyword is not None and self.keyword not in shown:
            self.problem("keyword missing")
            return 200, _json({"code": 19024, "msg": "Key Words Not Found"})
        return 200, _json({"code": 0, "data": {}, "msg": "success"})


# --------------------------------------------------------------------------------- SMTP


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes
    tls: bool
    auth_user: str | None


@dataclass
class _SmtpState:
    mails: list[Mail] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    refuse_data: deque[str] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _MailHandler:
    def __init__(self, state: _SmtpState) -> None:
        self.state = state

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.state.refuse_rcpt.get(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        with self.state.lock:
            if self.state.refuse_data:
                return self.state.refuse_data.popleft()
        raw = envelope.original_content or b""
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        user = session.auth_data if isinstance(session.auth_data, str) else None
        # The transport is the TLS one after STARTTLS and from the start with implicit TLS.
        transport = server.transport
        tls = transport is not None and transport.get_extra_info("ssl_object") is not None
        with self.state.lock:
            self.state.mails.append(
                Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message, raw,
                     tls, user)
            )  # fmt: skip
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 recording each mail. `security`: "none", "starttls" (STARTTLS
    offered and required) or "tls" (implicit TLS); `auth` = (user, password) makes AUTH
    required (only over TLS unless security is none). The certificate comes from the
    project's development CA in `cert_dir`."""

    def __init__(
        self,
        security: Literal["none", "starttls", "tls"] = "none",
        cert_dir: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.state = _SmtpState()
        self.security = security
        kwargs: dict[str, Any] = {}
        if security != "none":
            assert cert_dir is not None
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(cert_dir / "server.crt", cert_dir / "server.key")
            if security == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        if auth is not None:
            kwargs.update(
                authenticator=self._authenticator(auth),
                auth_required=True,
                # aiosmtpd counts only STARTTLS as TLS; implicit TLS is encrypted from the start
                auth_require_tls=security == "starttls",
            )
        self.controller = Controller(
            _MailHandler(self.state), hostname=LOOPBACK, port=self.port, **kwargs
        )

    @staticmethod
    def _authenticator(auth: tuple[str, str]) -> Callable[..., AuthResult]:
        def check(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object
        ) -> AuthResult:
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            ok = (data.login.decode(), data.password.decode()) == auth
            return AuthResult(success=ok, handled=False, auth_data=data.login.decode())

        return check

    @property
    def mails(self) -> list[Mail]:
        with self.state.lock:
            return list(self.state.mails)

    def refuse_recipient(self, address: str, reply: str) -> None:
        self.state.refuse_rcpt[address] = reply

    def refuse_next_data(self, reply: str, count: int = 1) -> None:
        with self.state.lock:
            self.state.refuse_data.extend([reply] * count)

    def start(self) -> SmtpReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> SmtpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------------ notices


def make_notice(**overrides: Any) -> Any:
    """An AGV e-stop notice as the notify service builds it; fields overridable."""
    from datetime import UTC, datetime

    from services.protocols.notify.message import AlarmNotice

    fields: dict[str, Any] = {
        "idempotency_key": "alarm-42:opened:route-1",
        "kind": "opened",
        "alarm_id": 42,
        "project": "plant-a",
        "project_name": "Plant A Assembly",
        "device": "agv-07",
        "device_kind": "agv",
        "rule": "agv_estop",
        "severity": "critical",
        "state": "open",
        "message": "emergency stop pressed",
        "at": datetime(2026, 12, 1, 19, 3, 4, tzinfo=UTC),
        "opened_at": datetime(2026, 12, 1, 19, 3, 4, tzinfo=UTC),
        "value": 1.0,
        "unit": None,
        "line": "line-2",
        "rule_type": "estop",
        "dashboard_url": "https://factory.example/alarms/42",
    }
    fields.update(overrides)
    return AlarmNotice(**fields)
