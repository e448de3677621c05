"""The chart's alerts and dashboard use only metrics the running services really export.

Each service runs as its own process, as in production, and is scraped over HTTP.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from services.devstack.servers import Mosquitto, free_port
from tests.helm_support import metric_names


def _scrape(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def services(database_url: str, broker: Mosquitto) -> Iterator[dict[str, str]]:
    ports = {"ingest": free_port(), "rules": free_port(), "api": free_port()}
    env = {
        **os.environ,
        "F5G_DATABASE__URL": database_url,
        "F5G_MQTT__PORT": str(broker.port),
        "F5G_INGEST__METRICS_PORT": str(ports["ingest"]),
        "F5G_INGEST__CLIENT_ID": f"metrics-ingest-{ports['ingest']}",
        "F5G_RULES__METRICS_PORT": str(ports["rules"]),
        "F5G_RULES__CLIENT_ID": f"metrics-rules-{ports['rules']}",
        "F5G_API__PORT": str(ports["api"]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.cli", name],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ports
    ]
    try:
        yield {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def test_every_listed_metric_is_exported(services: dict[str, str]) -> None:
    exported: set[str] = set()
    for url in services.values():
        exported |= set(re.findall(r"\bfactory5g_[a-z0-9_]+", _scrape(url)))
    missing = [
        name
        for name in metric_names()
        if name not in exported and name.removesuffix("_total") not in exported
    ]
    assert not missing, f"listed in the chart but not exported: {missing}"
