"""A development certificate authority for the broker's TLS device listener.

`factory5g stack certs` makes a CA, a server certificate for localhost and, on request,
client certificates whose common name is a broker account (for mutual TLS, Mosquitto
takes the account from the certificate). It shells out to the `openssl` command, which
every machine that runs Mosquitto already has. These are for development: production
certificates come from the site's own PKI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

DAYS = "825"


class CertError(RuntimeError):
    pass


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise CertError("openssl is not installed")
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise CertError(f"openssl {args[0]} failed: {result.stderr.strip()[-500:]}")


def _key(path: Path) -> None:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
    os.chmod(path, 0o600)


class DevCA:
    """Files in `directory`: ca.crt/ca.key, server.crt/server.key, clients/<name>.crt/.key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    def ensure(self, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> None:
        """Create the CA and the server certificate if missing (idempotent)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.ca_cert.exists():
            _key(self.ca_key)
            _openssl(
                "req", "-x509", "-new", "-key", str(self.ca_key), "-sha256", "-days", DAYS,
                "-subj", "/O=factory5g development/CN=factory5g dev CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-out", str(self.ca_cert),
            )  # fmt: skip
        if not (self.directory / "server.crt").exists():
            san = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in hosts)
            self._issue("server", hosts[0], f"subjectAltName={san}", "extendedKeyUsage=serverAuth")

    def issue_client(self, name: str) -> tuple[Path, Path]:
        """A client certificate with common name `name`; returns (cert, key)."""
        if "/" in name and not name.startswith("dev/"):
            raise CertError(f"unexpected client name {name!r}")
        (self.directory / "clients").mkdir(exist_ok=True)
        stem = "clients/" + name.replace("/", "_")
        self._issue(stem, name, "extendedKeyUsage=clientAuth")
        return self.directory / f"{stem}.crt", self.directory / f"{stem}.key"

    def _issue(self, stem: str, common_name: str, *extensions: str) -> None:
        key, csr, crt = (self.directory / f"{stem}.{ext}" for ext in ("key", "csr", "crt"))
        ext_file = self.directory / f"{stem}.ext"
        _key(key)
        subject = "/CN=" + common_name.replace("/", "\\/")  # openssl's escape for "/"
        _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        ext_file.write_text("\n".join(extensions) + "\n")
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.ca_cert), "-CAkey", str(self.ca_key),
            "-CAcreateserial", "-days", DAYS, "-sha256", "-extfile", str(ext_file),
            "-out", str(crt),
        )  # fmt: skip
        csr.unlink()
        ext_file.unlink()
