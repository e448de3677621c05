"""`factory5g simulate`: a few demonstration projects publishing over MQTT like real devices."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Final

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.core.runtime import mqtt_client_kwargs, run_async
from services.core.settings import Settings
from services.simulator.devices import (
    SIM_CYCLE_S,
    FiveGModule,
    Machine,
    SimDevice,
    VisionStation,
    pair_stations,
)
from services.simulator.floor import floor_fleet, register_floor
from services.simulator.protocols import (
    publish_sparkplug_line,
    publish_vda5050_fleet,
    sparkplug_will,
)

log = logging.getLogger("factory5g.simulate")

# Shape of each simulated Sparkplug B line: machines (devices) and metrics per machine.
LINE_MACHINES = 3
LINE_METRICS = 10


@dataclass(frozen=True)
class ProjectInfo:
    id: str
    name: str
    enterprise: str
    city: str
    scenario: str


SAMPLE_PROJECTS = (
    ProjectInfo(
        "qd-weld-vision",
        "Weld seam vision inspection",
        "Qingdao Appliance Works",
        "Qingdao",
        "industrial vision inspection",
    ),
    ProjectInfo(
        "sz-agv-logistics",
        "5G AGV intralogistics",
        "Shenzhen Electronics Assembly",
        "Shenzhen",
        "AGV logistics",
    ),
    ProjectInfo(
        "nb-lights-out",
        "Lights-out machining workshop",
        "Ningbo Precision Parts",
        "Ningbo",
        "lights-out workshop",
    ),
    ProjectInfo(
        "hf-cloud-robot",
        "Cloud-controlled robot cells",
        "Hefei Auto Components",
        "Hefei",
        "cloud robotics",
    ),
)


def project_infos(count: int) -> list[ProjectInfo]:
    infos = list(SAMPLE_PROJECTS[:count])
    for i in range(len(infos), count):
        infos.append(
            ProjectInfo(
                f"demo-{i:03d}",
                f"Demonstration project {i}",
                "Demo Co.",
                "Suzhou",
                "5G smart manufacturing",
            )
        )
    return infos


def build_fleet(settings: Settings) -> list[SimDevice]:
    sim = settings.simulator
    rng = random.Random(sim.seed)
    fleet: list[SimDevice] = []
    for info in project_infos(sim.projects):
        p = info.id
        for i in range(sim.stations):
            fleet.append(
                VisionStation(
                    p, "vision", f"st-{i + 1:02d}", "inspection", random.Random(rng.random())
                )
            )
        fleet += floor_fleet(p, sim.agvs, rng)
        for i in range(sim.modules):
            fleet.append(
                FiveGModule(
                    p,
                    "cpe",
                    f"cpe-{i + 1:02d}",
                    "link",
                    random.Random(rng.random()),
                )
            )
        for i in range(sim.machines):
            fleet.append(
                Machine(p, "machine", f"cnc-{i + 1:02d}", "telemetry", random.Random(rng.random()))
            )
    return fleet


def register_modules(settings: Settings, pairs: list[tuple[str, str, str]]) -> None:
    """Record in the registry which station each simulated module carries (`module_of`),
    so alarm root causes relate them. A database role without registry rights (the
    chart's simulator) only loses that relation: logged, and publishing goes on."""
    import sqlalchemy as sa

    from services.core.db import sync_url

    if not pairs:
        return
    engine = sa.create_engine(sync_url(settings.database.url))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO devices (project_id, device_id, kind, metadata) "
                    "VALUES (:p, :m, 'cpe', jsonb_build_object('module_of', CAST(:s AS text))) "
                    "ON CONFLICT (project_id, device_id) DO UPDATE SET metadata = "
                    "devices.metadata || jsonb_build_object('module_of', CAST(:s AS text))"
                ),
                [{"p": p, "m": m, "s": st} for p, m, st in pairs],
            )
    except sa.exc.SQLAlchemyError as exc:
        # The simulator's own role may not write the registry; `factory5g up` records the
        # pairs with the owner's rights before starting it.
        log.info("modules not related to their stations here (%s)", exc.__class__.__name__)
    finally:
        engine.dispose()


def register_projects(settings: Settings) -> None:
    """Give the simulated projects their names (ingest would otherwise create bare ones)
    and hall 1's extent and zones, so the floor map has its frame."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import insert

    from services.core.db import sync_url
    from services.core.tables import projects

    engine = sa.create_engine(sync_url(settings.database.url))
    try:
        with engine.begin() as conn:
            for info in project_infos(settings.simulator.projects):
                values = {
                    "id": info.id,
                    "name": info.name,
                    "enterprise": info.enterprise,
                    "city": info.city,
                    "scenario": info.scenario,
                }
                stmt = insert(projects).values(**values)
                conn.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=values))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not register project names (%s); continuing", exc.__class__.__name__)
    try:
        # The simulator's own role may not write floor maps (`factory5g up` registers
        # hall 1 with the owner's rights first); with a role that may, it does it here.
        with engine.begin() as conn:
            for info in project_infos(settings.simulator.projects):
                register_floor(conn, info.id)
    except sa.exc.SQLAlchemyError as exc:
        log.info("floor maps not registered by the simulator (%s)", exc.__class__.__name__)
    finally:
        engine.dispose()


# A round-the-clock plan for the simulated plants, so `make run` shows OEE at once; an
# admin's own settings (PUT .../oee/settings) are never overwritten.
SIM_OEE_SETTINGS: Final = {
    "timezone": "Asia/Shanghai",
    "shifts": [
        {"name": "A", "start": "06:00", "end": "14:00", "days": [1, 2, 3, 4, 5, 6, 7]},
        {"name": "B", "start": "14:00", "end": "22:00", "days": [1, 2, 3, 4, 5, 6, 7]},
        {"name": "C", "start": "22:00", "end": "06:00", "days": [1, 2, 3, 4, 5, 6, 7]},
    ],
    "ideal_cycle_s": {"default": SIM_CYCLE_S, "lines": {}, "machines": {}},
    "reasons": {"1": "Tool break", "2": "No material", "3": "Jam", "4": "Quality check",
                "5": "Operator absent"},
}  # fmt: skip


def register_oee_settings(settings: Settings) -> None:
    """Give each simulated project shifts and an ideal cycle time unless it has its own."""
    import sqlalchemy as sa

    from services.core.db import sync_url

    engine = sa.create_engine(sync_url(settings.database.url))
    try:
        with engine.begin() as conn:
            for info in project_infos(settings.simulator.projects):
                conn.execute(
                    sa.text(
                        "INSERT INTO oee_settings (project_id, settings, updated_by) "
                        "VALUES (:p, CAST(:s AS jsonb), 'simulator') "
                        "ON CONFLICT (project_id) DO NOTHING"
                    ),
                    {"p": info.id, "s": orjson.dumps(SIM_OEE_SETTINGS).decode()},
                )
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not set the OEE plan (%s); continuing", exc.__class__.__name__)
    finally:
        engine.dispose()


async def publish_fleet(settings: Settings, duration: float | None) -> int:
    """Publish the native fleet and the protocol publishers side by side; returns the
    messages sent by all of them.

    Each protocol publisher has its own MQTT client: a Sparkplug edge node needs its
    NDEATH as the will of its own connection, and a slow protocol must not hold up the
    native fleet's publishing loop.
    """
    sim = settings.simulator
    fleet = build_fleet(settings)
    register_modules(settings, pair_stations(fleet))
    publishers = [
        _publish_native(settings, fleet, duration),
        _answer_native(settings, duration),
    ]
    if sim.vda5050_agvs:
        publishers.append(_publish_vda5050(settings, duration))
    groups = [info.id for info in project_infos(sim.projects)]
    for line in range(sim.sparkplug_lines):
        group, node = groups[line % len(groups)], f"line{line // len(groups) + 1}"
        publishers.append(_publish_sparkplug(settings, group, node, duration))
    return sum(await asyncio.gather(*publishers))


async def _publish_native(
    settings: Settings, fleet: list[SimDevice], duration: float | None
) -> int:
    """Publish every device at `rate_hz`, spread evenly in time; returns messages sent."""
    if not fleet:
        return 0
    sim = settings.simulator
    tick = 1.0 / sim.rate_hz
    sent = 0
    start = time.monotonic()
    async with aiomqtt.Client(**mqtt_client_kwargs(settings, "factory5g-simulator")) as client:
        log.info(
            "simulating %d devices in %d projects at %.1f msg/s each",
            len(fleet),
            sim.projects,
            sim.rate_hz,
        )
        next_at = start
        while duration is None or time.monotonic() - start < duration:
            for dev in fleet:
                payload = orjson.dumps(dev.next_record(sim.fault_probability))
                await client.publish(dev.topic, payload, qos=1)
                sent += 1
            next_at += tick
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = time.monotonic()
    return sent


async def _answer_native(settings: Settings, duration: float | None) -> int:
    """The native fleet's answers to commands: every command on a simulated device's
    `cmd` topic is accepted and completed at once, on its MQTT v5 response topic with its
    correlation data (docs/device-guide.md). Returns the replies sent."""
    sent = 0
    kwargs = mqtt_client_kwargs(
        settings, "factory5g-simulator-commands", protocol=aiomqtt.ProtocolVersion.V5
    )
    root = settings.mqtt.topic_root

    async def serve(client: aiomqtt.Client) -> None:
        nonlocal sent
        async for msg in client.messages:
            props = msg.properties
            corr = getattr(props, "CorrelationData", None)
            to = getattr(props, "ResponseTopic", None)
            if not corr or not to:
                continue
            for status in ("accepted", "completed"):
                reply = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                reply.CorrelationData = corr
                body = orjson.dumps({"status": status, "message": f"simulated {status}"})
                await client.publish(to, body, qos=1, properties=reply)
                sent += 1

    async with aiomqtt.Client(**kwargs) as client:
        await client.subscribe(f"{root}/+/+/+/cmd/#", qos=1)
        task = asyncio.create_task(serve(client))
        try:
            if duration is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(duration)
        finally:
            task.cancel()
    return sent


async def _publish_vda5050(settings: Settings, duration: float | None) -> int:
    sim = settings.simulator
    kwargs = mqtt_client_kwargs(settings, "factory5g-simulator-vda5050")
    async with aiomqtt.Client(**kwargs) as client:
        log.info("simulating %d VDA 5050 AGVs", sim.vda5050_agvs)
        return await publish_vda5050_fleet(
            client,
            agvs=sim.vda5050_agvs,
            rate_hz=sim.rate_hz,
            duration=duration,
            interface=settings.ingest.vda5050_interface,
            seed=sim.seed,
        )


async def _publish_sparkplug(
    settings: Settings, group: str, node: str, duration: float | None
) -> int:
    kwargs = mqtt_client_kwargs(
        settings, f"factory5g-simulator-spb-{group}-{node}", will=sparkplug_will(group, node)
    )
    async with aiomqtt.Client(**kwargs) as client:
        log.info("simulating Sparkplug B edge node %s/%s", group, node)
        return await publish_sparkplug_line(
            client,
            group=group,
            node=node,
            machines=LINE_MACHINES,
            metrics_per_machine=LINE_METRICS,
            rate_hz=settings.simulator.rate_hz,
            duration=duration,
        )


def run(settings: Settings, duration: float | None = None) -> None:
    register_projects(settings)
    register_oee_settings(settings)
    sent = run_async(publish_fleet(settings, duration))
    log.info("simulator stopped after %d messages", sent)
