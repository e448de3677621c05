"""Ingest metrics, with the exact names the Helm chart's alerts reference.

Each service instance gets its own registry (`service_registry()`, created at start) so
that tests and benchmarks can run several ingest instances in one process; the protocol
adapters report their counters to the same registry. The hot path never touches a
Prometheus object per message: it counts in plain integers and the batcher adds them up
when a batch is sealed.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.metrics import LATENCY_BUCKETS, metric_name

# Rows per committed batch: from a lone message to the largest configurable batch.
BATCH_ROW_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.messages_received = Counter(
            metric_name("ingest", "messages_received"),
            "MQTT messages read from the broker (before validation).",
            registry=r,
        )
        self.rows_written = Counter(
            metric_name("ingest", "rows_written"),
            "Stream rows committed to the database (duplicates not counted).",
            ["stream"],
            registry=r,
        )
        self.rejected = Counter(
            metric_name("ingest", "rejected"),
            "Messages sent to the dead-letter table, by reason.",
            ["reason"],
            registry=r,
        )
        self.batch_rows = Histogram(
            metric_name("ingest", "batch_rows"),
            "Stream and dead-letter rows per committed batch.",
            buckets=BATCH_ROW_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            metric_name("ingest", "commit", "seconds"),
            "Time to write and commit one batch, retries included.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            metric_name("ingest", "lag", "seconds"),
            "Commit time minus device time of a message (sampled per batch).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            metric_name("ingest", "queue_depth"),
            "Messages read but not yet committed and acknowledged.",
            registry=r,
        )
        self.mqtt_connected = Gauge(
            metric_name("ingest", "mqtt_connected"),
            "1 while connected and subscribed to the broker.",
            registry=r,
        )
        self.database_up = Gauge(
            metric_name("ingest", "database_up"),
            "1 while the last database operation succeeded.",
            registry=r,
        )
        self.reconnects = Counter(
            metric_name("ingest", "reconnects"),
            "Broker reconnections after a lost or failed connection.",
            registry=r,
        )
        self.database_reconnects = Counter(
            metric_name("ingest", "database_reconnects"),
            "Writer connections opened again after a lost or failed database connection.",
            registry=r,
        )
        self.database_failovers = Counter(
            metric_name("ingest", "database_failovers"),
            "Times the writers reached another database server than before (failover, "
            "switchover or restart of the primary).",
            registry=r,
        )
