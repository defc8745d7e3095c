"""The reference app without PostgreSQL: routing, validation, health, and the databases' breakers.

Databases are faked three ways: FakeStore (no Database at all), Database with a
fake connector and a fake clock (the breaker), and Database against a closed local
port (the real psycopg failing at once).
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app" / "src"))

from fleet_app import cli
from fleet_app.app import create_app
from fleet_app.db import CANCEL_GRACE, Database, DatabaseDown, Store, dsn_host
from fleet_app.settings import Settings, SettingsError


def closed_port() -> int:
    """A local TCP port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings(**overrides) -> Settings:
    port = closed_port()
    values = {
        "write_dsn": f"host=127.0.0.1 port={port} dbname=app user=app_rw",
        "read_dsn": f"host=127.0.0.1 port={port} dbname=app user=app_ro",
        "cell": "cell_a",
        "host": "app1",
        "connect_timeout": 1,
    }
    values.update(overrides)
    return Settings(**values)


class FakeStore:
    """Both databases healthy, items kept in memory."""

    def __init__(self, write_ok: bool = True, read_ok: bool = True) -> None:
        self.write = FakeDb("primary", write_ok)
        self.read = FakeDb("replica1", read_ok)
        self.items: list[dict] = []

    def add_item(self, name, host, cell):
        item = {"id": len(self.items) + 1, "name": name, "created_at": "now"}
        self.items.append({**item, "created_by": host, "cell": cell})
        return item

    def list_items(self, limit):
        return list(reversed(self.items))[:limit], self.read.host


class FakeDb:
    def __init__(self, host: str, ok: bool) -> None:
        self.host, self.ok = host, ok

    def check(self):
        return {"host": self.host, "ok": self.ok, "ms": 0.1}


def call(app, method: str, path: str, body: bytes = b"", content_type: str = "application/json", query: str = ""):
    captured = {}

    def start_response(status, headers):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(headers)

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    data = b"".join(app(environ, start_response))
    return captured["status"], captured["headers"], (json.loads(data) if data else None)


def test_healthz_is_503_and_names_both_sides_when_databases_are_unreachable():
    app = create_app(settings())
    status, headers, body = call(app, "GET", "/healthz")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert body["status"] == "fail"
    assert (body["host"], body["cell"]) == ("app1", "cell_a")
    assert body["read_from"] == "127.0.0.1"
    assert body["write_to"] == "127.0.0.1"
    for side in ("write", "read"):
        check = body["checks"][side]
        assert (check["ok"], check["host"], check["breaker_open"]) == (False, "127.0.0.1", True)
        assert "OperationalError" in check["error"]
        assert isinstance(check["ms"], float)


@pytest.mark.parametrize(
    ("write_ok", "read_ok", "expected", "state", "read_from"),
    [
        (True, True, 200, "ok", "replica1"),
        (True, False, 200, "degraded", "primary"),  # reads fall back to the primary
        (False, True, 200, "degraded", "replica1"),  # reads serve, writes fail
        (False, False, 503, "fail", "replica1"),
    ],
)
def test_healthz_is_ready_while_one_database_works(write_ok, read_ok, expected, state, read_from):
    app = create_app(settings(), FakeStore(write_ok, read_ok))
    status, _, body = call(app, "GET", "/healthz")
    assert (status, body["status"]) == (expected, state)
    assert body["read_from"] == read_from
    assert body["write_to"] == "primary"
    assert (body["checks"]["write"]["ok"], body["checks"]["read"]["ok"]) == (write_ok, read_ok)


def test_livez_is_200_without_touching_a_database():
    attempts = []
    write, read = (Database(f"host={h}", None, 1, connector=lambda *a, **k: attempts.append(a)) for h in "wr")
    status, headers, body = call(create_app(settings(), Store(write, read)), "GET", "/livez")
    assert status == 200
    assert body == {"status": "live", "host": "app1", "cell": "cell_a", "version": body["version"]}
    assert attempts == []
    assert headers["Cache-Control"] == "no-store"


def test_index_names_host_cell_and_version():
    status, _, body = call(create_app(settings(), FakeStore()), "GET", "/")
    assert status == 200
    assert (body["host"], body["cell"]) == ("app1", "cell_a")
    assert "version" in body


def test_write_then_read_goes_through_the_store():
    app = create_app(settings(), FakeStore())
    status, _, body = call(app, "POST", "/items", json.dumps({"name": " first "}).encode())
    assert status == 201
    assert (body["id"], body["name"], body["cell"], body["write_to"]) == (1, "first", "cell_a", "primary")
    status, _, body = call(app, "GET", "/items")
    assert status == 200
    assert [i["name"] for i in body["items"]] == ["first"]
    assert body["read_from"] == "replica1"


def test_writes_with_unreachable_database_are_503_not_a_crash():
    status, headers, body = call(create_app(settings()), "POST", "/items", b'{"name": "x"}')
    assert status == 503
    assert body["error"] == "database unavailable: 127.0.0.1 is down"
    assert headers["Retry-After"] == "5"
    assert body["retry_after"] == 5


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "query", "expected"),
    [
        ("GET", "/nope", b"", "", "", 404),
        ("DELETE", "/items", b"", "", "", 405),
        ("POST", "/healthz", b"", "", "", 405),
        ("POST", "/items", b"{not json", "application/json", "", 400),
        ("POST", "/items", b'{"name": ""}', "application/json", "", 400),
        ("POST", "/items", b'{"name": 3}', "application/json", "", 400),
        ("POST", "/items", b'["x"]', "application/json", "", 400),
        ("POST", "/items", json.dumps({"name": "x" * 201}).encode(), "application/json", "", 400),
        ("POST", "/items", b"name=x", "application/x-www-form-urlencoded", "", 415),
        ("POST", "/items", b"x" * 20000, "application/json", "", 413),
        ("GET", "/items", b"", "", "limit=0", 400),
        ("GET", "/items", b"", "", "limit=lots", 400),
    ],
)
def test_bad_requests(method, path, body, content_type, query, expected):
    status, headers, data = call(create_app(settings(), FakeStore()), method, path, body, content_type, query)
    assert status == expected
    assert "error" in data
    if expected == 405:
        assert "Allow" in headers


def test_head_has_no_body():
    status, headers, body = call(create_app(settings(), FakeStore()), "HEAD", "/")
    assert status == 200
    assert body is None
    assert int(headers["Content-Length"]) > 0


def test_settings_defaults():
    s = Settings.from_env({"APP_DB_WRITE_DSN": "host=a", "APP_DB_READ_DSN": "host=b", "APP_CELL": "c"})
    assert (s.connect_timeout, s.retry_interval, s.statement_timeout) == (1.5, 5.0, 3.0)


BASE_ENV = {"APP_DB_WRITE_DSN": "host=a", "APP_DB_READ_DSN": "host=b", "APP_CELL": "c"}


@pytest.mark.parametrize(
    ("name", "raw", "seconds"),
    [
        ("APP_DB_CONNECT_TIMEOUT", "1.5", 1.5),
        ("APP_DB_CONNECT_TIMEOUT", " 0.2 ", 0.2),
        ("APP_DB_CONNECT_TIMEOUT", "60", 60.0),
        ("APP_DB_RETRY_INTERVAL", "0.5", 0.5),
        ("APP_DB_RETRY_INTERVAL", "5", 5.0),
        ("APP_DB_RETRY_INTERVAL", " 300 ", 300.0),
        ("APP_DB_RETRY_INTERVAL", "1e1", 10.0),
        ("APP_DB_STATEMENT_TIMEOUT", "0.5", 0.5),
        ("APP_DB_STATEMENT_TIMEOUT", "60", 60.0),
    ],
)
def test_settings_take_seconds_with_fractions(name, raw, seconds):
    s = Settings.from_env({**BASE_ENV, name: raw})
    taken = {
        "APP_DB_CONNECT_TIMEOUT": s.connect_timeout,
        "APP_DB_RETRY_INTERVAL": s.retry_interval,
        "APP_DB_STATEMENT_TIMEOUT": s.statement_timeout,
    }
    assert taken[name] == seconds


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("APP_DB_CONNECT_TIMEOUT", "x", "APP_DB_CONNECT_TIMEOUT='x' is not a number of seconds"),
        ("APP_DB_CONNECT_TIMEOUT", "0", "APP_DB_CONNECT_TIMEOUT=0 must be more than 0 and at most 60 seconds"),
        ("APP_DB_CONNECT_TIMEOUT", "61", "APP_DB_CONNECT_TIMEOUT=61 must be more than 0 and at most 60 seconds"),
        ("APP_DB_CONNECT_TIMEOUT", "nan", "APP_DB_CONNECT_TIMEOUT=nan must be more than 0"),
        ("APP_DB_RETRY_INTERVAL", "soon", "APP_DB_RETRY_INTERVAL='soon' is not a number of seconds"),
        ("APP_DB_RETRY_INTERVAL", "", "APP_DB_RETRY_INTERVAL='' is not a number of seconds"),
        ("APP_DB_RETRY_INTERVAL", "0", "APP_DB_RETRY_INTERVAL=0 must be more than 0 and at most 300 seconds"),
        ("APP_DB_RETRY_INTERVAL", "-1", "APP_DB_RETRY_INTERVAL=-1 must be more than 0 and at most 300 seconds"),
        ("APP_DB_RETRY_INTERVAL", "300.5", "APP_DB_RETRY_INTERVAL=300.5 must be more than 0 and at most 300 seconds"),
        ("APP_DB_RETRY_INTERVAL", "nan", "APP_DB_RETRY_INTERVAL=nan must be more than 0"),
        ("APP_DB_RETRY_INTERVAL", "inf", "APP_DB_RETRY_INTERVAL=inf must be more than 0"),
        ("APP_DB_STATEMENT_TIMEOUT", "0", "APP_DB_STATEMENT_TIMEOUT=0 must be more than 0 and at most 60 seconds"),
        ("APP_DB_STATEMENT_TIMEOUT", "61", "APP_DB_STATEMENT_TIMEOUT=61 must be more than 0 and at most 60 seconds"),
    ],
)
def test_settings_reject_bad_seconds(name, raw, message):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**BASE_ENV, name: raw})
    assert str(caught.value).startswith(message)


def test_settings_from_env_requires_dsns_and_cell():
    with pytest.raises(SettingsError, match="APP_DB_READ_DSN, APP_CELL"):
        Settings.from_env({"APP_DB_WRITE_DSN": "host=db"})
    with pytest.raises(SettingsError, match="APP_DB_CONNECT_TIMEOUT"):
        Settings.from_env(
            {"APP_DB_WRITE_DSN": "host=a", "APP_DB_READ_DSN": "host=b", "APP_CELL": "c", "APP_DB_CONNECT_TIMEOUT": "x"}
        )
    env = {
        "APP_DB_WRITE_DSN": "host=a",
        "APP_DB_READ_DSN": "host=b",
        "APP_CELL": "cell_b",
        "APP_HOST": "app3",
        "APP_DB_READ_PASSWORD": 'p"w $x',
    }
    s = Settings.from_env(env)
    assert (s.cell, s.host, s.read_password, s.write_password) == ("cell_b", "app3", 'p"w $x', None)


def test_password_stays_out_of_the_dsn_and_the_report():
    db = Database(f"host=127.0.0.1 port={closed_port()} user=app_rw", "s3cret", 1)
    report = db.check()
    assert report["ok"] is False
    assert "s3cret" not in json.dumps(report)


@pytest.mark.parametrize(
    ("dsn", "host"), [("host=replica1 port=5432", "replica1"), ("dbname=app", "localhost"), ("host='x", "invalid DSN")]
)
def test_dsn_host(dsn, host):
    assert dsn_host(dsn) == host


# -- the breaker, with a fake clock and a fake connector ----------------------------


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCursor:
    def __init__(self, rows) -> None:
        self.rows = rows

    def fetchone(self):
        return self.rows[0]

    def fetchall(self):
        return self.rows


class FakeConn:
    """Answers the app's queries from a list of item rows; fails queries on demand."""

    def __init__(self, rows, in_recovery=False, fail=None) -> None:
        self.rows, self.in_recovery, self.fail = rows, in_recovery, fail
        self.broken = False
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.closed = True

    def transaction(self):
        return self

    def execute(self, sql, params=()):
        if self.fail is not None:
            self.broken = isinstance(self.fail, psycopg.OperationalError)
            raise self.fail
        if "pg_is_in_recovery" in sql:
            return FakeCursor([(self.in_recovery,)])
        if sql.startswith("INSERT"):
            self.rows.insert(0, (len(self.rows) + 1, params[0], params[1], params[2], NOW))
            return FakeCursor([(len(self.rows), NOW)])
        if sql.startswith("SELECT id"):
            return FakeCursor(self.rows[: params[0]])
        return FakeCursor([])


NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)


class Server:
    """A fake PostgreSQL server: a connector for Database that counts its connects."""

    def __init__(self, up: bool = True, in_recovery: bool = False) -> None:
        self.up, self.in_recovery = up, in_recovery
        self.rows: list[tuple] = []
        self.connects = 0
        self.query_error: Exception | None = None
        self.conns: list[FakeConn] = []

    def __call__(self, dsn, **kwargs):
        self.connects += 1
        self.kwargs = kwargs
        if not self.up:
            raise psycopg.OperationalError(f"connection to server failed: {dsn}\nsecond line")
        conn = FakeConn(self.rows, self.in_recovery, self.query_error)
        self.conns.append(conn)
        return conn


def fake_db(host: str, server: Server, clock: Clock, interval: float = 5.0) -> Database:
    return Database(f"host={host} user=u", "pw", 2, interval, clock=clock, connector=server)


def test_a_failed_connect_opens_the_breaker_for_the_retry_interval():
    clock, server = Clock(), Server(up=False)
    db = fake_db("primary", server, clock)
    with pytest.raises(DatabaseDown) as caught:
        db.connect()
    assert server.connects == 1
    assert (caught.value.host, caught.value.retry_in) == ("primary", 5.0)
    assert caught.value.reason == "OperationalError: connection to server failed: host=primary user=u"
    assert db.breaker_open
    # Within the interval: failing fast, no connect attempt.
    clock.now += 4.5
    with pytest.raises(DatabaseDown) as caught:
        db.connect()
    assert server.connects == 1
    assert caught.value.retry_in == pytest.approx(0.5)
    assert "OperationalError" in str(caught.value)


def test_after_the_interval_one_attempt_goes_through_and_a_failure_opens_it_again():
    clock, server = Clock(), Server(up=False)
    db = fake_db("primary", server, clock)
    with pytest.raises(DatabaseDown):
        db.connect()
    clock.now += 5
    with pytest.raises(DatabaseDown):
        db.connect()
    assert server.connects == 2
    with pytest.raises(DatabaseDown):
        db.connect()
    assert server.connects == 2  # open again for a whole interval
    clock.now += 4.9
    with pytest.raises(DatabaseDown):
        db.connect()
    assert server.connects == 2


def test_a_successful_attempt_closes_the_breaker():
    clock, server = Clock(), Server(up=False)
    db = fake_db("primary", server, clock)
    with pytest.raises(DatabaseDown):
        db.connect()
    server.up = True
    clock.now += 5
    with db.session():
        pass
    assert not db.breaker_open
    assert db.last_error == ""
    with db.session(), db.session():
        pass
    assert server.connects == 4


def test_only_one_attempt_is_let_through_after_the_interval():
    clock, server = Clock(), Server(up=False)
    db = fake_db("primary", server, clock)
    with pytest.raises(DatabaseDown):
        db.connect()
    clock.now += 5
    during_trial = []

    def slow_connector(dsn, **kwargs):
        # Another request while the trial connect is still under way fails fast.
        with pytest.raises(DatabaseDown):
            db.connect()
        during_trial.append(db.breaker_open)
        return FakeConn([])

    db.connector = slow_connector
    with db.session():
        pass
    assert during_trial == [True]
    assert not db.breaker_open


def test_a_trial_that_fails_with_any_error_does_not_leave_the_breaker_stuck():
    clock = Clock()

    def broken_connector(dsn, **kwargs):
        raise RuntimeError("resolver exploded")

    db = Database("host=primary", None, 1, 5, clock=clock, connector=broken_connector)
    with pytest.raises(DatabaseDown):
        db.connect()
    clock.now += 5
    with pytest.raises(DatabaseDown) as caught:
        db.connect()
    assert caught.value.reason == "RuntimeError: resolver exploded"
    clock.now += 5
    db.connector = Server()
    db.connect()
    assert not db.breaker_open


def test_session_closes_the_connection_and_passes_timeout_and_password():
    server = Server()
    db = fake_db("primary", server, Clock())
    with db.session() as conn:
        assert not conn.closed
    assert conn.closed
    assert server.kwargs == {
        "autocommit": True,
        "connect_timeout": 2,
        "application_name": "fleet-app",
        "options": "-c statement_timeout=3000",
        "password": "pw",
    }


def test_a_connection_that_breaks_in_use_opens_the_breaker():
    clock, server = Clock(), Server()
    server.query_error = psycopg.OperationalError("server closed the connection unexpectedly")
    db = fake_db("primary", server, clock)
    with pytest.raises(psycopg.OperationalError), db.session() as conn:
        conn.execute("SELECT 1")
    assert db.breaker_open
    with pytest.raises(DatabaseDown):
        db.connect()
    assert server.connects == 1


def test_a_query_error_on_a_working_connection_leaves_the_breaker_closed():
    server = Server()
    server.query_error = psycopg.errors.UniqueViolation("duplicate key")
    db = fake_db("primary", server, Clock())
    with pytest.raises(psycopg.errors.UniqueViolation), db.session() as conn:
        conn.execute("INSERT")
    assert not db.breaker_open


class FrozenConn(FakeConn):
    """A connection whose server froze mid-statement: a query waits on its socket (one end
    of a socket pair, the other end silent) and, when the socket is shut down, fails as
    psycopg does on a connection that is cut (OperationalError, broken)."""

    def __init__(self) -> None:
        super().__init__([])
        self.sock, self.peer = socket.socketpair()
        self.sock.settimeout(5)  # the client's own patience: without the cut, a failure not a hang

    def fileno(self) -> int:
        return self.sock.fileno()

    def execute(self, sql, params=()):
        if self.sock.recv(1) == b"":
            self.broken = True
            raise psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")
        return FakeCursor([])

    def close(self):  # the server's end stays open: a test reads what reached it
        super().close()
        self.sock.close()


class FrozenServer(Server):
    def __call__(self, dsn, **kwargs):
        self.connects += 1
        self.kwargs = kwargs
        conn = FrozenConn()
        self.conns.append(conn)
        return conn


def test_a_statement_on_a_frozen_server_is_cut_after_the_statement_timeout_and_opens_the_breaker():
    # PostgreSQL's own statement_timeout cannot fire on a frozen server: the app's cut must.
    server = FrozenServer()
    db = Database("host=primary user=u", None, 1, 5, statement_timeout=0.2, connector=server)
    started = time.monotonic()
    with pytest.raises(DatabaseDown) as caught, db.session() as conn:
        conn.execute("INSERT")
    took = time.monotonic() - started
    assert 0.2 + CANCEL_GRACE - 0.05 < took < 0.2 + CANCEL_GRACE + 0.5, took
    assert caught.value.reason == f"TimeoutError: no answer from primary within {0.2 + CANCEL_GRACE:g} s"
    assert db.breaker_open
    assert server.kwargs["options"] == "-c statement_timeout=200"
    assert server.conns[0].closed
    server.conns[0].peer.close()


def test_a_session_that_ends_in_time_is_never_cut():
    server = FrozenServer()
    db = Database("host=primary user=u", None, 1, 5, statement_timeout=0.05, connector=server)
    with db.session() as conn:
        conn.peer.sendall(b"x")  # the server answers at once
        conn.execute("SELECT 1")
        kept = socket.socket(fileno=os.dup(conn.fileno()))
    # Past the deadline, the socket (its descriptor possibly another connection's by now)
    # was not shut down: the pair still carries data both ways.
    time.sleep(0.05 + CANCEL_GRACE + 0.3)
    with kept, conn.peer:
        kept.sendall(b"y")
        assert conn.peer.recv(1) == b"y"
    assert not db.breaker_open


def test_statement_timeout_must_be_positive():
    with pytest.raises(ValueError, match="statement_timeout"):
        Database("host=a", None, 1, 5, statement_timeout=0)


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


class SilentServer(Server):
    """A frozen server: the connect answers only after ``delay`` seconds (real time)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.returned = threading.Event()

    def __call__(self, dsn, **kwargs):
        time.sleep(self.delay)
        try:
            return super().__call__(dsn, **kwargs)
        finally:
            self.returned.set()


def test_a_connect_slower_than_the_timeout_fails_at_the_deadline_not_libpqs():
    # libpq never waits less than 2 s; the app's deadline of 0.3 s is what holds.
    server = SilentServer(delay=1.0)
    db = Database("host=primary user=u", None, 0.3, 5, connector=server)
    started = time.monotonic()
    with pytest.raises(DatabaseDown) as caught:
        db.connect()
    assert 0.25 < time.monotonic() - started < 0.8
    assert caught.value.reason == "TimeoutError: no connection to primary within 0.3 s"
    assert db.breaker_open
    # The connection that arrives late is closed, not leaked.
    assert server.returned.wait(5)
    assert server.kwargs["connect_timeout"] == 2
    assert wait_for(lambda: server.conns[0].closed, 2)


def test_a_connect_within_the_timeout_is_used():
    server = SilentServer(delay=0.05)
    db = Database("host=primary user=u", None, 1, 5, connector=server)
    with db.session() as conn:
        assert not conn.closed
    assert not db.breaker_open
    assert server.kwargs["connect_timeout"] == 2


def test_connect_timeout_must_be_positive():
    with pytest.raises(ValueError, match="connect_timeout must be more than 0"):
        Database("host=x", None, 0, 5)


def test_retry_interval_must_be_positive():
    with pytest.raises(ValueError, match="more than 0"):
        Database("host=x", None, 1, 0)


def test_check_reports_and_never_raises():
    clock, server = Clock(), Server(in_recovery=True)
    db = fake_db("replica1", server, clock)
    assert db.check() == {"host": "replica1", "ok": True, "in_recovery": True, "breaker_open": False, "ms": 0.0}
    server.up = False
    report = db.check()
    assert report["ok"] is False
    assert report["breaker_open"] is True
    assert report["error"] == "OperationalError: connection to server failed: host=replica1 user=u"
    assert report["retry_in"] == 5.0
    assert "pw" not in json.dumps(report)


def test_check_with_the_breaker_open_does_not_connect():
    clock, server = Clock(), Server(up=False)
    db = fake_db("replica1", server, clock)
    db.check()
    clock.now += 2
    report = db.check()
    assert server.connects == 1
    assert (report["ok"], report["breaker_open"], report["retry_in"]) == (False, True, 3.0)
    assert "OperationalError" in report["error"]
    # Once the interval is over, a check is the attempt that closes it.
    server.up = True
    clock.now += 3
    assert db.check()["ok"] is True
    assert server.connects == 2


def test_check_of_an_unexpected_error_still_answers():
    server = Server()
    server.query_error = RuntimeError("boom")
    report = fake_db("replica1", server, Clock()).check()
    assert (report["ok"], report["error"], report["breaker_open"]) == (False, "RuntimeError: boom", False)


def test_real_connect_to_a_closed_port_fails_once_then_fast():
    db = Database(f"host=127.0.0.1 port={closed_port()} dbname=app user=app_rw", None, 1, 5)
    started = time.monotonic()
    with pytest.raises(DatabaseDown) as caught:
        db.connect()
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    assert time.monotonic() - started < 1.5  # at most connect_timeout
    started = time.monotonic()
    for _ in range(20):
        with pytest.raises(DatabaseDown):
            db.connect()
    assert time.monotonic() - started < 0.1


# -- reads and writes through the breakers ------------------------------------------


def fake_store(clock: Clock, interval: float = 5.0) -> tuple[Store, Server, Server]:
    primary, replica = Server(), Server(in_recovery=True)
    store = Store(fake_db("primary", primary, clock, interval), fake_db("replica1", replica, clock, interval))
    return store, primary, replica


def test_reads_come_from_the_replica():
    store, primary, replica = fake_store(Clock())
    replica.rows.append((1, "x", "app1", "cell_a", NOW))
    assert store.list_items(10) == (
        [{"id": 1, "name": "x", "created_by": "app1", "cell": "cell_a", "created_at": NOW.isoformat()}],
        "replica1",
    )
    assert primary.connects == 0


@pytest.mark.parametrize("failure", ["connect", "query"])
def test_reads_fall_back_to_the_primary_while_the_replica_is_down(failure):
    clock = Clock()
    store, primary, replica = fake_store(clock)
    primary.rows.append((1, "x", "app1", "cell_a", NOW))
    if failure == "connect":
        replica.up = False
    else:
        replica.query_error = psycopg.OperationalError("terminating connection due to administrator command")
    items, read_from = store.list_items(10)
    assert ([i["id"] for i in items], read_from) == ([1], "primary")
    # The replica's breaker is open: the next read goes straight to the primary.
    assert store.list_items(10)[1] == "primary"
    assert replica.connects == 1
    # The replica is back after the interval.
    replica.up, replica.query_error = True, None
    clock.now += 5
    assert store.list_items(10)[1] == "replica1"


def test_reads_with_both_databases_down_raise_database_down():
    store, primary, replica = fake_store(Clock())
    primary.up = replica.up = False
    with pytest.raises(DatabaseDown) as caught:
        store.list_items(10)
    assert caught.value.host == "primary"


def test_items_over_http_with_the_replica_down_are_read_from_the_primary():
    clock = Clock()
    store, _, replica = fake_store(clock)
    replica.up = False
    app = create_app(settings(), store)
    status, _, body = call(app, "POST", "/items", json.dumps({"name": "first"}).encode())
    assert (status, body["write_to"]) == (201, "primary")
    status, _, body = call(app, "GET", "/items")
    assert status == 200
    assert ([i["name"] for i in body["items"]], body["read_from"]) == (["first"], "primary")
    status, _, body = call(app, "GET", "/healthz")
    assert (status, body["status"], body["read_from"]) == (200, "degraded", "primary")
    assert body["checks"]["read"]["breaker_open"] is True


def test_reads_serve_while_writes_fail_fast_with_retry_after(caplog):
    clock = Clock()
    store, primary, _ = fake_store(clock)
    primary.up = False
    app = create_app(settings(retry_interval=5), store)
    for _ in range(3):
        status, headers, body = call(app, "POST", "/items", b'{"name": "x"}')
        assert status == 503
        assert headers["Retry-After"] == "5"
        assert body["error"] == "database unavailable: primary is down"
        assert (body["host"], body["cell"]) == ("app1", "cell_a")
    assert primary.connects == 1  # the first failure only; then the breaker answers
    status, _, body = call(app, "GET", "/items")
    assert (status, body["read_from"]) == (200, "replica1")
    status, _, body = call(app, "GET", "/healthz")
    assert (status, body["status"]) == (200, "degraded")
    assert (body["checks"]["write"]["ok"], body["checks"]["write"]["breaker_open"]) == (False, True)
    assert primary.connects == 1
    assert "Traceback" not in caplog.text


def test_reads_with_both_databases_down_are_503_with_retry_after():
    store, primary, replica = fake_store(Clock())
    primary.up = replica.up = False
    status, headers, body = call(create_app(settings(), store), "GET", "/items")
    assert (status, headers["Retry-After"]) == (503, "5")
    assert body["error"] == "database unavailable: primary is down"


@pytest.mark.parametrize(("interval", "retry_after"), [(5, "5"), (2.5, "3"), (0.2, "1"), (300, "300")])
def test_retry_after_is_the_retry_interval_rounded_up(interval, retry_after):
    store, primary, _ = fake_store(Clock(), interval)
    primary.up = False
    app = create_app(settings(retry_interval=interval), store)
    assert call(app, "POST", "/items", b'{"name": "x"}')[1]["Retry-After"] == retry_after


def test_a_connection_lost_mid_write_is_503_with_retry_after():
    store, primary, _ = fake_store(Clock())
    primary.query_error = psycopg.OperationalError("server closed the connection unexpectedly")
    status, headers, body = call(create_app(settings(), store), "POST", "/items", b'{"name": "x"}')
    assert (status, headers["Retry-After"]) == (503, "5")
    assert body["error"] == "database unavailable: OperationalError"


def test_a_bug_is_a_500_without_a_stack_trace_for_the_client(caplog):
    class BrokenStore(FakeStore):
        def list_items(self, limit):
            raise KeyError("oops")

    with caplog.at_level(logging.ERROR, logger="fleet_app"):
        status, headers, body = call(create_app(settings(), BrokenStore()), "GET", "/items")
    assert (status, body["error"]) == (500, "internal error")
    assert "Retry-After" not in headers
    assert "KeyError" in caplog.text


def test_the_app_builds_its_databases_from_the_settings():
    app = create_app(settings(connect_timeout=4, retry_interval=7.5, statement_timeout=0.25))
    for db in (app.store.write, app.store.read):
        assert (db.connect_timeout, db.retry_interval, db.statement_timeout) == (4, 7.5, 0.25)
    assert app.retry_after == "8"


@pytest.mark.parametrize(("write_ok", "read_ok", "code"), [(True, True, 0), (True, False, 1), (False, False, 1)])
def test_cli_check_succeeds_only_when_both_databases_work(monkeypatch, capsys, write_ok, read_ok, code):
    monkeypatch.setattr(cli, "create_app", lambda: create_app(settings(), FakeStore(write_ok, read_ok)))
    assert cli.main(["check"]) == code
    assert json.loads(capsys.readouterr().out)["checks"]["read"]["ok"] is read_ok
