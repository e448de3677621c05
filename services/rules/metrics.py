"""The rules service's Prometheus metrics; the Helm alerts depend on the first four names.

One `RulesMetrics` per service, on the registry the service creates at start and serves.
Only what rules itself changes is registered here: the protocol adapters it reuses from
ingest count into registries nobody exports (ingest exports those counters, and rules
never sends the rebirth requests they count).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.core.metrics import LATENCY_BUCKETS, metric_name


class RulesMetrics:
    """Every metric of one rules service; tests run several services in one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.events = Counter(
            metric_name("rules", "events", "total"),
            "Records evaluated by this replica, by stream.",
            ["stream"],
            registry=r,
        )
        self.alarms = Counter(
            metric_name("rules", "alarms", "total"),
            "Alarm transitions stored and published.",
            ["rule", "severity", "transition"],
            registry=r,
        )
        self.evaluation = Histogram(
            metric_name("rules", "evaluation", "seconds"),
            "Time to evaluate one MQTT message against the rules.",
            buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS),
            registry=r,
        )
        self.database_failovers = Counter(
            metric_name("rules", "database_failovers", "total"),
            "Times new database connections reached another server than before (failover, "
            "switchover or restart of the primary).",
            registry=r,
        )
        self.mqtt_connected = Gauge(
            metric_name("rules", "mqtt_connected"),
            "1 while the replica is connected to the broker.",
            registry=r,
        )
        self.rejected = Counter(
            metric_name("rules", "rejected_messages", "total"),
            "Messages that broke the contract and were skipped, by reason.",
            ["reason"],
            registry=r,
        )
        self.not_owned = Counter(
            metric_name("rules", "not_owned_messages", "total"),
            "Messages of devices another shard owns (dropped by design).",
            registry=r,
        )
        self.alarm_delay = Histogram(
            metric_name("rules", "alarm_delay", "seconds"),
            "From message arrival to its alarm transition stored and published.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            metric_name("rules", "store_errors", "total"),
            "Failed attempts to store alarm transitions (retried).",
            registry=r,
        )
        self.active_alarms = Gauge(
            metric_name("rules", "active_alarms"),
            "Alarms open or acknowledged on this replica.",
            registry=r,
        )
        self.devices = Gauge(
            metric_name("rules", "devices"), "Devices with rule state on this replica.", registry=r
        )
        self.reloads = Counter(
            metric_name("rules", "reloads", "total"),
            "Rule file reloads, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.input_pauses = Counter(
            metric_name("rules", "input_pauses", "total"),
            "Times the MQTT input stopped reading because too many transitions awaited the "
            "database.",
            registry=r,
        )
        self.pending_transitions = Gauge(
            metric_name("rules", "pending_transitions"),
            "Alarm transitions decided by the engine and not yet stored.",
            registry=r,
        )
