"""The rules service's Prometheus metrics; the Helm alerts depend on the first four names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.core.metrics import LATENCY_BUCKETS, metric_name

EVENTS = Counter(
    metric_name("rules", "events", "total"),
    "Records evaluated by this replica, by stream.",
    ["stream"],
)
ALARMS = Counter(
    metric_name("rules", "alarms", "total"),
    "Alarm transitions stored and published.",
    ["rule", "severity", "transition"],
)
EVALUATION = Histogram(
    metric_name("rules", "evaluation", "seconds"),
    "Time to evaluate one MQTT message against the rules.",
    buckets=(0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, *LATENCY_BUCKETS),
)
MQTT_CONNECTED = Gauge(
    metric_name("rules", "mqtt_connected"), "1 while the replica is connected to the broker."
)
REJECTED = Counter(
    metric_name("rules", "rejected_messages", "total"),
    "Messages that broke the contract and were skipped, by reason.",
    ["reason"],
)
NOT_OWNED = Counter(
    metric_name("rules", "not_owned_messages", "total"),
    "Messages of devices another shard owns (dropped by design).",
)
ALARM_DELAY = Histogram(
    metric_name("rules", "alarm_delay", "seconds"),
    "From message arrival to its alarm transition stored and published.",
    buckets=LATENCY_BUCKETS,
)
STORE_ERRORS = Counter(
    metric_name("rules", "store_errors", "total"),
    "Failed attempts to store alarm transitions (retried).",
)
ACTIVE_ALARMS = Gauge(
    metric_name("rules", "active_alarms"), "Alarms open or acknowledged on this replica."
)
DEVICES = Gauge(metric_name("rules", "devices"), "Devices with rule state on this replica.")
RELOADS = Counter(
    metric_name("rules", "reloads", "total"), "Rule file reloads, by outcome.", ["outcome"]
)
INPUT_PAUSES = Counter(
    metric_name("rules", "input_pauses", "total"),
    "Times the MQTT input stopped reading because too many transitions awaited the database.",
)
PENDING_TRANSITIONS = Gauge(
    metric_name("rules", "pending_transitions"),
    "Alarm transitions decided by the engine and not yet stored.",
)
