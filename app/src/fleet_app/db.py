"""PostgreSQL access: writes go to the primary, reads to the cell's replica.

Each side is a ``Database`` with a circuit breaker: after a failed connect it is
down for ``retry_interval`` seconds, and everything that needs it fails at once
with ``DatabaseDown`` instead of waiting for another connect timeout. After the
interval one attempt goes through; when it succeeds the breaker closes again.

A session is bounded too: the server cancels a statement that runs longer than
``statement_timeout``, and a server that cannot (frozen, or its host gone while its
kernel still acknowledges) has the connection cut by the app ``CANCEL_GRACE``
seconds later, which opens the breaker like a failed connect.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo, errors

# How long after the statement timeout the app stops waiting for the server's own cancel
# and cuts the connection: the cancel arrives at once from a server that works.
CANCEL_GRACE = 1.0

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


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters), for reports and logs."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class DatabaseDown(Exception):
    """A database is down: its breaker is open, or the attempt to connect just failed."""

    def __init__(self, host: str, reason: str, retry_in: float) -> None:
        super().__init__(f"{host} is down ({reason}); next attempt in {retry_in:.1f}s")
        self.host = host
        self.reason = reason
        self.retry_in = retry_in


class Database:
    """One side (write or read) of the app's PostgreSQL connections, behind a circuit breaker.

    ``clock`` (monotonic seconds) and ``connector`` (``psycopg.connect``) are
    there for tests.
    """

    def __init__(
        self,
        dsn: str,
        password: str | None,
        connect_timeout: float,
        retry_interval: float = 5.0,
        *,
        statement_timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        connector: Callable[..., psycopg.Connection] = psycopg.connect,
    ) -> None:
        if retry_interval <= 0:
            raise ValueError("retry_interval must be more than 0")
        if connect_timeout <= 0:
            raise ValueError("connect_timeout must be more than 0")
        if statement_timeout <= 0:
            raise ValueError("statement_timeout must be more than 0")
        self.dsn = dsn
        self.password = password
        self.connect_timeout = connect_timeout
        self.retry_interval = retry_interval
        self.statement_timeout = statement_timeout
        self.clock = clock
        self.connector = connector
        self._lock = threading.Lock()
        self._down_until: float | None = None  # None: closed, the database is believed up
        self._trial = False  # the one attempt let through after the interval is under way
        self._last_error = ""

    @property
    def host(self) -> str:
        return dsn_host(self.dsn)

    # -- breaker -------------------------------------------------------------
    @property
    def breaker_open(self) -> bool:
        """True while calls fail fast: within the interval, or while the trial attempt runs."""
        with self._lock:
            return self._down_until is not None and (self._trial or self.clock() < self._down_until)

    @property
    def last_error(self) -> str:
        return self._last_error

    def _admit(self) -> None:
        """Let a connect attempt through, or raise DatabaseDown without one."""
        with self._lock:
            if self._down_until is None:
                return
            now = self.clock()
            if now >= self._down_until and not self._trial:
                self._trial = True
                return
            retry_in = max(self._down_until - now, 0.0)
        raise DatabaseDown(self.host, self._last_error, retry_in)

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._last_error = describe(exc)
            self._down_until = self.clock() + self.retry_interval
            self._trial = False

    def _succeeded(self) -> None:
        with self._lock:
            self._down_until = None
            self._trial = False
            self._last_error = ""

    # -- connections -----------------------------------------------------------
    def connect(self) -> psycopg.Connection:
        """A new autocommit connection, through the breaker (raises DatabaseDown)."""
        self._admit()
        # libpq (and psycopg after it) never gives up on a connect in less than 2 s, and
        # a frozen server accepts the TCP connection and then says nothing: the app's own
        # deadline below bounds the attempt; libpq's bounds the thread left behind.
        kwargs: dict[str, Any] = {
            "connect_timeout": max(2, math.ceil(self.connect_timeout)),
            "application_name": "fleet-app",
            # The server cancels a statement that runs too long (a lock wait, a slow plan).
            "options": f"-c statement_timeout={math.ceil(self.statement_timeout * 1000)}",
        }
        if self.password is not None:
            kwargs["password"] = self.password
        try:
            conn = self._connect_within(kwargs)
        except Exception as exc:  # whatever it was, the trial is over and the database is down
            self._failed(exc)
            raise DatabaseDown(self.host, self._last_error, self.retry_interval) from exc
        self._succeeded()
        return conn

    def _connect_within(self, kwargs: dict[str, Any]) -> psycopg.Connection:
        """``connector(dsn, ...)`` in a thread, waited for at most ``connect_timeout`` seconds.

        A connection that arrives after the deadline is closed by the thread that made it.
        """
        lock, finished = threading.Lock(), threading.Event()
        attempt: dict[str, Any] = {}

        def run() -> None:
            try:
                conn = self.connector(self.dsn, autocommit=True, **kwargs)
            except Exception as exc:  # handed to the caller, if it still waits
                attempt["error"] = exc
                finished.set()
                return
            with lock:
                if attempt.get("abandoned"):
                    conn.close()
                    return
                attempt["conn"] = conn
            finished.set()

        threading.Thread(target=run, name=f"connect-{self.host}", daemon=True).start()
        finished.wait(self.connect_timeout)
        with lock:
            if "conn" in attempt:
                return attempt["conn"]
            if "error" in attempt:
                raise attempt["error"]
            attempt["abandoned"] = True
        raise TimeoutError(f"no connection to {self.host} within {self.connect_timeout:g} s")

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection]:
        """``with db.session() as conn``: a connection, closed afterwards.

        Raises DatabaseDown when the database is down, or when the session outlived
        ``statement_timeout`` + ``CANCEL_GRACE`` and its connection was cut. A connection
        that breaks while in use (the server went away) opens the breaker too.
        """
        conn = self.connect()
        deadline = self.statement_timeout + CANCEL_GRACE
        watchdog = Watchdog(conn, deadline)
        try:
            with conn:
                try:
                    yield conn
                finally:
                    # Before the connection is closed: its descriptor may be reused after.
                    watchdog.stop()
        except psycopg.OperationalError as exc:
            if watchdog.fired:
                error = TimeoutError(f"no answer from {self.host} within {deadline:g} s")
                self._failed(error)
                raise DatabaseDown(self.host, self._last_error, self.retry_interval) from exc
            if getattr(conn, "broken", False):
                self._failed(exc)
            raise

    def check(self) -> dict[str, Any]:
        """Ask the server who it is; never raises. With the breaker open, no connect is tried."""
        started = self.clock()
        result: dict[str, Any] = {"host": self.host}
        try:
            with self.session() as conn:
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            result.update(ok=True, in_recovery=bool(in_recovery))
        except DatabaseDown as exc:
            result.update(ok=False, error=exc.reason, retry_in=round(exc.retry_in, 1))
        except Exception as exc:  # the reason goes into the health report
            result.update(ok=False, error=describe(exc))
        result["breaker_open"] = self.breaker_open
        result["ms"] = round((self.clock() - started) * 1000, 1)
        return result


class Watchdog:
    """Cuts a connection (shuts its socket down) that is still in use ``seconds`` from now.

    statement_timeout is the server's: a frozen server never sends its cancel, and its
    kernel keeps acknowledging, so without this a query waits as long as the client
    does. The cut wakes the waiting read at once and the connection reports itself
    broken. ``stop()`` before the connection closes: a cut never reaches a descriptor
    that another connection has since been given.
    """

    def __init__(self, conn: Any, seconds: float) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._live = True
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        with self._lock:
            if not self._live:
                return
            self.fired = True
            try:
                # A duplicate of the descriptor: shutting it down ends the connection's
                # socket for both, closing it closes only the duplicate.
                with socket.socket(fileno=os.dup(self._conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed or never connected: nothing left to cut
                pass

    def stop(self) -> None:
        with self._lock:
            self._live = False
        self._timer.cancel()


class Store:
    """Items, written to the primary and read from the replica (or the primary while it is down)."""

    def __init__(self, write: Database, read: Database) -> None:
        self.write = write
        self.read = read
        self._schema_ready = False

    def migrate(self) -> None:
        """Create the table if it is missing; the write user owns it."""
        with self.write.session() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)
        self._schema_ready = True

    def add_item(self, name: str, host: str, cell: str) -> dict[str, Any]:
        if not self._schema_ready:
            self.migrate()
        with self.write.session() as conn:
            row = conn.execute(
                "INSERT INTO items (name, created_by, cell) VALUES (%s, %s, %s) RETURNING id, created_at",
                (name, host, cell),
            ).fetchone()
        return {"id": row[0], "name": name, "created_at": row[1].isoformat()}

    def list_items(self, limit: int) -> tuple[list[dict[str, Any]], str]:
        """The newest items and the host that answered: the replica, or the primary while it is down.

        Raises DatabaseDown (or psycopg.OperationalError) when the primary fails too.
        """
        try:
            return self._select(self.read, limit), self.read.host
        except (DatabaseDown, psycopg.OperationalError):
            return self._select(self.write, limit), self.write.host

    @staticmethod
    def _select(db: Database, limit: int) -> list[dict[str, Any]]:
        with db.session() as conn:
            try:
                rows = conn.execute(
                    "SELECT id, name, created_by, cell, created_at FROM items ORDER BY id DESC LIMIT %s", (limit,)
                ).fetchall()
            except errors.UndefinedTable:  # nothing written yet
                return []
        return [
            {"id": r[0], "name": r[1], "created_by": r[2], "cell": r[3], "created_at": r[4].isoformat()} for r in rows
        ]
