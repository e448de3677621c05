"""From one MQTT message to engine calls: topic, shard, decode or adapter, evaluate.

Kept apart from the MQTT client so that live service, tests and benchmarks share the exact
path a message takes. Every failure is local to its message: a contract error is counted
by reason, an unexpected error in a rule is logged and counted, and the next message is
evaluated as if nothing happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from services.core.contracts import ContractError, Decoded, Topic, decode, parse_topic
from services.protocols.adapters.base import Adapter
from services.rules.engine import Engine, Transition
from services.rules.metrics import RulesMetrics
from services.rules.sharding import ShardFilter

log = logging.getLogger("factory5g.rules")


class Ingress:
    def __init__(
        self,
        engine: Engine,
        shards: ShardFilter,
        root: str,
        adapters: Sequence[Adapter] = (),
        metrics: RulesMetrics | None = None,
    ) -> None:
        """`metrics`: the service's; without them (tests, benchmarks) a private set."""
        self.metrics = metrics if metrics is not None else RulesMetrics(CollectorRegistry())
        self.engine = engine
        self.shards = shards
        self.root = root
        self.prefix = root + "/"
        self.adapters = list(adapters)
        self._events = {
            s: self.metrics.events.labels(s) for s in ("inspection", "agv", "link", "telemetry")
        }

    def topic_filters(self) -> list[str]:
        """Native streams (non-shared: sharding is by device, see `sharding`) and adapters'."""
        filters = [f"{self.root}/+/+/+/+"]
        for adapter in self.adapters:
            filters.extend(adapter.topic_filters())
        return filters

    def handle(self, topic: str, payload: bytes, now: float) -> list[Transition]:
        try:
            for adapter in self.adapters:
                if adapter.matches(topic):
                    return self._adapter(adapter, topic, payload, now)
            if not topic.startswith(self.prefix) or topic.count("/") != self.prefix.count("/") + 3:
                return []  # not a device stream (an alarm, say): not ours to judge
            parsed = parse_topic(topic, self.root)
            if not self.shards.owns(parsed.project, parsed.device):
                self.metrics.not_owned.inc()
                self.engine.seen_elsewhere(parsed.project, parsed.kind, parsed.device, now)
                return []
            return self.evaluate(parsed, decode(parsed.stream, payload), now)
        except ContractError as exc:
            self.metrics.rejected.labels(exc.reason.value).inc()
            log.debug("skipped %s: %s", topic, exc)
            return []
        except Exception:  # a bug in one rule must not stop the others
            self.metrics.rejected.labels("internal").inc()
            log.exception("evaluating %s failed", topic)
            return []

    def evaluate(self, topic: Topic, decoded: Decoded, now: float) -> list[Transition]:
        start = time.perf_counter()
        out = self.engine.process(topic, decoded, now, received_at=now)
        self.metrics.evaluation.observe(time.perf_counter() - start)
        counter = self._events.get(topic.stream)
        if counter is not None:
            counter.inc(len(decoded.records))
        return out

    def _adapter(
        self, adapter: Adapter, topic: str, payload: bytes, now: float
    ) -> list[Transition]:
        result = adapter.decode(topic, payload, datetime.fromtimestamp(now, UTC))
        out: list[Transition] = []
        for item_topic, decoded in result.items:
            if self.shards.owns(item_topic.project, item_topic.device):
                out.extend(self.evaluate(item_topic, decoded, now))
            else:
                self.metrics.not_owned.inc()
                self.engine.seen_elsewhere(
                    item_topic.project, item_topic.kind, item_topic.device, now
                )
        for ev in result.events:
            if self.shards.owns(ev.project, ev.device):
                out.extend(
                    self.engine.connection(
                        ev.project, ev.kind, ev.device, ev.online, ev.at.timestamp()
                    )
                )
        return out
