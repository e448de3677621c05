"""Deleting a project deletes its floor maps (plans and zones) and keeps other projects'.

`admin_purge` finds the tables to purge by their `project_id` column instead of a list,
so a table added later, like `floor_maps`, is covered; this guards that it stays so."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from f5gdev.devstack.servers import Postgres
from services.api.app import make_engine
from services.security import db_roles
from tests.test_api_floor import png
from tests.test_api_support import api_settings, auth, client, make_keys


def _api_url(pg: Postgres, owner: str) -> str:
    user = f"t_api_{uuid.uuid4().hex[:6]}"
    pg.psql(db_roles.login_user_sql(user, db_roles.API, "pw-" + user))
    return f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{owner.rsplit('/', 1)[1]}"


async def _count(url: str, sql: str, **params: Any) -> int:
    engine = make_engine(api_settings(url))
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.text(sql), params)).scalar_one())
    finally:
        await engine.dispose()


async def test_deleting_a_project_deletes_its_floor_maps(
    pg: Postgres, new_database: Callable[..., str]
) -> None:
    owner = new_database()
    api = _api_url(pg, owner)
    k = await make_keys(owner)
    async with client(api_settings(api)) as (_, c):
        for p, key in (("p1", k.admin), ("p2", k.admin)):
            r = await c.post("/api/v1/projects", json={"id": p, "name": p}, headers=auth(key))
            assert r.status_code in (201, 409), r.text
            for mp in ("hall-1", "hall-2"):
                r = await c.put(
                    f"/api/v1/projects/{p}/floor/maps/{mp}/image",
                    params={"x0": 0, "y0": 0, "x1": 40, "y1": 20},
                    content=png(40, 20),
                    headers={**auth(key), "Content-Type": "image/png"},
                )
                assert r.status_code == 200, r.text
                zones = [{"name": "dock", "polygon": [[0, 0], [5, 0], [5, 5]]}]
                r = await c.put(
                    f"/api/v1/projects/{p}/floor/maps/{mp}/zones",
                    json={"zones": zones},
                    headers=auth(key),
                )
                assert r.status_code == 200, r.text
        assert await _count(owner, "SELECT count(*) FROM floor_maps") == 4
        url = "/api/v1/projects/p1"
        r = await c.patch(url, json={"status": "archived"}, headers=auth(k.admin))
        assert r.status_code == 200, r.text
        r = await c.delete(url, params={"confirm": "p1"}, headers=auth(k.admin))
        assert r.status_code == 200, r.text
    left = await _count(owner, "SELECT count(*) FROM floor_maps WHERE project_id = 'p1'")
    kept = await _count(owner, "SELECT count(*) FROM floor_maps WHERE project_id = 'p2'")
    assert (left, kept) == (0, 2)
