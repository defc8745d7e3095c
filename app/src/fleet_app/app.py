"""The WSGI application: plain WSGI, no framework, so a release is a handful of wheels.

GET  /         who serves: host, cell, version
GET  /livez    liveness: 200 {"status": "live"} while the process serves; no database is touched
GET  /healthz  readiness: each database's state (checks.write, checks.read); "ok" (200) when
               both work, "degraded" (200) when one does, "fail" (503) when neither does
POST /items    {"name": ...} -> stored on the primary; 503 + Retry-After while it is down
GET  /items    newest items, read from the cell's replica, or from the primary while the
               replica is down; read_from names the host that answered

A database that failed to connect is not tried again for retry_interval seconds (the breaker
of db.Database): requests that need it get 503 with Retry-After at once, without a connect.
A request waits on a database at most statement_timeout + 1 s (db.CANCEL_GRACE) once
connected, even when the server froze mid-statement.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import psycopg

from . import __version__
from .db import Database, DatabaseDown, Store
from .settings import Settings

log = logging.getLogger("fleet_app")

MAX_BODY = 16 * 1024
MAX_LIMIT = 500

Response = tuple[int, dict[str, Any]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class App:
    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        timing = (settings.connect_timeout, settings.retry_interval)
        bound = {"statement_timeout": settings.statement_timeout}
        self.store = store or Store(
            Database(settings.write_dsn, settings.write_password, *timing, **bound),
            Database(settings.read_dsn, settings.read_password, *timing, **bound),
        )
        # What a client is told to wait while a database is down: the breaker's interval.
        self.retry_after = str(max(1, math.ceil(settings.retry_interval)))
        self.routes: dict[str, dict[str, Callable[[dict], Response]]] = {
            "/": {"GET": self.index},
            "/livez": {"GET": self.livez},
            "/healthz": {"GET": self.healthz},
            "/items": {"GET": self.list_items, "POST": self.add_item},
        }

    # -- handlers ------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return {"host": self.settings.host, "cell": self.settings.cell, "version": __version__}

    def index(self, environ: dict) -> Response:
        return HTTPStatus.OK, {**self.whoami(), "endpoints": ["/livez", "/healthz", "/items"]}

    def livez(self, environ: dict) -> Response:
        """Liveness: the process serves requests. No database is touched."""
        return HTTPStatus.OK, {"status": "live", **self.whoami()}

    def healthz(self, environ: dict) -> Response:
        """Readiness: 200 while the app can serve (one database is enough), 503 when neither works."""
        write, read = self.store.write.check(), self.store.read.check()
        if write["ok"] and read["ok"]:
            status = "ok"
        elif write["ok"] or read["ok"]:
            status = "degraded"  # reads fall back to the primary, or reads serve while writes fail
        else:
            status = "fail"
        # Where reads go now: the replica, or the primary while the replica is down.
        read_from = self.store.write.host if write["ok"] and not read["ok"] else self.store.read.host
        body = {
            "status": status,
            **self.whoami(),
            "read_from": read_from,
            "write_to": self.store.write.host,
            "checks": {"write": write, "read": read},
        }
        return (HTTPStatus.SERVICE_UNAVAILABLE if status == "fail" else HTTPStatus.OK), body

    def add_item(self, environ: dict) -> Response:
        payload = read_json(environ)
        name = payload.get("name") if isinstance(payload, dict) else None
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
            raise HttpError(HTTPStatus.BAD_REQUEST, 'expected {"name": "<1-200 characters>"}')
        item = self.store.add_item(name.strip(), self.settings.host, self.settings.cell)
        return HTTPStatus.CREATED, {**item, **self.whoami(), "write_to": self.store.write.host}

    def list_items(self, environ: dict) -> Response:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        raw = query.get("limit", ["50"])[0]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"limit must be 1-{MAX_LIMIT}")
        items, read_from = self.store.list_items(int(raw))
        return HTTPStatus.OK, {"items": items, **self.whoami(), "read_from": read_from}

    # -- WSGI ----------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        method = environ.get("REQUEST_METHOD", "GET").upper()
        headers: list[tuple[str, str]] = []
        try:
            methods = self.routes.get(path)
            if methods is None:
                raise HttpError(HTTPStatus.NOT_FOUND, f"no such path: {path}")
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                allow = ", ".join(sorted(methods))
                raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed", [("Allow", allow)])
            status, body = handler(environ)
        except HttpError as exc:
            status, body, headers = exc.status, {"error": str(exc), **self.whoami()}, exc.headers
        except DatabaseDown as exc:  # expected while a database is down: one line, no stack trace
            log.warning("%s %s: %s", method, path, exc)
            status, headers = HTTPStatus.SERVICE_UNAVAILABLE, [("Retry-After", self.retry_after)]
            body = {"error": f"database unavailable: {exc.host} is down", "retry_after": int(self.retry_after)}
            body.update(self.whoami())
        except psycopg.Error as exc:  # the server went away mid-request, or another database error
            log.exception("%s %s failed", method, path)
            status, headers = HTTPStatus.SERVICE_UNAVAILABLE, [("Retry-After", self.retry_after)]
            body = {"error": f"database unavailable: {type(exc).__name__}", **self.whoami()}
        except Exception:  # a bug: logged with its stack trace, which the client never sees
            log.exception("%s %s failed", method, path)
            status, body = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error", **self.whoami()}
        data = json.dumps(body, sort_keys=True).encode() + b"\n"
        status = HTTPStatus(status)
        start_response(
            f"{status.value} {status.phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
                *headers,
            ],
        )
        return [] if method == "HEAD" else [data]


def read_json(environ: dict) -> Any:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
    if length > MAX_BODY:
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body larger than {MAX_BODY} bytes")
    if not (environ.get("CONTENT_TYPE") or "").startswith("application/json"):
        raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/json")
    try:
        return json.loads(environ["wsgi.input"].read(length) or b"null")
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "body is not valid JSON") from None


def create_app(settings: Settings | None = None, store: Store | None = None) -> App:
    return App(settings or Settings.from_env(), store)
