"""The one place that lists the protocol adapters an ingest process runs.

The native JSON adapter is always present. Optional adapters live in their own modules
and are loaded when the module exists; each such module exposes

    def create_adapter(settings: Settings, registry: CollectorRegistry | None) -> Adapter

so that adding a protocol means adding one module and one line to `OPTIONAL` below.
`registry` is the service's metrics registry the adapter registers its counters on; None
(the rules service's passive copies) means counters nobody exports.
The native adapter goes last: adapters are asked in order whether they match a topic,
and the native one claims everything under the native root.
"""

from __future__ import annotations

import importlib
import logging
from typing import Final

from prometheus_client import CollectorRegistry

from services.core.settings import Settings
from services.protocols.adapters.base import Adapter
from services.protocols.adapters.native import NativeAdapter

log = logging.getLogger(__name__)

OPTIONAL: Final = (
    "services.protocols.adapters.sparkplug",
    "services.protocols.adapters.vda5050",
)


def load_adapters(
    settings: Settings,
    optional: tuple[str, ...] = OPTIONAL,
    *,
    registry: CollectorRegistry | None = None,
) -> list[Adapter]:
    """Every available adapter, configured from `settings`, native last."""
    adapters: list[Adapter] = []
    for module_name in optional:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise  # the module exists but one of its own imports is missing
            continue
        factory = getattr(module, "create_adapter", None)
        if factory is None:
            log.warning("%s has no create_adapter(settings, registry); not loaded", module_name)
            continue
        adapters.append(factory(settings, registry))
    ingest = settings.ingest
    # Native devices are sharded by hash like the stateful protocols when no share group
    # splits them (the lossless topology on Mosquitto, docs/operations.md); with a group
    # the broker already deals each message to one replica.
    sharded = not ingest.share_group
    adapters.append(
        NativeAdapter(
            settings.mqtt.topic_root,
            ingest.shard_index if sharded else 0,
            ingest.shard_count if sharded else 1,
        )
    )
    return adapters
