"""services/core/heap.py: what `settle()` does to a process, and that nothing settles by
being imported (a test process, or any program importing the services, keeps its own
collector settings)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from services.core import heap

SETTLE = """
import gc, json
from prometheus_client import CollectorRegistry, generate_latest
from services.core import heap
import services.api.app  # a service's imports: what the freeze is for
before = gc.get_freeze_count()
heap.settle()
frozen = gc.get_freeze_count()
threshold = gc.get_threshold()
gc.collect(0)
registry = CollectorRegistry()
heap.register(registry)
print(json.dumps({"before": before, "frozen": frozen, "threshold": threshold,
                  "metrics": generate_latest(registry).decode()}))
"""


def _counts(text: str) -> dict[str, float]:
    return {
        s.labels["generation"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "factory5g_process_gc_pause_seconds_count"
    }


def test_settle_freezes_the_heap_raises_the_young_threshold_and_times_pauses() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SETTLE], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(out.stdout)
    assert got["before"] == 0
    assert got["frozen"] > 50_000, got["frozen"]
    assert got["threshold"][0] == heap.YOUNG_THRESHOLD
    # settle()'s own full collection and the young one after it, each timed once.
    assert _counts(got["metrics"]) == {"2": 1.0, "0": 1.0}
    frozen = [
        s.value
        for family in text_string_to_metric_families(got["metrics"])
        for s in family.samples
        if s.name == "factory5g_process_gc_frozen_objects"
    ]
    assert frozen == [got["frozen"]]


def test_importing_the_services_settles_nothing() -> None:
    import services.api.server
    import services.commands.service
    import services.ingest.service
    import services.notify.service
    import services.rules.service  # noqa: F401

    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] != heap.YOUNG_THRESHOLD
    registry = CollectorRegistry()
    heap.register(registry)
    assert _counts(generate_latest(registry).decode()) == {}
