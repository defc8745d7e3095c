"""Settings from the environment (the role writes them to /etc/fleet-app/app.env)."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

# Longest APP_DB_RETRY_INTERVAL: a database that is back must not wait longer to be used.
MAX_RETRY_INTERVAL = 300


class SettingsError(RuntimeError):
    """A required variable is missing or malformed."""


@dataclass(frozen=True)
class Settings:
    write_dsn: str
    read_dsn: str
    cell: str
    host: str
    write_password: str | None = None
    read_password: str | None = None
    connect_timeout: int = 2
    retry_interval: float = 5.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in ("APP_DB_WRITE_DSN", "APP_DB_READ_DSN", "APP_CELL") if not env.get(name)]
        if missing:
            raise SettingsError(f"fleet-app needs the environment variables {', '.join(missing)}")
        raw_timeout = env.get("APP_DB_CONNECT_TIMEOUT", "2")
        try:
            timeout = int(raw_timeout)
        except ValueError:
            raise SettingsError(f"APP_DB_CONNECT_TIMEOUT={raw_timeout!r} is not a number of seconds") from None
        if timeout < 1:
            raise SettingsError(f"APP_DB_CONNECT_TIMEOUT={timeout} must be at least 1")
        raw_interval = env.get("APP_DB_RETRY_INTERVAL", "5")
        try:
            interval = float(raw_interval)
        except ValueError:
            raise SettingsError(f"APP_DB_RETRY_INTERVAL={raw_interval!r} is not a number of seconds") from None
        if not math.isfinite(interval) or not 0 < interval <= MAX_RETRY_INTERVAL:
            raise SettingsError(
                f"APP_DB_RETRY_INTERVAL={raw_interval} must be more than 0 and at most {MAX_RETRY_INTERVAL} seconds"
            )
        return cls(
            write_dsn=env["APP_DB_WRITE_DSN"],
            read_dsn=env["APP_DB_READ_DSN"],
            cell=env["APP_CELL"],
            host=env.get("APP_HOST") or socket.gethostname(),
            write_password=env.get("APP_DB_WRITE_PASSWORD") or None,
            read_password=env.get("APP_DB_READ_PASSWORD") or None,
            connect_timeout=timeout,
            retry_interval=interval,
        )
