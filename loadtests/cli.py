"""`factory5g bench <scenario>`: run one scenario end to end and write its report.

Starts its own PostgreSQL + TimescaleDB and Mosquitto (on free ports, in a temporary
directory), runs the ingestor under test and then the naive baseline on the same workload,
prints progress every second and writes results/<scenario>-<timestamp>/.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests import report, stats
from loadtests.procs import INGESTORS, ingest_available
from loadtests.runner import BenchEnv, run_workload
from loadtests.scenarios import FAULT_SUITE, INGEST_SUITE, SCENARIOS, Scenario

DRAIN_SCENARIOS = tuple(s.name for s in SCENARIOS.values() if s.kind == "drain")


def parser() -> argparse.ArgumentParser:
    names = "\n".join(f"  {s.name:22} {s.title}" for s in SCENARIOS.values())
    p = argparse.ArgumentParser(
        prog="factory5g bench",
        description="Run a benchmark scenario against servers of its own and write a report.",
        epilog=f"scenarios:\n{names}\n  {'ingest-all':22} {', '.join(INGEST_SUITE)}"
        f"\n  {'fault-all':22} {', '.join(FAULT_SUITE)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "scenario",
        help="scenario name, 'ingest-all', 'fault-all', 'list', or 'render' (redraw the "
        "report in the --results directory from its result.json)",
    )
    p.add_argument("--duration", type=float, help="seconds of publishing")
    p.add_argument(
        "--warmup",
        type=float,
        help="seconds before the steady window starts (default: per scenario)",
    )
    p.add_argument("--rate", type=float, help="total msg/s (0 = as fast as possible)")
    p.add_argument("--devices", type=int, help="simulated devices")
    p.add_argument(
        "--processes",
        type=int,
        help="publisher processes (drain scenarios: also drain with this many ingest processes)",
    )
    p.add_argument("--qos", type=int, choices=(0, 1), help="MQTT QoS of device messages")
    p.add_argument(
        "--stream", choices=("link", "agv", "inspection", "telemetry", "vda5050", "sparkplug")
    )
    p.add_argument("--batch", type=int, help="records per message (arrays when > 1)")
    p.add_argument(
        "--ingestor",
        default="ingest",
        help="'ingest' (services/ingest), 'naive', or a command line reading F5G_* settings",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the naive baseline run")
    p.add_argument("--results", type=Path, default=report.RESULTS_DIR, help="results directory")
    p.add_argument(
        "--no-fsync", action="store_true", help="run PostgreSQL without fsync (not for figures)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    return p


def _command(name: str) -> list[str]:
    if name in INGESTORS:
        return INGESTORS[name]
    return shlex.split(name)


def run_scenario(scenario: Scenario, args: argparse.Namespace) -> tuple[Path | None, bool]:
    """Run one ingest-kind scenario; returns the report directory and whether all met."""
    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "duration_s": args.duration,
            "rate": args.rate,
            "devices": args.devices,
            "processes": args.processes,
            "qos": args.qos,
            "stream": args.stream,
            "batch": args.batch,
        }.items()
        if v is not None
    }
    work = dataclasses.replace(scenario.workload, **overrides)
    if args.warmup is not None:
        work = dataclasses.replace(work, warmup_s=args.warmup)
    elif work.warmup_s > work.duration_s / 3:  # a shortened run keeps a steady window
        work = dataclasses.replace(work, warmup_s=work.duration_s / 6)
    if args.ingestor == "ingest" and not ingest_available():
        print(
            "services/ingest/service.py is not in this checkout yet; use --ingestor naive "
            "to exercise the harness on the baseline alone",
            file=sys.stderr,
        )
        return None, False
    ingestors = [(args.ingestor.split()[0].rsplit("/", 1)[-1], _command(args.ingestor))]
    if scenario.baseline and not args.no_baseline and args.ingestor != "naive":
        ingestors.append(("naive", INGESTORS["naive"]))
    started = datetime.now(UTC).isoformat(timespec="seconds")
    machine = report.machine()  # the load average the run started under
    t0 = time.monotonic()
    runs: list[dict[str, Any]] = []
    notes: list[str] = []
    log_dir = args.results / "logs"
    with BenchEnv(durable=not args.no_fsync, ha=work.ha) as env:
        if args.no_fsync:
            notes.append("PostgreSQL ran with fsync off: figures are not comparable.")
        if scenario.kind == "rules":
            from loadtests.rules_bench import run_rules

            runs.append(run_rules(env, work, args.results / "logs").as_dict())
            ingestors = []
        for name, command in ingestors:
            # The baseline's figures come from the steady window; waiting for its backlog
            # to drain would add minutes and no information.
            result = run_workload(
                env, name, command, work, log_dir, drain_s=5.0 if name == "naive" else None
            )
            runs.append(result.as_dict())
            s = result.summary
            print(
                f"[{name}] committed {s['committed_steady_msgs_per_s']:,.0f} msg/s steady, "
                f"p99 {s['latency_steady']['p99_ms']:.1f} ms, RSS max {s['rss_max_mb']:.0f} MB, "
                f"lost {report._fmt(result.audit['lost'])}, "
                f"duplicated {result.audit['duplicated_rows']}"
            )
            if s.get("generator_limited"):
                print(
                    f"[{name}] GENERATOR WAS THE LIMIT: offered "
                    f"{s['generator_offered_msgs_per_s']:,.0f} msg/s for "
                    f"{s['committed_steady_msgs_per_s']:,.0f} committed (needs "
                    f"{stats.GENERATOR_HEADROOM:g}x), busiest publisher at "
                    f"{s['generator_busiest_process_cpu_share']:.0%} CPU"
                )
            if s["target_reached"] is False:
                print(
                    f"[{name}] TARGET RATE NOT REACHED: published "
                    f"{s['publish_achieved_msgs_per_s']:,.0f} of {work.rate:,.0f} msg/s"
                )
    doc = report.build_result(
        scenario, runs, started, time.monotonic() - t0, notes, machine_info=machine
    )
    out = report.write(doc, args.results)
    for t in doc["targets"]:
        print(
            f"  {t['label']}: {report._measured(t['value'], t['bound'])} "
            f"({t['op']} {t['bound']:g}) {report.verdict(t['met'], t.get('why'))}"
        )
    for t in doc["absolute"]:
        print(
            f"  {t['label']}: {report._fmt(t['value'])} (issue bound {t['op']} {t['bound']:g}, "
            f"not a target here) {report.verdict(t['met'])}"
        )
    print(f"report: {out / 'report.md'}")
    return out, all(t["met"] for t in doc["targets"])


def main(argv: list[str] | None = None) -> int:
    args, extra = parser().parse_known_args(argv)
    delegated = ("api", "notify-outbox", "commands", "plant", *DRAIN_SCENARIOS)
    if extra and args.scenario not in delegated:
        parser().error(f"unrecognized arguments: {' '.join(extra)}")
    if args.scenario == "render":  # factory5g bench render --results <result directory>
        print(report.rerender(args.results))
        report.write_latest(args.results.parent)
        return 0
    if args.scenario == "list":
        for s in SCENARIOS.values():
            print(f"{s.name:22} {s.title}")
        return 0
    suites = {"ingest-all": INGEST_SUITE, "fault-all": FAULT_SUITE}
    names = list(suites.get(args.scenario, (args.scenario,)))
    ok = True
    for name in names:
        scenario = SCENARIOS.get(name)
        if scenario is None:
            print(f"unknown scenario {name!r}; try 'factory5g bench list'", file=sys.stderr)
            return 2
        if scenario.kind == "api":
            return _delegate("loadtests.bench_api", args, extra)
        if scenario.kind == "notify":
            return _delegate("loadtests.bench_notify", args, extra)
        if scenario.kind == "commands":
            return _delegate("loadtests.commands_bench", args, extra)
        if scenario.kind == "plant":
            return _delegate("loadtests.bench_plant", args, extra)
        if scenario.kind == "drain":
            argv = [name, *extra]
            if args.processes is not None:
                argv += ["--processes", str(args.processes)]
            if args.no_baseline:
                argv.append("--no-baseline")
            if args.no_fsync:
                argv.append("--no-fsync")
            code = _delegate("loadtests.drain", args, argv)
            ok = ok and code == 0
            continue
        out, met = run_scenario(scenario, args)
        if out is None:
            return 2
        ok = ok and met
    return 1 if args.strict and not ok else 0


def _delegate(module: str, args: argparse.Namespace, extra: list[str]) -> int:
    """Scenarios whose harness writes its own report (the API benchmark): run its
    `main(argv)` with the remaining options."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        print(f"{module} is not in this checkout yet", file=sys.stderr)
        return 2
    entry = getattr(mod, "main", None)
    if not callable(entry):
        print(f"{module} has no main(argv) entry point", file=sys.stderr)
        return 2
    argv = list(extra)
    if args.duration is not None:
        argv += ["--duration", str(args.duration)]
    if args.devices is not None:
        argv += ["--devices", str(args.devices)]
    if args.strict:
        argv.append("--strict")
    argv += ["--results", str(args.results)]
    return int(entry(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
