"""Ingest service: MQTT device streams into TimescaleDB, acknowledged only after commit.

The hot path, in the order a message travels:

1. `consumer.py`  reads the MQTT v5 session (shared subscription, persistent, QoS 1, manual
                  acknowledgement; the session is `services.core.mqtt`).
2. `pipeline.py`  decodes and validates the payload with the message's protocol adapter
                  (`adapters/native.py` for the JSON contract) into COPY tuples
                  (`rows.py`) or a dead letter (`deadletter.py`), synchronously in the reader.
3. `batch.py`     gathers messages into a batch, sealed by size or after a short delay.
4. `writer.py`    COPYs the batch in one transaction (idempotent on redelivery, retried
                  across outages) together with device registration (`devices.py`).
5. back here      `_committed` acknowledges the batch's messages to the broker.

Backpressure: when the writer has a batch queued per connection, the consumer stops
reading; the broker's Receive Maximum then stops it sending. Memory is bounded by batch
size times the writer queue, not by traffic.

SIGTERM/SIGINT: stop reading, seal and commit what was read, acknowledge it, disconnect,
exit 0 (anything not committed within `shutdown_timeout_s` stays unacknowledged and is
redelivered). `kill -9` loses nothing acknowledged, since nothing is acknowledged before
its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from services.core import heap
from services.core.metrics import MetricsServer, service_registry
from services.core.runtime import run_async, setup_logging
from services.core.settings import Settings
from services.ingest.consumer import Consumer
from services.ingest.devices import DeviceRegistry
from services.ingest.known import KnownDevices
from services.ingest.metrics import IngestMetrics
from services.ingest.writer import Writer
from services.protocols.adapters.base import Adapter
from services.protocols.adapters.registry import load_adapters
from services.protocols.batch import Batch, Batcher
from services.protocols.pipeline import Pipeline

log = logging.getLogger(__name__)


class IngestService:
    """One ingest process; `run_until(stop)` is the programmatic entry (tests, benchmarks)."""

    def __init__(
        self,
        settings: Settings,
        adapters: list[Adapter] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        ingest = settings.ingest
        self.metrics = IngestMetrics(registry if registry is not None else service_registry())
        self.adapters = (
            adapters
            if adapters is not None
            else load_adapters(settings, registry=self.metrics.registry)
        )
        self.devices = DeviceRegistry()
        self.held = 0  # messages read and not yet committed
        self.batcher = Batcher(
            ingest.batch_max_rows, ingest.batch_max_delay_ms / 1000, self._sealed
        )
        self.writer = Writer(
            settings.database.url,
            ingest.writers,
            settings.database.connect_timeout_s,
            self.metrics,
            on_committed=self._committed,
            on_backlog=self._backlog,
        )
        self.consumer = Consumer(
            settings,
            self.adapters,
            self._handle,
            self.metrics,
            on_generation=self.batcher.new_generation,
            on_disconnected=self.batcher.seal,
            on_window_full=self.batcher.seal,
        )
        # Only with unknown_devices = dead_letter: a set of registered devices, refreshed.
        self.known = (
            KnownDevices(settings.database.url, settings.database.connect_timeout_s)
            if ingest.unknown_devices == "dead_letter"
            else None
        )
        self.pipeline = Pipeline(
            ingest, self.adapters, publish=self.consumer.publish, known=self.known
        )
        self._fill = self.pipeline.fill
        self.metrics_server = MetricsServer(
            ingest.metrics_host, ingest.metrics_port, self.health, self.metrics.registry
        )
        self.metrics.database_up.set(0)
        self.metrics.mqtt_connected.set(0)

    # ------------------------------------------------------------------ hot path

    _received: datetime | None = None  # the time of the read being handled

    def _handle(self, topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        # One receive time per read of the socket, not per message: the messages of one
        # read arrived together, and `datetime.now` was 0.36 µs of every message.
        received = self._received
        if received is None:
            received = self._received = datetime.now(UTC)
            asyncio.get_running_loop().call_soon(self._read_done)
        batcher = self.batcher
        self._fill(batcher.current, topic, payload, received, mid, qos, dup)
        batcher.added()

    def _read_done(self) -> None:
        self._received = None

    def _sealed(self, batch: Batch) -> None:
        batch.device_args = self.devices.upsert_args(batch.touches)
        m = self.metrics
        m.messages_received.inc(len(batch))
        for reason, n in batch.rejected.items():
            m.rejected.labels(reason).inc(n)
        self.held += len(batch)
        m.queue_depth.set(self.held)
        self.writer.submit(batch)

    def _committed(self, batch: Batch) -> None:
        self.consumer.ack(batch.gen, batch.mids)
        self.held -= len(batch)
        self.metrics.queue_depth.set(self.held)

    def _backlog(self, high: bool) -> None:
        if high:
            self.consumer.pause()
        elif not self._stopping:
            self.consumer.resume()

    # ------------------------------------------------------------------ lifecycle

    _stopping = False

    def health(self) -> tuple[bool, dict[str, object]]:
        broker, database = self.consumer.connected, self.writer.database_ok
        return broker and database, {
            "broker": broker,
            "database": database,
            "database_primary": self.writer.primary.snapshot(),
            "held_messages": self.held,
        }

    async def _drain(self) -> None:
        """Commit (and so acknowledge) everything read so far."""
        self._stopping = True
        self.batcher.seal()
        await self.writer.drain()

    async def run_until(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then shut down gracefully."""
        await self.metrics_server.start()
        self.writer.start()
        timeout = self.settings.ingest.shutdown_timeout_s
        refresher = None
        if self.known is not None:
            # Loaded before subscribing, so no registered device is refused at start.
            refresher = asyncio.ensure_future(self.known.keep_loaded())
            waits = {
                asyncio.ensure_future(self.known.loaded.wait()),
                asyncio.ensure_future(stop.wait()),
            }
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        consumer = asyncio.ensure_future(self.consumer.run(stop, self._drain_bounded))
        try:
            await stop.wait()
            # The consumer drains while still connected, so acknowledgements reach the broker.
            done, _ = await asyncio.wait({consumer}, timeout=timeout + 5)
            if not done:
                log.warning("shutdown: MQTT disconnect did not finish in time")
                consumer.cancel()
        finally:
            if refresher is not None:
                refresher.cancel()
            if not consumer.done():
                consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await consumer
            if self.writer.pending:
                log.warning(
                    "shutdown: %d batches not committed; they stay unacknowledged",
                    self.writer.pending,
                )
            await self.writer.stop()
            await self.metrics_server.stop()
        log.info("ingest stopped")

    async def _drain_bounded(self) -> None:
        try:
            await asyncio.wait_for(self._drain(), self.settings.ingest.shutdown_timeout_s)
        except TimeoutError:
            log.warning("shutdown: commit did not finish within shutdown_timeout_s")


async def serve(settings: Settings) -> None:
    """Run ingest until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    service = IngestService(settings)
    names = ", ".join(a.name for a in service.adapters)
    log.info("ingest %s starting (adapters: %s)", settings.ingest.client_id, names)
    await service.run_until(stop)


def process_settings(settings: Settings, index: int, processes: int) -> Settings:
    """The settings of process `index` of `processes` on this host.

    Each process needs a session of its own: its own client id, so the broker keeps a queue
    per process while ingest is down, and its own shard of the devices, so that each
    message is stored by exactly one of them (the others acknowledge it). Replicas on
    several hosts (`shard_count`) multiply with the processes per host."""
    ingest = settings.ingest
    child = ingest.model_copy(
        update={
            "client_id": f"{ingest.client_id}-{index}of{processes}",
            "shard_index": ingest.shard_index * processes + index,
            "shard_count": ingest.shard_count * processes,
            "metrics_port": ingest.metrics_port + index if ingest.metrics_port else 0,
            "processes": 1,
        }
    )
    return settings.model_copy(update={"ingest": child})


def _process_main(settings: Settings, index: int, processes: int) -> None:
    mine = process_settings(settings, index, processes)
    setup_logging(settings.log_level)
    log.info(
        "ingest process %d of %d: client id %s, shard %d of %d",
        index,
        processes,
        mine.ingest.client_id,
        mine.ingest.shard_index,
        mine.ingest.shard_count,
    )
    run_async(serve(mine), settings.log_level)


def run_processes(settings: Settings, processes: int) -> int:
    """Fork `processes` ingest processes and supervise them; returns the exit code.

    Why processes, not threads: the per-message work is Python, which one interpreter
    runs on one core at a time. Forked before any event loop or thread exists, the
    children share the parent's imported code. SIGTERM/SIGINT are passed on, and each
    child shuts down as a single ingest does (commit, acknowledge, disconnect). A child
    that dies on its own stops the others and the parent exits non-zero, so that the
    service manager restarts the set; what was not committed stays unacknowledged and is
    redelivered to the same sessions."""
    setup_logging(settings.log_level)
    ctx = multiprocessing.get_context("fork")
    children = [
        ctx.Process(
            target=_process_main, args=(settings, i, processes), name=f"ingest-{i}", daemon=False
        )
        for i in range(processes)
    ]
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for child in children:
            child.start()
        running = list(children)
        while running:
            ready = multiprocessing.connection.wait([c.sentinel for c in running])
            for child in [c for c in running if c.sentinel in ready]:
                child.join()
                running.remove(child)
                if child.exitcode != 0:
                    code = code or 1
                if not stopping:
                    log.error(
                        "%s exited with %s; stopping the other ingest processes",
                        child.name,
                        child.exitcode,
                    )
                    stop(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def run(settings: Settings) -> None:
    """Entry of `factory5g ingest`."""
    heap.settle()  # before any fork: the children share the frozen pages unwritten
    processes = settings.ingest.processes
    if processes > 1:
        code = run_processes(settings, processes)
        if code:
            raise SystemExit(code)
        return
    run_async(serve(settings), settings.log_level)
