"""Settings from the environment (the role writes them to /etc/fleet-app/app.env)."""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

# Longest APP_DB_RETRY_INTERVAL: a database that is back must not wait longer to be used.
MAX_RETRY_INTERVAL = 300
MAX_CONNECT_TIMEOUT = 60
MAX_STATEMENT_TIMEOUT = 60


def _seconds(env: Mapping[str, str], name: str, default: str, maximum: float) -> float:
    """``env[name]`` as seconds: more than 0, at most ``maximum``, fractions allowed."""
    raw = env.get(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= maximum:
        raise SettingsError(f"{name}={raw} must be more than 0 and at most {maximum} seconds")
    return value


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
    connect_timeout: float = 1.5
    retry_interval: float = 5.0
    statement_timeout: float = 3.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        missing = [name for name in ("APP_DB_WRITE_DSN", "APP_DB_READ_DSN", "APP_CELL") if not env.get(name)]
        if missing:
            raise SettingsError(f"fleet-app needs the environment variables {', '.join(missing)}")
        timeout = _seconds(env, "APP_DB_CONNECT_TIMEOUT", "1.5", MAX_CONNECT_TIMEOUT)
        interval = _seconds(env, "APP_DB_RETRY_INTERVAL", "5", MAX_RETRY_INTERVAL)
        statement = _seconds(env, "APP_DB_STATEMENT_TIMEOUT", "3", MAX_STATEMENT_TIMEOUT)
        return cls(
            write_dsn=env["APP_DB_WRITE_DSN"],
            read_dsn=env["APP_DB_READ_DSN"],
            cell=env["APP_CELL"],
            host=env.get("APP_HOST") or socket.gethostname(),
            write_password=env.get("APP_DB_WRITE_PASSWORD") or None,
            read_password=env.get("APP_DB_READ_PASSWORD") or None,
            connect_timeout=timeout,
            retry_interval=interval,
            statement_timeout=statement,
        )
