"""The ingestor under test as a child process, and its memory as the kernel reports it.

Any ingestor that reads `F5G_*` settings can be benchmarked: the real one
(`python -m services.cli ingest`) and the naive baseline (`python -m loadtests.naive`) are
just two commands. RSS comes from /proc, summed over the process and its children, so a
service that forks workers is measured whole.
"""

from __future__ import annotations

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
