"""Mosquitto password-file hashes, written in Python so provisioning needs no broker tools.

Mosquitto 2 reads `user:$7$<iterations>$<salt b64>$<hash b64>` (PBKDF2-HMAC-SHA512), the
same format `mosquitto_passwd` writes; the tests prove the broker accepts these lines.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

ITERATIONS = 101
SALT_BYTES = 12


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    b64 = base64.b64encode
    return f"$7${ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def new_secret() -> str:
    """A random password for a machine account: URL-safe, 192 bits."""
    return secrets.token_urlsafe(24)
