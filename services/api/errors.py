"""One error shape for every failure: `{"error": {"code", "message", "details"?}}`.

Clients (and the dashboard) branch on `code`, people read `message`; FastAPI's own 422 and
HTTP errors are rewritten into the same shape so no route answers differently.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match, Mount

from services.api.responses import JSONResponse


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error statuses, all with the one error shape."""
    text = {
        401: "No key, or an unknown or revoked one.",
        403: "The key's scope does not allow this.",
        404: "Unknown id, or one in a project this key may not see.",
        409: "Conflicts with the current state.",
        422: "Invalid input; the message says which and why.",
        429: "Too many requests for this key, or too many failed authentications from this "
        "address; `Retry-After` says when to try again.",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def invalid(message: str) -> ApiError:
    return ApiError(422, "invalid", message)


def body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        err["details"] = details
    return {"error": err}


def _loc(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "request"


async def _api_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(body(exc.code, exc.message), exc.status, headers=exc.headers)


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
    message = "; ".join(f"{d['loc']}: {d['msg']}" for d in details) or "invalid request"
    return JSONResponse(body("invalid", message, details), 422)


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _route_methods(request: Request) -> set[str]:
    """Every method some route serves at this path (routes split methods between them)."""
    methods: set[str] = set()
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        for route in request.app.routes:
            if isinstance(route, Mount):  # the dashboard's files: they match any path
                continue
            if route.matches(scope)[0] == Match.FULL:
                methods.add(method)
                break
    return methods


def _method_not_allowed(request: Request, methods: set[str]) -> Response:
    """The answer to a method no route at this path serves, and to OPTIONS.

    The dashboard's static files are mounted at `/`, so every method mismatch ends there:
    as a 405 naming only GET and HEAD, or as a 404 for a GET. This names what the path's
    routes really serve: OPTIONS gets 204 with that `Allow`, other methods 405, and a path
    no route serves under `/api/` 404.
    """
    if not methods:
        if request.scope["path"].startswith("/api/"):
            return JSONResponse(body("not_found", "no API route at this path"), 404)
        methods = {"GET", "HEAD"}  # a dashboard file
    allow = ", ".join(sorted(methods | {"OPTIONS"}))
    if request.method == "OPTIONS":
        return Response(status_code=204, headers={"Allow": allow})
    message = f"{request.method} is not allowed here; allowed: {allow}"
    return JSONResponse(body("method_not_allowed", message), 405, headers={"Allow": allow})


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (404, 405):
        methods = _route_methods(request)
        if exc.status_code == 405 or (methods and request.method not in methods):
            return _method_not_allowed(request, methods)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode at all (not UTF-8): invalid input like
        # any other, in the documented 422 shape.
        return JSONResponse(body("invalid", "the request body is not valid JSON in UTF-8"), 422)
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        body(code.get(exc.status_code, "error"), str(exc.detail)),
        exc.status_code,
        headers=getattr(exc, "headers", None),
    )


# What else a 422 can mean, by the operation's inputs: refusals the schema cannot express.
_REFUSALS = {
    "start": "`end` not after `start`, a range longer than `api.max_range_days`, or a time "
    "that is not RFC 3339 or lies outside 1970-2200 (also a default `start` of `end` - 24 h)",
    "cursor": "a `cursor` this route did not issue",
    "field": "an empty `field` or one the stream does not have",
    "targets": "`targets` keys that are empty, longer than 64 characters or contain NUL, or "
    "values that are not finite numbers",
    "points": "more `points` than `api.max_points`, or both `bucket` and `points`",
    "device": "`device` without `project`, or ids that do not match the id grammar",
    "body": "a body that is not JSON in UTF-8",
}


def describe_refusals(schema: dict[str, Any]) -> dict[str, Any]:
    """Name, in each operation's 422 description, the refusals its inputs can cause."""
    components = schema.get("components", {}).get("schemas", {})
    for path, item in schema.get("paths", {}).items():
        for op in item.values():
            response = op.get("responses", {}).get("422")
            if not isinstance(response, dict):
                continue
            names = {p.get("name") for p in op.get("parameters", [])}
            body_ref = (
                op.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref", "")
            )
            if body_ref:
                names.add("body")
                model = components.get(body_ref.rsplit("/", 1)[-1], {})
                names |= set(model.get("properties", {}))
            if path.endswith("/live"):
                names.add("device")
            else:
                names.discard("device")
            found = [text for key, text in _REFUSALS.items() if key in names]
            if found:
                response["description"] = (
                    "Invalid input; the message says which and why. Besides what the schema "
                    "states: " + "; ".join(found) + "."
                )
    return schema


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
