"""The services' MQTT v5 client: one session component, the project's own codec.

Modules, each with one job: `codec` (packets to and from bytes), `stream` (the incoming
byte stream cut into packets, PUBLISH on a fast path), `acks` (PUBACKs in receive order),
`connection` (one network connection on an asyncio transport), `backoff` (reconnect
delays), `session` (connect, subscribe, reconnect; what the services use). The choice of
an own codec over paho-mqtt's manual-ack API is measured in docs/architecture.md.
"""

from services.core.mqtt.backoff import Backoff
from services.core.mqtt.codec import ConnectOptions, ProtocolError, Will
from services.core.mqtt.connection import Connection, MqttError, RefusedError
from services.core.mqtt.session import Endpoint, Session, SubscriptionRefusedError

__all__ = [
    "Backoff",
    "ConnectOptions",
    "Connection",
    "Endpoint",
    "MqttError",
    "ProtocolError",
    "RefusedError",
    "Session",
    "SubscriptionRefusedError",
    "Will",
]
