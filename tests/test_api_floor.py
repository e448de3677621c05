"""The floor map API against hand-computed figures on a few rows in the real database:
positions, trail order, map filter, the heatmap's cell means (AGV-mounted modules related
by device id and by `module_of`), project scope, and floor-plan uploads attacked with the
wrong type, too many bytes and SVG carrying script."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.api.app import make_engine
from tests.test_api_support import Keys, api_settings, auth, client, make_keys

T0 = datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC)
MAX_BODY = 64 * 1024


def png(width: int, height: int) -> bytes:
    """A real, decodable PNG of one grey colour."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG up to its frame header (what the size is read from)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@dataclass
class Env:
    url: str
    c: httpx.AsyncClient
    k: Keys


def _agv(
    device: str, project: str, t: float, x: float, y: float, mp: str | None, **kw: Any
) -> dict[str, Any]:
    return {
        "ts": T0 + timedelta(seconds=t), "project_id": project, "device_id": device,
        "seq": int(t * 1000) + 1_000_000, "x": x, "y": y, "heading": kw.get("heading", 90.0),
        "speed": 1.0, "battery": kw.get("battery", 80.0), "state": kw.get("state", "moving"),
        "localization": 0.99, "map_id": mp, "received_at": T0,
    }  # fmt: skip


def _link(device: str, project: str, t: float, rsrp: float, sinr: float) -> dict[str, Any]:
    return {
        "ts": T0 + timedelta(seconds=t), "project_id": project, "device_id": device,
        "seq": int(t * 1000) + 1_000_000, "rsrp": rsrp, "sinr": sinr, "latency_ms": 9.0,
        "received_at": T0,
    }  # fmt: skip


AGV_ROWS = [
    _agv("agv-a", "p1", -20 * 60, 0.0, 0.0, "hall-1"),  # before a 10-minute trail
    _agv("agv-a", "p1", 0, 1.0, 1.0, "hall-1"),
    _agv("agv-a", "p1", 2, 1.0, 3.0, "hall-1"),
    _agv("agv-a", "p1", 5, 5.0, 0.5, "hall-1", heading=180.0, state="error", battery=41.5),
    _agv("agv-b", "p1", 1, 1.5, 2.5, "hall-1"),
    _agv("agv-c", "p1", 0, 1.0, 1.0, "hall-2"),
    _agv("agv-z", "p2", 0, 1.0, 1.0, "hall-1"),
]
LINK_ROWS = [
    # agv-a's own link stream (the same device publishes both).
    _link("agv-a", "p1", 1, -90.0, 10.0),
    _link("agv-a", "p1", 3, -100.0, 4.0),
    _link("agv-a", "p1", 6, -120.0, -3.0),
    _link("agv-a", "p1", 12, -80.0, 20.0),  # no position in its 5 s bucket: not placed
    # cpe-m is mounted on agv-b (metadata module_of).
    _link("cpe-m", "p1", 4, -110.0, 0.0),
    # agv-c on the other map.
    _link("agv-c", "p1", 1, -50.0, 30.0),
    # another project
    _link("agv-z", "p2", 1, -60.0, 25.0),
]


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    from services.core.tables import agv_status, devices, link_kpis

    url = new_database()
    engine = make_engine(api_settings(url))
    try:
        async with engine.begin() as conn:
            for project, device, kind, meta in (
                ("p1", "agv-a", "agv", {}),
                ("p1", "agv-b", "agv", {}),
                ("p1", "agv-c", "agv", {}),
                ("p1", "cpe-m", "cpe", {"module_of": "agv-b"}),
                ("p2", "agv-z", "agv", {}),
            ):
                await conn.execute(
                    devices.insert().values(
                        project_id=project, device_id=device, kind=kind, metadata=meta
                    )
                )
            await conn.execute(agv_status.insert(), AGV_ROWS)
            await conn.execute(link_kpis.insert(), LINK_ROWS)
    finally:
        await engine.dispose()
    k = await make_keys(url)
    async with client(api_settings(url, max_body_bytes=MAX_BODY)) as (_, c):
        yield Env(url, c, k)


RANGE = {
    "start": (T0 - timedelta(hours=1)).isoformat(),
    "end": (T0 + timedelta(seconds=60)).isoformat(),
}


async def test_floor_positions_trails_in_order_and_map_filter(env: Env) -> None:
    r = await env.c.get(
        "/api/v1/projects/p1/floor", params={**RANGE, "map": "hall-1"}, headers=auth(env.k.read_p1)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["map_id"] == "hall-1"
    assert body["maps"] == ["hall-1", "hall-2"]
    agvs = {a["device_id"]: a for a in body["agvs"]}
    assert sorted(agvs) == ["agv-a", "agv-b"]  # agv-c is on hall-2, agv-z in p2
    a = agvs["agv-a"]
    assert (a["x"], a["y"], a["heading"], a["state"], a["battery"]) == (
        5.0,
        0.5,
        180.0,
        "error",
        41.5,
    )
    assert datetime.fromisoformat(a["ts"]) == T0 + timedelta(seconds=5)
    # The trail: the last 10 minutes before `end`, oldest first.
    assert [(p["x"], p["y"]) for p in a["trail"]] == [(1.0, 1.0), (1.0, 3.0), (5.0, 0.5)]
    times = [datetime.fromisoformat(p["ts"]) for p in a["trail"]]
    assert times == [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=5)]
    assert [(p["x"], p["y"]) for p in agvs["agv-b"]["trail"]] == [(1.5, 2.5)]

    longer = (
        await env.c.get(
            "/api/v1/projects/p1/floor",
            params={**RANGE, "map": "hall-1", "trail_minutes": 30},
            headers=auth(env.k.read_p1),
        )
    ).json()
    trail = next(x for x in longer["agvs"] if x["device_id"] == "agv-a")["trail"]
    # 30 minutes in at most 600 points: 3 s buckets, each the last real point in it, so
    # T0 and T0 + 2 s share [T0, T0 + 3 s) and only (1, 3) of them stays.
    assert [(p["x"], p["y"]) for p in trail] == [(0.0, 0.0), (1.0, 3.0), (5.0, 0.5)]

    every = (
        await env.c.get("/api/v1/projects/p1/floor", params=RANGE, headers=auth(env.k.read_p1))
    ).json()
    assert sorted(a["device_id"] for a in every["agvs"]) == ["agv-a", "agv-b", "agv-c"]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        # cell (0, 2): agv-a at (1, 2) in [T0, T0+5) with -90 and -100, agv-b at (1.5, 2.5)
        # with its module's -110; cell (4, 0): agv-a at (5, 0.5) in [T0+5, T0+10) with -120.
        ("rsrp", [(0.0, 2.0, -100.0, 3), (4.0, 0.0, -120.0, 1)]),
        ("sinr", [(0.0, 2.0, (10.0 + 4.0 + 0.0) / 3, 3), (4.0, 0.0, -3.0, 1)]),
    ],
)
async def test_heatmap_cell_means_are_the_hand_computed_ones(
    env: Env, metric: str, expected: list[tuple[float, float, float, int]]
) -> None:
    r = await env.c.get(
        "/api/v1/projects/p1/floor/heatmap",
        params={**RANGE, "map": "hall-1", "metric": metric, "cell": 2},
        headers=auth(env.k.read_p1),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unit"] == {"rsrp": "dBm", "sinr": "dB"}[metric]
    got = [(c["x0"], c["y0"], c["mean"], c["samples"]) for c in body["cells"]]
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:2] == e[:2]
        assert g[3] == e[3]
        assert g[2] == pytest.approx(e[2])


async def test_heatmap_without_map_adds_the_other_map_and_cell_size_regroups(env: Env) -> None:
    body = (
        await env.c.get(
            "/api/v1/projects/p1/floor/heatmap",
            params={**RANGE, "cell": 2},
            headers=auth(env.k.read_p1),
        )
    ).json()
    cells = {(c["x0"], c["y0"]): (c["mean"], c["samples"]) for c in body["cells"]}
    assert cells == {(0.0, 0.0): (-50.0, 1), (0.0, 2.0): (-100.0, 3), (4.0, 0.0): (-120.0, 1)}
    # One 10 m cell holds every placed record of hall-1: (-90 - 100 - 110 - 120) / 4.
    big = (
        await env.c.get(
            "/api/v1/projects/p1/floor/heatmap",
            params={**RANGE, "map": "hall-1", "cell": 10},
            headers=auth(env.k.read_p1),
        )
    ).json()
    assert [(c["x0"], c["y0"], c["mean"], c["samples"]) for c in big["cells"]] == [
        (0.0, 0.0, -105.0, 4)
    ]


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"metric": "latency"}, "metric"),
        ({"cell": 0}, "cell"),
        ({"map": "bad map"}, "map"),
        ({"start": "yesterday"}, "start"),
    ],
)
async def test_heatmap_refuses_bad_parameters(
    env: Env, params: dict[str, Any], needle: str
) -> None:
    r = await env.c.get(
        "/api/v1/projects/p1/floor/heatmap", params=params, headers=auth(env.k.read_p1)
    )
    assert r.status_code == 422
    assert needle in r.text


async def test_floor_is_project_scoped(env: Env) -> None:
    for path in ("floor", "floor/heatmap", "floor/maps/hall-1/image"):
        r = await env.c.get(f"/api/v1/projects/p1/{path}", headers=auth(env.k.read_p2))
        assert r.status_code == 404, path
    body = (
        await env.c.get("/api/v1/projects/p2/floor", params=RANGE, headers=auth(env.k.read_p2))
    ).json()
    assert [a["device_id"] for a in body["agvs"]] == ["agv-z"]
    r = await env.c.put(
        "/api/v1/projects/p1/floor/maps/hall-1/image",
        params={"x0": 0, "y0": 0, "x1": 10, "y1": 5},
        content=png(4, 2),
        headers={**auth(env.k.admin_p2), "Content-Type": "image/png"},
    )
    assert r.status_code == 404


def _audit_count(url: str, action: str) -> int:
    from services.core import db

    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM audit_events WHERE action = :a"), {"a": action}
                ).scalar_one()
            )
    finally:
        engine.dispose()


SVG_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>fetch('/api/v1/keys')</script><rect width='10' height='10'/></svg>"
)


async def test_floor_plan_upload_validates_and_loses_nothing(env: Env) -> None:
    path = "/api/v1/projects/p1/floor/maps/hall-1/image"
    extent = {"x0": -2, "y0": 0, "x1": 60, "y1": 30}
    good = png(62, 30)
    put = await env.c.put(
        path,
        params=extent,
        content=good,
        headers={**auth(env.k.admin), "Content-Type": "image/png"},
    )
    assert put.status_code == 200, put.text
    assert put.json() | {"extent": None} == {
        "project_id": "p1", "map_id": "hall-1", "content_type": "image/png",
        "bytes": len(good), "width": 62, "height": 30, "extent": None,
    }  # fmt: skip
    assert _audit_count(env.url, "floor.image") == 1

    attacks: list[tuple[str, bytes, str, int, str]] = [
        ("image/gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "gif", 415, "PNG or JPEG"),
        ("image/svg+xml", SVG_SCRIPT, "svg", 415, "SVG"),
        ("image/png", SVG_SCRIPT, "svg labelled png", 415, "SVG"),
        ("image/png", b"\n  " + SVG_SCRIPT, "svg after blanks", 415, "SVG"),
        ("image/jpeg", good, "png labelled jpeg", 415, "does not match"),
        ("image/png", good[:20], "truncated png", 415, "IHDR"),
        ("image/png", b"", "empty", 415, "PNG or JPEG"),
        ("image/png", good + b"\x00" * MAX_BODY, "too big", 413, "larger than"),
    ]
    for ctype, data, what, status, needle in attacks:
        r = await env.c.put(
            path, params=extent, content=data, headers={**auth(env.k.admin), "Content-Type": ctype}
        )
        assert r.status_code == status, (what, r.text)
        assert needle in r.json()["error"]["message"], what
    bad_extent = await env.c.put(
        path,
        params={**extent, "x1": -5},
        content=good,
        headers={**auth(env.k.admin), "Content-Type": "image/png"},
    )
    assert bad_extent.status_code == 422
    assert "x1 > x0" in bad_extent.text
    forbidden = await env.c.put(
        path,
        params=extent,
        content=good,
        headers={**auth(env.k.operate_p1), "Content-Type": "image/png"},
    )
    assert forbidden.status_code == 403

    # Nothing refused replaced the plan, and nothing refused was audited.
    got = await env.c.get(path, headers=auth(env.k.read_p1))
    assert got.status_code == 200
    assert got.content == good
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    assert _audit_count(env.url, "floor.image") == 1
    floor = (
        await env.c.get(
            "/api/v1/projects/p1/floor",
            params={**RANGE, "map": "hall-1"},
            headers=auth(env.k.read_p1),
        )
    ).json()
    assert floor["image"] is True
    assert floor["extent"] == {"x0": -2.0, "y0": 0.0, "x1": 60.0, "y1": 30.0}

    jpeg = jpeg_header(320, 200)
    r = await env.c.put(
        "/api/v1/projects/p1/floor/maps/hall-2/image",
        params=extent,
        content=jpeg,
        headers={**auth(env.k.admin), "Content-Type": "image/jpeg"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["width"], r.json()["height"]) == (320, 200)
    missing = await env.c.get(
        "/api/v1/projects/p1/floor/maps/hall-9/image", headers=auth(env.k.read_p1)
    )
    assert missing.status_code == 404


async def test_zones_are_set_by_admins_audited_and_shown(env: Env) -> None:
    path = "/api/v1/projects/p1/floor/maps/hall-1/zones"
    dead = {"name": "Dead zone 死区", "polygon": [[25, 10], [35, 10], [35, 20], [25, 20]]}
    zones = {
        "zones": [
            dead | {"colour": "#ff0000"},
            {"name": "Charging", "polygon": [[0, 0], [4, 0], [4, 4]]},
        ]
    }
    r = await env.c.put(path, json=zones, headers=auth(env.k.operate_p1))
    assert r.status_code == 403
    for bad, needle in (
        ({"zones": [{"name": "x", "polygon": [[0, 0], [1, 1]]}]}, "polygon"),
        ({"zones": [{"name": "", "polygon": [[0, 0], [1, 1], [2, 0]]}]}, "name"),
        (
            {"zones": [{"name": "x", "polygon": [[0, 0], [1, 1], [2, 0]], "colour": "red"}]},
            "colour",
        ),
    ):
        r = await env.c.put(path, json=bad, headers=auth(env.k.admin))
        assert r.status_code == 422, bad
        assert needle in r.text, bad
    r = await env.c.put(path, json=zones, headers=auth(env.k.admin))
    assert r.status_code == 200, r.text
    floor = (
        await env.c.get(
            "/api/v1/projects/p1/floor",
            params={**RANGE, "map": "hall-1"},
            headers=auth(env.k.read_p1),
        )
    ).json()
    assert [z["name"] for z in floor["zones"]] == ["Dead zone 死区", "Charging"]
    assert floor["zones"][0]["polygon"] == [[25.0, 10.0], [35.0, 10.0], [35.0, 20.0], [25.0, 20.0]]
    assert _audit_count(env.url, "floor.zones") == 1


async def test_a_module_registered_as_module_of_an_agv_joins_its_heatmap(env: Env) -> None:
    r = await env.c.post(
        "/api/v1/projects/p1/devices",
        json={"device_id": "cpe-x", "kind": "cpe", "metadata": {"module_of": "agv-c"}},
        headers=auth(env.k.admin),
    )
    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["module_of"] == "agv-c"
    from services.core.tables import link_kpis

    engine = make_engine(api_settings(env.url))
    try:
        async with engine.begin() as conn:
            await conn.execute(link_kpis.insert(), [_link("cpe-x", "p1", 2, -70.0, 12.0)])
    finally:
        await engine.dispose()
    body = (
        await env.c.get(
            "/api/v1/projects/p1/floor/heatmap",
            params={**RANGE, "map": "hall-2", "cell": 2},
            headers=auth(env.k.read_p1),
        )
    ).json()
    # agv-c at (1, 1) in [T0, T0 + 5 s): its own -50 and cpe-x's -70.
    assert [(c["x0"], c["y0"], c["mean"], c["samples"]) for c in body["cells"]] == [
        (0.0, 0.0, -60.0, 2)
    ]
