"""Notification outbox: alarm transitions/s through the outbox to a webhook receiver.

The generator stores alarm openings with the rules service's own store (`store.apply`, its
bulk path: 10 openings every 10 ms for 1,000/s), so the outbox rows come from the real
trigger in the real transaction. The notifier (`factory5g notify`, its own process) routes
and sends them to a webhook receiver on loopback (its own process) that counts every
idempotency key and takes each notification's latency as its arrival time minus the
transition's time (both on this machine's clock). It checks each call as a production
receiver would: the signature and replay window (the channel's `verify`) and a body that
is the notice document (`alarm` object, `idempotency_key` equal to the header's); a call
that fails is answered 401 and counted as rejected, not received. Lost = transitions in
the outbox whose key never arrived accepted; duplicated = arrivals of a key beyond its
first.

The same run measures what the outbox trigger costs the rules store: 1,000 openings in one
`store.apply`, with the trigger enabled and disabled alternately, median of 15 each.

CPU seconds of generator, notifier, receiver and the machine are recorded, and the report
says which was the limit when the rate or the latency target is missed. Writes
results/notify-outbox-<timestamp>/ and updates results/latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import asyncpg
import orjson

from f5gdev.devstack.servers import free_port
from loadtests import report
from loadtests.procs import CpuMeter
from loadtests.runner import BenchEnv
from loadtests.scenarios import SCENARIOS
from services.core.db import asyncpg_dsn
from services.protocols.notify.channels import webhook
from services.rules import store
from services.rules.engine import OPENED, Transition

PROJECT = "bench"
TICK_S = 0.01
SECRET = "bench-webhook-secret-0123456789"


# ----------------------------------------------------------------------------- receiver


class _Receiver:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.latency_ms: list[float] = []
        self.rejected = 0

    @staticmethod
    def _valid(fields: dict[bytes, str], body: bytes, key: str) -> bool:
        try:
            webhook.verify(
                SECRET, fields.get(b"x-factory5g-timestamp"),
                fields.get(b"x-factory5g-signature"), body,
            )  # fmt: skip
            doc = orjson.loads(body)
        except (webhook.VerificationError, orjson.JSONDecodeError):
            return False
        return isinstance(doc.get("alarm"), dict) and doc.get("idempotency_key") == key

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields: dict[bytes, str] = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    fields[name.strip().lower()] = value.strip().decode("latin-1")
                body = await reader.readexactly(int(fields.get(b"content-length", "0")))
                now = time.time()
                key = unquote(fields.get(b"idempotency-key", ""))
                if not self._valid(fields, body, key):
                    self.rejected += 1
                    writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                if key not in self.counts:
                    # {alarm}:{kind}:{event ts ISO}:{route}
                    ts = key.split(":", 2)[2].rsplit(":", 1)[0]
                    with contextlib.suppress(ValueError):
                        at = datetime.fromisoformat(ts).timestamp()
                        self.latency_ms.append((now - at) * 1000)
                self.counts[key] += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\n\r\n{}"
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


def run_receiver(port: int, out: Path) -> None:
    """`python -m loadtests.bench_notify receiver PORT OUT`: serve until SIGTERM, then
    write what arrived to OUT."""
    import uvloop

    rx = _Receiver()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        server = await asyncio.start_server(rx.handle, "127.0.0.1", port, backlog=1024)
        ready.write_text("1")  # noqa: ASYNC240 (once, before serving)
        await stop.wait()
        server.close()

    ready = Path(str(out) + ".ready")
    uvloop.run(main())
    out.write_bytes(
        orjson.dumps({"counts": rx.counts, "latency_ms": rx.latency_ms, "rejected": rx.rejected})
    )


# ----------------------------------------------------------------------------- generator


def _opening(device: str, at: float) -> Transition:
    return Transition(
        OPENED, PROJECT, "agv", device, "safety_stop", "state", "critical", at, at, 1.0, 1,
        f"{device} emergency stop", {"state": "estop"},
    )  # fmt: skip


async def generate(url: str, rate: float, duration_s: float) -> dict[str, Any]:
    """Openings at `rate`/s for `duration_s`, in batches every TICK_S on an absolute
    schedule (a late tick stores what is due, so the average rate holds)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    run = uuid.uuid4().hex[:6]
    sent = 0
    late_ticks = 0
    t0 = time.monotonic()
    cpu0 = time.process_time()
    try:
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= duration_s:
                break
            due = int(min(elapsed + TICK_S, duration_s) * rate) - sent
            if due > 0:
                now = time.time()
                batch = [_opening(f"agv-{run}-{sent + i}", now) for i in range(due)]
                await store.apply(conn, batch)
                sent += due
            wait = t0 + (int(elapsed / TICK_S) + 1) * TICK_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                late_ticks += 1
        wall = time.monotonic() - t0
    finally:
        await conn.close()
    return {
        "transitions": sent,
        "wall_s": wall,
        "achieved_per_s": sent / wall,
        "late_ticks": late_ticks,
        "cpu_s": time.process_time() - cpu0,
    }


async def trigger_cost(
    with_url: str, without_url: str, rounds: int = 15, size: int = 1000
) -> dict[str, Any]:
    """Milliseconds of one `store.apply` of `size` openings with and without the trigger:
    two databases on one server, the trigger dropped in the second (TimescaleDB cannot
    disable a trigger on a hypertable), measured alternately."""
    conns = {
        "with": await asyncpg.connect(asyncpg_dsn(with_url)),
        "without": await asyncpg.connect(asyncpg_dsn(without_url)),
    }
    times: dict[str, list[float]] = {"with": [], "without": []}
    try:
        await conns["without"].execute("DROP TRIGGER alarm_events_notify ON alarm_events")
        for r in range(rounds * 2):
            mode = ("with", "without")[r % 2]
            now = time.time()
            batch = [_opening(f"cost-{r}-{i}", now) for i in range(size)]
            t = time.perf_counter()
            await store.apply(conns[mode], batch)
            times[mode].append((time.perf_counter() - t) * 1000)
    finally:
        for conn in conns.values():
            await conn.close()
    with_ms = statistics.median(times["with"])
    without_ms = statistics.median(times["without"])
    return {
        "openings": size,
        "rounds": rounds,
        "with_trigger_ms": with_ms,
        "without_trigger_ms": without_ms,
        "added_ms": with_ms - without_ms,
        "added_pct": (with_ms / without_ms - 1) * 100,
    }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(args: argparse.Namespace, result: dict[str, Any]) -> None:
    notes: list[str] = []
    result["notes"] = notes
    with BenchEnv() as env:
        cost_urls = env.new_database(), env.new_database()
        result["trigger_cost"] = cost = asyncio.run(trigger_cost(*cost_urls))
        print(
            f"trigger cost: {cost['openings']} openings in one store.apply "
            f"{cost['without_trigger_ms']:.1f} ms without, {cost['with_trigger_ms']:.1f} ms "
            f"with the outbox trigger (+{cost['added_pct']:.0f} %)"
        )
        url = env.new_database()
        port = free_port()
        work = Path(env.base) / f"rx-{port}.json"
        rx = subprocess.Popen(
            [sys.executable, "-m", "loadtests.bench_notify", "receiver", str(port), str(work)]
        )
        notifier_env = {
            **os.environ,
            "F5G_DATABASE__URL": url,
            "F5G_NOTIFY__METRICS_PORT": "0",
            "F5G_NOTIFY__CONCURRENCY": str(args.concurrency),
            "F5G_NOTIFY__BATCH_SIZE": "1000",
            "F5G_LOG_LEVEL": "WARNING",
        }
        notifier = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "notify"], env=notifier_env
        )
        try:
            deadline = time.monotonic() + 30
            while not Path(str(work) + ".ready").exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the receiver did not start")
                time.sleep(0.05)

            hook_config = {
                "url": f"http://127.0.0.1:{port}/hook",
                "secret": SECRET,
                "allow_insecure_http": True,
            }

            async def setup() -> None:
                conn = await asyncpg.connect(asyncpg_dsn(url))
                try:
                    channel = await conn.fetchval(
                        "INSERT INTO notify_channels (project_id, name, type, config) "
                        "VALUES ($1, 'bench', 'webhook', $2::jsonb) RETURNING id",
                        PROJECT,
                        orjson.dumps(hook_config).decode(),
                    )
                    await conn.execute(
                        "INSERT INTO notify_routes (project_id, name, channel_id) "
                        "VALUES ($1, 'bench', $2)",
                        PROJECT,
                        channel,
                    )
                finally:
                    await conn.close()

            asyncio.run(setup())
            time.sleep(2.0)  # the notifier is up and listening
            pids = {"notifier": notifier.pid, "receiver": rx.pid}
            with contextlib.suppress(OSError, ValueError, IndexError):
                pid_file = env.pg.data_dir / "postmaster.pid"
                pids["postgres"] = int(pid_file.read_text().splitlines()[0])
            meter = CpuMeter(pids).start()
            gen = asyncio.run(generate(url, args.rate, args.duration))
            result["generator"] = gen
            print(
                f"generated {gen['transitions']:,} transitions in {gen['wall_s']:.1f} s "
                f"({gen['achieved_per_s']:,.0f}/s, {gen['late_ticks']} late ticks)"
            )

            async def pending() -> tuple[int, int]:
                conn = await asyncpg.connect(asyncpg_dsn(url))
                try:
                    row = await conn.fetchrow(
                        "SELECT (SELECT count(*) FROM notify_outbox) AS outbox, "
                        "(SELECT count(*) FROM notify_deliveries WHERE state = 'sent') AS sent"
                    )
                    return int(row["outbox"]), int(row["sent"])
                finally:
                    await conn.close()

            last, stalled_at = -1, time.monotonic()
            while True:
                outbox, sent = asyncio.run(pending())
                if sent >= outbox:
                    break
                if sent != last:
                    last, stalled_at = sent, time.monotonic()
                elif time.monotonic() - stalled_at > 30:
                    notes.append(f"drain stalled at {sent:,} of {outbox:,} sent")
                    break
                time.sleep(0.2)
            meter.stop()
            meter.add("generator", gen["cpu_s"])
            result["outbox"] = outbox
        finally:
            notifier.send_signal(signal.SIGTERM)
            notifier.wait(60)
            rx.send_signal(signal.SIGTERM)
            rx.wait(60)
        arrived = orjson.loads(work.read_bytes())
    counts: dict[str, int] = arrived["counts"]
    latency: list[float] = arrived["latency_ms"]
    lost = max(0, result["outbox"] - len(counts))
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    cpu = {name: meter.used.get(name, 0.0) / meter.wall_s for name in meter.used}
    machine_busy = meter.machine_busy_s / meter.machine_total_s
    result["figures"] = {
        "rate_target": args.rate,
        "achieved_per_s": gen["achieved_per_s"],
        "generator_reached_rate": 1 if gen["achieved_per_s"] >= 0.98 * args.rate else 0,
        "transitions": gen["transitions"],
        "outbox": result["outbox"],
        "received_keys": len(counts),
        "rejected_calls": int(arrived.get("rejected", 0)),
        "lost": lost,
        "duplicated": duplicated,
        "latency_p50_ms": _pct(latency, 0.50),
        "latency_p99_ms": _pct(latency, 0.99),
        "latency_max_ms": max(latency) if latency else float("nan"),
        "cpu_share": cpu,
        "machine_busy_share": machine_busy,
        "trigger_cost": result["trigger_cost"],
    }
    f = result["figures"]
    limit = "none"
    if not f["generator_reached_rate"]:
        limit = "generator (it did not reach its rate)"
    elif f["latency_p99_ms"] > 1000:
        busiest = max(cpu, key=lambda k: cpu[k])
        limit = f"{busiest} ({cpu[busiest]:.0%} of a core)"
        if machine_busy > 0.9:
            ours = sum(cpu.values()) / (os.cpu_count() or 1)
            limit += (
                f"; the machine was {machine_busy:.0%} busy, {ours:.0%} of it this benchmark's "
                "processes"
            )
    f["limit"] = limit
    notes.append(
        f"CPU share of one core over the run: generator {cpu.get('generator', 0):.0%}, "
        f"notifier {cpu.get('notifier', 0):.0%}, receiver {cpu.get('receiver', 0):.0%}, "
        f"PostgreSQL {cpu.get('postgres', 0):.0%}; machine {machine_busy:.0%} busy (other "
        f"work on the shared machine included). Limit: {limit}."
    )
    c = result["trigger_cost"]
    notes.append(
        f"Outbox trigger on the rules store's bulk path: {c['openings']:,} openings in one "
        f"store.apply took {c['without_trigger_ms']:.1f} ms without and "
        f"{c['with_trigger_ms']:.1f} ms with it (median of {c['rounds']} each, alternating): "
        f"+{c['added_ms']:.1f} ms, +{c['added_pct']:.0f} %."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv[1:])
    if argv[:1] == ["receiver"]:
        run_receiver(int(argv[1]), Path(argv[2]))
        return 0
    p = argparse.ArgumentParser(prog="bench_notify", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="alarm transitions per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of generation")
    p.add_argument("--concurrency", type=int, default=512, help="the notifier's sends in flight")
    p.add_argument("--devices", type=int, help="(not used: every transition is a new alarm)")
    p.add_argument("--results", type=Path, default=report.RESULTS_DIR, help="results directory")
    p.add_argument("--no-report", action="store_true", help="print only, write no report")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)

    scenario = SCENARIOS["notify-outbox"]
    machine = report.machine()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    result: dict[str, Any] = {}
    tee = report.Tee()
    with contextlib.redirect_stdout(tee):
        measure(args, result)
        f = result["figures"]
        print(
            f"received {f['received_keys']:,} of {f['outbox']:,} ({f['rejected_calls']} calls "
            f"rejected by the receiver's checks): lost {f['lost']}, "
            f"duplicated {f['duplicated']}; latency p50 {f['latency_p50_ms']:.0f} ms, "
            f"p99 {f['latency_p99_ms']:.0f} ms, max {f['latency_max_ms']:.0f} ms"
        )
        for note in result["notes"]:
            print(note)
        doc = report.build_result(
            scenario, [], started, time.monotonic() - t0, result["notes"],
            machine_info=machine, figures=f,
        )  # fmt: skip
        doc["figures"] = f
        doc["argv"] = argv
        for t in doc["targets"]:
            print(f"  {t['label']:42} {report._fmt(t['value']):>10}  target "
                  f"{t['op']} {t['bound']:g}  {report.verdict(t['met'])}")  # fmt: skip
    doc["output"] = tee.getvalue()
    if not args.no_report:
        print(f"report: {report.write(doc, args.results) / 'report.md'}")
    missed = any(t["met"] is not True for t in doc["targets"])
    return 1 if (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
