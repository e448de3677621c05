"""Projects: list, get, create, update, and their error answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.test_api_support import Keys, api_settings, auth, client, make_keys


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    url = new_database()
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield c, k


async def test_create_get_update_list(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    h = auth(k.admin)
    body = {
        "id": "p1",
        "name": "Press shop",
        "enterprise": "Acme",
        "city": "Ningbo",
        "scenario": "vision inspection",
        "targets": {"defect_rate_max": 0.02, "latency_p95_ms": 20},
    }
    r = await c.post("/api/v1/projects", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "active"
    got = (await c.get("/api/v1/projects/p1", headers=h)).json()
    assert got["targets"] == {"defect_rate_max": 0.02, "latency_p95_ms": 20.0}
    r = await c.patch("/api/v1/projects/p1", json={"status": "paused", "city": None}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "paused"
    assert r.json()["city"] is None
    assert r.json()["updated_at"] > got["updated_at"]
    assert r.json()["name"] == "Press shop"
    unchanged = await c.patch("/api/v1/projects/p1", json={}, headers=h)
    assert unchanged.json() == r.json()
    for i in range(2, 6):
        await c.post("/api/v1/projects", json={"id": f"p{i}", "name": f"n{i}"}, headers=h)
    ids, cursor = [], None
    while True:
        page = (
            await c.get(
                "/api/v1/projects",
                params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                headers=h,
            )
        ).json()
        ids += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert ids == ["p1", "p2", "p3", "p4", "p5"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "needle"),
    [
        ("GET", "/api/v1/projects/nope", None, 404, "project 'nope' not found"),
        ("PATCH", "/api/v1/projects/nope", {"city": "x"}, 404, "not found"),
        ("POST", "/api/v1/projects", {"id": "bad id!", "name": "x"}, 422, "id"),
        ("POST", "/api/v1/projects", {"id": "px", "name": "x", "colour": 1}, 422, "colour"),
        ("POST", "/api/v1/projects", {"id": "px", "name": "x", "status": "on"}, 422, "status"),
        ("POST", "/api/v1/projects", {"id": "px", "name": "x", "targets": {"a": "b"}}, 422, "a"),
        ("POST", "/api/v1/projects", {"name": "x"}, 422, "id"),
        ("POST", "/api/v1/projects", {"id": "px", "name": "a\x00b"}, 422, "name"),
        ("POST", "/api/v1/projects", b'{"id": "px", "name": "\\ud800"}', 422, "name"),
        ("GET", "/api/v1/projects/p%00", None, 422, "NUL"),
        ("PATCH", "/api/v1/projects/p1", {"name": None}, 422, "cannot be null"),
        ("GET", "/api/v1/projects?limit=0", None, 422, "limit"),
        ("GET", "/api/v1/projects?limit=501", None, 422, "limit"),
        ("GET", "/api/v1/projects?cursor=%%%", None, 422, "cursor"),
        ("GET", "/api/v1/projects?cursor=WzFd", None, 422, "cursor"),
    ],
)
async def test_errors_are_clear(
    env: tuple[httpx.AsyncClient, Keys],
    method: str,
    path: str,
    body: object,
    status: int,
    needle: str,
) -> None:
    c, k = env
    await c.post("/api/v1/projects", json={"id": "p1", "name": "x"}, headers=auth(k.admin))
    if isinstance(body, bytes):  # JSON that a Python client would refuse to encode
        headers = {**auth(k.admin), "Content-Type": "application/json"}
        r = await c.request(method, path, content=body, headers=headers)
    else:
        r = await c.request(method, path, json=body, headers=auth(k.admin))
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == {404: "not_found", 422: "invalid"}[status]
    assert needle in err["message"]


async def test_duplicate_id_is_409(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    await c.post("/api/v1/projects", json={"id": "dup", "name": "x"}, headers=auth(k.admin))
    r = await c.post("/api/v1/projects", json={"id": "dup", "name": "y"}, headers=auth(k.admin))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    assert (await c.get("/api/v1/projects/dup", headers=auth(k.admin))).json()["name"] == "x"


async def test_list_filters_by_status_and_text(new_database: Callable[..., str]) -> None:
    """The portfolio hides archived projects and searches; the API does the filtering."""
    url = new_database()
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        admin = auth(k.admin)
        made = [
            {"id": "p1", "name": "Press shop", "city": "Ningbo", "scenario": "vision inspection"},
            {"id": "p2", "name": "Paint line", "city": "Suzhou", "status": "planned"},
            {"id": "p3", "name": "Weld cell_50%", "enterprise": "ACME Motors"},
            {"id": "p4", "name": "Old press line", "city": "Ningbo"},
        ]
        for body in made:
            r = await c.post("/api/v1/projects", json=body, headers=admin)
            assert r.status_code == 201, r.text
        # Archiving is an admin's PATCH; an operator may not.
        r = await c.patch("/api/v1/projects/p4", json={"status": "archived"}, headers=admin)
        assert (r.status_code, r.json()["status"]) == (200, "archived")
        r = await c.patch(
            "/api/v1/projects/p1", json={"status": "archived"}, headers=auth(k.operate_p1)
        )
        assert r.status_code == 403, r.text

        async def ids(key: str = k.admin, **params: object) -> list[str]:
            got, cursor = [], None
            while True:  # one row a page: the filters hold across pages
                page_params = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
                r = await c.get("/api/v1/projects", params=page_params, headers=auth(key))
                assert r.status_code == 200, r.text
                got += [p["id"] for p in r.json()["items"]]
                if (cursor := r.json()["next_cursor"]) is None:
                    return got

        assert await ids() == ["p1", "p2", "p3", "p4"]
        assert await ids(status="active") == ["p1", "p3"]
        assert await ids(status="archived") == ["p4"]
        assert await ids(status=["planned", "archived"]) == ["p2", "p4"]
        assert await ids(q="PRESS") == ["p1", "p4"]
        assert await ids(q="press", status="active") == ["p1"]
        assert await ids(q="ningbo") == ["p1", "p4"]
        assert await ids(q="acme") == ["p3"]
        assert await ids(q="inspection") == ["p1"]
        assert await ids(q="p2") == ["p2"]
        assert await ids(q="_") == ["p3"]  # LIKE wildcards in the text match only themselves
        assert await ids(q="%") == ["p3"]
        assert await ids(q="nothing like it") == []
        assert await ids(k.read_p1) == ["p1"]  # a key's scope still applies
        assert await ids(k.read_p1, status="archived") == []
        for bad, needle in (({"status": "gone"}, "status"), ({"q": ""}, "q"), ({"q": "a\0"}, "q")):
            r = await c.get("/api/v1/projects", params=bad, headers=admin)
            assert r.status_code == 422, r.text
            assert needle in r.json()["error"]["message"]
