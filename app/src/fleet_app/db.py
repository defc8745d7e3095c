"""PostgreSQL access: writes go to the primary, reads to the cell's replica."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import conninfo, errors

# Any fixed number shared by every app server: serialises schema creation.
SCHEMA_LOCK = 0x466C6565
SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id bigserial PRIMARY KEY,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_by text NOT NULL,
    cell text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def dsn_host(dsn: str) -> str:
    """The host a DSN points at (what /healthz reports as read_from and write_to)."""
    try:
        return conninfo.conninfo_to_dict(dsn).get("host") or "localhost"
    except psycopg.ProgrammingError:
        return "invalid DSN"


@dataclass(frozen=True)
class Database:
    """One side (write or read) of the app's PostgreSQL connections."""

    dsn: str
    password: str | None
    connect_timeout: int

    @property
    def host(self) -> str:
        return dsn_host(self.dsn)

    def connect(self) -> psycopg.Connection:
        kwargs: dict[str, Any] = {"connect_timeout": self.connect_timeout, "application_name": "fleet-app"}
        if self.password is not None:
            kwargs["password"] = self.password
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def check(self) -> dict[str, Any]:
        """Connect and ask the server who it is; never raises."""
        started = time.monotonic()
        result: dict[str, Any] = {"host": self.host}
        try:
            with self.connect() as conn:
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            result.update(ok=True, in_recovery=bool(in_recovery))
        except Exception as exc:  # the reason goes into the health report
            result.update(ok=False, error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        return result


class Store:
    """Items, written to the primary and read from the replica."""

    def __init__(self, write: Database, read: Database) -> None:
        self.write = write
        self.read = read
        self._schema_ready = False

    def migrate(self) -> None:
        """Create the table if it is missing; the write user owns it."""
        with self.write.connect() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)
        self._schema_ready = True

    def add_item(self, name: str, host: str, cell: str) -> dict[str, Any]:
        if not self._schema_ready:
            self.migrate()
        with self.write.connect() as conn:
            row = conn.execute(
                "INSERT INTO items (name, created_by, cell) VALUES (%s, %s, %s) RETURNING id, created_at",
                (name, host, cell),
            ).fetchone()
        return {"id": row[0], "name": name, "created_at": row[1].isoformat()}

    def list_items(self, limit: int) -> list[dict[str, Any]]:
        with self.read.connect() as conn:
            try:
                rows = conn.execute(
                    "SELECT id, name, created_by, cell, created_at FROM items ORDER BY id DESC LIMIT %s", (limit,)
                ).fetchall()
            except errors.UndefinedTable:  # nothing written yet
                return []
        return [
            {"id": r[0], "name": r[1], "created_by": r[2], "cell": r[3], "created_at": r[4].isoformat()} for r in rows
        ]
