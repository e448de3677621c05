"""Issue 14: a broker restart with the default settings loses nothing.

The same fault as tests/test_ingest_faults.py's restart test, but ingest runs with its code
defaults (no F5G_INGEST__SHARE_GROUP override) and reconnects only after the devices have
published 500 more messages: Mosquitto 2.0 does not restore shared subscriptions after a
restart, so with a `$share` default those were acknowledged and dropped.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from tests.test_ingest_faults import (
    SteadyPublisher,
    _assert_exactly_acked,
    _ingest,
    _settings,
    _wait_healthy,
)
from tests.test_ingest_helpers import ingest_env, wait_until

pytestmark = pytest.mark.slow


async def test_broker_restart_with_default_settings_loses_nothing(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    url = new_database()
    metrics_port = free_port()
    env = ingest_env(_settings(url, broker.port, metrics_port))
    env.pop("F5G_INGEST__SHARE_GROUP", None)  # the code default, whatever the caller's env
    pub = SteadyPublisher(broker.port, "restart-default")
    with _ingest(env, tmp_path / "ingest.log") as proc:
        await _wait_healthy(metrics_port, proc)
        pub.start()
        await asyncio.sleep(2)
        # Devices reconnect before ingest does (a backoff, a slow node): ingest is frozen
        # across the restart and for 3 s after it, while the publisher carries on.
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.to_thread(broker.restart)
            acked_before = len(pub.acked)

            async def published_meanwhile() -> bool:
                return len(pub.acked) >= acked_before + 500

            await wait_until(published_meanwhile, 60, 0.1)
        finally:
            proc.proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(2)
        await pub.finish()
        try:
            await _assert_exactly_acked(url, pub)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{proc.log()}") from None
        await _wait_healthy(metrics_port, proc)
        assert proc.terminate() == 0
