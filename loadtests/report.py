"""Result files of a scenario: result.json, report.md and plots, plus results/latest.md.

The JSON holds everything measured (series included) so reports can be re-rendered and
compared later; the Markdown leads with the targets table, because that is what a reader
came for, then the figures of each ingestor and the ratio to the naive baseline.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loadtests.scenarios import Scenario

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    """The box a figure was measured on: without it a throughput number means little."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.strip()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_gb, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
        "load_avg_at_start": [round(x, 2) for x in load],
    }


class Tee(io.StringIO):
    """Captures what a benchmark prints for its report while still showing it live."""

    def write(self, s: str) -> int:
        if sys.__stdout__ is not None:
            sys.__stdout__.write(s)
            sys.__stdout__.flush()
        return super().write(s)


GENERATOR_LIMIT = "generator was the limit"


def verdict(met: bool | None, why: str | None = None) -> str:
    if met is None and why:
        return why
    return {True: "met", False: "NOT MET", None: "not measured"}[met]


def _bound(value: float) -> str:
    """A target's bound as written (1.25 stays 1.25, 25000 becomes 25,000)."""
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _measured(value: Any, bound: float) -> str:
    """A figure next to its bound: ratios against small bounds keep two decimals."""
    if isinstance(value, float) and value == value and abs(bound) < 10:
        return f"{value:.2f}"
    return _fmt(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _plots(out: Path, runs: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[str] = []
    if not any(r.get("series") for r in runs):
        return files

    def rate_series(points: list[list[float]], div: float) -> tuple[list[float], list[float]]:
        xs: list[float] = []
        ys: list[float] = []
        if not points:
            return xs, ys
        t0, v0 = points[0]
        for t1, v1 in points[1:]:
            if t1 - t0 >= 1.0:  # one-second bins: progress ticks arrive in uneven steps
                xs.append(t1)
                ys.append((v1 - v0) / (t1 - t0) / div)
                t0, v0 = t1, v1
        return xs, ys

    fig, ax = plt.subplots(figsize=(9, 4))
    for r in runs:
        s = r.get("series") or {}
        if not s.get("published"):
            continue
        t0 = s["published"][0][0]
        rpm = r["summary"].get("rows_per_message", 1)
        for key, div, style in (("published", 1, "--"), ("committed_rows", rpm, "-")):
            xs, ys = rate_series(s.get(key, []), div)
            ax.plot([x - t0 for x in xs], ys, style, label=f"{r['ingestor']} {key.split('_')[0]}")
    for f in runs[0].get("faults", []):
        t0 = runs[0]["series"]["published"][0][0]
        ax.axvspan(f["wall"] - t0, f["wall"] - t0 + f["duration_s"], color="red", alpha=0.1)
    ax.set_xlabel("seconds since first publish")
    ax.set_ylabel("messages / s")
    ax.set_title("Throughput over time")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=100)
    plt.close(fig)
    files.append("throughput.png")

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names, qs = [], ("p50_ms", "p90_ms", "p99_ms", "p999_ms")
    for i, r in enumerate(runs):
        lat = r["summary"].get("latency_steady") or r["summary"].get("alarm_latency", {})
        vals = [lat.get(q, math.nan) for q in qs]
        if not any(v > 0 for v in vals):  # NaN compares false: no samples, no bars
            continue
        ax1.bar([j + i * 0.4 for j in range(len(qs))], vals, width=0.4, label=r["ingestor"])
        names.append(r["ingestor"])
        ref = r["summary"].get("ingest_commit_latency")
        if ref:  # rules: ingest's publish-to-commit in the same run, next to the alarms
            refs = [ref.get(q, math.nan) for q in qs]
            ax1.bar(
                [j + (i + 1) * 0.4 for j in range(len(qs))], refs, width=0.4, label="ingest commit"
            )
        series = r.get("series") or {}
        for key, label in (("latency", r["ingestor"]), ("commit_latency", "ingest commit")):
            pts = [p for p in series.get(key, []) if p[1] > 0]
            if pts:
                t0 = series["published"][0][0] if series.get("published") else pts[0][0]
                ax2.plot([p[0] - t0 for p in pts], [p[1] * 1000 for p in pts], ".", ms=2,
                         label=label)  # fmt: skip
    ax1.set_xticks([j + 0.2 for j in range(len(qs))], [q.replace("_ms", "") for q in qs])
    ax1.set_ylabel("ms (upper bound)")
    rules = any("alarm_latency" in r["summary"] for r in runs)
    ax1.set_title(
        "Publish-to-alarm vs publish-to-commit percentiles"
        if rules
        else "Publish-to-commit latency percentiles"
    )
    ax2.set_xlabel("seconds since first publish")
    ax2.set_ylabel("ms")
    ax2.set_title("Latency of probe records over time")
    for ax in (ax1, ax2):
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=100)
    plt.close(fig)
    files.append("latency.png")

    fig, ax = plt.subplots(figsize=(9, 4))
    for r in runs:
        pts = (r.get("series") or {}).get("rss", [])
        if pts:
            t0 = pts[0][0]
            ax.plot([p[0] - t0 for p in pts], [p[1] / 2**20 for p in pts], label=r["ingestor"])
    ax.axhline(300, color="red", ls=":", label="300 MB target")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS (MB)")
    ax.set_title("Ingestor memory")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "memory.png", dpi=100)
    plt.close(fig)
    files.append("memory.png")
    return files


ROWS = (
    ("published msgs", "summary.messages_published"),
    ("publish target msgs/s", "summary.publish_target_msgs_per_s"),
    ("publish achieved msgs/s", "summary.publish_achieved_msgs_per_s"),
    ("target rate reached", "summary.target_reached"),
    ("generator offered / committed (steady)", "summary.generator_offered_to_committed"),
    ("generator CPU s (all processes)", "summary.generator_cpu_s"),
    ("generator's busiest process CPU share", "summary.generator_busiest_process_cpu_share"),
    ("generator was the limit", "summary.generator_limited"),
    ("committed msgs/s (steady window)", "summary.committed_steady_msgs_per_s"),
    ("committed rows/s (steady window)", "summary.committed_steady_rows_per_s"),
    ("committed msgs/s (publish start to last commit)", "summary.overall_committed_msgs_per_s"),
    ("kept up (drained within 2 s / 5 %)", "summary.keeping_up"),
    ("drain after publishing stopped (s)", "summary.drain_after_publish_s"),
    ("latency p50 (ms)", "summary.latency_steady.p50_ms"),
    ("latency p90 (ms)", "summary.latency_steady.p90_ms"),
    ("latency p99 (ms)", "summary.latency_steady.p99_ms"),
    ("latency p99.9 (ms)", "summary.latency_steady.p999_ms"),
    ("latency max incl. drain (ms)", "summary.latency_all.max_ms"),
    ("latency samples", "summary.latency_steady.samples"),
    ("RSS max (MB)", "summary.rss_max_mb"),
    ("RSS mean (MB)", "summary.rss_mean_mb"),
    ("RSS slope (MB/min)", "summary.rss_slope_mb_per_min"),
    ("lag slope (msgs/min)", "summary.lag_slope_msgs_per_min"),
    ("acked records", "audit.acked_records"),
    ("stored records", "audit.stored_records"),
    ("lost (acked, never stored)", "audit.lost"),
    ("duplicated rows", "audit.duplicated_rows"),
    ("unacked but stored", "audit.unacked_stored"),
    ("acked with 'no matching subscribers'", "summary.acked_without_subscriber"),
    ("dropped by the broker at queue limits (msgs)", "summary.broker_dropped_msgs"),
    ("publisher reconnects", "summary.publisher_reconnects"),
    ("backlog not yet stored at the end", "audit.backlog_at_end"),
    ("all acked stored before the end", "audit.drained"),
)


RULES_ROWS = (
    ("background msgs published", "summary.messages_published"),
    ("background target msgs/s", "summary.publish_target_msgs_per_s"),
    ("background achieved msgs/s", "summary.publish_achieved_msgs_per_s"),
    ("target rate reached", "summary.target_reached"),
    ("e-stop triggers", "summary.triggers"),
    ("alarms not seen 15 s after publishing ended", "summary.alarms_missing"),
    ("alarm stored+published p50 (ms)", "summary.alarm_latency.p50_ms"),
    ("alarm stored+published p99 (ms)", "summary.alarm_latency.p99_ms"),
    ("alarm stored+published max (ms)", "summary.alarm_latency.max_ms"),
    ("alarm stored p99 (ms)", "summary.alarm_stored_latency.p99_ms"),
    ("alarm published p99 (ms)", "summary.alarm_published_latency.p99_ms"),
    ("ingest publish-to-commit p50 (ms), same run", "summary.ingest_commit_latency.p50_ms"),
    ("ingest publish-to-commit p99 (ms), same run", "summary.ingest_commit_latency.p99_ms"),
    ("ingest probe samples", "summary.ingest_commit_latency.samples"),
    ("alarm p50 / ingest commit p50", "summary.alarm_to_commit_p50_ratio"),
    ("alarm p99 / ingest commit p99", "summary.alarm_to_commit_p99_ratio"),
    ("rules RSS max (MB)", "summary.rules_rss_max_mb"),
    ("cores used while publishing: ingest", "summary.cpu.cores_used.ingest"),
    ("cores used while publishing: rules", "summary.cpu.cores_used.rules"),
    ("cores used while publishing: broker", "summary.cpu.cores_used.broker"),
    ("cores used while publishing: PostgreSQL", "summary.cpu.cores_used.database"),
    (
        "cores used while publishing: publishers, harness, other",
        "summary.cpu.cores_used.publishers, harness and other",
    ),
    ("machine busy while publishing (share of all cores)", "summary.cpu.machine_busy_share"),
)


def _get(run: dict[str, Any], path: str) -> Any:
    node: Any = run
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


DRAIN_ROWS = (
    ("state", "state"),
    ("processes", "processes"),
    ("messages", "messages"),
    ("rows committed", "rows"),
    ("drain time, process start to last row (s)", "wall_s"),
    ("first row committed after (s)", "first_row_s"),
    ("msg/s (including process start)", "msgs_per_s"),
    ("msg/s (from the first committed row)", "msgs_per_s_after_first_row"),
    ("rows/s (including process start)", "rows_per_s"),
    ("drainer CPU s per 1,000 msgs", "cpu_s_per_1000_msgs"),
    ("PostgreSQL CPU s per 1,000 msgs", "pg_cpu_s_per_1000_msgs"),
    ("drainer RSS max, largest process (MB)", "rss_max_mb"),
    ("drainer RSS max, all processes (MB)", "rss_all_max_mb"),
    ("records not stored at the end (lost, or still queued if the drain stalled)", "lost"),
    ("rows duplicated", "duplicated"),
)


def _fmt_cpu(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) and value == value else _fmt(value)


def _drain_section(fig: dict[str, Any]) -> list[str]:
    """The drain runs side by side, the C reference first (loadtests/drain.py)."""
    v, f = fig["variant"], fig["fill"]
    lines = [
        "## Drain",
        "",
        f"Backlog: {v['messages']:,} messages of stream `{v['stream']}`, {v['batch']} "
        f"record(s) each, over {v['devices']:,} devices ({fig['rows_expected']:,} rows), "
        f"plus {f['births']:,} birth messages; filled by {f['processes']} filler processes "
        f"in {f['wall_s']:.1f} s ({_fmt(f['send_msgs_per_s'])} msg/s while sending, "
        f"{f['cpu_s']:.1f} CPU s), before any timing.",
        "",
    ]
    drains = fig["drains"]
    c = fig.get("c")
    names = (["C client"] if c else []) + list(drains)
    lines += ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for label, key in DRAIN_ROWS:
        cells = []
        if c:
            value = c.get(key) if key in ("messages", "wall_s", "msgs_per_s") else None
            if key == "cpu_s_per_1000_msgs":
                value = c[key]
            cells.append(_fmt_cpu(value) if "cpu" in key else _fmt(value))
        for d in drains.values():
            value = d.get(key)
            cells.append(_fmt_cpu(value) if "cpu" in key else _fmt(value))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    ceiling = fig.get("copy_ceiling")
    if ceiling:
        ratio = fig.get("ratio_to_copy")
        lines += [
            f"COPY ceiling, no drainer (same run, after the drains): the same "
            f"{ceiling['rows']:,} rows, built beforehand by ingest's row builder, COPYed by "
            f"one asyncpg connection in {ceiling['batches']:,} transactions of "
            f"{ceiling['batch_rows']:,} rows into a fresh database: "
            f"**{_fmt(ceiling['rows_per_s'])} rows/s** in {ceiling['wall_s']:.1f} s, "
            f"PostgreSQL {ceiling['pg_cpu_us_per_row']:.2f} CPU µs per row, the client "
            f"{ceiling['client_cpu_us_per_row']:.2f}."
            + (f" Ingest drained at {ratio:.2f} of it." if ratio is not None else ""),
            "",
        ]
        main = fig.get("ingest", {}).get("rows_per_s")
        for c in ceiling.get("by_connections", [])[1:]:
            of = (
                f"; ingest drained at {main / c['rows_per_s']:.2f} of it."
                if isinstance(main, float) and main == main
                else "."
            )
            lines += [
                f"The same with {c['connections']} connections taking the batches in turn, "
                f"as ingest's {c['connections']} writers do: {_fmt(c['rows_per_s'])} rows/s, "
                f"PostgreSQL {c['pg_cpu_us_per_row']:.2f} CPU µs per row{of}",
                "",
            ]
    for name, d in drains.items():
        if d.get("crash"):
            cr = d["crash"]
            lines += [
                f"{name}: SIGKILL at {_fmt(cr.get('at_rows'))} rows "
                f"({_fmt(cr.get('at_s'))} s into the drain), restarted 1 s later; "
                f"{_fmt(d['lost'])} records lost, {_fmt(d['duplicated'])} rows duplicated.",
                "",
            ]
    return lines


def render_markdown(result: dict[str, Any], plots: list[str]) -> str:
    runs = result["runs"]
    m = result["machine"]
    lines = [
        f"# {result['title']}",
        "",
        f"Scenario `{result['scenario']}`, run {result['started']} "
        f"({result['elapsed_s']:.0f} s), commit `{m['commit']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; load average at start {m['load_avg_at_start']}."
        + (" Broker, database, generator and ingestor all ran on this machine." if runs else ""),
        "",
    ]
    for note in result.get("notes", []):
        lines += [f"> {note}", ""]
    if result.get("targets"):
        lines += [
            "## Targets",
            "",
            "| target | source | bound | measured | met |",
            "|---|---|---|---|---|",
        ]
        for t in result["targets"]:
            met = {True: "yes", False: "**NO**", None: t.get("why") or "not measured"}[t["met"]]
            lines.append(
                f"| {t['label']} | {t['source']} | {t['op']} {_bound(t['bound'])} | "
                f"{_measured(t['value'], t['bound'])} | {met} |"
            )
        lines.append("")
    if result.get("absolute"):
        lines += [
            "## Absolute figures (this machine)",
            "",
            "Shown against the bounds the issues set; a bare figure moves with the machine "
            "(docs/benchmarks.md), so the targets above are set on ratios to same-run "
            "references.",
            "",
            "| figure | source | bound | measured | within |",
            "|---|---|---|---|---|",
        ]
        for t in result["absolute"]:
            within = {True: "yes", False: "no", None: "not measured"}[t["met"]]
            lines.append(
                f"| {t['label']} | {t['source']} | {t['op']} {_bound(t['bound'])} | "
                f"{_fmt(t['value'])} | {within} |"
            )
        lines.append("")
    if result.get("references"):
        lines += [
            "## Figures and their same-run references",
            "",
            "| figure | measured | reference | reference measured | ratio |",
            "|---|---|---|---|---|",
        ]
        for r in result["references"]:
            lines.append(
                f"| {r['label']} | {_fmt(r['value'])} {r['unit']} | {r['reference']} | "
                f"{_fmt(r['reference_value'])} {r['unit']} | {_measured(r['ratio'], 1)} "
                f"({r['ratio_of']}) |"
            )
        lines.append("")
    if result.get("drain"):
        lines += _drain_section(result["drain"])
    if result.get("load"):
        lines += [
            "## Load generator",
            "",
            "CPU seconds over each load run from /proc (API process, PostgreSQL's process "
            "tree) and `wait4` (the generator); `limit` says which side bounded the rate.",
            "",
            "| run | generator | req/s | generator CPU | API CPU | PostgreSQL CPU | "
            "other processes (cores) | limit |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, run in result["load"].items():
            cpu, share = run["cpu_s"], run["cpu_share"]

            def cell(k: str, cpu: dict[str, float] = cpu, share: dict[str, float] = share) -> str:
                return f"{cpu[k]:.1f} s ({share[k]:.0%})" if k in cpu else "n/a"

            lines.append(
                f"| {name} | {run['tool']}, {run['connections']} conn, {_fmt(run['seconds'])} s "
                f"| {_fmt(run['rps'])} | {cell('generator')} | {cell('api')} | "
                f"{cell('database')} | {_fmt(run.get('other_cores_used'))} | "
                f"{'**client**' if run['limit'] == 'client' else run['limit']}: "
                f"{run['reason']} |"
            )
        lines.append("")
    if runs:
        w = runs[0]["workload"]
        lines += [
            "## Workload",
            "",
            f"stream `{w['stream']}`, {w['batch']} record(s) per message, QoS {w['qos']}, "
            f"{w['devices']} devices over {w['processes']} publisher processes, "
            f"{'as fast as possible' if not w['rate'] else _fmt(w['rate']) + ' msg/s'} for "
            f"{_fmt(w['duration_s'])} s (steady window starts after {_fmt(w['warmup_s'])} s)"
            + (
                "; faults: "
                + ", ".join(
                    f"{f['kind']} at {f['at_s']:.0f} s for {f['duration_s']:.0f} s"
                    for f in w["faults"]
                )
                if w["faults"]
                else ""
            )
            + ".",
            "",
            "## Results",
            "",
            "| figure | " + " | ".join(r["ingestor"] for r in runs) + " |",
            "|---|" + "---|" * len(runs),
        ]
        rows = RULES_ROWS if "alarm_latency" in runs[0]["summary"] else ROWS
        for label, path in rows:
            lines.append(f"| {label} | " + " | ".join(_fmt(_get(r, path)) for r in runs) + " |")
        lines.append("")
        if result.get("ratios"):
            lines += ["Ratios to the naive baseline (target / baseline):", ""]
            for k, v in result["ratios"].items():
                if v == v:  # NaN: one side had no figure
                    lines.append(f"- {k}: {_fmt(v)}x")
            lines.append("")
        for r in runs:
            for note in r.get("notes", []):
                lines += [f"> {r['ingestor']}: {note}", ""]
            if r["audit"].get("lost_examples"):
                what = "not yet stored" if r["audit"].get("lost") is None else "lost"
                examples = ", ".join(r["audit"]["lost_examples"])
                lines += [f"{r['ingestor']} {what}, e.g. {examples}", ""]
    if result.get("output"):
        output = result["output"]
        if result.get("drain"):  # the per-second progress lines add nothing to the figures
            output = "\n".join(x for x in output.splitlines() if " t=" not in x)
        lines += ["## Output", "", "```text", output.rstrip(), "```", ""]
    for p in plots:
        lines += [f"![{p}]({p})", ""]
    if runs:
        lines += [
            "Method: docs/benchmarks.md. Latencies are upper bounds with "
            f"{_fmt((runs[0]['summary'].get('latency_resolution_s') or 0) * 1000)} ms "
            "resolution (commit time = first poll that sees the row).",
            "",
        ]
    return "\n".join(lines)


def write(result: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results_dir / f"{result['scenario']}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    plots = _plots(out, result["runs"])
    (out / "result.json").write_text(json.dumps(result, indent=1, default=str, allow_nan=True))
    (out / "report.md").write_text(render_markdown(result, plots))
    write_latest(results_dir)
    return out


def rerender(out: Path) -> Path:
    """Redraw report.md and the plots of a result directory from its result.json."""
    result = json.loads((out / "result.json").read_text())
    (out / "report.md").write_text(render_markdown(result, _plots(out, result["runs"])))
    return out / "report.md"


def write_latest(results_dir: Path = RESULTS_DIR) -> Path:
    """results/latest.md: the newest report of each scenario with its target verdicts."""
    newest: dict[str, Path] = {}
    for d in sorted(results_dir.glob("*-*T*Z")):
        if (d / "result.json").exists():
            newest[d.name.rsplit("-", 1)[0]] = d
    lines = [
        "# Latest benchmark results",
        "",
        "| scenario | run | targets met | machine |",
        "|---|---|---|---|",
    ]
    for name, d in sorted(newest.items()):
        data = json.loads((d / "result.json").read_text())
        targets = data.get("targets", [])
        met = sum(1 for t in targets if t["met"])
        unmeasured = sum(1 for t in targets if t["met"] is None)
        verdict = f"{met}/{len(targets)}" + (f" ({unmeasured} not measured)" if unmeasured else "")
        m = data["machine"]
        lines.append(
            f"| {name} | [{d.name}]({d.name}/report.md) | {verdict} | "
            f"{m['cpu']}, {m['cores']} cores |"
        )
    lines.append("")
    path = results_dir / "latest.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def build_result(
    scenario: Scenario,
    runs: list[dict[str, Any]],
    started: str,
    elapsed: float,
    notes: list[str],
    *,
    machine_info: dict[str, Any] | None = None,
    figures: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result document: runs, target verdicts on the first (target) run (or on
    `figures`, for scenarios without runs), ratios. `machine_info` should be taken when the run
    started: the load average at the end says little about the conditions it ran in."""
    subject = runs[0] if runs else figures
    targets = []
    absolute = []
    if subject is not None:
        limited = _get(subject, "summary.generator_limited") is True
        for t in scenario.targets:
            entry = {**t.__dict__, "value": t.value(subject), "met": t.check(subject)}
            if t.generator_bound and limited and entry["met"] is False:
                entry["met"] = None  # not the ingestor's miss: the run did not test it
                entry["why"] = GENERATOR_LIMIT
            targets.append(entry)
        for t in scenario.absolute:
            absolute.append({**t.__dict__, "value": t.value(subject), "met": t.check(subject)})
    ratios: dict[str, float] = {}
    if len(runs) > 1:
        for label, path in (
            ("committed msgs/s (steady)", "summary.committed_steady_msgs_per_s"),
            ("p99 latency (baseline / target)", "summary.latency_steady.p99_ms"),
        ):
            a, b = _get(runs[0], path), _get(runs[1], path)
            if all(isinstance(x, int | float) and x == x and x > 0 for x in (a, b)):
                ratios[label] = (a / b) if "latency" not in label else (b / a)
    return {
        "scenario": scenario.name,
        "title": scenario.title,
        "started": started,
        "elapsed_s": elapsed,
        "machine": machine_info or machine(),
        "notes": [*scenario.notes, *notes],
        "targets": targets,
        "absolute": absolute,
        "ratios": ratios,
        "runs": runs,
    }
