"""API benchmark: seed weeks of history, then measure the server against same-run references.

    python -m loadtests.bench_api                        # design size: 30 days x 200 devices
    python -m loadtests.bench_api --days 7 --devices 200 # the size docs/benchmarks.md reports
    python -m loadtests.bench_api --days 1 --devices 20  # a quick run of the harness

Starts its own PostgreSQL + TimescaleDB (temporary directory, free port) unless given
--database-url, seeds it with `f5gdev.seed` (binary COPY) and builds the rollups,
starts `factory5g api` as a separate process, then measures from this process:

- sequential latency of the KPI summary over 24 h and over the whole range and of a
  500-point series of one device over the whole range, each next to the same figures
  computed by hand-written SQL over raw rows (`loadtests.reference_sql`) on the same
  database: the ratio is what the rollups buy, and it carries across machines;
- the device list's request rate under concurrent load from `wrk` (installed by
  scripts/install-bench-tools.sh when missing), next to the rate of the same process's
  static `/healthz`: the ratio is the share of the framework's ceiling the list keeps.
  The generator's CPU seconds are compared with the API's and PostgreSQL's over each load
  run (/proc, `wait4`); a run the generator bounded reports no server figure.

Targets are set on the ratios (docs/benchmarks.md says why); the absolute figures are
shown against the issue's bounds for this machine. Writes results/api-<timestamp>/ and
updates results/latest.md; --strict exits 1 when a ratio target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from f5gdev.devstack.servers import Postgres, free_port
from f5gdev.seed.generate import SeedPlan, default_end, describe, seed
from loadtests import reference_sql, report, stats
from loadtests.procs import CpuMeter, run_measured

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
from loadtests.scenarios import SCENARIOS
from services.core import db

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TOOLS = ROOT / "scripts" / "install-bench-tools.sh"
WRK_THREADS = 2


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def _figures(times: list[float]) -> dict[str, float]:
    return {"p50": _pct(times, 0.5), "p95": _pct(times, 0.95), "p99": _pct(times, 0.99),
            "n": float(len(times))}  # fmt: skip


def _print_latency(name: str, out: dict[str, float]) -> None:
    print(f"  {name:40} p50 {out['p50']:8.1f} ms  p95 {out['p95']:8.1f} ms  "
          f"p99 {out['p99']:8.1f} ms  (n={out['n']:.0f})", flush=True)  # fmt: skip


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
    out = _figures(times)
    _print_latency(name, out)
    return out


async def _alatency(name: str, n: int, call: Callable[[], Awaitable[object]]) -> dict[str, float]:
    for _ in range(min(2, n)):
        await call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t) * 1000)
    out = _figures(times)
    _print_latency(name, out)
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


def ensure_wrk(install: Path = INSTALL_TOOLS) -> tuple[str | None, str]:
    """wrk's path, installing it with the project's script when missing; (None, why) if
    that fails, and the run falls back to a Python client whose figures it then flags."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk"
    print(f"wrk is not installed; running {install} ...", flush=True)
    done = subprocess.run(["bash", str(install)], capture_output=True, text=True)
    found = shutil.which("wrk")
    if found:
        return found, "wrk"
    why = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"installing wrk failed ({why[0]}); asyncio client instead"


def parse_wrk(out: str) -> float:
    """Requests/s of a wrk run; raises when the output has none or reports errors."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m is None or non2xx is not None:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(m.group(1))


def _load(
    url: str,
    token: str,
    seconds: float,
    connections: int,
    wrk: str | None,
    pids: dict[str, int],
) -> dict[str, Any]:
    """One closed-loop load run against `url`, with the CPU each side used over it."""
    if wrk:
        cmd = [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
               "-H", f"Authorization: Bearer {token}", url]  # fmt: skip
        threads, tool = WRK_THREADS, "wrk"
    else:
        code = (
            "import asyncio, sys; from loadtests.bench_api import _async_load; "
            "print(asyncio.run(_async_load(sys.argv[1], sys.argv[2], float(sys.argv[3]), "
            "int(sys.argv[4]))))"
        )
        cmd = [sys.executable, "-c", code, url, token, str(seconds), str(connections)]
        threads, tool = 1, "asyncio client"
    meter = CpuMeter(pids).start()
    rc, out, err, gen_cpu = run_measured(cmd, timeout=seconds + 60)
    meter.stop()
    if rc != 0:
        raise RuntimeError(f"{tool} exited with {rc}:\n{out}\n{err}")
    rps = parse_wrk(out) if wrk else float(out.strip().splitlines()[-1])
    limit = stats.load_limit(
        meter.wall_s, os.cpu_count() or 1, gen_cpu, threads, meter.used["api"],
        meter.used.get("database"), meter.machine_busy_s,
    )  # fmt: skip
    return {"rps": rps, "tool": tool, "connections": connections, "seconds": seconds, **limit}


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


def _with_engine(url: str, work: Callable[[AsyncEngine], Awaitable[int]]) -> int:
    """Run `work` (a maintainer's catch-up) on an API engine of `url`; returns its count."""
    from services.api.app import make_engine
    from services.core.settings import load_settings

    async def go() -> int:
        engine = make_engine(load_settings(database={"url": url}))
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _build_rollups(url: str) -> int:
    from services.api.rollups import maintain

    return _with_engine(url, maintain.catch_up)


def _analyze(url: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(db.asyncpg_dsn(url))
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    asyncio.run(go())


def _raw_references(
    url: str,
    project: str,
    device: str,
    ranges: dict[str, tuple[datetime, datetime]],
    bucket_s: int,
    n: int,
) -> dict[str, dict[str, float]]:
    """p50/p95/p99 of the hand-written raw-row SQL for each figure the API is timed on."""
    import asyncpg

    async def go() -> dict[str, dict[str, float]]:
        conns = [await asyncpg.connect(db.asyncpg_dsn(url)) for _ in range(5)]
        try:
            out = {}
            for name, (a, b) in ranges.items():
                out[f"kpi_{name}"] = await _alatency(
                    f"raw SQL: KPI summary, {name}", n,
                    lambda a=a, b=b: reference_sql.kpis(conns, project, a, b),  # type: ignore[misc]
                )  # fmt: skip
            a, b = ranges["full"]
            out["series_full"] = await _alatency(
                "raw SQL: series, full range", n,
                lambda: reference_sql.series(
                    conns[0], "agv_status", "battery", project, device, a, b, bucket_s
                ),
            )  # fmt: skip
            return out
        finally:
            for c in conns:
                await c.close()

    return asyncio.run(go())


def _postmaster_pid(pg: Postgres | None) -> int | None:
    if pg is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((pg.data_dir / "postmaster.pid").read_text().splitlines()[0])
    return None


def measure(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Seed (unless given a database), start the API and fill `out` with what was measured."""
    tmp = Path(tempfile.mkdtemp(prefix="f5g-bench-api-"))
    tmp.chmod(0o755)
    pg: Postgres | None = None
    api: subprocess.Popen[bytes] | None = None
    figures: dict[str, Any] = out.setdefault("figures", {})
    notes: list[str] = out.setdefault("notes", [])
    try:
        wrk, tool_note = ensure_wrk()
        if wrk is None:
            notes.append(tool_note)
        if args.database_url:
            url = args.database_url
            db.migrate(url)
            notes.append("ran on a given database: PostgreSQL's CPU time is not measured")
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
            # A live database's chunks are analyzed by autovacuum long before anyone asks
            # for a day-old KPI; right after a bulk load they have no statistics, and the
            # planner then walks the unique key for the AGV summary's raw edge (27 ms
            # instead of 5 ms on 3.5 M rows), which measures the seeding, not the API.
            t = time.perf_counter()
            _analyze(url)
            print(f"  analyzed in {time.perf_counter() - t:.1f} s", flush=True)
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
        client = httpx.Client(base_url=base, headers=headers, timeout=120)
        devices = client.get("/api/v1/devices", params={"limit": 500}).json()["items"]
        agv = next(d for d in devices if d["kind"] == "agv")
        project = agv["project_id"]
        # One fixed pair of ranges for the API and its raw-SQL reference alike.
        now = datetime.now(UTC)
        ranges = {
            "24h": (now - timedelta(hours=24), now),
            "full": (now - timedelta(days=args.days), now),
        }
        q = {k: {"start": a.isoformat(), "end": b.isoformat()} for k, (a, b) in ranges.items()}
        print("latency (sequential, one client):", flush=True)
        kpi24 = _latency(
            "API: KPI summary, 24 h", args.requests,
            lambda: client.get(f"/api/v1/projects/{project}/kpis", params=q["24h"]),
        )  # fmt: skip
        kpifull = _latency(
            f"API: KPI summary, {args.days:g} days", args.requests,
            lambda: client.get(f"/api/v1/projects/{project}/kpis", params=q["full"]),
        )  # fmt: skip
        series_params = {**q["full"], "stream": "agv", "field": "battery",
                         "device": agv["device_id"], "points": 500}  # fmt: skip
        series = _latency(
            f"API: series {args.days:g} days, 500 points", args.requests,
            lambda: client.get(f"/api/v1/projects/{project}/series", params=series_params),
        )  # fmt: skip
        bucket_s = int(
            client.get(f"/api/v1/projects/{project}/series", params=series_params).json()[
                "bucket_s"
            ]
        )
        raw = _raw_references(
            url, project, agv["device_id"], ranges, bucket_s, args.reference_requests
        )
        figures["latency_ms"] = {
            "kpi_24h": kpi24, "kpi_full": kpifull, "series_full": series,
            "raw_kpi_24h": raw["kpi_24h"], "raw_kpi_full": raw["kpi_full"],
            "raw_series_full": raw["series_full"],
        }  # fmt: skip
        pids = {"api": api.pid}
        pg_pid = _postmaster_pid(pg)
        if pg_pid is not None:
            pids["database"] = pg_pid
        load: dict[str, Any] = {}
        for name, path in (("healthz", "/healthz"), ("devices", "/api/v1/devices?limit=50")):
            run = _load(base + path, token, args.duration, args.connections, wrk, pids)
            load[name] = run
            shares = ", ".join(f"{k} {v:.0%}" for k, v in run["cpu_share"].items())
            print(f"throughput {path} ({run['tool']}, {args.connections} connections, "
                  f"{args.duration:g} s): {run['rps']:,.0f} requests/s; CPU {shares}; "
                  f"limit: {run['limit']} ({run['reason']})", flush=True)  # fmt: skip
        figures["load"] = load
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        if pg is not None:
            pg.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)


def derive(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures the targets and the report name: absolute values and their ratios to
    the same-run references. A load run the generator bounded gives no server figure."""
    lat = figures.get("latency_ms", {})
    load = figures.get("load", {})

    def p95(name: str) -> float | None:
        v = lat.get(name, {}).get("p95")
        return float(v) if isinstance(v, int | float) else None

    def server_rps(name: str) -> float | None:
        run = load.get(name)
        if not run or run.get("limit") != "server":
            return None
        return float(run["rps"])

    out: dict[str, Any] = {
        "kpi_24h_p95_ms": p95("kpi_24h"),
        "kpi_full_p95_ms": p95("kpi_full"),
        "series_full_p95_ms": p95("series_full"),
        "devices_rps": server_rps("devices"),
        "healthz_rps": server_rps("healthz"),
        "raw_kpi_24h_p95_ms": p95("raw_kpi_24h"),
        "raw_kpi_full_p95_ms": p95("raw_kpi_full"),
        "raw_series_full_p95_ms": p95("raw_series_full"),
        "generator_limited": [k for k, v in load.items() if v.get("limit") == "client"],
    }
    out["kpi_24h_speedup"] = stats.ratio(out["raw_kpi_24h_p95_ms"], out["kpi_24h_p95_ms"])
    out["kpi_full_speedup"] = stats.ratio(out["raw_kpi_full_p95_ms"], out["kpi_full_p95_ms"])
    out["series_full_speedup"] = stats.ratio(
        out["raw_series_full_p95_ms"], out["series_full_p95_ms"]
    )
    out["devices_to_healthz"] = stats.ratio(out["devices_rps"], out["healthz_rps"])
    return out


REFERENCES = (
    # (label, figure, unit, reference label, reference figure, ratio key, ratio meaning)
    ("KPI summary 24 h p95", "kpi_24h_p95_ms", "ms", "raw SQL p95", "raw_kpi_24h_p95_ms",
     "kpi_24h_speedup", "raw / API"),
    ("KPI summary full range p95", "kpi_full_p95_ms", "ms", "raw SQL p95",
     "raw_kpi_full_p95_ms", "kpi_full_speedup", "raw / API"),
    ("series full range p95", "series_full_p95_ms", "ms", "raw SQL p95",
     "raw_series_full_p95_ms", "series_full_speedup", "raw / API"),
    ("device list (50) req/s", "devices_rps", "req/s", "/healthz req/s", "healthz_rps",
     "devices_to_healthz", "list / healthz"),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_api", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--projects", type=int, default=4)
    p.add_argument("--rows-per-day", type=int, default=8640, help="per device (8640 = 10 s)")
    p.add_argument("--requests", type=int, default=200, help="requests per latency figure")
    p.add_argument("--reference-requests", type=int, default=20,
                   help="runs of each raw-SQL reference (they are slow by design)")  # fmt: skip
    p.add_argument("--duration", type=float, default=10, help="seconds of each load run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--database-url", help="use this (already seeded) database, no seeding")
    p.add_argument("--results", type=Path, default=report.RESULTS_DIR, help="results directory")
    p.add_argument("--no-report", action="store_true", help="print only, write no report")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)

    scenario = SCENARIOS["api"]
    machine = report.machine()  # before the run: its load average is the one that matters
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    result: dict[str, Any] = {}
    tee = report.Tee()
    with contextlib.redirect_stdout(tee):
        measure(args, result)
        derived = derive(result["figures"])
        doc = report.build_result(
            scenario, [], started, time.monotonic() - t0, result["notes"],
            machine_info=machine, figures=derived,
        )  # fmt: skip
        for name in derived["generator_limited"]:
            run = result["figures"]["load"][name]
            doc["notes"].append(
                f"the {name} load run was bounded by its generator ({run['tool']}: "
                f"{run['reason']}): no server figure is reported for it"
            )
        doc["references"] = [
            {"label": label, "value": derived[fig], "unit": unit, "reference": ref_label,
             "reference_value": derived[ref], "ratio": derived[rk], "ratio_of": meaning}
            for label, fig, unit, ref_label, ref, rk, meaning in REFERENCES
        ]  # fmt: skip
        doc["load"] = result["figures"].get("load", {})
        doc["figures"] = {**result["figures"], "derived": derived}
        doc["argv"] = list(argv if argv is not None else sys.argv[1:])
        print("absolute figures (this machine):")
        for t in doc["absolute"]:
            print(f"  {t['label']:42} {report._fmt(t['value']):>10}  issue bound "
                  f"{t['op']} {t['bound']:g}  {report.verdict(t['met'])}")  # fmt: skip
        print("targets (ratios to same-run references):")
        for t in doc["targets"]:
            print(f"  {t['label']:42} {report._measured(t['value'], t['bound']):>10}  target "
                  f"{t['op']} {t['bound']:g}  {report.verdict(t['met'])}")  # fmt: skip
    doc["output"] = tee.getvalue()
    if not args.no_report:
        print(f"report: {report.write(doc, args.results) / 'report.md'}")
    missed = any(t["met"] is not True for t in doc["targets"])
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
