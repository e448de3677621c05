"""Which protocol adapters the rules service decodes with, and why they stay passive.

Rules reuse ingest's adapters (`load_adapters`) so that a Sparkplug or VDA 5050 device is
judged by the same rules as a native one. Two differences from ingest:

* The native adapter is left out: `Ingress` decodes native topics itself, on a shorter
  path, and also needs the topic to filter by shard first.
* Rules are a passive listener. The Sparkplug adapter may ask for commands (rebirth
  requests) in its results and offers a host STATE will and birth; only the primary host,
  ingest, may send those. `Ingress` never publishes `AdapterResult.commands`, and the
  rules input never asks adapters for `will` or `on_connect`, so nothing reaches devices.
* Their counters (seq gaps, rebirth requests, headerId gaps) are not exported by rules:
  the adapters get no registry here, so they count privately. Ingest, which acts on those
  events, exports them; a copy on the rules job would double every alert.
"""

from __future__ import annotations

from services.core.settings import Settings
from services.protocols.adapters.base import Adapter
from services.protocols.adapters.native import NativeAdapter
from services.protocols.adapters.registry import load_adapters


def passive_adapters(settings: Settings) -> list[Adapter]:
    return [a for a in load_adapters(settings) if not isinstance(a, NativeAdapter)]
