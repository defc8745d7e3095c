"""The reference app without PostgreSQL: routing, validation, and health with unreachable databases."""

from __future__ import annotations

import io
import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "app" / "src"))

from fleet_app.app import create_app
from fleet_app.db import Database, dsn_host
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
        return list(reversed(self.items))[:limit]


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
    assert body["checks"]["write"]["ok"] is False
    assert body["checks"]["read"]["ok"] is False
    assert "OperationalError" in body["checks"]["read"]["error"]


@pytest.mark.parametrize(
    ("write_ok", "read_ok", "expected"), [(True, True, 200), (True, False, 503), (False, True, 503)]
)
def test_healthz_is_200_only_when_both_databases_work(write_ok, read_ok, expected):
    app = create_app(settings(), FakeStore(write_ok, read_ok))
    status, _, body = call(app, "GET", "/healthz")
    assert status == expected
    assert body["status"] == ("ok" if expected == 200 else "fail")
    assert body["read_from"] == "replica1"
    assert body["write_to"] == "primary"


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
    status, _, body = call(create_app(settings()), "POST", "/items", b'{"name": "x"}')
    assert status == 503
    assert body["error"].startswith("database unavailable")


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
