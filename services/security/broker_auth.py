"""Broker accounts: who may connect to Mosquitto, with which client id, and which topics.

Mosquitto's password and ACL files cannot bind a client id to an account (any account
could connect as `factory5g-ingest-0` and kick ingest off or steal its persistent
session), and they grant every SUBSCRIBE, `$share/...` included, checking read rights
only per delivered message (so a device that joined ingest's shared group made the
broker drop ingest's share of the traffic). The broker therefore runs Mosquitto's
dynamic-security plugin, which refuses both outright:

- every device account has a fixed client id, its user name `dev/{project}/{kind}/{device}`:
  a CONNECT with any other id is refused (CONNACK 0x87), so a device can neither use a
  service's client id nor another device's;
- a device may publish under `f5g/v1/{project}/{kind}/{device}/#` and subscribe only to
  its own `.../cmd/#`; any other filter, `$share/...` included, gets SUBACK 0x87;
- service accounts (ingest, rules, api, simulator) have no fixed client id, so several
  replicas of a service each use their own; the `api` account may publish exactly the
  operator alarm transitions `f5g/v1/{project}/alarms/{kind}/{device}/{rule}`.

`accounts.json` in `directory` is the single source of truth, changed under a file lock
with atomic writes (parallel provisioning keeps every account). The broker loads the
plugin's configuration rendered from it at start, and while it runs each change is also
applied live through `$CONTROL/dynamic-security/v1` with the `factory5g-admin` account,
so a new device can connect at once and a revoked one is disconnected at once, with no
restart. `BrokerAuth` is the service layer for this: the CLI uses it, and so can the API.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from services.core.contracts import is_valid_id
from services.security.passwords import new_secret

# What each platform service may do: read = receive + subscribe (also through any
# `$share` group, for several replicas), write = publish. The simulator stands in for many
# devices at once, so it may publish anywhere under the device trees; real devices get
# per-device roles.
SERVICE_ACLS: dict[str, tuple[tuple[str, str], ...]] = {
    "ingest": (
        ("read", "f5g/v1/#"),
        ("read", "spBv1.0/#"),
        ("read", "uagv/#"),
        ("write", "spBv1.0/+/NCMD/#"),
        ("write", "spBv1.0/STATE/#"),
    ),
    "rules": (
        ("read", "f5g/v1/#"),
        ("read", "spBv1.0/#"),  # the protocol adapters feed the rules too (passively)
        ("read", "uagv/#"),
        ("write", "f5g/v1/+/alarms/#"),
    ),
    # The API announces operator acknowledge/clear on the rules' alarm topic
    # (services/protocols/alarms.py alarm_topic), the commands it queues on theirs
    # (services/protocols/commands.py announce_topic), and nothing else.
    "api": (
        ("read", "f5g/v1/#"),
        ("write", "f5g/v1/+/alarms/+/+/+"),
        ("write", "f5g/v1/+/commands/+/+/+"),
    ),
    # The commander sends commands (native, Sparkplug B, VDA 5050), reads the answers and
    # announces each command's transitions (services/protocols/commands.py).
    "commands": (
        ("write", "f5g/v1/+/+/+/cmd/#"),
        ("read", "f5g/v1/+/+/+/reply"),
        ("readwrite", "f5g/v1/+/commands/+/+/+"),  # the API's `queued` wakes it
        ("write", "spBv1.0/+/NCMD/#"),
        ("write", "spBv1.0/+/DCMD/#"),
        ("read", "spBv1.0/+/NBIRTH/#"),
        ("read", "spBv1.0/+/DBIRTH/#"),
        ("read", "spBv1.0/+/NDATA/#"),
        ("read", "spBv1.0/+/DDATA/#"),
        ("write", "uagv/+/+/+/instantActions"),
        ("write", "uagv/+/+/+/order"),
        ("read", "uagv/+/+/+/state"),
    ),
    "simulator": (
        ("readwrite", "f5g/v1/#"),
        ("readwrite", "spBv1.0/#"),
        ("readwrite", "uagv/#"),
    ),
}
ADMIN = "factory5g-admin"
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"

# Names a project, kind or device may not take: the levels the platform's own topics use
# (`f5g/v1/{project}/alarms/...` is the rules' and the API's, a kind `alarms` would let a
# device publish forged alarm transitions there) and the stream-level words of the
# device contract, so that no device subtree overlaps another topic family.
RESERVED_IDS = frozenset(
    {"alarms", "commands", "cmd", "reply", "status", "$SYS", "$share", "$CONTROL"}
)

# Mosquitto's dynamic-security hash: PBKDF2-HMAC-SHA512, base64 salt and digest. The
# secrets are 192-bit random tokens, so the iteration count is not what protects them.
_PBKDF2_ITERATIONS = 101


class ProvisionError(ValueError):
    """A device name that cannot be provisioned, or an unknown device to revoke."""


class BrokerUnavailableError(RuntimeError):
    """No broker serving this account directory could be reached; the change takes
    effect when the broker next starts (it loads the accounts from the registry)."""


class BrokerRefusedError(RuntimeError):
    """The running broker refused a dynamic-security command."""


@dataclass(frozen=True)
class DeviceAccount:
    project: str
    kind: str
    device: str

    @property
    def username(self) -> str:
        # "/" never occurs in ids, so the name is unambiguous.
        return f"dev/{self.project}/{self.kind}/{self.device}"

    @property
    def client_id(self) -> str:
        """The only client id the broker accepts for this account."""
        return self.username

    @property
    def subtree(self) -> str:
        return f"f5g/v1/{self.project}/{self.kind}/{self.device}"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    # True when the running broker already has the change (else: at its next start).
    live: bool = False


@dataclass(frozen=True)
class Revocation:
    username: str
    live: bool  # the running broker dropped the account (and its sessions) already


def service_acls(name: str) -> list[dict[str, Any]]:
    """Dynamic-security ACL entries of a service role."""
    acls: list[dict[str, Any]] = []
    for access, topic in SERVICE_ACLS[name]:
        if access in ("read", "readwrite"):
            acls.append(_acl("publishClientReceive", topic))
            acls.append(_acl("subscribePattern", topic))
            acls.append(_acl("subscribePattern", f"$share/+/{topic}"))
        if access in ("write", "readwrite"):
            acls.append(_acl("publishClientSend", topic))
    return acls


def device_acls(account: DeviceAccount) -> list[dict[str, Any]]:
    """Publish under its own subtree, receive and subscribe to its own commands only."""
    cmd = f"{account.subtree}/cmd/#"
    return [
        _acl("publishClientSend", f"{account.subtree}/#"),
        _acl("publishClientReceive", cmd),
        _acl("subscribePattern", cmd),
    ]


def _acl(acltype: str, topic: str) -> dict[str, Any]:
    return {"acltype": acltype, "topic": topic, "priority": 0, "allow": True}


def _admin_acls() -> list[dict[str, Any]]:
    topic = "$CONTROL/dynamic-security/#"
    return [
        _acl("publishClientSend", topic),
        _acl("publishClientReceive", topic),
        _acl("subscribePattern", topic),
    ]


def dynsec_hash(password: str) -> dict[str, Any]:
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": _PBKDF2_ITERATIONS,
    }


def check_device_name(project: str, kind: str, device: str) -> DeviceAccount:
    for label, value in (("project", project), ("kind", kind), ("device", device)):
        if not is_valid_id(value):
            raise ProvisionError(f"{label} {value!r} is not a valid id")
        if value.lower() in {r.lower() for r in RESERVED_IDS}:
            raise ProvisionError(
                f"{label} {value!r} is reserved (the platform's own topics use it): "
                f"choose another name; reserved: {', '.join(sorted(RESERVED_IDS))}"
            )
    return DeviceAccount(project, kind, device)


class BrokerAuth:
    """Broker accounts kept in `directory` (mode 0600 secrets) and applied to the broker."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def registry_file(self) -> Path:
        return self.directory / "accounts.json"

    @property
    def broker_config_file(self) -> Path:
        """The dynamic-security plugin's configuration (it rewrites it on live changes)."""
        return self.directory / "dynamic-security.json"

    @property
    def endpoint_file(self) -> Path:
        """Where the broker serving these accounts listens (written by Mosquitto.start)."""
        return self.directory / "broker.json"

    @property
    def lock_file(self) -> Path:
        return self.directory / ".lock"

    # ----------------------------------------------------------------- registry

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The registry, read and written back under an exclusive lock."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.lock_file.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = self._load()
                before = json.dumps(data, sort_keys=True)
                yield data
                if json.dumps(data, sort_keys=True) != before:
                    _write_private(self.registry_file, json.dumps(data, indent=2, sort_keys=True))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = {
            "services": {},
            "devices": {},
            "admin": {},
            "accounts": {},  # credentials of the other kinds (see `Account`)
        }
        if self.registry_file.exists():
            data.update(json.loads(self.registry_file.read_text()))
        return data

    @staticmethod
    def _ensure_admin(data: dict[str, dict[str, Any]]) -> str:
        if not data["admin"].get("password"):
            data["admin"] = {"password": new_secret()}
        return str(data["admin"]["password"])

    def ensure_files(self) -> None:
        """The registry with its admin account, and the broker configuration rendered from
        it, so the broker can start even before any account exists."""
        with self._locked() as data:
            self._ensure_admin(data)
            self._render(data)

    def render(self) -> None:
        """Write the plugin configuration from the registry (before the broker starts)."""
        self.ensure_files()

    def _render(self, data: dict[str, dict[str, Any]]) -> None:
        clients: list[dict[str, Any]] = [
            {
                "username": ADMIN,
                "textname": "factory5g account administration",
                **dynsec_hash(str(data["admin"]["password"])),
                "roles": [{"rolename": ADMIN}],
            }
        ]
        roles: list[dict[str, Any]] = [{"rolename": ADMIN, "acls": _admin_acls()}]
        for name, entry in sorted(data["services"].items()):
            clients.append(
                {
                    "username": name,
                    **dynsec_hash(str(entry["password"])),
                    "roles": [{"rolename": f"service/{name}"}],
                }
            )
            roles.append({"rolename": f"service/{name}", "acls": service_acls(name)})
        for username, entry in sorted(data["devices"].items()):
            stored = entry.get("hash")
            if not isinstance(stored, dict):
                continue  # a password-file hash from an older release: provision again
            account = DeviceAccount(str(entry["project"]), str(entry["kind"]), str(entry["device"]))
            clients.append(
                {
                    "username": username,
                    "clientid": account.client_id,
                    **stored,
                    "roles": [{"rolename": username}],
                }
            )
            roles.append({"rolename": username, "acls": device_acls(account)})
        for username, entry in sorted(data.get("accounts", {}).items()):
            other = account_from(entry)
            clients.append(
                {
                    "username": username,
                    "clientid": other.client_id,
                    **entry["hash"],
                    "roles": [{"rolename": username}],
                }
            )
            roles.append({"rolename": username, "acls": other.acls()})
        config = {
            # Deny by default; only the roles above grant anything (anonymous is off).
            "defaultACLAccess": {
                "publishClientSend": False,
                "publishClientReceive": False,
                "subscribe": False,
                "unsubscribe": True,
            },
            "clients": clients,
            "groups": [],
            "roles": roles,
        }
        _write_private(self.broker_config_file, json.dumps(config, indent=2))

    # ----------------------------------------------------------------- accounts

    def service_credentials(self, name: str) -> Credentials:
        """The service's password, created on first use and kept in the registry."""
        if name not in SERVICE_ACLS:
            raise ProvisionError(f"unknown service account {name!r}")
        with self._locked() as data:
            entry = data["services"].get(name)
            if isinstance(entry, dict) and entry.get("password"):
                return Credentials(name, str(entry["password"]))
            password = new_secret()
            data["services"][name] = {"password": password}
            self._ensure_admin(data)
            live = self._apply_quietly(data, _service_commands(name, password, True))
            return Credentials(name, password, live)

    def provision_device(self, project: str, kind: str, device: str) -> Credentials:
        """Create (or rotate) a device's password; returns the only copy of it.

        Applied to the running broker at once when one serves this directory (a rotation
        disconnects the device's sessions that used the old password)."""
        account = check_device_name(project, kind, device)
        password = new_secret()
        with self._locked() as data:
            data["devices"][account.username] = {**asdict(account), "hash": dynsec_hash(password)}
            self._ensure_admin(data)
            live = self._apply_quietly(data, _device_commands(account, password))
        return Credentials(account.username, password, live)

    def revoke_device(self, project: str, kind: str, device: str) -> Revocation:
        """Remove a device's account; a running broker disconnects its sessions at once."""
        username = DeviceAccount(project, kind, device).username
        with self._locked() as data:
            if data["devices"].pop(username, None) is None:
                raise ProvisionError(f"device {username!r} is not provisioned")
            self._ensure_admin(data)
            live = self._apply_quietly(
                data,
                [
                    {"command": "deleteClient", "username": username},
                    {"command": "deleteRole", "rolename": username},
                ],
            )
        return Revocation(username, live)

    def provision(self, account: Account) -> Credentials:
        """Create (or rotate) an account of any kind; returns the only copy of its password.

        A rotation deletes the account on the running broker first, so sessions opened with
        the old password are disconnected and the old password is refused from then on."""
        if isinstance(account, DeviceAccount):
            return self.provision_device(account.project, account.kind, account.device)
        password = new_secret()
        with self._locked() as data:
            data.setdefault("accounts", {})[account.username] = {
                **account.describe(),
                "hash": dynsec_hash(password),
            }
            self._ensure_admin(data)
            live = self._apply_quietly(data, account_commands(account, password))
        return Credentials(account.username, password, live)

    def revoke(self, username: str, missing_ok: bool = False) -> Revocation:
        """Remove an account of any kind; a running broker disconnects its sessions at once.
        With `missing_ok` an account the registry does not know is still removed from the
        running broker (it may have been taken out of the registry by hand)."""
        with self._locked() as data:
            found = data["devices"].pop(username, None)
            if found is None:
                found = data.setdefault("accounts", {}).pop(username, None)
            if found is None and not missing_ok:
                raise ProvisionError(f"account {username!r} is not provisioned")
            self._ensure_admin(data)
            live = self._apply_quietly(data, revoke_commands(username))
        return Revocation(username, live)

    def devices(self) -> list[DeviceAccount]:
        return [
            DeviceAccount(str(e["project"]), str(e["kind"]), str(e["device"]))
            for e in self._load()["devices"].values()
        ]

    # ----------------------------------------------------------------- live broker

    def _apply_quietly(
        self, data: dict[str, dict[str, Any]], commands: list[dict[str, Any]]
    ) -> bool:
        """Apply to the running broker; False when none runs (the next start loads the
        registry). Called under the lock, so the broker sees changes in registry order."""
        self._render(data)
        try:
            self._control(str(data["admin"]["password"]), commands)
        except BrokerUnavailableError:
            return False
        return True

    def sync_services(self) -> bool:
        """Re-apply every service account and role to the running broker (after a
        restart-free `factory5g up` found the broker already running)."""
        with self._locked() as data:
            commands: list[dict[str, Any]] = []
            for name, entry in sorted(data["services"].items()):
                commands += _service_commands(name, str(entry["password"]), False)
            self._ensure_admin(data)
            return self._apply_quietly(data, commands) if commands else False

    def _control(self, admin_password: str, commands: list[dict[str, Any]]) -> None:
        """Send dynamic-security commands and check every response."""
        try:
            endpoint = json.loads(self.endpoint_file.read_text())
        except (OSError, ValueError):
            raise BrokerUnavailableError("no broker serves these accounts") from None
        responses = _control_exchange(
            str(endpoint["host"]), int(endpoint["port"]), admin_password, commands
        )
        for cmd, resp in zip(commands, responses, strict=True):
            error = resp.get("error")
            if error and not _tolerated(cmd["command"], str(error)):
                raise BrokerRefusedError(f"broker refused {cmd['command']}: {error}")


def _service_commands(name: str, password: str, set_password: bool) -> list[dict[str, Any]]:
    """Create the service's role and account, or bring the role's ACLs up to date. Only a
    new account sets the password (dynamic security disconnects a client whose password
    is set, and running services must not be kicked by a sync)."""
    role = f"service/{name}"
    commands: list[dict[str, Any]] = [
        {"command": "createRole", "rolename": role},
        {"command": "modifyRole", "rolename": role, "acls": service_acls(name)},
        {
            "command": "createClient",
            "username": name,
            "password": password,
            "roles": [{"rolename": role}],
        },
    ]
    if set_password:
        commands.append({"command": "setClientPassword", "username": name, "password": password})
    return commands


def _device_commands(account: DeviceAccount, password: str) -> list[dict[str, Any]]:
    # Delete first: a rotation must disconnect sessions opened with the old password.
    name = account.username
    return [
        {"command": "deleteClient", "username": name},
        {"command": "deleteRole", "rolename": name},
        {"command": "createRole", "rolename": name, "acls": device_acls(account)},
        {
            "command": "createClient",
            "username": name,
            "password": password,
            "clientid": account.client_id,
            "roles": [{"rolename": name}],
        },
    ]


def _tolerated(command: str, error: str) -> bool:
    """Idempotence: deleting what is gone, creating what exists."""
    e = error.lower()
    if command.startswith("delete") and "not found" in e:
        return True
    return command.startswith("create") and "already exists" in e


def _control_exchange(
    host: str,
    port: int,
    admin_password: str,
    commands: list[dict[str, Any]],
    ca_file: str | None = None,
) -> list[dict[str, Any]]:
    """One request on `$CONTROL/dynamic-security/v1`, its response list (in order)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    connected = threading.Event()
    subscribed = threading.Event()
    answered = threading.Event()
    reply: list[dict[str, Any]] = []
    refused: list[str] = []
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"factory5g-admin-{uuid.uuid4().hex[:12]}",
        protocol=paho.MQTTv5,
    )
    client.username_pw_set(ADMIN, admin_password)
    if ca_file is not None:
        client.tls_set(ca_certs=ca_file)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        connected.set()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        reply.extend(json.loads(msg.payload).get("responses", []))
        answered.set()

    client.on_connect = on_connect
    client.on_subscribe = lambda *_a: subscribed.set()
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise BrokerUnavailableError(f"broker at {host}:{port} unreachable: {exc}") from None
    client.loop_start()
    try:
        if not connected.wait(10) or refused:
            raise BrokerUnavailableError(f"broker at {host}:{port} refused the admin: {refused}")
        client.subscribe(f"{CONTROL_TOPIC}/response", qos=1)
        if not subscribed.wait(10):
            raise BrokerUnavailableError("no SUBACK for the control response topic")
        client.publish(CONTROL_TOPIC, json.dumps({"commands": commands}), qos=1)
        if not answered.wait(20):
            raise BrokerRefusedError("no response to dynamic-security commands")
        return reply
    finally:
        client.disconnect()
        client.loop_stop()


def write_endpoint(auth: BrokerAuth, host: str, port: int) -> None:
    """Record where the broker serving `auth`'s accounts listens (see Mosquitto.start)."""
    _write_private(auth.endpoint_file, json.dumps({"host": host, "port": port}))


def _write_private(path: Path, text: str) -> None:
    """Atomic replace, so the broker never reads a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        _chown_like_dir(Path(tmp), path.parent)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _chown_like_dir(path: Path, directory: Path) -> None:
    """The broker runs as the directory's owner (the service user when started by root)."""
    st = directory.stat()
    if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, 0):
        os.chown(path, st.st_uid, st.st_gid)


# ----------------------------------------------------------------- credential kinds
#
# Besides native devices the platform speaks Sparkplug B and VDA 5050, and andon boards
# read a project's alarms. Each kind below is an account with a fixed client id (its user
# name) and a role that grants exactly its topics; everything else stays denied by default
# (publishes refused with PUBACK 0x87 and the connection closed, subscriptions with SUBACK
# 0x87), as for native devices.

SPARKPLUG_NAMESPACE = "spBv1.0"
# What an edge node publishes about itself and its devices (its NDEATH is its will).
SPARKPLUG_NODE_MESSAGES = ("NBIRTH", "NDEATH", "NDATA", "DBIRTH", "DDEATH", "DDATA")
# VDA 5050 2.x topics by direction, seen from the AGV.
VDA5050_PUBLISHES = ("state", "connection", "factsheet", "visualization")
VDA5050_RECEIVES = ("order", "instantActions")


def _check_ids(**values: str) -> None:
    for label, value in values.items():
        if not is_valid_id(value):
            raise ProvisionError(f"{label} {value!r} is not a valid id")
        if value.lower() in {r.lower() for r in RESERVED_IDS}:
            raise ProvisionError(f"{label} {value!r} is reserved (the platform's topics use it)")


@dataclass(frozen=True)
class SparkplugNodeAccount:
    """A Sparkplug B edge node: publishes its node and device messages under
    `spBv1.0/{group}/{type}/{node}[/{device}]`, receives its NCMD/DCMD and the primary
    host's STATE. Its project is its group id (as ingest maps it)."""

    group: str
    node: str
    type: str = "sparkplug"

    @property
    def username(self) -> str:
        return f"spb/{self.group}/{self.node}"

    @property
    def client_id(self) -> str:
        return self.username

    @property
    def project(self) -> str:
        return self.group

    def acls(self) -> list[dict[str, Any]]:
        base = f"{SPARKPLUG_NAMESPACE}/{self.group}"
        acls = [
            _acl("publishClientSend", f"{base}/{m}/{self.node}/#") for m in SPARKPLUG_NODE_MESSAGES
        ]
        for topic in (
            f"{base}/NCMD/{self.node}/#",
            f"{base}/DCMD/{self.node}/#",
            f"{SPARKPLUG_NAMESPACE}/STATE/+",
        ):
            acls += [_acl("publishClientReceive", topic), _acl("subscribePattern", topic)]
        return acls

    def describe(self) -> dict[str, str]:
        return {"type": self.type, "group": self.group, "node": self.node}


@dataclass(frozen=True)
class AgvAccount:
    """A VDA 5050 AGV: publishes `{interface}/{version}/{manufacturer}/{serial}/` state,
    connection, factsheet and visualization; receives its order and instantActions."""

    interface: str
    version: str
    manufacturer: str
    serial: str
    type: str = "vda5050"

    @property
    def username(self) -> str:
        return f"agv/{self.interface}/{self.manufacturer}/{self.serial}"

    @property
    def client_id(self) -> str:
        return self.username

    @property
    def base(self) -> str:
        return f"{self.interface}/{self.version}/{self.manufacturer}/{self.serial}"

    def acls(self) -> list[dict[str, Any]]:
        acls = [_acl("publishClientSend", f"{self.base}/{t}") for t in VDA5050_PUBLISHES]
        for t in VDA5050_RECEIVES:
            topic = f"{self.base}/{t}"
            acls += [_acl("publishClientReceive", topic), _acl("subscribePattern", topic)]
        return acls

    def describe(self) -> dict[str, str]:
        return {
            "type": self.type,
            "interface": self.interface,
            "version": self.version,
            "manufacturer": self.manufacturer,
            "serial": self.serial,
        }


@dataclass(frozen=True)
class AlarmReaderAccount:
    """A read-only subscriber of one project's alarm transitions (an andon board): it may
    subscribe to and receive `f5g/v1/{project}/alarms/#` and publish nothing."""

    project: str
    name: str
    type: str = "alarms"

    @property
    def username(self) -> str:
        return f"andon/{self.project}/{self.name}"

    @property
    def client_id(self) -> str:
        return self.username

    def acls(self) -> list[dict[str, Any]]:
        topic = f"f5g/v1/{self.project}/alarms/#"
        return [_acl("publishClientReceive", topic), _acl("subscribePattern", topic)]

    def describe(self) -> dict[str, str]:
        return {"type": self.type, "project": self.project, "name": self.name}


Account = DeviceAccount | SparkplugNodeAccount | AgvAccount | AlarmReaderAccount


def sparkplug_node(group: str, node: str) -> SparkplugNodeAccount:
    _check_ids(group=group, node=node)
    return SparkplugNodeAccount(group, node)


def agv(interface: str, version: str, manufacturer: str, serial: str) -> AgvAccount:
    _check_ids(interface=interface, version=version, manufacturer=manufacturer, serial=serial)
    return AgvAccount(interface, version, manufacturer, serial)


def alarm_reader(project: str, name: str) -> AlarmReaderAccount:
    _check_ids(project=project, name=name)
    return AlarmReaderAccount(project, name)


def account_from(entry: dict[str, Any]) -> SparkplugNodeAccount | AgvAccount | AlarmReaderAccount:
    """The account a registry entry (`describe()` plus its hash) stands for."""
    kind = entry.get("type")
    if kind == "sparkplug":
        return SparkplugNodeAccount(str(entry["group"]), str(entry["node"]))
    if kind == "vda5050":
        return AgvAccount(
            str(entry["interface"]),
            str(entry["version"]),
            str(entry["manufacturer"]),
            str(entry["serial"]),
        )
    if kind == "alarms":
        return AlarmReaderAccount(str(entry["project"]), str(entry["name"]))
    raise ProvisionError(f"unknown credential type {kind!r}")


def account_acls(account: Account) -> list[dict[str, Any]]:
    return device_acls(account) if isinstance(account, DeviceAccount) else account.acls()


def account_commands(account: Account, password: str) -> list[dict[str, Any]]:
    """Dynamic-security commands that (re)create `account` with `password`; deleting first
    disconnects sessions that used an older password."""
    name = account.username
    return [
        *revoke_commands(name),
        {"command": "createRole", "rolename": name, "acls": account_acls(account)},
        {
            "command": "createClient",
            "username": name,
            "password": password,
            "clientid": account.client_id,
            "roles": [{"rolename": name}],
        },
    ]


def revoke_commands(username: str) -> list[dict[str, Any]]:
    return [
        {"command": "deleteClient", "username": username},
        {"command": "deleteRole", "rolename": username},
    ]


class BrokerControl:
    """Accounts applied through `$CONTROL` alone, for a broker with no shared directory
    (in Kubernetes the broker runs apart from the API): the broker's dynamic-security
    file, which the plugin rewrites on every change, is the persistent copy. With no broker
    reachable a change fails (`BrokerUnavailableError`) instead of waiting for a start."""

    def __init__(
        self, host: str, port: int, admin_password: str, ca_file: str | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.admin_password = admin_password
        self.ca_file = ca_file

    def _apply(self, commands: list[dict[str, Any]]) -> None:
        responses = _control_exchange(
            self.host, self.port, self.admin_password, commands, ca_file=self.ca_file
        )
        for cmd, resp in zip(commands, responses, strict=True):
            error = resp.get("error")
            if error and not _tolerated(cmd["command"], str(error)):
                raise BrokerRefusedError(f"broker refused {cmd['command']}: {error}")

    def provision(self, account: Account) -> Credentials:
        password = new_secret()
        self._apply(account_commands(account, password))
        return Credentials(account.username, password, True)

    def revoke(self, username: str) -> Revocation:
        self._apply(revoke_commands(username))
        return Revocation(username, True)
