"""The notifier's Prometheus metrics; the chart's "notifications undelivered" alert reads
the queue depth and the oldest undelivered age."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.metrics import LATENCY_BUCKETS, metric_name


class NotifyMetrics:
    """Every metric of one notifier; tests run several notifiers in one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.deliveries = Counter(
            metric_name("notify", "deliveries", "total"),
            "Delivery attempts by channel type and outcome (sent, failed = retry scheduled, "
            "gave_up, lost_claim = the lease had expired and another notifier took over).",
            ["channel", "outcome"],
            registry=r,
        )
        self.queue_depth = Gauge(
            metric_name("notify", "queue_depth"),
            "Outbox items not yet routed plus deliveries not yet sent or given up.",
            registry=r,
        )
        self.oldest_undelivered = Gauge(
            metric_name("notify", "oldest_undelivered_age", "seconds"),
            "Age of the oldest alarm transition whose notification is still pending (0 when "
            "none is).",
            registry=r,
        )
        self.latency = Histogram(
            metric_name("notify", "delivery_latency", "seconds"),
            "From the alarm transition to its notification accepted by the receiver.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.routed = Counter(
            metric_name("notify", "routed_items", "total"),
            "Outbox items routed (transitions, follow-ups and tests).",
            registry=r,
        )
