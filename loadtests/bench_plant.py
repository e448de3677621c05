"""Plant views benchmark (issue 20): OEE, 5G scorecard and evidence report p95 over 30 days,
and the raw CSV export's rows/s, on the seeded 30-day x 200-device dataset (51.8 M rows).

    factory5g bench plant                                # seed a temporary dataset, measure
    factory5g bench plant --reuse /var/tmp/f5g-plant     # seed once into DIR, reuse after
    factory5g bench plant --days 2 --requests 20         # a quick run of the harness

Seeds with `f5gdev.seed` (binary COPY; or reuses the cluster kept in `--reuse DIR`, seeding
it the first time), builds the rollups and the loss ledger, starts `factory5g api` as a
separate process and measures from this process, sequentially with one client:

- p95 of the OEE summary, the 5G service availability scorecard and the evidence report
  (HTML and CSV) over the whole range; a route this checkout does not have is reported as
  "not measured", never as a failure; the KPI summary over the same range is shown beside
  them (the report embeds it);
- rows/s of `export/link.csv` streamed over `--export-days` of one project, next to the
  same query's `\\copy ... TO '/dev/null' (FORMAT csv, HEADER)` through psql on the same
  database (PostgreSQL's own CSV writer and one client connection: the export's ceiling).

Writes results/plant-<timestamp>/ and updates results/latest.md; --strict exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from f5gdev.devstack.servers import Postgres, free_port
from f5gdev.seed.generate import SeedPlan, default_end, describe, seed
from loadtests import report, stats
from loadtests.bench_api import (
    _analyze,
    _build_rollups,
    _create_key,
    _figures,
    _print_latency,
    _with_engine,
)
from loadtests.scenarios import SCENARIOS
from services.core import db

STATE = "plant.json"  # what --reuse DIR holds besides the cluster


def _build_ledger(url: str) -> int:
    from services.api.report import ledger

    return _with_engine(url, ledger.catch_up)


def _cluster(base: Path) -> Postgres:
    """The cluster in `base`, on a free port (a reused one may find its old port taken)."""
    port = free_port()
    pg = Postgres(base, port=port)
    conf = pg.data_dir / "postgresql.auto.conf"
    if conf.exists():
        with conf.open("a") as f:
            f.write(f"port = {port}\n")
    return pg


def _seed(args: argparse.Namespace, url: str, figures: dict[str, Any]) -> datetime:
    plan = SeedPlan(args.projects, args.devices, args.days, args.rows_per_day, default_end())
    print(f"seeding {args.days:g} days x {args.devices} devices x "
          f"{args.rows_per_day} rows/day ...", flush=True)  # fmt: skip
    t = time.perf_counter()
    result = asyncio.run(seed(url, plan))
    took = time.perf_counter() - t
    total = sum(result.values())
    figures["seed_rows"] = total
    figures["seed_s"] = took
    print(f"  {total:,} rows in {took:.1f} s: {describe(result)}", flush=True)
    return plan.end


def _prepare(args: argparse.Namespace, url: str, figures: dict[str, Any]) -> None:
    t = time.perf_counter()
    passes = _build_rollups(url)
    figures["rollup_build_s"] = time.perf_counter() - t
    print(f"  rollups built in {figures['rollup_build_s']:.1f} s ({passes} passes)", flush=True)
    t = time.perf_counter()
    steps = _build_ledger(url)
    figures["ledger_build_s"] = time.perf_counter() - t
    print(f"  loss ledger built in {figures['ledger_build_s']:.1f} s ({steps} steps)", flush=True)
    t = time.perf_counter()
    if args.reuse is not None and args.reuse.joinpath(STATE).exists():
        tables = _analyze_changed(url)
        print(f"  analyzed {tables} changed tables in {time.perf_counter() - t:.1f} s", flush=True)
    else:
        _analyze(url)
        print(f"  analyzed in {time.perf_counter() - t:.1f} s", flush=True)


def _analyze_changed(url: str) -> int:
    """ANALYZE the tables changed since their last analysis (a tenth of their rows or more,
    or never analysed): a reused 51.8 M-row cluster takes six minutes to ANALYZE whole,
    while between runs only the rollups and the ledger change."""
    import asyncpg

    async def go() -> int:
        conn = await asyncpg.connect(db.asyncpg_dsn(url))
        try:
            rows = await conn.fetch(
                "SELECT format('%I.%I', schemaname, relname) AS t FROM pg_stat_user_tables "
                "WHERE coalesce(last_analyze, last_autoanalyze) IS NULL "
                "OR n_mod_since_analyze > greatest(n_live_tup / 10, 1000)"
            )
            for r in rows:
                await conn.execute(f"ANALYZE {r['t']}")
            return len(rows)
        finally:
            await conn.close()

    return asyncio.run(go())


def _measure_route(
    client: httpx.Client, name: str, path: str, params: dict[str, Any], n: int
) -> dict[str, Any]:
    """p50/p95/p99 of `path`, or why it was not measured (absent route, refusal)."""
    first = client.get(path, params=params)
    if first.status_code != 200:
        why = "route absent" if first.status_code == 404 else f"HTTP {first.status_code}"
        print(f"  {name:44} not measured ({why}: {first.text[:120]})", flush=True)
        return {"measured": False, "reason": f"{why}: {first.text[:200]}"}
    for _ in range(min(3, n)):
        client.get(path, params=params).raise_for_status()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(path, params=params)
        times.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    out: dict[str, Any] = {"measured": True, **_figures(times), "bytes": len(r.content)}
    _print_latency(name, out)
    return out


def _export_rate(
    client: httpx.Client, path: str, params: dict[str, Any], runs: int
) -> dict[str, Any]:
    best: dict[str, Any] = {}
    for _ in range(runs):
        rows = 0
        size = 0
        t = time.perf_counter()
        with client.stream("GET", path, params=params) as r:
            if r.status_code != 200:
                r.read()
                return {"measured": False, "reason": f"HTTP {r.status_code}: {r.text[:200]}"}
            for chunk in r.iter_bytes():
                rows += chunk.count(b"\n")
                size += len(chunk)
        took = time.perf_counter() - t
        rate = (rows - 1) / took
        print(f"  API export: {rows - 1:,} rows, {size / 1e6:.1f} MB in {took:.2f} s "
              f"({rate:,.0f} rows/s)", flush=True)  # fmt: skip
        if not best or rate > best["rows_per_s"]:
            best = {"measured": True, "rows": rows - 1, "bytes": size, "s": took,
                    "rows_per_s": rate}  # fmt: skip
    return best


def _psql_copy_rate(url: str, sql: str, runs: int) -> dict[str, Any]:
    """`\\copy (sql) TO '/dev/null'` through psql: PostgreSQL's CSV to one client."""
    psql = shutil.which("psql")
    if psql is None:
        return {"measured": False, "reason": "psql is not installed"}
    best: dict[str, Any] = {}
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c",
             f"\\copy ({sql}) TO '/dev/null' WITH (FORMAT csv, HEADER)"],
            env={**os.environ, "PGTZ": "UTC"}, capture_output=True, text=True, check=False,
        )  # fmt: skip
        took = time.perf_counter() - t
        if out.returncode != 0:
            return {"measured": False, "reason": out.stderr.strip()[:200]}
        if not best or took < best["s"]:
            best = {"measured": True, "s": took}
    return best


def _literal_copy_sql(project: str, start: datetime, end: datetime) -> str:
    from services.api.report import export

    sql = export.copy_sql("link", device=False)
    for i, v in ((3, end), (2, start), (1, project)):
        value = v.isoformat() if isinstance(v, datetime) else v
        sql = sql.replace(f"${i}", f"'{value}'")
    return sql


def measure(args: argparse.Namespace, out: dict[str, Any]) -> None:
    """Seed or reuse the dataset, start the API and fill `out` with what was measured."""
    tmp = Path(tempfile.mkdtemp(prefix="f5g-bench-plant-"))
    tmp.chmod(0o755)
    pg: Postgres | None = None
    api: subprocess.Popen[bytes] | None = None
    figures: dict[str, Any] = out.setdefault("figures", {})
    notes: list[str] = out.setdefault("notes", [])
    try:
        if args.reuse is not None:
            args.reuse.mkdir(parents=True, exist_ok=True)
            state_file = args.reuse / STATE
            pg = _cluster(args.reuse / "postgres")
            pg.start()
            url = pg.url
            db.migrate(url)
            if state_file.exists():
                state = json.loads(state_file.read_text())
                end = datetime.fromisoformat(state["end"])
                for k in ("days", "devices", "projects", "rows_per_day"):
                    setattr(args, k, state[k])
                notes.append(f"reused the dataset seeded on {state['seeded']} in {args.reuse}")
                print(f"reusing {args.reuse}: {state}", flush=True)
            else:
                end = _seed(args, url, figures)
                state = {"end": end.isoformat(), "seeded": datetime.now(UTC).isoformat(),
                         **{k: getattr(args, k) for k in
                            ("days", "devices", "projects", "rows_per_day")}}  # fmt: skip
                # Written before the rollups are built: a run that fails after seeding
                # must reuse the rows next time, never seed a second copy on top of them.
                state_file.write_text(json.dumps(state))
            _prepare(args, url, figures)
        else:
            pg = _cluster(tmp / "postgres")
            pg.start()
            url = pg.url
            db.migrate(url)
            end = _seed(args, url, figures)
            _prepare(args, url, figures)
        figures["dataset"] = {k: getattr(args, k) for k in
                              ("days", "devices", "projects", "rows_per_day")}  # fmt: skip
        token = _create_key(url)
        port = free_port()
        env = {**os.environ, "F5G_DATABASE__URL": url, "F5G_API__PORT": str(port),
               "F5G_API__RATE_LIMIT_PER_S": "0",  # opt out: measure the API, not the limiter
               "F5G_API__ROLLUP_INTERVAL_S": "0", "F5G_DATABASE__POOL_MAX": "16",
               "F5G_API__EXPORT_MAX_ROWS": str(50_000_000), "F5G_LOG_LEVEL": "WARNING"}  # fmt: skip
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

        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                              timeout=300)  # fmt: skip
        project = "p1"
        start = end - timedelta(days=args.days)
        q = {"start": start.isoformat(), "end": end.isoformat()}
        root = f"/api/v1/projects/{project}"
        print(f"latency over {args.days:g} days (sequential, one client, "
              f"{args.requests} requests):", flush=True)  # fmt: skip
        lat = {
            "kpi": _measure_route(client, "KPI summary", f"{root}/kpis", q, args.requests),
            "oee": _measure_route(client, "OEE (by project)", f"{root}/oee",
                                  {**q, "by": "project"}, args.requests),
            "availability": _measure_route(client, "5G service availability scorecard",
                                           f"{root}/service-availability", q, args.requests),
            "report_html": _measure_route(client, "evidence report (HTML)", f"{root}/report", q,
                                          args.requests),
            "report_csv": _measure_route(client, "evidence report (CSV)", f"{root}/report",
                                         {**q, "format": "csv"}, args.requests),
        }  # fmt: skip
        figures["latency_ms"] = lat
        ex_start = end - timedelta(days=min(args.export_days, args.days))
        ex_q = {"start": ex_start.isoformat(), "end": end.isoformat()}
        print(f"CSV export of link records over {min(args.export_days, args.days):g} days, "
              f"best of {args.export_runs}:", flush=True)  # fmt: skip
        figures["export"] = _export_rate(client, f"{root}/export/link.csv", ex_q, args.export_runs)
        ref = _psql_copy_rate(url, _literal_copy_sql(project, ex_start, end), args.export_runs)
        if ref.get("measured") and figures["export"].get("measured"):
            ref["rows_per_s"] = figures["export"]["rows"] / ref["s"]
            print(f"  psql \\copy to /dev/null: {ref['s']:.2f} s "
                  f"({ref['rows_per_s']:,.0f} rows/s)", flush=True)  # fmt: skip
        elif not ref.get("measured"):
            print(f"  psql reference not measured: {ref.get('reason')}", flush=True)
        figures["export_reference"] = ref
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        if pg is not None:
            pg.stop(mode="fast" if args.reuse is not None else "immediate")
        shutil.rmtree(tmp, ignore_errors=True)


def derive(figures: dict[str, Any]) -> dict[str, Any]:
    lat = figures.get("latency_ms", {})

    def p95(name: str) -> float | None:
        v = lat.get(name, {})
        return float(v["p95"]) if v.get("measured") else None

    ex = figures.get("export", {})
    ref = figures.get("export_reference", {})
    out: dict[str, Any] = {
        "kpi_p95_ms": p95("kpi"),
        "oee_p95_ms": p95("oee"),
        "availability_p95_ms": p95("availability"),
        "report_html_p95_ms": p95("report_html"),
        "report_csv_p95_ms": p95("report_csv"),
        "export_rows_per_s": ex.get("rows_per_s") if ex.get("measured") else None,
        "copy_rows_per_s": ref.get("rows_per_s") if ref.get("measured") else None,
        "not_measured": [k for k, v in lat.items() if not v.get("measured")],
    }
    out["export_to_copy"] = stats.ratio(out["export_rows_per_s"], out["copy_rows_per_s"])
    out["report_to_kpi"] = stats.ratio(out["report_html_p95_ms"], out["kpi_p95_ms"])
    return out


REFERENCES = (
    ("evidence report p95", "report_html_p95_ms", "ms", "KPI summary p95", "kpi_p95_ms",
     "report_to_kpi", "report / KPI summary"),
    ("CSV export rows/s", "export_rows_per_s", "rows/s", "psql \\copy rows/s",
     "copy_rows_per_s", "export_to_copy", "API / psql"),
)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_plant", description=__doc__.split("\n\n")[0])
    p.add_argument("--days", type=float, default=30)
    p.add_argument("--devices", type=int, default=200)
    p.add_argument("--projects", type=int, default=4)
    p.add_argument("--rows-per-day", type=int, default=8640, help="per device (8640 = 10 s)")
    p.add_argument("--requests", type=int, default=50, help="requests per latency figure")
    p.add_argument("--export-days", type=float, default=3, help="range of the export runs")
    p.add_argument("--export-runs", type=int, default=3)
    p.add_argument("--reuse", type=Path, help="keep the seeded cluster in DIR; reuse it next time")
    p.add_argument("--duration", type=float, help=argparse.SUPPRESS)  # passed by `bench`
    p.add_argument("--results", type=Path, default=report.RESULTS_DIR, help="results directory")
    p.add_argument("--no-report", action="store_true", help="print only, write no report")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)

    scenario = SCENARIOS["plant"]
    machine = report.machine()
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
        for name in derived["not_measured"]:
            reason = result["figures"]["latency_ms"][name].get("reason", "")
            doc["notes"].append(f"{name}: not measured ({reason})")
        doc["references"] = [
            {"label": label, "value": derived[fig], "unit": unit, "reference": ref_label,
             "reference_value": derived[ref], "ratio": derived[rk], "ratio_of": meaning}
            for label, fig, unit, ref_label, ref, rk, meaning in REFERENCES
        ]  # fmt: skip
        doc["figures"] = {**result["figures"], "derived": derived}
        doc["argv"] = list(argv if argv is not None else sys.argv[1:])
        print("targets (issue 20):")
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
