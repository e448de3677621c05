"""Security headers for the dashboard's pages and files (not the JSON API).

The pages load only their own scripts and styles, so a strict content security policy costs
nothing and stops injected script; ECharts sets element styles from script (CSSOM), which
the policy allows. Framing is refused so the wall screen cannot be clickjacked. The
evidence report's one inline stylesheet is allowed by its hash, and nothing else inline:
the dashboard opens the report as a blob page, which inherits this policy.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.report.render import STYLE_SOURCE as REPORT_STYLE

CSP = (
    "default-src 'self'; script-src 'self'; "
    f"style-src 'self' {REPORT_STYLE}; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
API_PREFIXES = ("/api/", "/docs", "/redoc", "/openapi.json")


class DashboardHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
