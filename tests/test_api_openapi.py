"""The API answers as its OpenAPI document says, defect by defect (issue 15 item 7): bodies
that are not UTF-8, what each 422 can mean, the documented time bounds, OPTIONS and 405
`Allow`, and the live stream in the document. tests/test_api_fuzz.py fuzzes the whole
document on top of these.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.test_api_support import Keys, api_settings, auth, client, make_keys

Env = tuple[httpx.AsyncClient, Keys, dict[str, Any]]
METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        r = await c.post("/api/v1/projects", json={"id": "p1", "name": "n"}, headers=auth(k.admin))
        assert r.status_code == 201, r.text
        doc = (await c.get("/openapi.json")).json()
        yield c, k, doc


async def test_a_body_that_is_not_utf8_is_a_documented_422(env: Env) -> None:
    """Before: 400 {"error": {"code": "error", ...}}, a status no operation documents."""
    c, k, doc = env
    for method, path, body in (
        ("POST", "/api/v1/projects", b'{"id": "p\xff", "name": "x"}'),
        ("PATCH", "/api/v1/projects/p1", b'{"name": "\xc3\x28"}'),
        ("POST", "/api/v1/alarms/1/acknowledge", b'{"note": "\xff"}'),
    ):
        r = await c.request(method, path, content=body, headers={
            **auth(k.admin), "content-type": "application/json"})  # fmt: skip
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["code"] == "invalid"
        assert "UTF-8" in r.json()["error"]["message"]
        assert "422" in doc["paths"][path.replace("p1", "{project_id}").replace(
            "/1/", "/{alarm_id}/")][method.lower()]["responses"]  # fmt: skip


def _description(doc: dict[str, Any], path: str, method: str = "get") -> str:
    return str(doc["paths"][path][method]["responses"]["422"]["description"])


async def test_each_422_names_the_refusals_the_schema_cannot_express(env: Env) -> None:
    """Before: every 422 said only "Invalid input; the message says which and why."."""
    _, _, doc = env
    series = _description(doc, "/api/v1/projects/{project_id}/series")
    assert "`end` not after `start`" in series
    assert "1970-2200" in series
    assert "empty `field`" in series
    for path in ("/api/v1/projects", "/api/v1/devices", "/api/v1/alarms"):
        assert "`cursor` this route did not issue" in _description(doc, path), path
    for path, method in (("/api/v1/projects", "post"), ("/api/v1/projects/{project_id}", "patch")):
        assert "`targets` keys that are empty" in _description(doc, path, method)
    assert "`device` without `project`" in _description(doc, "/api/v1/live")


@pytest.mark.parametrize(
    "params",
    [
        {"end": "0"},  # epoch seconds: 1970-01-01, so the default start is 1969-12-31
        {"end": "86400", "start": "0"},
        {"start": str(int(time.time()) - 3600)},  # an hour ago, as epoch seconds
        {"end": "1970-01-01T00:00:00Z"},  # in bounds, but its default start is not
        {"end": "2200-01-02T00:00:00Z", "start": "2199-12-31T00:00:00Z"},
    ],
)
async def test_times_outside_the_documented_bounds_are_422(
    env: Env, params: dict[str, str]
) -> None:
    """Before: `?end=0` answered 200 for a range starting 1969-12-31, and epoch seconds were
    taken for times although the document promises RFC 3339."""
    c, k, _ = env
    for path in ("/api/v1/projects/p1/kpis", "/api/v1/ingest/health"):
        r = await c.get(path, params=params, headers=auth(k.admin))
        assert r.status_code == 422, (path, params, r.text)
        assert r.json()["error"]["code"] == "invalid"


async def test_options_and_405_name_every_method_of_the_path(env: Env) -> None:
    """Before: OPTIONS answered 405 and every 405 said `Allow: GET, HEAD`, also where PATCH
    and POST are served."""
    c, k, doc = env
    checked = 0
    for template, item in doc["paths"].items():
        path = template.replace("{project_id}", "p1").replace("{device_id}", "d1")
        path = path.replace("{alarm_id}", "1")
        documented = {m.upper() for m in item}
        allow = {*documented, "OPTIONS"}
        r = await c.options(path, headers=auth(k.admin))
        assert r.status_code == 204, (path, r.status_code, r.text)
        assert set(r.headers["allow"].split(", ")) == allow, path
        for method in set(METHODS) - documented:
            r = await c.request(method, path, headers=auth(k.admin))
            assert r.status_code == 405, (method, path, r.status_code)
            assert set(r.headers["allow"].split(", ")) == allow, (method, path)
            assert r.json()["error"]["code"] == "method_not_allowed"
            checked += 1
    assert checked > 50
    r = await c.options("/api/v1/no-such-route")
    assert r.status_code == 404


async def test_the_live_stream_is_in_the_document(env: Env) -> None:
    """Before: /api/v1/live was missing from the OpenAPI document."""
    _, _, doc = env
    op = doc["paths"]["/api/v1/live"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"project", "device", "lang"}
    stream = op["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert stream["properties"]["event"]["enum"] == ["hello", "alarm", "record", "status", "tick"]
    assert {"401", "422", "429"} <= set(op["responses"])
