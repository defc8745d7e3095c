"""The WSGI application: plain WSGI, no framework, so a release is a handful of wheels.

GET  /         who serves: host, cell, version
GET  /healthz  both database connections; 200 only when both work, 503 otherwise
POST /items    {"name": ...} -> stored on the primary
GET  /items    newest items, read from the cell's replica
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from . import __version__
from .db import Database, Store
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
        self.store = store or Store(
            Database(settings.write_dsn, settings.write_password, settings.connect_timeout),
            Database(settings.read_dsn, settings.read_password, settings.connect_timeout),
        )
        self.routes: dict[str, dict[str, Callable[[dict], Response]]] = {
            "/": {"GET": self.index},
            "/healthz": {"GET": self.healthz},
            "/items": {"GET": self.list_items, "POST": self.add_item},
        }

    # -- handlers ------------------------------------------------------------
    def whoami(self) -> dict[str, Any]:
        return {"host": self.settings.host, "cell": self.settings.cell, "version": __version__}

    def index(self, environ: dict) -> Response:
        return HTTPStatus.OK, {**self.whoami(), "endpoints": ["/healthz", "/items"]}

    def healthz(self, environ: dict) -> Response:
        checks = {"write": self.store.write.check(), "read": self.store.read.check()}
        healthy = all(check["ok"] for check in checks.values())
        body = {
            "status": "ok" if healthy else "fail",
            **self.whoami(),
            "read_from": self.store.read.host,
            "write_to": self.store.write.host,
            "checks": checks,
        }
        return (HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE), body

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
        items = self.store.list_items(int(raw))
        return HTTPStatus.OK, {"items": items, **self.whoami(), "read_from": self.store.read.host}

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
        except Exception as exc:  # a database outage must not turn into a stack trace for the client
            log.exception("%s %s failed", method, path)
            status = HTTPStatus.SERVICE_UNAVAILABLE
            body = {"error": f"database unavailable: {type(exc).__name__}", **self.whoami()}
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
