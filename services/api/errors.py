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


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        body(code.get(exc.status_code, "error"), str(exc.detail)),
        exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
