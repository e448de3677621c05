"""Commands benchmark: request -> accepted latency at 500 commands/s over 1,000 devices.

The API (one uvicorn worker) and the commander run as the services they are, as
processes of their own; the native devices are a few paho-mqtt processes that each stand in
for a share of the fleet (one wildcard subscription per process, like the simulator's
account) and answer every command at once with `accepted` then `completed`, with the
command's correlation data, on the device's own reply topic. The generator sends
`POST /api/v1/projects/bench/devices/{device}/commands` open-loop at the target rate
(round-robin over the devices) from this process.

Figures: request -> accepted is the `accepted` event's time in `command_events` (the
database clock, the same machine's) minus the wall time the request left the generator.
Lost: answered 202 but not `completed` when the run has drained. Sent twice: a command id
a device received more than once, or a row with `sends` > 1. The generator limit: whether
the requests went out at the target rate, and the generator's share of the CPU.

`python -m loadtests.commands_bench [--rate 500] [--devices 1000] [--duration 30]`, or
`factory5g bench commands`; writes results/commands-<timestamp>/report.md and result.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import psycopg2
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from f5gdev.devstack.servers import free_port
from loadtests import report, stats
from loadtests.procs import CpuMeter, Ingestor, wait_until
from loadtests.runner import BenchEnv

PROJECT = "bench"
NAME = "ping"
P99_BOUND_MS = 200.0  # issue 18
CLI = [sys.executable, "-m", "services.cli"]


# --------------------------------------------------------------------------- devices


def run_devices(port: int, kind: str, out: Path) -> None:
    """One device process: every device of `kind`, answering each command at once."""
    received: dict[str, int] = {}
    lock = threading.Lock()
    done = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-dev-{kind}", protocol=mqtt.MQTTv5
    )

    def on_connect(c: mqtt.Client, *_a: Any) -> None:
        c.subscribe(f"f5g/v1/{PROJECT}/{kind}/+/cmd/#", qos=1)

    def on_message(c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        props = msg.properties
        corr = getattr(props, "CorrelationData", None)
        to = getattr(props, "ResponseTopic", None)
        if corr is None or to is None:
            return
        with lock:
            cid = corr.decode()
            received[cid] = received.get(cid, 0) + 1
        reply = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        reply.CorrelationData = corr
        c.publish(to, b'{"status":"accepted"}', qos=1, properties=reply)
        c.publish(to, b'{"status":"completed"}', qos=1, properties=reply)

    client.on_connect = on_connect
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    signal.signal(signal.SIGTERM, lambda *_a: done.set())
    client.loop_start()
    done.wait()
    client.loop_stop()
    client.disconnect()
    with lock:
        out.write_text(json.dumps(received))


# --------------------------------------------------------------------------- generator


async def generate(
    base: str, token: str, devices: list[tuple[str, str]], rate: float, duration_s: float
) -> tuple[dict[str, float], dict[int, int], list[float], float]:
    """Open-loop POSTs at `rate`; returns command id -> send wall time, status counts,
    the request send times and the achieved rate."""
    sent: dict[str, float] = {}
    statuses: dict[int, int] = {}
    starts: list[float] = []
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as client:
        pending: set[asyncio.Task[None]] = set()
        # At most as many requests in flight as connections: httpx's pool slows down with
        # every request queued inside it (a first run spent 21 ms of generator CPU per
        # request with thousands queued). The latency still starts at the request's
        # scheduled time, so waiting here counts against the figure, not for it.
        slots = asyncio.Semaphore(64)

        async def one(device: str) -> None:
            t = time.time()
            starts.append(t)
            async with slots:
                try:
                    r = await client.post(
                        f"/api/v1/projects/{PROJECT}/devices/{device}/commands",
                        json={"name": NAME, "timeout_s": 120},
                        headers=headers,
                    )
                except httpx.HTTPError:
                    statuses[0] = statuses.get(0, 0) + 1
                    return
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 202:
                sent[r.json()["id"]] = t

        t0 = time.monotonic()
        n = 0
        total = int(rate * duration_s)
        while n < total:
            due = t0 + n / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            _kind, device = devices[n % len(devices)]
            task = asyncio.create_task(one(device))
            pending.add(task)
            task.add_done_callback(pending.discard)
            n += 1
        if pending:
            await asyncio.wait(pending)
        elapsed = time.monotonic() - t0
    # Answered per second: what the generator and the API together achieved.
    achieved = len(starts) / elapsed if elapsed > 0 else math.nan
    return sent, statuses, starts, achieved


# --------------------------------------------------------------------------- run


def _setup(url: str, devices: list[tuple[str, str]], kinds: list[str]) -> None:
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (project_id, device_id, kind, online) VALUES (%s, %s, %s, true)",
            [(PROJECT, d, k) for k, d in devices],
        )
        cur.executemany(
            "INSERT INTO command_allow (project_id, kind, name, created_by) "
            "VALUES (%s, %s, %s, 'bench')",
            [(PROJECT, k, NAME) for k in kinds],
        )
    conn.close()


def _outcomes(url: str) -> dict[str, dict[str, Any]]:
    """Per command: state, sends, and the epoch times it was queued, sent and accepted."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.id::text, c.state, c.sends, extract(epoch FROM c.created_at), "
                "extract(epoch FROM min(e.ts) FILTER (WHERE e.state = 'sent')), "
                "extract(epoch FROM min(e.ts) FILTER (WHERE e.state = 'accepted')) "
                "FROM commands c LEFT JOIN command_events e ON e.command_id = c.id "
                "WHERE c.project_id = %s GROUP BY c.id",
                (PROJECT,),
            )
            return {
                cid: {
                    "state": st,
                    "sends": sends,
                    "queued": _f(q),
                    "sent": _f(se),
                    "accepted": _f(acc),
                }
                for cid, st, sends, q, se, acc in cur.fetchall()
            }
    finally:
        conn.close()


def _f(value: Any) -> float | None:
    return float(value) if value is not None else None


def run(
    rate: float,
    n_devices: int,
    duration_s: float,
    processes: int,
    log_dir: Path,
    durable: bool = True,
) -> dict[str, Any]:
    kinds = [f"k{i}" for i in range(processes)]
    devices = [(kinds[i % processes], f"d{i:05d}") for i in range(n_devices)]
    token = f"f5g_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"
    with BenchEnv(durable=durable) as env:
        url = env.new_database()
        broker = env.new_broker()
        _setup(url, devices, kinds)
        api_port = free_port()
        common = {
            "F5G_DATABASE__URL": url,
            "F5G_MQTT__PORT": str(broker.port),
            "F5G_LOG_LEVEL": "WARNING",
            # Both services read the commands section: the per-device limit must not refuse
            # the benchmark's load (15 commands per device over 30 s).
            "F5G_COMMANDS__RATE_PER_DEVICE": "100000",
            # Each queued command is one commit: more connections, more commits per WAL
            # flush (group commit) on a disk shared with other work.
            "F5G_DATABASE__POOL_MAX": os.environ.get("F5G_BENCH_POOL_MAX", "32"),
        }
        api = Ingestor(
            "api",
            [*CLI, "api"],
            {
                **common,
                "F5G_API__PORT": str(api_port),
                "F5G_API__BOOTSTRAP_KEY": token,
                "F5G_API__ROLLUP_INTERVAL_S": "0",
                "F5G_API__RATE_LIMIT_PER_S": "0",  # the named opt-out for one hard-driven key
            },
            log_dir / "commands-api.log",
        )
        commander = Ingestor(
            "commands",
            [*CLI, "commands"],
            {
                **common,
                "F5G_COMMANDS__CLIENT_ID": f"bench-commands-{uuid.uuid4().hex[:6]}",
                "F5G_COMMANDS__METRICS_PORT": str(free_port()),
            },
            log_dir / "commands.log",
        )
        outs = [log_dir / f"commands-devices-{k}.json" for k in kinds]
        device_procs: list[subprocess.Popen[bytes]] = []
        try:
            api.start()
            commander.start()
            for k, out in zip(kinds, outs, strict=True):
                device_procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "loadtests.commands_bench",
                            "device",
                            str(broker.port),
                            k,
                            str(out),
                        ]
                    )
                )
            base = f"http://127.0.0.1:{api_port}"
            if not wait_until(lambda: _healthy(base), 60.0):
                raise RuntimeError("the API did not start:\n" + api.log_tail())
            # Warm-up: one command per process's devices must complete end to end.
            warm = asyncio.run(generate(base, token, devices[:processes], 10.0, 0.5))[0]
            if not wait_until(lambda: _all_done(url, set(warm)), 60.0):
                raise RuntimeError("no warm-up command completed:\n" + commander.log_tail())
            pids = {"api": api.pid, "commander": commander.pid, "broker": broker.pid()}
            pids.update({f"devices-{k}": p.pid for k, p in zip(kinds, device_procs, strict=True)})
            meter = CpuMeter({k: v for k, v in pids.items() if v}).start()
            gen_cpu0 = time.process_time()
            print(f"[commands] {rate:,.0f} commands/s over {n_devices:,} devices ...")
            sent, statuses, starts, achieved = asyncio.run(
                generate(base, token, devices, rate, duration_s)
            )
            gen_cpu = time.process_time() - gen_cpu0
            meter.stop()
            wait_until(lambda: _all_done(url, set(sent)), 30.0)
        finally:
            for p in device_procs:
                p.send_signal(signal.SIGTERM)
            for p in device_procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            commander.stop()
            api.stop()
        outcomes = _outcomes(url)
    received: dict[str, int] = {}
    for out in outs:
        if out.exists():
            for cid, n in json.loads(out.read_text()).items():
                received[cid] = received.get(cid, 0) + n
    lat = [
        outcomes[cid]["accepted"] - t
        for cid, t in sent.items()
        if cid in outcomes and outcomes[cid]["accepted"] is not None
    ]
    lost = [cid for cid in sent if outcomes.get(cid, {}).get("state") != "completed"]
    steps = {"request -> queued": ("request", "queued"), "queued -> sent": ("queued", "sent"),
             "sent -> accepted": ("sent", "accepted")}  # fmt: skip
    breakdown = {}
    for label, (a, b) in steps.items():
        xs = []
        for cid, t in sent.items():
            o = outcomes.get(cid, {})
            ta = t if a == "request" else o.get(a)
            tb = o.get(b)
            if ta is not None and tb is not None:
                xs.append(tb - ta)
        breakdown[label] = stats.latency_figures(xs)
    twice_device = sum(1 for cid in sent if received.get(cid, 0) > 1)
    twice_row = sum(1 for cid in sent if (outcomes.get(cid, {}).get("sends") or 0) > 1)
    wall = max(meter.wall_s, 1e-9)
    cores = {k: v / wall for k, v in meter.used.items()}
    cores["generator (this process)"] = gen_cpu / wall
    figures = stats.latency_figures(lat)
    reached = achieved >= 0.98 * rate
    # The generator's CPU per request, times the target rate: the cores it would need.
    gen_cores_needed = gen_cpu / max(len(starts), 1) * rate
    return {
        "rate_target": rate,
        "requests_sent": len(starts),
        "requests_achieved_per_s": achieved,
        "generator_reached_rate": reached,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted_202": len(sent),
        "request_to_accepted": figures,
        "breakdown": breakdown,
        "lost": len(lost),
        "sent_twice_devices": twice_device,
        "sent_twice_rows": twice_row,
        "cores_used": cores,
        "machine_busy_share": (meter.machine_busy_s / meter.machine_total_s)
        if meter.machine_total_s
        else math.nan,
        "generator_cpu_ms_per_request": gen_cpu / max(len(starts), 1) * 1000,
        "generator_cores_needed_at_target": gen_cores_needed,
        "generator_limited": (not reached) and gen_cores_needed >= 0.8,
        "p99_met": figures["p99_ms"] <= P99_BOUND_MS,
    }


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _all_done(url: str, ids: set[str]) -> bool:
    if not ids:
        return True
    states = _outcomes(url)
    return all(states.get(cid, {}).get("state") == "completed" for cid in ids)


def _report(summary: dict[str, Any], work: dict[str, Any], machine: dict[str, Any]) -> str:
    f = summary["request_to_accepted"]
    cores = ", ".join(f"{k} {v:.2f}" for k, v in summary["cores_used"].items())
    lines = [
        "# Commands: request to accepted at "
        f"{work['rate']:,.0f} commands/s over {work['devices']:,} devices",
        "",
        f"Scenario `commands`, run {work['started']} ({work['duration_s']:g} s of load), "
        f"commit `{machine['commit']}`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}; load average at start "
        f"{machine['load_avg_at_start']}. Broker, database, API, commander, device processes "
        "and generator all ran on this machine.",
        "",
        "## Targets (issue 18)",
        "",
        "| target | bound | measured | met |",
        "|---|---|---|---|",
        f"| p99 request -> accepted (ms) | <= {P99_BOUND_MS:g} | {f['p99_ms']:.1f} | "
        f"{'yes' if summary['p99_met'] else 'no'} |",
        f"| commands lost | == 0 | {summary['lost']} | {'yes' if summary['lost'] == 0 else 'no'} |",
        f"| commands sent twice (devices / rows) | == 0 | {summary['sent_twice_devices']} / "
        f"{summary['sent_twice_rows']} | "
        f"{'yes' if summary['sent_twice_devices'] == summary['sent_twice_rows'] == 0 else 'no'} |",
        f"| requests answered at the rate | yes | "
        f"{summary['requests_achieved_per_s']:,.1f} req/s | "
        f"{'yes' if summary['generator_reached_rate'] else 'no'} |",
        "",
        "## Workload",
        "",
        f"{work['devices']:,} native devices in {work['processes']} paho-mqtt processes "
        "(one wildcard subscription each), answering accepted + completed at once; POST "
        f"open-loop at {work['rate']:,.0f}/s round-robin over the devices for "
        f"{work['duration_s']:g} s from one asyncio/httpx generator (64 connections); API one "
        "uvicorn worker; commander one process; QoS 1 throughout.",
        "",
        "## Results",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests sent | {summary['requests_sent']:,} |",
        f"| HTTP statuses | {summary['statuses']} |",
        f"| request -> accepted p50 (ms) | {f['p50_ms']:.1f} |",
        f"| request -> accepted p90 (ms) | {f['p90_ms']:.1f} |",
        f"| request -> accepted p99 (ms) | {f['p99_ms']:.1f} |",
        f"| request -> accepted max (ms) | {f['max_ms']:.1f} |",
        *(
            f"| {label} p50 / p99 (ms) | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} |"
            for label, b in summary["breakdown"].items()
        ),
        f"| cores used while loading | {cores} |",
        f"| machine busy share | {summary['machine_busy_share']:.2f} |",
        f"| generator CPU per request (ms) | {summary['generator_cpu_ms_per_request']:.1f} |",
        f"| generator cores needed at the target rate | "
        f"{summary['generator_cores_needed_at_target']:.2f} |",
        f"| generator the limit (rate missed and >= 0.8 core needed) | "
        f"{'yes' if summary['generator_limited'] else 'no'} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--results", type=Path, default=report.RESULTS_DIR)
    p.add_argument("--strict", action="store_true")
    p.add_argument(
        "--no-fsync", action="store_true", help="run PostgreSQL without fsync (not for figures)"
    )
    args = p.parse_args(argv)
    machine = report.machine()
    started = datetime.now(UTC)
    log_dir = args.results / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    summary = run(
        args.rate, args.devices, args.duration, args.processes, log_dir, not args.no_fsync
    )
    summary["fsync"] = not args.no_fsync
    work = {
        "rate": args.rate,
        "devices": args.devices,
        "duration_s": args.duration,
        "processes": args.processes,
        "started": started.isoformat(timespec="seconds"),
    }
    out = args.results / f"commands-{started.strftime('%Y%m%dT%H%M%SZ')}"
    out.mkdir(parents=True, exist_ok=True)
    doc = {"scenario": "commands", "machine": machine, "workload": work, "summary": summary}
    (out / "result.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    text = _report(summary, work, machine)
    (out / "report.md").write_text(text)
    print(text)
    ok = summary["p99_met"] and summary["lost"] == 0 and summary["sent_twice_rows"] == 0
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "device":
        run_devices(int(sys.argv[2]), sys.argv[3], Path(sys.argv[4]))
        sys.exit(0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
