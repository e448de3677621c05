"""The ingestor under test as a child process, and its memory as the kernel reports it.

Any ingestor that reads `F5G_*` settings can be benchmarked: the real one
(`python -m services.cli ingest`) and the naive baseline (`python -m loadtests.naive`) are
just two commands. RSS comes from /proc, summed over the process and its children, so a
service that forks workers is measured whole. CPU seconds come from /proc too (`CpuMeter`),
so a load benchmark can say whether the server or its load generator used the cores.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from f5gdev.devstack.servers import free_port

INGESTORS: dict[str, list[str]] = {
    "ingest": [sys.executable, "-m", "services.cli", "ingest"],
    "naive": [sys.executable, "-m", "loadtests.naive"],
}


def ingest_available() -> bool:
    """Whether this checkout has the real ingest service yet."""
    return (Path(__file__).resolve().parents[1] / "services" / "ingest" / "service.py").exists()


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants; 0 once it has gone."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Ingestor:
    """One ingestor process with its own client id, metrics port and log file."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = dict(os.environ)
        env.update(self.env)
        env["F5G_INGEST__METRICS_PORT"] = str(self.metrics_port)
        env.setdefault("F5G_INGEST__CLIENT_ID", f"bench-{self.name}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command, env=env, stdout=log, stderr=log)
        log.close()
        self.starts += 1

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def alive(self) -> bool:
        return self.pid is not None

    def rss(self) -> int:
        pid = self.pid
        return rss_bytes(pid) if pid else 0

    def kill(self) -> None:
        """An abrupt crash: SIGKILL, no chance to flush or acknowledge anything."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def metrics(self) -> dict[str, float]:
        """factory5g_* samples from the ingestor's /metrics (empty if it has none)."""
        import urllib.request

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2
            ) as resp:
                text = resp.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("factory5g_") and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                try:
                    out[key] = float(value)
                except ValueError:
                    continue
        return out


def wait_until(predicate: object, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return False


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_stat_cpu(stat: str, ticks: int = CLOCK_TICKS) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds from one /proc/<pid>/stat line.

    The command name (field 2) may hold spaces and parentheses, so fields are counted
    after its closing parenthesis: utime, stime, cutime and cstime are fields 14-17.
    """
    rest = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return (utime + stime) / ticks, (cutime + cstime) / ticks


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process and its descendants have used so far,
    children that already exited and were reaped included: PostgreSQL's backends come and
    go under the postmaster, and their time must stay counted. 0 once it has gone."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            own, reaped = parse_stat_cpu(Path(f"/proc/{p}/stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        total += own + reaped
        stack += _children(p)
    return total


def parse_machine_cpu(stat: str, ticks: int = CLOCK_TICKS) -> tuple[float, float]:
    """(busy, total) CPU seconds of all cores from the `cpu` line of /proc/stat; busy is
    everything but idle and iowait."""
    for line in stat.splitlines():
        if line.startswith("cpu "):
            values = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal [guest guest_nice]: guests are
            # already inside user and nice.
            total = sum(values[:8])
            idle = values[3] + (values[4] if len(values) > 4 else 0)
            return (total - idle) / ticks, total / ticks
    raise ValueError("no aggregate cpu line in /proc/stat")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of this machine since boot; (nan, nan) without /proc."""
    try:
        return parse_machine_cpu(Path("/proc/stat").read_text())
    except (OSError, ValueError):
        return math.nan, math.nan


@dataclass
class CpuMeter:
    """CPU seconds of named process trees, and of the whole machine, over one interval.

    `start()` and `stop()` read /proc; a process that is gone by `stop()` (a load
    generator that has exited) is given its time from `os.wait4` instead via `add()`.
    """

    pids: dict[str, int]
    used: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    machine_busy_s: float = math.nan
    machine_total_s: float = math.nan
    _t0: float = 0.0
    _start: dict[str, float] = field(default_factory=dict)
    _machine: tuple[float, float] = (math.nan, math.nan)

    def start(self) -> CpuMeter:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._machine = machine_cpu()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> CpuMeter:
        self.wall_s = time.monotonic() - self._t0
        busy, total = machine_cpu()
        self.machine_busy_s = busy - self._machine[0]
        self.machine_total_s = total - self._machine[1]
        for name, pid in self.pids.items():
            self.used[name] = max(0.0, cpu_seconds(pid) - self._start[name])
        return self

    def add(self, name: str, seconds: float) -> None:
        self.used[name] = self.used.get(name, 0.0) + seconds


def run_measured(
    cmd: list[str], timeout: float, env: dict[str, str] | None = None
) -> tuple[int, str, str, float]:
    """Run a command to completion; (exit code, stdout, stderr, CPU seconds it used).

    Its CPU time comes from `wait4`, the kernel's own account of the child, so a load
    generator is measured whole even though it has exited before anyone could read its
    /proc entry."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_utime + usage.ru_stime,
        )
