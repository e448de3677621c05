"""Broker accounts: who may connect to Mosquitto and which topics each account may use.

Mosquitto's ACL `pattern` lines can only substitute a whole user name or client id, so a
pattern like `f5g/v1/+/+/%c/#` would let a device publish under any project or kind with
its id. Each device therefore gets an explicit `user` block naming its own subtree
`f5g/v1/{project}/{kind}/{device}/#`, written from a small JSON registry that is the
single source of truth; the password and ACL files are regenerated from it on every
change and the broker re-reads them on SIGHUP, so revocation needs no restart.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from services.core.contracts import is_valid_id
from services.security.passwords import hash_password, new_secret

# What each platform service may do. The simulator stands in for many devices at once,
# so it may publish anywhere under the device trees; real devices get per-device blocks.
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
    "api": (("read", "f5g/v1/#"),),
    "simulator": (
        ("readwrite", "f5g/v1/#"),
        ("readwrite", "spBv1.0/#"),
        ("readwrite", "uagv/#"),
    ),
}


class ProvisionError(ValueError):
    """A device name that cannot be provisioned, or an unknown device to revoke."""


@dataclass(frozen=True)
class DeviceAccount:
    project: str
    kind: str
    device: str

    @property
    def username(self) -> str:
        # "/" never occurs in ids, so the name is unambiguous; ":" would break the passwd file.
        return f"dev/{self.project}/{self.kind}/{self.device}"

    @property
    def subtree(self) -> str:
        return f"f5g/v1/{self.project}/{self.kind}/{self.device}"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class BrokerAuth:
    """Password and ACL files for one broker, kept in `directory` (mode 0700 secrets)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def password_file(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.directory / "acl"

    @property
    def registry_file(self) -> Path:
        return self.directory / "accounts.json"

    # ----------------------------------------------------------------- registry

    def _load(self) -> dict[str, dict[str, object]]:
        if not self.registry_file.exists():
            return {"services": {}, "devices": {}}
        data: dict[str, dict[str, object]] = json.loads(self.registry_file.read_text())
        return data

    def _save(self, data: dict[str, dict[str, object]]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_private(self.registry_file, json.dumps(data, indent=2, sort_keys=True))
        self._render(data)

    def _render(self, data: dict[str, dict[str, object]]) -> None:
        passwd: list[str] = []
        acl = ["# Written by factory5g from accounts.json; edits are overwritten."]
        for name, entry in sorted(data["services"].items()):
            assert isinstance(entry, dict)
            passwd.append(f"{name}:{entry['hash']}")
            acl.append(f"\nuser {name}")
            acl.extend(f"topic {access} {topic}" for access, topic in SERVICE_ACLS[name])
        for username, entry in sorted(data["devices"].items()):
            assert isinstance(entry, dict)
            account = DeviceAccount(str(entry["project"]), str(entry["kind"]), str(entry["device"]))
            passwd.append(f"{username}:{entry['hash']}")
            acl.append(f"\nuser {username}")
            acl.append(f"topic write {account.subtree}/#")
            acl.append(f"topic read {account.subtree}/cmd/#")
        _write_private(self.password_file, "\n".join(passwd) + "\n")
        _write_private(self.acl_file, "\n".join(acl) + "\n")

    def ensure_files(self) -> None:
        """Write the files even when no account exists yet, so the broker can start."""
        self._save(self._load())

    # ----------------------------------------------------------------- accounts

    def service_credentials(self, name: str) -> Credentials:
        """The service's password, created on first use and kept in the registry."""
        if name not in SERVICE_ACLS:
            raise ProvisionError(f"unknown service account {name!r}")
        data = self._load()
        entry = data["services"].get(name)
        if not isinstance(entry, dict):
            password = new_secret()
            data["services"][name] = {"password": password, "hash": hash_password(password)}
            self._save(data)
            return Credentials(name, password)
        return Credentials(name, str(entry["password"]))

    def provision_device(self, project: str, kind: str, device: str) -> Credentials:
        """Create (or rotate) a device's password; returns the only copy of it."""
        for label, value in (("project", project), ("kind", kind), ("device", device)):
            if not is_valid_id(value):
                raise ProvisionError(f"{label} {value!r} is not a valid id")
        account = DeviceAccount(project, kind, device)
        password = new_secret()
        data = self._load()
        data["devices"][account.username] = {**asdict(account), "hash": hash_password(password)}
        self._save(data)
        return Credentials(account.username, password)

    def revoke_device(self, project: str, kind: str, device: str) -> str:
        username = DeviceAccount(project, kind, device).username
        data = self._load()
        if data["devices"].pop(username, None) is None:
            raise ProvisionError(f"device {username!r} is not provisioned")
        self._save(data)
        return username

    def devices(self) -> list[DeviceAccount]:
        return [
            DeviceAccount(str(e["project"]), str(e["kind"]), str(e["device"]))  # type: ignore[index]
            for e in self._load()["devices"].values()
        ]


def _write_private(path: Path, text: str) -> None:
    """Atomic replace, so the broker never reads a half-written file on SIGHUP."""
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
