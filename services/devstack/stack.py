"""The local stack: one Mosquitto and one PostgreSQL + TimescaleDB under `.stack/`."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.devstack.servers import REPO_ROOT, Mosquitto, Postgres, StackError

INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-stack.sh"


def stack_dir() -> Path:
    return Path(os.environ.get("F5G_STACK_DIR", REPO_ROOT / ".stack")).resolve()


@dataclass
class LocalStack:
    base_dir: Path
    pg_port: int = 55432
    mqtt_port: int = 1883

    @classmethod
    def default(cls) -> LocalStack:
        return cls(stack_dir())

    @property
    def postgres(self) -> Postgres:
        return Postgres(self.base_dir / "postgres", port=self.pg_port)

    @property
    def mosquitto(self) -> Mosquitto:
        return Mosquitto(self.base_dir / "mosquitto", port=self.mqtt_port)

    def install(self) -> None:
        """Install missing server packages and build TimescaleDB if needed (idempotent)."""
        env = dict(os.environ, F5G_STACK_BUILD_DIR=str(self.base_dir / "build"))
        result = subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env)
        if result.returncode != 0:
            raise StackError(f"{INSTALL_SCRIPT} failed with exit code {result.returncode}")

    def up(self) -> None:
        self.install()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.postgres.start()
        self.mosquitto.start()

    def down(self) -> None:
        self.mosquitto.stop()
        self.postgres.stop()

    def status(self) -> dict[str, str]:
        pg, mq = self.postgres, self.mosquitto
        return {
            "postgres": f"{'running' if pg.running() else 'stopped'}  {pg.url}",
            "mosquitto": f"{'running' if mq.running() else 'stopped'}  mqtt://127.0.0.1:{mq.port}",
            "data": str(self.base_dir),
        }
