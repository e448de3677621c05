"""The commander's Prometheus metrics, on the registry the service creates at start."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.metrics import LATENCY_BUCKETS, metric_name
from services.protocols.commands import PROTOCOLS, STATES


class CommandsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.transitions = Counter(
            metric_name("commands", "transitions", "total"),
            "Command lifecycle transitions recorded by this commander, by protocol and state.",
            ["protocol", "state"],
            registry=r,
        )
        # Every series from the start at 0: an alert's `increase()` misses the first event
        # of a series that this event creates (no earlier sample to increase from).
        for protocol in PROTOCOLS:
            for state in STATES:
                if state != "queued":  # queued by the API, never announced here
                    self.transitions.labels(protocol, state)
        self.replies = Counter(
            metric_name("commands", "replies", "total"),
            "Device replies read, by outcome: recorded, stale (the command had moved on, e.g. "
            "a redelivered reply) or dead (dead-lettered).",
            ["outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            metric_name("commands", "dead_letters", "total"),
            "Replies dead-lettered, by reason.",
            ["reason"],
            registry=r,
        )
        self.send_delay = Histogram(
            metric_name("commands", "send_delay", "seconds"),
            "From the command's creation to the broker's PUBACK of its message.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.mqtt_connected = Gauge(
            metric_name("commands", "mqtt_connected"),
            "1 while the commander's MQTT session is up.",
            registry=r,
        )
        self.store_errors = Counter(
            metric_name("commands", "store_errors", "total"),
            "Database errors (the operation is retried).",
            registry=r,
        )
