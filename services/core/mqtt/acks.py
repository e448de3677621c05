"""PUBACKs in receive order, whatever order the writers commit in.

MQTT v5 [MQTT-4.6.0-2]: a client acknowledges QoS 1 PUBLISH packets in the order it
received them. Ingest commits batches with several writers, so batches finish in any
order; a batch's acknowledgements are held here until every message received before it on
the same connection was acknowledged too, then released in one run.

Per packet id a state byte (free / in flight / done) and a queue of ids in receive order:
one list store and one append per message on the hot path.
"""

from __future__ import annotations

from collections import deque

from services.core.mqtt.codec import ProtocolError

_FREE, _IN_FLIGHT, _DONE = 0, 1, 2


class AckOrder:
    __slots__ = ("_order", "_state")

    def __init__(self) -> None:
        self._state = bytearray(65536)
        self._order: deque[int] = deque()

    def received(self, packet_id: int) -> int:
        """Note `packet_id` as received; returns the messages now held (one call per
        message on the hot path instead of a second for `held`)."""
        state = self._state
        if state[packet_id]:
            # The server must not reuse an id before our PUBACK [MQTT-2.2.1-3].
            raise ProtocolError(f"packet id {packet_id} reused before acknowledgement")
        state[packet_id] = _IN_FLIGHT
        order = self._order
        order.append(packet_id)
        return len(order)

    def complete(self, packet_ids: list[int]) -> list[int]:
        """Mark `packet_ids` done; return the ids that may now be acknowledged, in order."""
        state = self._state
        for m in packet_ids:
            if state[m] == _IN_FLIGHT:  # unknown ids (an older connection's) are ignored
                state[m] = _DONE
        order = self._order
        out: list[int] = []
        while order and state[order[0]] == _DONE:
            m = order.popleft()
            state[m] = _FREE
            out.append(m)
        return out

    @property
    def held(self) -> int:
        """Messages received and not yet acknowledged."""
        return len(self._order)
