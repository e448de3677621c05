"""API benchmark: seed weeks of history, then measure query latency and list throughput.

    python -m loadtests.bench_api                        # design size: 30 days x 200 devices
    python -m loadtests.bench_api --days 3 --devices 40  # a reduced run

Starts its own PostgreSQL + TimescaleDB (temporary directory, free port) unless given
--database-url, seeds it with `f5gdev.seed` (binary COPY) and builds the rollups,
starts `factory5g api` as a separate process, then measures from this process:
sequential latency of the KPI summary over 24 h and over the whole range and of a
500-point series of one field of one device over the whole range; and the throughput of
the device list under concurrent HTTP load from another process (`wrk` when installed,
else an asyncio client). Figures and targets are printed; --strict exits 1 on a miss.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from f5gdev.devstack.servers import Postgres, free_port
from f5gdev.seed.generate import SeedPlan, default_end, describe, seed
from services.core import db

TARGETS = {
    "kpi_24h_p95_ms": 50.0,
    "kpi_full_p95_ms": 200.0,
    "series_full_p95_ms": 100.0,
    "devices_rps": 1500.0,
}


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _latency(name: str, n: int, call: Callable[[], httpx.Response]) -> dict[str, float]:
    for _ in range(min(5, n)):  # warm caches and connections
        r = call()
        r.raise_for_status()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = call()
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    out = {"p50": _pct(times, 0.5), "p95": _pct(times, 0.95), "p99": _pct(times, 0.99)}
    print(f"  {name:34} p50 {out['p50']:7.1f} ms  p95 {out['p95']:7.1f} ms  "
          f"p99 {out['p99']:7.1f} ms  (n={n})", flush=True)  # fmt: skip
    return out


async def _async_load(url: str, token: str, seconds: float, connections: int) -> float:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    done = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                r = await client.get(url)
                r.raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.perf_counter() - started)


def _throughput(url: str, token: str, seconds: float, connections: int) -> tuple[float, str]:
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t2", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
             "-H", f"Authorization: Bearer {token}", url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        m = re.search(r"Requests/sec:\s+([\d.]+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m is None or non2xx is not None:
            raise RuntimeError(f"wrk failed:\n{out}")
        return float(m.group(1)), "wrk"
    code = (
        "import asyncio, sys; from loadtests.bench_api import _async_load; "
        "print(asyncio.run(_async_load(sys.argv[1], sys.argv[2], float(sys.argv[3]), "
        "int(sys.argv[4]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, token, str(seconds), str(connections)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.strip().splitlines()[-1]), "asyncio client"


def _create_key(url: str) -> str:
    from services.api.app import make_engine
    from services.api.auth import keys
    from services.core.settings import load_settings

    async def go() -> str:
        engine = make_engine(load_settings(database={"url": url}))
        try:
            async with engine.begin() as conn:
                return (await keys.create(conn, "bench", "read", None))[0]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _build_rollups(url: str) -> int:
    from services.api.app import make_engine
    from services.api.rollups import maintain
    from services.core.settings import load_settings

    async def go() -> int:
        engine = make_engine(load_settings(database={"url": url}))
        try:
            return await maintain.catch_up(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--projects", type=int, default=4)
    p.add_argument("--rows-per-day", type=int, default=8640, help="per device (8640 = 10 s)")
    p.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    p.add_argument("--duration", type=float, default=10, help="seconds of list load")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--database-url", help="use this (already seeded) database, no seeding")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="f5g-bench-api-"))
    tmp.chmod(0o755)
    pg: Postgres | None = None
    api: subprocess.Popen[bytes] | None = None
    figures: dict[str, float] = {}
    try:
        if args.database_url:
            url = args.database_url
            db.migrate(url)
        else:
            pg = Postgres(tmp / "postgres", port=free_port())
            pg.start()
            url = pg.url
            db.migrate(url)
            plan = SeedPlan(args.projects, args.devices, args.days, args.rows_per_day,
                            default_end())  # fmt: skip
            print(f"seeding {args.days:g} days x {args.devices} devices x "
                  f"{args.rows_per_day} rows/day ...", flush=True)  # fmt: skip
            t = time.perf_counter()
            result = asyncio.run(seed(url, plan))
            took = time.perf_counter() - t
            total = sum(result.values())
            figures["seed_rows"] = total
            figures["seed_rows_per_s"] = total / took
            print(f"  {total:,} rows in {took:.1f} s ({total / took:,.0f} rows/s): "
                  f"{describe(result)}", flush=True)  # fmt: skip
            t = time.perf_counter()
            passes = _build_rollups(url)
            figures["rollup_build_s"] = time.perf_counter() - t
            print(f"  rollups built in {figures['rollup_build_s']:.1f} s ({passes} passes)")
        token = _create_key(url)
        port = free_port()
        env = {**os.environ, "F5G_DATABASE__URL": url, "F5G_API__PORT": str(port),
               "F5G_API__RATE_LIMIT_PER_S": "0",  # opt out: measure the API, not the limiter
               "F5G_API__ROLLUP_INTERVAL_S": "0", "F5G_DATABASE__POOL_MAX": "16",
               "F5G_LOG_LEVEL": "WARNING"}  # fmt: skip
        api = subprocess.Popen([sys.executable, "-m", "services.cli", "api"], env=env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.time() > deadline or api.poll() is not None:
                raise RuntimeError("the API did not become ready")
            time.sleep(0.2)

        headers = {"Authorization": f"Bearer {token}"}
        client = httpx.Client(base_url=base, headers=headers, timeout=60)
        devices = client.get("/api/v1/devices", params={"limit": 500}).json()["items"]
        agv = next(d for d in devices if d["kind"] == "agv")
        now = datetime.now(UTC)
        full = {"start": (now - timedelta(days=args.days)).isoformat(), "end": now.isoformat()}
        project = agv["project_id"]
        print("latency (sequential, one client):", flush=True)
        kpi24 = _latency(
            "KPI summary, 24 h", args.requests,
            lambda: client.get(f"/api/v1/projects/{project}/kpis"),
        )  # fmt: skip
        kpifull = _latency(
            f"KPI summary, {args.days:g} days", args.requests,
            lambda: client.get(f"/api/v1/projects/{project}/kpis", params=full),
        )  # fmt: skip
        series = _latency(
            f"series {args.days:g} days, 500 points", args.requests,
            lambda: client.get(
                f"/api/v1/projects/{project}/series",
                params={**full, "stream": "agv", "field": "battery", "device": agv["device_id"],
                        "points": 500},
            ),
        )  # fmt: skip
        figures.update(
            kpi_24h_p95_ms=kpi24["p95"],
            kpi_full_p95_ms=kpifull["p95"],
            series_full_p95_ms=series["p95"],
        )
        rps, tool = _throughput(
            f"{base}/api/v1/devices?limit=50", token, args.duration, args.connections
        )
        figures["devices_rps"] = rps
        print(f"throughput ({tool}, {args.connections} connections, {args.duration:g} s):")
        print(f"  device list page (50)             {rps:,.0f} requests/s")
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        if pg is not None:
            pg.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)

    print("targets:")
    missed = 0
    for name, target in TARGETS.items():
        value = figures[name]
        ok = value >= target if name.endswith("rps") else value <= target
        missed += not ok
        print(f"  {name:22} {value:10.1f}  target {target:g}  {'met' if ok else 'MISSED'}")
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
