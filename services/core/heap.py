"""The garbage collector's share of a service's latency: settle the heap once the service
is built, and measure every pause.

Why: CPython's full (generation 2) collection walks every object the collector tracks,
and a service's heap is mostly what it built at start-up: modules, classes, the API's
routes and schemas, compiled payload schemas. All of it lives as long as the process. In
the commands benchmark (loadtests/commands_bench.py, 500 commands/s) the API stopped for
a full collection every two seconds, 120-150 ms each time (17 pauses, 2.1 s in a 30 s
run), and those pauses were the p99 of request -> accepted. `settle()` collects once and
then moves everything alive into the permanent generation (`gc.freeze()`), which no
collection walks again; later full collections walk only what the service made since.

The young generation's threshold goes from CPython's 700 allocations to `YOUNG_THRESHOLD`:
an object that lives for one request (a few milliseconds, with dozens in flight) is then
usually freed by its reference count before a young collection meets it, instead of being
promoted and walked again by the older generations. The API's collector time in the same
run, start-up included, fell from 4.1 s to 0.8 s; the memory a young generation of that
size holds is a few megabytes at most.

Only the services' process entries call `settle()` (`factory5g api`, `ingest`, `rules`,
`notify`, `commands`), never code that runs inside another process such as a test.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

YOUNG_THRESHOLD: Final = 20_000

# Collections are process-wide, so is their histogram: each service's registry exports it
# (`register`), whichever registry the process made.
GC_PAUSE = Histogram(
    "factory5g_process_gc_pause_seconds",
    "Garbage collector pauses of this process, by generation collected",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=None,
)
_started: list[float] = []
_installed = False


def _on_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
    elif _started:
        GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _started.pop())


def measure_pauses() -> None:
    """Time every collection of this process into `GC_PAUSE` (once per process)."""
    global _installed
    if not _installed:
        gc.callbacks.append(_on_collection)
        _installed = True


def settle() -> None:
    """Collect, freeze what is left, raise the young threshold, and measure pauses from
    here on. Call when the service is built and before it serves."""
    measure_pauses()
    gc.collect()
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, gen1, gen2)


class _Collector(Collector):
    def collect(self) -> Iterable[Metric]:
        yield from GC_PAUSE.collect()
        yield GaugeMetricFamily(
            "factory5g_process_gc_frozen_objects",
            "Objects in the permanent generation, which no collection walks (settle())",
            value=gc.get_freeze_count(),
        )


def register(registry: CollectorRegistry) -> None:
    """Export the pauses and the frozen count through `registry` (a service's own)."""
    registry.register(_Collector())
