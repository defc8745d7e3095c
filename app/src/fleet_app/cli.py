"""fleet-app migrate | check | version."""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__
from .app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet-app", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the schema on the write database if it is missing")
    sub.add_parser("check", help="check both database connections, print the health report (exit 0: both work)")
    sub.add_parser("version", help="print the installed version")
    args = parser.parse_args(argv)

    if args.command == "version":
        print(__version__)
        return 0
    app = create_app()
    if args.command == "migrate":
        app.store.migrate()
        print(f"schema ready on {app.store.write.host}")
        return 0
    _, body = app.healthz({})
    print(json.dumps(body, indent=2, sort_keys=True))
    # Stricter than readiness: "degraded" still serves, but one database is down.
    return 0 if body["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
