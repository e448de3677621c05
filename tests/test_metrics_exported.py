"""Every metric the docs, the chart's alerts and its dashboard name is exported, by the
service it belongs to, and each service's /metrics passes `promtool check metrics`.

Each service runs as its own process, as in production, and is scraped over HTTP. A
metric belongs to the service its name says (`factory5g_<service>_...`): operators are
told to alert on that job, so a copy on another job (the rules process used to export
ingest's Sparkplug counters, which only ingest changes) is as wrong as a missing one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.publish as mqtt_publish
import pytest
from prometheus_client.parser import text_string_to_metric_families

from f5gdev.devstack.servers import Mosquitto, free_port
from services.protocols import sparkplug_b_pb2 as pb
from tests.helm_support import CHART_DIR, REPO_ROOT, metric_names, promtool

SERVICES = ("ingest", "rules", "api", "notify", "commands")
# Where metric names are written down for operators: docs, the chart's alerts and
# dashboard, and the chart's list of names.
NAMED_IN = (
    *sorted((REPO_ROOT / "docs").glob("*.md")),
    CHART_DIR / "templates" / "prometheusrule.yaml",
    *sorted((CHART_DIR / "dashboards").glob("*.json")),
    CHART_DIR / "metrics.txt",
)
METRIC_RE = re.compile(r"\bfactory5g_(?:ingest|rules|api|notify|commands)_[a-z0-9_]*[a-z0-9]\b")
# Process metrics named in inline code (`process_open_fds`); every service exports them.
PROCESS_RE = re.compile(r"`((?:process|python)_[a-z0-9_]*[a-z0-9])`")
# Sample suffixes of counters and histograms; the family is the name without them.
SAMPLE_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")
# What every service exports about its own process (ProcessCollector, PlatformCollector,
# services/core/heap.py).
PROCESS_METRICS = (
    "process_cpu_seconds",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "python_info",
    "factory5g_process_gc_pause_seconds",
    "factory5g_process_gc_frozen_objects",
)
SPARKPLUG_NDATA_TOPIC = "spBv1.0/metrics-test/NDATA/edge-1"
REBIRTHS = "factory5g_ingest_sparkplug_rebirth_requests_total"
# A device reply naming no command (no correlation data): the commander dead-letters it.
STRAY_REPLY_TOPIC = "f5g/v1/metrics-test/machine/m-1/reply"
REPLY_DEAD_LETTERS = "factory5g_commands_dead_letters_total"


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


def _families(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


def _sample(text: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == (labels or {}):
                return float(s.value)
    return None


def _wait_sample(url: str, name: str, labels: dict[str, str], within: float = 60) -> str:
    """The service's /metrics once `name{labels}` is >= 1, scraped until a deadline."""
    deadline = time.monotonic() + within
    while True:
        text = _scrape(url)
        if (_sample(text, name, labels) or 0) >= 1:
            return text
        assert time.monotonic() < deadline, f"{name}{labels} never reached 1 at {url}"
        time.sleep(0.3)


def _family(name: str) -> str:
    for suffix in SAMPLE_SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def named_metrics(pattern: re.Pattern[str] = METRIC_RE) -> dict[str, set[Path]]:
    """Every metric name written in docs, alerts, dashboards and metrics.txt."""
    found: dict[str, set[Path]] = {}
    for path in NAMED_IN:
        for name in pattern.findall(path.read_text()):
            found.setdefault(name, set()).add(path.relative_to(REPO_ROOT))
    return found


def _sparkplug_ndata() -> bytes:
    """DATA of an edge node ingest has no BIRTH of: ingest must ask for a rebirth."""
    payload = pb.Payload()
    payload.timestamp = int(time.time() * 1000)
    payload.seq = 3
    metric = payload.metrics.add()
    metric.name = b"temperature"
    metric.datatype = 10  # Double
    metric.double_value = 21.5
    return payload.SerializeToString()


@pytest.fixture(scope="module")
def services(database_url: str, broker: Mosquitto) -> Iterator[dict[str, str]]:
    """The five services as processes; ingest has counted one Sparkplug rebirth request and
    the commander one dead-lettered reply."""
    ports = {name: free_port() for name in SERVICES}
    env = {
        **os.environ,
        "F5G_DATABASE__URL": database_url,
        "F5G_MQTT__PORT": str(broker.port),
        "F5G_INGEST__METRICS_PORT": str(ports["ingest"]),
        "F5G_INGEST__CLIENT_ID": f"metrics-ingest-{ports['ingest']}",
        "F5G_RULES__METRICS_PORT": str(ports["rules"]),
        "F5G_RULES__CLIENT_ID": f"metrics-rules-{ports['rules']}",
        "F5G_API__PORT": str(ports["api"]),
        "F5G_NOTIFY__METRICS_PORT": str(ports["notify"]),
        "F5G_COMMANDS__METRICS_PORT": str(ports["commands"]),
        "F5G_COMMANDS__CLIENT_ID": f"metrics-commands-{ports['commands']}",
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
    urls = {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
    try:
        _wait_sample(urls["ingest"], "factory5g_ingest_mqtt_connected", {})
        _wait_sample(urls["rules"], "factory5g_rules_mqtt_connected", {})
        _wait_sample(urls["commands"], "factory5g_commands_mqtt_connected", {})
        _scrape(urls["notify"])
        # Both subscribe to Sparkplug; only ingest, the primary host, acts on what it sees.
        mqtt_publish.single(
            SPARKPLUG_NDATA_TOPIC,
            _sparkplug_ndata(),
            qos=1,
            hostname="127.0.0.1",
            port=broker.port,
        )
        _wait_sample(urls["ingest"], REBIRTHS, {"reason": "no_birth"})
        mqtt_publish.single(
            STRAY_REPLY_TOPIC,
            b'{"status": "completed"}',
            qos=1,
            hostname="127.0.0.1",
            port=broker.port,
        )
        _wait_sample(urls["commands"], REPLY_DEAD_LETTERS, {"reason": "unknown_command"})
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def scraped(services: dict[str, str]) -> dict[str, str]:
    return {name: _scrape(url) for name, url in services.items()}


def test_every_listed_metric_is_exported(scraped: dict[str, str]) -> None:
    exported: set[str] = set()
    for text in scraped.values():
        exported |= _families(text)
    missing = [name for name in metric_names() if _family(name) not in exported]
    assert not missing, f"listed in the chart but not exported: {missing}"


def test_every_metric_named_in_docs_and_chart_is_exported_by_its_service(
    scraped: dict[str, str],
) -> None:
    named = named_metrics()
    # The scan itself must see what it checks: the adapters' counters named in the docs
    # and the chart's alert metrics.
    assert {REBIRTHS, "factory5g_ingest_vda5050_header_gaps_total"} <= set(named)
    assert set(metric_names()) <= set(named)
    exported = {service: _families(text) for service, text in scraped.items()}
    wrong = {
        f"{name} (named in {', '.join(sorted(map(str, where)))})"
        for name, where in named.items()
        if _family(name) not in exported[name.split("_")[1]]
    }
    assert not wrong, f"not exported by the service their name says: {sorted(wrong)}"
    process = named_metrics(PROCESS_RE)
    assert "process_resident_memory_bytes" in process
    missing = {
        f"{name} by {service}"
        for name in process
        for service, families in exported.items()
        if _family(name) not in families
    }
    assert not missing, f"process metrics named in the docs but not exported: {sorted(missing)}"


def test_each_service_exports_only_its_own_metrics_and_its_process(
    scraped: dict[str, str],
) -> None:
    foreign: dict[str, list[str]] = {}
    no_process: dict[str, list[str]] = {}
    for service, text in scraped.items():
        families = _families(text)
        foreign[service] = sorted(
            f
            for f in families
            if f.startswith("factory5g_") and f.split("_")[1] not in (service, "process")
        )
        no_process[service] = [m for m in PROCESS_METRICS if m not in families]
    assert not any(foreign.values()), (
        f"metrics exported by a service that never changes them: {foreign}"
    )
    assert not any(no_process.values()), f"process metrics missing: {no_process}"
    # Ingest sent the rebirth request and exports it; rules saw the same message and
    # does not export a copy.
    assert _sample(scraped["ingest"], REBIRTHS, {"reason": "no_birth"}) == 1
    assert "sparkplug" not in scraped["rules"]
    assert "vda5050" not in scraped["rules"]
    # The commander dead-lettered the stray reply and exports it; no one else does.
    assert _sample(scraped["commands"], REPLY_DEAD_LETTERS, {"reason": "unknown_command"}) == 1
    assert [s for s, text in scraped.items() if "factory5g_commands_" in text] == ["commands"]


def test_each_service_settled_its_heap_before_serving(scraped: dict[str, str]) -> None:
    """Each service's process entry froze its start-up heap (services/core/heap.py), so
    full collections no longer walk it: the frozen count is the imported code (a bare
    interpreter freezes about 8,000 objects, the services 47,000 to 141,000),
    and the collection `settle()` ran before freezing was timed."""
    for service, text in scraped.items():
        frozen = _sample(text, "factory5g_process_gc_frozen_objects") or 0
        full = _sample(text, "factory5g_process_gc_pause_seconds_count", {"generation": "2"}) or 0
        assert frozen > 20_000, f"{service}: {frozen:.0f} objects frozen"
        assert full >= 1, f"{service}: no full collection timed"


@pytest.mark.parametrize("service", SERVICES)
def test_promtool_check_metrics_is_clean(scraped: dict[str, str], service: str) -> None:
    result = subprocess.run(
        [promtool(), "check", "metrics"],
        input=scraped[service],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, f"promtool check metrics on {service}:\n{problems}"
    assert problems == ""


def test_nothing_registers_on_the_global_registry(database_url: str, broker: Mosquitto) -> None:
    """Importing and building every service leaves prometheus_client's global registry
    without a factory5g metric: a module-level metric would be exported by every process
    that imports its module, as the adapters' counters were by rules."""
    from prometheus_client import REGISTRY

    from services.api.app import create_app
    from services.commands.service import Commander
    from services.ingest.service import IngestService
    from services.protocols.adapters.registry import load_adapters
    from services.rules.service import RulesService
    from tests.conftest import make_settings

    settings = make_settings(database_url, broker.port)
    built = (
        create_app(settings),
        IngestService(settings),
        RulesService(settings),
        Commander(settings),
        load_adapters(settings),
    )
    assert all(built)
    registered = sorted(f.name for f in REGISTRY.collect() if f.name.startswith("factory5g_"))
    assert registered == []


def test_the_commanders_transition_series_exist_from_start() -> None:
    """The commands alerts take `increase()` of the expired and failed series; a series that
    the first expiry creates has no earlier sample, so that first expiry would not count.
    Every protocol x state the commander announces is exported at 0 from the start."""
    from prometheus_client import CollectorRegistry

    from services.commands.metrics import CommandsMetrics
    from services.protocols.commands import PROTOCOLS, STATES

    registry = CollectorRegistry()
    CommandsMetrics(registry)
    name = "factory5g_commands_transitions_total"
    for protocol in PROTOCOLS:
        for state in STATES:
            if state == "queued":  # the API queues; the commander never announces it
                continue
            value = registry.get_sample_value(name, {"protocol": protocol, "state": state})
            assert value == 0, (protocol, state, value)
