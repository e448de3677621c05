"""Commands benchmark: request -> accepted latency at 500 commands/s over 1,000 devices.

The API (one uvicorn worker) and the commander run as the services they are, as
processes of their own; the native devices are a few processes that each stand in for a
share of the fleet (one wildcard subscription per process, like the simulator's account)
and answer every command at once with `accepted` then `completed`, with the command's
correlation data, on the device's own reply topic; on the platform's own asyncio MQTT
client by default (`run_devices_lean`), on paho with `--device-client paho`. The generator
is wrk with loadtests/commands_post.lua: `POST /api/v1/projects/bench/devices/{device}/commands`
open-loop at the target rate (round-robin over the devices), each request carrying the
wall time it was written (`params.t_request`). A Python client needed 7.8 ms of CPU per
request and measured its own queue (42.5 of 500 requests/s).

Figures: request -> accepted is the `accepted` event's time in `command_events` (the
database clock, the same machine's) minus the request's `t_request`. Lost: a command
not `completed` when the run has drained, or a 2xx answer without its row. Sent twice: a
command id a device received more than once, or a row with `sends` > 1. The limit
(`limit_verdict`): whether the requests went out at the target rate, and which
single-threaded process (wrk, a device process, the API, the commander) saturated a core.

`python -m loadtests.commands_bench [--rate 500] [--devices 1000] [--duration 30]`, or
`factory5g bench commands`; writes results/commands-<timestamp>/report.md and result.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
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
from loadtests import calibrate, diskprobe, report, stats
from loadtests.bench_api import ensure_wrk
from loadtests.procs import CpuMeter, Ingestor, run_measured, wait_until
from loadtests.runner import BenchEnv
from services.core import heap

PROJECT = "bench"
NAME = "ping"
# The at-rate warm-up's commands: the same route, load and devices under another name, so
# that the figures count only the measured run's.
WARM_NAME = "warm"
WARM_UP_S = 5.0
POOL_MAX = 32  # F5G_DATABASE__POOL_MAX of the services (the setting's default is 8)
HISTORY = 20  # completed commands each device has received before the run
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
    # The fleet's stand-in settles its heap as the services do (services/core/heap.py):
    # its full collections paused it for 90-160 ms, a delay of the devices, not the platform.
    heap.settle()
    signal.signal(signal.SIGTERM, lambda *_a: done.set())
    client.loop_start()
    done.wait()
    client.loop_stop()
    client.disconnect()
    with lock:
        out.write_text(json.dumps(received))


def run_devices_lean(port: int, kind: str, out: Path) -> None:
    """The same devices on the platform's own asyncio MQTT client (services/core/mqtt) on
    uvloop instead of paho: the same packets (the command QoS 1, acknowledged once both
    replies are handed to the connection; each reply QoS 1 with the command's correlation
    data on its response topic), for about half the CPU. The devices stand in for a fleet
    that runs on machines of its own; on this one every core they use is taken from the
    platform they measure. The functional tests answer with paho devices."""
    import uvloop

    from services.commands.service import CORRELATION_DATA, RESPONSE_TOPIC
    from services.core.mqtt import Backoff, ConnectOptions, Endpoint, Session

    received: dict[str, int] = {}
    accepted, completed = b'{"status":"accepted"}', b'{"status":"completed"}'

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        gen = [0]

        def on_publish(_topic: str, _payload: bytes, mid: int, qos: int, _dup: bool) -> None:
            props = session.publish_properties()
            corr, to = props.get(CORRELATION_DATA), props.get(RESPONSE_TOPIC)
            if isinstance(corr, bytes) and isinstance(to, str):
                cid = corr.decode()
                received[cid] = received.get(cid, 0) + 1
                session.publish(to, accepted, 1, False, {CORRELATION_DATA: corr})
                session.publish(to, completed, 1, False, {CORRELATION_DATA: corr})
            if qos:
                session.ack(gen[0], [mid])

        def on_generation(g: int) -> None:
            gen[0] = g

        session = Session(
            Endpoint("127.0.0.1", port),
            lambda: ConnectOptions(client_id=f"bench-dev-{kind}", clean_start=True),
            [(f"f5g/v1/{PROJECT}/{kind}/+/cmd/#", 1)],
            on_publish,
            Backoff(0.1, 1.0),
            on_generation=on_generation,
            keep_properties=True,
        )
        heap.settle()
        await session.run(stop)

    uvloop.run(main())
    out.write_text(json.dumps(received))


# --------------------------------------------------------------------------- generator

LUA = Path(__file__).with_name("commands_post.lua")
WRK_THREADS = 1  # one C thread sends 500 requests/s with most of a core to spare


async def warm_up(base: str, token: str, devices: list[tuple[str, str]]) -> dict[str, float]:
    """One command to each of `devices`; command id -> send wall time. Only the warm-up
    uses this Python client: the load comes from wrk (`generate`)."""
    sent: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        for _kind, device in devices:
            t = time.time()
            r = await client.post(
                f"/api/v1/projects/{PROJECT}/devices/{device}/commands",
                json={"name": NAME, "timeout_s": 120},
                headers=headers,
            )
            r.raise_for_status()
            sent[r.json()["id"]] = t
    return sent


def parse_wrk_run(out: str) -> dict[str, int]:
    """Requests, non-2xx answers and socket errors of one wrk run (its text summary)."""
    m = re.search(r"(\d+) requests in", out)
    if m is None:
        raise RuntimeError(f"wrk printed no request count:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "requests": int(m.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
    }


def generate(
    wrk: str,
    base: str,
    token: str,
    n_devices: int,
    rate: float,
    duration_s: float,
    connections: int,
    meter: CpuMeter,
    name: str = NAME,
) -> dict[str, Any]:
    """Open-loop POSTs at `rate` from wrk (loadtests/commands_post.lua); its counts, the
    achieved rate and the CPU it used (from `wait4`, since it has exited by then)."""
    seconds = max(1, round(duration_s))
    cmd = [wrk, f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
           "-H", f"Authorization: Bearer {token}", "-s", str(LUA), base, "--",
           PROJECT, str(n_devices), f"{rate:g}", str(WRK_THREADS), name, "120"]  # fmt: skip
    meter.start()
    rc, out, err, gen_cpu = run_measured(cmd, timeout=seconds + 90)
    meter.stop()
    if rc != 0:
        raise RuntimeError(f"wrk exited with {rc}:\n{out}\n{err}")
    counts = parse_wrk_run(out)
    wall = max(meter.wall_s, 1e-9)
    return {
        **counts,
        "achieved_per_s": counts["requests"] / seconds,
        "generator_cpu_s": gen_cpu,
        "generator_cores": gen_cpu / wall,
        "wrk_output": out,
    }


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
            [(PROJECT, k, name) for k in kinds for name in (NAME, WARM_NAME)],
        )
    conn.close()


# A plant that has been running: every device has received `per_device` commands over the
# last two days, each completed with its four events.
_HISTORY = """
WITH c AS (
    INSERT INTO commands (id, project_id, device_id, kind, name, protocol, params, state,
                          actor, deadline, created_at, sent_at, updated_at, finished_at, sends)
    SELECT gen_random_uuid(), d.project_id, d.device_id, d.kind, %(name)s, 'native',
           '{}'::jsonb, 'completed', 'history', g.t + interval '120 s', g.t, g.t, g.t, g.t, 1
    FROM devices d CROSS JOIN LATERAL (
        SELECT now() - interval '2 days' + n * interval '1 minute' AS t
        FROM generate_series(1, %(per_device)s) n
    ) g
    WHERE d.project_id = %(project)s
    RETURNING id, project_id, device_id, created_at
)
INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
SELECT c.id, c.project_id, c.device_id, c.created_at, s.state, 'history', '{}'::jsonb
FROM c CROSS JOIN unnest(ARRAY['queued', 'sent', 'accepted', 'completed']) AS s(state)
"""


def _history(env: BenchEnv, url: str, per_device: int) -> None:
    """The plant's past commands, then what autovacuum would have done by now (VACUUM
    ANALYZE) and the setup's writes flushed (CHECKPOINT, sync), so that neither the plans
    of an empty table nor the write-back of the setup land in the measured run."""
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(_HISTORY, {"name": NAME, "per_device": per_device, "project": PROJECT})
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM ANALYZE devices, commands, command_events, command_allow")
    finally:
        conn.close()
    env.pg.psql("CHECKPOINT", url.rsplit("/", 1)[1])
    os.sync()


def _outcomes(url: str) -> dict[str, dict[str, Any]]:
    """Per command: state, sends, the wall time its request left the generator (the
    `t_request` parameter wrk wrote in it; None for the warm-up's) and the epoch times it
    was queued, sent and accepted."""
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT c.id::text, c.name, c.state, c.sends, "
                "(c.params->>'t_request')::float8, "
                "extract(epoch FROM c.created_at), "
                "extract(epoch FROM min(e.ts) FILTER (WHERE e.state = 'sent')), "
                "extract(epoch FROM min(e.ts) FILTER (WHERE e.state = 'accepted')) "
                "FROM commands c LEFT JOIN command_events e ON e.command_id = c.id "
                "WHERE c.project_id = %s GROUP BY c.id",
                (PROJECT,),
            )
            return {
                cid: {
                    "name": name,
                    "state": st,
                    "sends": sends,
                    "request": _f(req),
                    "queued": _f(q),
                    "sent": _f(se),
                    "accepted": _f(acc),
                }
                for cid, name, st, sends, req, q, se, acc in cur.fetchall()
            }
    finally:
        conn.close()


def _dead_letters(url: str) -> int:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM dead_letters")
            row = cur.fetchone()
            return int(row[0]) if row else 0
    finally:
        conn.close()


def _f(value: Any) -> float | None:
    return float(value) if value is not None else None


# What PostgreSQL wrote for the run: WAL bytes, commits, and the row versions of the
# commands tables (inserts, updates, how many of the updates were HOT, i.e. wrote no index
# entry). Read before the load and after the drain; the difference per command says where
# the database's CPU goes besides the statements themselves.
_DB_COUNTERS = """
SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8 AS wal_bytes,
       (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())::float8
           AS commits,
       (SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables
        WHERE relname IN ('commands', 'command_events'))::float8 AS rows_inserted,
       (SELECT coalesce(sum(n_tup_upd), 0) FROM pg_stat_user_tables
        WHERE relname = 'commands')::float8 AS command_updates,
       (SELECT coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables
        WHERE relname = 'commands')::float8 AS command_hot_updates
"""


_GC_FULL = ("factory5g_process_gc_pause_seconds_count", "factory5g_process_gc_pause_seconds_sum")


def gc_full(metrics_url: str) -> tuple[float, float]:
    """A service's full collections so far and their total pause in seconds, from its
    /metrics (services/core/heap.py); zeros if it does not answer."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return (0.0, 0.0)
    found = dict.fromkeys(_GC_FULL, 0.0)
    for line in text.splitlines():
        for name in _GC_FULL:
            if line.startswith(name + '{generation="2"} '):
                found[name] = float(line.rpartition(" ")[2])
    count, total = found.values()
    return (count, total)


def db_counters(url: str) -> dict[str, float]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute(_DB_COUNTERS)
            row = cur.fetchone()
            assert row is not None
            assert cur.description is not None
            return {d[0]: float(v) for d, v in zip(cur.description, row, strict=True)}
    finally:
        conn.close()


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def profile_summary(raw: str, top: int = 8) -> dict[str, list[tuple[str, float]]]:
    """Shares of samples from py-spy's raw (collapsed) output: by leaf function (where the
    CPU went) and by the innermost frame in services/ (which of our code led there)."""
    leaf: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_FRAME.match(f) for f in stack.split(";")]
        names = [
            f"{m['func']} ({Path(m['file']).name})" if m else "?" for m in frames if m is not None
        ]
        if names:
            leaf[names[-1]] = leaf.get(names[-1], 0) + n
        mine = [
            f"{m['func']} ({m['file'][m['file'].find('services/') :]})"
            for m in frames
            if m is not None and "services/" in m["file"] and "site-packages" not in m["file"]
        ]
        key = mine[-1] if mine else "(outside services/)"
        ours[key] = ours.get(key, 0) + n

    def shares(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v / total) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]

    return {"leaf": shares(leaf), "services": shares(ours)} if total else {}


def start_profilers(
    pids: dict[str, int], seconds: float, out: Path
) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling the named processes for `seconds` (raw collapsed stacks in `out`);
    none when py-spy is not installed (the dev extra has it)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("[commands] py-spy is not installed: no profile")
        return []
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                "50",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(out / f"commands-profile-{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def run(
    rate: float,
    n_devices: int,
    duration_s: float,
    processes: int,
    log_dir: Path,
    durable: bool = True,
    connections: int = 64,
    api_workers: int = 1,
    profile: bool = False,
    warm_up_s: float = WARM_UP_S,
    pool_max: int = POOL_MAX,
    history: int = HISTORY,
    device_client: str = "lean",
) -> dict[str, Any]:
    wrk, why = ensure_wrk()
    if wrk is None:
        # The Python client this replaced measured itself (42 of 500 requests/s): no
        # figure is better than that one.
        raise RuntimeError(f"the commands benchmark needs wrk: {why}")
    kinds = [f"k{i}" for i in range(processes)]
    devices = [(kinds[i % processes], f"d{i:05d}") for i in range(n_devices)]
    token = f"f5g_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"
    with BenchEnv(durable=durable) as env:
        url = env.new_database()
        broker = env.new_broker()
        _setup(url, devices, kinds)
        _history(env, url, history)
        api_port = free_port()
        common = {
            "F5G_DATABASE__URL": url,
            "F5G_MQTT__PORT": str(broker.port),
            "F5G_LOG_LEVEL": "WARNING",
            # Both services read the commands section: the per-device limit must not refuse
            # the benchmark's load (15 commands per device over 30 s).
            "F5G_COMMANDS__RATE_PER_DEVICE": "100000",
            # Each queued command is one commit that holds its connection through the WAL
            # flush: more connections, more commits per flush (group commit). The default
            # of 8 held 431 of 500 requests/s with p99 747 ms (docs/commands.md).
            "F5G_DATABASE__POOL_MAX": str(pool_max),
        }
        commander_metrics = free_port()
        api = Ingestor(
            "api",
            [*CLI, "api"],
            {
                **common,
                "F5G_API__PORT": str(api_port),
                "F5G_API__WORKERS": str(api_workers),
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
                "F5G_COMMANDS__METRICS_PORT": str(commander_metrics),
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
                            device_client,
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
            warm = asyncio.run(warm_up(base, token, devices[:processes]))
            if not wait_until(lambda: _all_done(url, set(warm)), 60.0):
                raise RuntimeError("no warm-up command completed:\n" + commander.log_tail())
            # Then the same load for a few seconds, not measured: the API opens its pool's
            # connections (password authentication, type codecs, prepared statements) as
            # the concurrency asks for them, which is a cold start, not the steady state.
            # Its own figures are in the report.
            warm_gen = (
                generate(
                    wrk,
                    base,
                    token,
                    n_devices,
                    rate,
                    warm_up_s,
                    connections,
                    CpuMeter({}),
                    WARM_NAME,
                )
                if warm_up_s > 0
                else None
            )
            wait_until(lambda: _all_done(url, None), 60.0)
            pids = {"api": api.pid, "commander": commander.pid, "broker": broker.pid()}
            pids.update({f"devices-{k}": p.pid for k, p in zip(kinds, device_procs, strict=True)})
            pg_pid = _postmaster_pid(env)
            if pg_pid:
                pids["database"] = pg_pid
            meter = CpuMeter({k: v for k, v in pids.items() if v})
            print(f"[commands] {rate:,.0f} commands/s over {n_devices:,} devices (wrk) ...")
            spies = (
                start_profilers(
                    {"api": api.pid, "commander": commander.pid}, duration_s * 0.8, log_dir
                )
                if profile and api.pid and commander.pid
                else []
            )
            db_before = db_counters(url)
            gc_urls = {
                "api": f"{base}/metrics",
                "commander": f"http://127.0.0.1:{commander_metrics}/metrics",
            }
            gc_before = {k: gc_full(u) for k, u in gc_urls.items()}
            speed_before = calibrate.python_speed_ms()
            # The disk's own flush latency beside the WAL, for the whole load and its drain.
            probe = diskprobe.DiskProbe(Path(env.pg.base_dir)).start()
            gen = generate(wrk, base, token, n_devices, rate, duration_s, connections, meter)
            (log_dir / "commands-wrk.txt").write_text(gen.pop("wrk_output"))
            load_at_end = [round(x, 2) for x in os.getloadavg()]
            gc_during = {
                k: (n - gc_before[k][0], t - gc_before[k][1])
                for k, (n, t) in ((k, gc_full(u)) for k, u in gc_urls.items())
            }
            for spy in spies:
                try:
                    spy.wait(60)
                except subprocess.TimeoutExpired:
                    spy.kill()
            wait_until(lambda: _all_done(url, None), 60.0)
            flushes = probe.stop()
            speed_after = calibrate.python_speed_ms()
            time.sleep(1.5)  # backends report their table counters at most once a second
            db_after = db_counters(url)
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
        dead_letters = _dead_letters(url)
    received: dict[str, int] = {}
    for out in outs:
        if out.exists():
            for cid, n in json.loads(out.read_text()).items():
                received[cid] = received.get(cid, 0) + n
    # The load's commands are the rows wrk's requests created (the warm-up's carry no
    # t_request); every 2xx answer wrk counted must be one of them.
    load = {cid: o for cid, o in outcomes.items() if o["request"] is not None and o["name"] == NAME}
    warmed = [
        o["accepted"] - o["request"]
        for o in outcomes.values()
        if o["name"] == WARM_NAME and o["accepted"] is not None and o["request"] is not None
    ]
    # Lost and sent twice count every command wrk asked for, the warm-up's included.
    asked = {cid: o for cid, o in outcomes.items() if o["request"] is not None}
    answered_2xx = gen["requests"] - gen["non_2xx"]
    warm_2xx = warm_gen["requests"] - warm_gen["non_2xx"] if warm_gen else 0
    lat = [o["accepted"] - o["request"] for o in load.values() if o["accepted"] is not None]
    # The same figure over the commands no disk stall overlapped: how much of the tail the
    # disk's flushes made (a stall holds every commit, the API's, the claim's and the
    # reply's).
    disk_stalls = diskprobe.stalls(flushes)
    clear = [
        o["accepted"] - o["request"]
        for o in load.values()
        if o["accepted"] is not None
        and not diskprobe.touched(disk_stalls, o["request"], o["accepted"])
    ]
    not_completed = sum(1 for o in asked.values() if o["state"] != "completed")
    # Where the commands that did not complete (or have no `accepted`) stopped, and whether
    # their device had them: "sent, received" means a reply went missing between the device
    # and the commander.
    stuck: dict[str, int] = {}
    for cid, o in asked.items():
        if o["state"] != "completed":
            where = f"{o['state']}, {'received' if received.get(cid) else 'not received'}"
            stuck[where] = stuck.get(where, 0) + 1
        elif o["accepted"] is None:  # its `accepted` came after `completed`, or never
            stuck["completed without accepted"] = stuck.get("completed without accepted", 0) + 1
    # A 2xx answer without its row would be a command the API acknowledged and lost.
    missing_rows = max(0, answered_2xx - len(load)) + max(0, warm_2xx - (len(asked) - len(load)))
    steps = {"request -> queued": ("request", "queued"), "queued -> sent": ("queued", "sent"),
             "sent -> accepted": ("sent", "accepted")}  # fmt: skip
    breakdown = {}
    for label, (a, b) in steps.items():
        xs = [o[b] - o[a] for o in load.values() if o[a] is not None and o[b] is not None]
        breakdown[label] = stats.latency_figures(xs)
    twice_device = sum(1 for cid in asked if received.get(cid, 0) > 1)
    twice_row = sum(1 for o in asked.values() if (o["sends"] or 0) > 1)
    wall = max(meter.wall_s, 1e-9)
    cores = {k: v / wall for k, v in meter.used.items()}
    cores["generator (wrk)"] = gen["generator_cores"]
    # CPU per command: what each process spends on one, whatever else the machine runs
    # (a shared machine slows a run down, but changes this far less than the latency).
    per_command = {k: v * wall / max(gen["requests"], 1) * 1000 for k, v in cores.items()}
    figures = stats.latency_figures(lat)
    n_cmd = max(gen["requests"], 1)
    db_per_command = {k: (db_after[k] - db_before[k]) / n_cmd for k in db_before}
    reached = gen["achieved_per_s"] >= 0.98 * rate
    profiles = {}
    for name in ("api", "commander") if profile else ():
        raw = log_dir / f"commands-profile-{name}.txt"
        if raw.exists():
            profiles[name] = profile_summary(raw.read_text())
    verdict = limit_verdict(
        reached, cores, WRK_THREADS, meter.machine_busy_s, meter.machine_total_s, wall
    )
    return {
        "rate_target": rate,
        "connections": connections,
        "api_workers": api_workers,
        "pool_max": pool_max,
        "history_per_device": history,
        "device_client": device_client,
        "requests_sent": gen["requests"],
        "requests_achieved_per_s": gen["achieved_per_s"],
        "generator_reached_rate": reached,
        "non_2xx": gen["non_2xx"],
        "socket_errors": gen["socket_errors"],
        "rows": len(load),
        "request_to_accepted": figures,
        "breakdown": breakdown,
        "lost": not_completed + missing_rows,
        "not_completed": not_completed,
        "not_completed_by_state": stuck,
        "dead_letters": dead_letters,
        "missing_rows": missing_rows,
        "sent_twice_devices": twice_device,
        "sent_twice_rows": twice_row,
        "cores_used": cores,
        "cpu_ms_per_command": per_command,
        "database_per_command": db_per_command,
        "load_avg_at_end": load_at_end,
        "machine_busy_share": (meter.machine_busy_s / meter.machine_total_s)
        if meter.machine_total_s
        else math.nan,
        "generator_cpu_ms_per_request": gen["generator_cpu_s"] / max(gen["requests"], 1) * 1000,
        **verdict,
        "profiles": profiles,
        "gc_full_collections": gc_during,
        "disk_flush": diskprobe.summary(flushes),
        "python_speed_ms": [speed_before, speed_after],
        "disk_stall_max_ms": max((e - b for b, e in disk_stalls), default=0.0) * 1000,
        "request_to_accepted_clear_of_disk_stalls": stats.latency_figures(clear),
        "warm_up": {
            "seconds": warm_up_s,
            "requests": warm_gen["requests"] if warm_gen else 0,
            "request_to_accepted": stats.latency_figures(warmed) if warmed else None,
        },
        "p99_met": figures["p99_ms"] <= P99_BOUND_MS,
    }


SATURATED = 0.8  # of one core: a single-threaded process this busy is the bottleneck


def limit_verdict(
    reached: bool,
    cores: dict[str, float],
    generator_threads: int,
    machine_busy_s: float,
    machine_total_s: float,
    wall_s: float | None = None,
) -> dict[str, Any]:
    """What bounded the run, from the cores each process used while loading.

    The generator, a device process, the API (one event loop per worker) and the commander
    are each single-threaded: one that used SATURATED of a core was the limit. wrk is named
    first, since a run it bounded says nothing of the platform; then the devices, which
    stand in for a thousand real ones. A busy machine (others' work on shared cores) is
    named when no process of ours was saturated.
    """
    gen = cores.get("generator (wrk)", 0.0)
    saturated = sorted(
        (k for k, v in cores.items() if k not in ("generator (wrk)", "database", "broker")
         and v >= SATURATED), key=lambda k: -cores[k],
    )  # fmt: skip
    busy = machine_busy_s / machine_total_s if machine_total_s else math.nan
    if gen >= SATURATED * generator_threads:
        limit, reason = "generator", f"wrk used {gen:.2f} of its {generator_threads} core(s)"
    elif any(k.startswith("devices-") for k in saturated):
        devs = [k for k in saturated if k.startswith("devices-")]
        limit, reason = "devices", f"device process(es) {', '.join(devs)} used >= {SATURATED} core"
    elif saturated:
        limit, reason = saturated[0], f"{saturated[0]} used {cores[saturated[0]]:.2f} core"
    elif busy == busy and busy >= 0.95:
        limit, reason = "machine", f"the machine was {busy:.0%} busy"
        if wall_s:
            ours = sum(cores.values())
            n = machine_total_s / wall_s
            other = max(0.0, machine_busy_s / wall_s - ours)
            reason += (
                f": this run's processes {ours:.2f} of {n:.0f} cores (database included), "
                f"other work {other:.2f}"
            )
    else:
        limit, reason = "none", "no process saturated and the machine had idle CPU"
    return {
        "limit": limit,
        "limit_reason": reason,
        "generator_limited": limit == "generator" and not reached,
        "devices_limited": limit == "devices",
    }


def _postmaster_pid(env: BenchEnv) -> int | None:
    data_dir = getattr(env.pg, "data_dir", None)
    if data_dir is None:
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((Path(data_dir) / "postmaster.pid").read_text().splitlines()[0])
    return None


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _all_done(url: str, ids: set[str] | None) -> bool:
    """Whether the commands `ids` (None: all of them) are completed."""
    if ids is None:
        conn = psycopg2.connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM commands WHERE project_id = %s AND state <> 'completed'",
                    (PROJECT,),
                )
                row = cur.fetchone()
                return row is not None and row[0] == 0
        finally:
            conn.close()
    states = _outcomes(url)
    return all(states.get(cid, {}).get("state") == "completed" for cid in ids)


def _report(summary: dict[str, Any], work: dict[str, Any], machine: dict[str, Any]) -> str:
    f = summary["request_to_accepted"]
    cores = ", ".join(f"{k} {v:.2f}" for k, v in summary["cores_used"].items())
    per_command = ", ".join(
        f"{k} {v:.2f}" for k, v in summary.get("cpu_ms_per_command", {}).items()
    )
    twice_ok = summary["sent_twice_devices"] == summary["sent_twice_rows"] == 0
    lines = [
        "# Commands: request to accepted at "
        f"{work['rate']:,.0f} commands/s over {work['devices']:,} devices",
        "",
        f"Scenario `commands`, run {work['started']} ({work['duration_s']:g} s of load), "
        f"commit `{machine['commit']}`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}; load average at start "
        f"{machine['load_avg_at_start']}, at the end of the load "
        f"{summary.get('load_avg_at_end')}. Broker, database, API, commander, device processes "
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
        f"{summary['sent_twice_rows']} | {'yes' if twice_ok else 'no'} |",
        f"| requests sent at the rate | {work['rate']:,.0f} req/s | "
        f"{summary['requests_achieved_per_s']:,.1f} req/s | "
        f"{'yes' if summary['generator_reached_rate'] else 'no'} |",
        "",
        f"**Limit:** {summary['limit']} ({summary['limit_reason']}). "
        + (
            "The generator bounded this run: its latency measures wrk, not the platform."
            if summary["generator_limited"]
            else "The device processes bounded this run: they stand in for 1,000 devices."
            if summary["devices_limited"]
            else "The generator and the device processes were not the limit."
        ),
        "",
        *(
            [
                "**Disk:** {:.0f} flush stalls of at least {:.0f} ms beside the WAL during "
                "the load (the longest {:.0f} ms); the {:,.0f} commands no stall overlapped "
                "had p99 {:.1f} ms (all: {:.1f} ms).".format(
                    summary["disk_flush"]["stalls"],
                    diskprobe.STALL_S * 1000,
                    summary["disk_stall_max_ms"],
                    clear["samples"],
                    clear["p99_ms"],
                    f["p99_ms"],
                ),
                "",
            ]
            if summary.get("disk_flush", {}).get("stalls")
            and (clear := summary.get("request_to_accepted_clear_of_disk_stalls"))
            else []
        ),
        "## Workload",
        "",
        f"{work['devices']:,} native devices in {work['processes']} processes "
        + (
            "on the platform's asyncio MQTT client "
            if summary.get("device_client", "paho") == "lean"
            else "on paho-mqtt "
        )
        + "(one wildcard subscription each), answering accepted + completed at once; POST "
        f"open-loop at {work['rate']:,.0f}/s round-robin over the devices for "
        f"{work['duration_s']:g} s from wrk (one thread, {summary['connections']} keep-alive "
        "connections, each request held until its slot in a fixed schedule by "
        "loadtests/commands_post.lua, which writes the send time into the command's params); "
        f"API {summary['api_workers']} uvicorn worker(s) (the chart's default is 1) with "
        f"a database pool of {summary.get('pool_max', 32)} connections "
        "(`F5G_DATABASE__POOL_MAX`, default 8); "
        "commander one process; QoS 1 throughout. request -> accepted = the `accepted` "
        "event's database time minus the request's send time. A slot that finds every "
        "connection busy waits in wrk, outside that figure: the rate row shows how far the "
        "schedule slipped (a run with 256 connections moves that wait into the API's queue). "
        f"Before it, {summary.get('warm_up', {}).get('seconds', 0):g} s of the same load under "
        "another command name, not counted in the latency (the API's pool opens its "
        "connections then); lost and sent twice count the warm-up's commands too. The "
        f"database starts with {summary.get('history_per_device', 0):,} completed commands "
        "per device (a plant that has been running), vacuumed and analysed as autovacuum "
        "would have, and the setup's writes flushed before the warm-up.",
        "",
        "## Results",
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests sent (wrk) | {summary['requests_sent']:,} |",
        f"| non-2xx answers / socket errors | {summary['non_2xx']} / {summary['socket_errors']} |",
        f"| commands created | {summary['rows']:,} |",
        *(
            [
                "| not completed (or no accepted), by state and device | "
                + ", ".join(f"{k}: {v}" for k, v in summary["not_completed_by_state"].items())
                + f" (dead letters: {summary.get('dead_letters', 0)}) |"
            ]
            if summary.get("not_completed_by_state")
            else []
        ),
        f"| not completed / 2xx without a row | {summary['not_completed']} / "
        f"{summary['missing_rows']} |",
        f"| request -> accepted p50 (ms) | {f['p50_ms']:.1f} |",
        f"| request -> accepted p90 (ms) | {f['p90_ms']:.1f} |",
        f"| request -> accepted p99 (ms) | {f['p99_ms']:.1f} |",
        f"| request -> accepted max (ms) | {f['max_ms']:.1f} |",
        *(
            f"| {label} p50 / p99 (ms) | {b['p50_ms']:.1f} / {b['p99_ms']:.1f} |"
            for label, b in summary["breakdown"].items()
        ),
        f"| cores used while loading | {cores} |",
        f"| CPU per command (ms) | {per_command} |",
        *(
            [
                "| database per command: WAL bytes, commits, rows inserted, command row "
                "updates (HOT) | {wal_bytes:,.0f}, {commits:.2f}, {rows_inserted:.2f}, "
                "{command_updates:.2f} ({command_hot_updates:.2f}) |".format(
                    **summary["database_per_command"]
                )
            ]
            if summary.get("database_per_command")
            else []
        ),
        *(
            [
                "| full garbage collections during the load: count (total pause ms) | "
                + ", ".join(
                    f"{k} {n:.0f} ({t * 1000:.1f})"
                    for k, (n, t) in summary["gc_full_collections"].items()
                )
                + " |"
            ]
            if summary.get("gc_full_collections")
            else []
        ),
        *(
            [
                "| at-rate warm-up before the load, not counted above: seconds, requests, "
                "request -> accepted p50 / p99 / max (ms) | {:g}, {:,}, {:.1f} / {:.1f} / "
                "{:.1f} |".format(
                    warm["seconds"],
                    warm["requests"],
                    warm["request_to_accepted"]["p50_ms"],
                    warm["request_to_accepted"]["p99_ms"],
                    warm["request_to_accepted"]["max_ms"],
                )
            ]
            if (warm := summary.get("warm_up")) and warm.get("request_to_accepted")
            else []
        ),
        *(
            [
                "| disk flush probe beside the WAL (8 KiB fdatasync every 20 ms): p50 / p99 / "
                "max (ms), stalls >= {:.0f} ms | {:.2f} / {:.1f} / {:.1f}, {:.0f} |".format(
                    diskprobe.STALL_S * 1000,
                    disk["p50_ms"],
                    disk["p99_ms"],
                    disk["max_ms"],
                    disk["stalls"],
                )
            ]
            if (disk := summary.get("disk_flush")) and disk.get("samples")
            else []
        ),
        *(
            [
                "| this machine's Python speed: a fixed loop's CPU ms just before / after the "
                "load (loadtests/calibrate.py; lower is faster, 38 to 78 seen on this machine "
                "kind) | {:.1f} / {:.1f} |".format(*summary["python_speed_ms"])
            ]
            if summary.get("python_speed_ms")
            else []
        ),
        f"| machine busy share | {summary['machine_busy_share']:.2f} |",
        f"| generator CPU per request (ms) | {summary['generator_cpu_ms_per_request']:.2f} |",
        "",
    ]
    for name, prof in summary.get("profiles", {}).items():
        lines += [
            f"## Profile: {name} (py-spy, share of samples)",
            "",
            "| where the CPU went (leaf) | share | which code of ours led there | share |",
            "|---|---|---|---|",
        ]
        for (a, x), (b, y) in zip(prof.get("leaf", []), prof.get("services", []), strict=False):
            lines.append(f"| `{a}` | {x:.0%} | `{b}` | {y:.0%} |")
        lines.append("")
    return "\n".join(lines)


def targets(summary: dict[str, Any], rate: float) -> list[dict[str, Any]]:
    """The report's targets in the form results/latest.md counts (`report.write_latest`)."""
    twice = summary["sent_twice_devices"] + summary["sent_twice_rows"]
    achieved = summary["requests_achieved_per_s"]
    rows = [
        ("p99 request -> accepted (ms)", summary["request_to_accepted"]["p99_ms"], "<=",
         P99_BOUND_MS),
        ("commands lost", summary["lost"], "==", 0),
        ("commands sent twice (devices + rows)", twice, "==", 0),
        ("requests sent per second", achieved, ">=", 0.98 * rate),
    ]  # fmt: skip
    met = [
        summary["p99_met"],
        summary["lost"] == 0,
        twice == 0,
        bool(summary["generator_reached_rate"]),
    ]
    return [
        {"label": label, "value": value, "op": op, "bound": bound, "met": ok}
        for (label, value, op, bound), ok in zip(rows, met, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--devices", type=int, default=1000)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--api-workers", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="sample the API and commander")
    p.add_argument(
        "--warm-up", type=float, default=WARM_UP_S, help="seconds at the rate before the load"
    )
    p.add_argument(
        "--pool-max", type=int, default=POOL_MAX, help="the services' F5G_DATABASE__POOL_MAX"
    )
    p.add_argument(
        "--history", type=int, default=HISTORY, help="past commands per device before the run"
    )
    p.add_argument(
        "--device-client",
        choices=("lean", "paho"),
        default="lean",
        help="the devices' MQTT client: the platform's asyncio one, or paho",
    )
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
        args.rate,
        args.devices,
        args.duration,
        args.processes,
        log_dir,
        not args.no_fsync,
        args.connections,
        args.api_workers,
        args.profile,
        args.warm_up,
        args.pool_max,
        args.history,
        args.device_client,
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
    doc = {
        "scenario": "commands",
        "machine": machine,
        "workload": work,
        "summary": summary,
        "targets": targets(summary, args.rate),
    }
    (out / "result.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    text = _report(summary, work, machine)
    (out / "report.md").write_text(text)
    report.write_latest(args.results)
    print(text)
    ok = summary["p99_met"] and summary["lost"] == 0 and summary["sent_twice_rows"] == 0
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "device":
        devices_main = run_devices_lean if sys.argv[2] == "lean" else run_devices
        devices_main(int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]))
        sys.exit(0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
