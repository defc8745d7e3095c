"""HAProxy's runtime state, as its admin socket answers ``show stat``.

The rolling restarts of the app tier (roles/app/tasks/plan.yml and restart.yml)
read each LB's servers this way: the CSV's first line is the header, prefixed
with ``# ``; each row is a proxy (FRONTEND, BACKEND) or one of its servers.
"""

from __future__ import annotations

import csv
import io

from ansible.errors import AnsibleFilterError


def haproxy_servers(output: object, backend: str) -> dict[str, dict[str, object]]:
    """``{server: {"status": "UP", "up": True, "sessions": 0}}`` of ``backend`` in ``show stat`` output.

    ``up`` is true for UP and for a server still UP but failing checks ("UP 1/2");
    DRAIN, MAINT, DOWN and NOLB are not up. ``sessions`` is ``scur``, the requests
    the server is handling now. Empty output (no socket yet) gives no servers.
    """
    if not isinstance(output, str):
        raise AnsibleFilterError(f"fleet_haproxy_servers: expected show stat output, got {type(output).__name__}")
    text = output.strip()
    if not text:
        return {}
    if not text.startswith("# pxname,svname,"):
        raise AnsibleFilterError(f"fleet_haproxy_servers: not show stat output: {text.splitlines()[0][:80]!r}")
    servers: dict[str, dict[str, object]] = {}
    for row in csv.DictReader(io.StringIO(text[2:])):
        if row["pxname"] != backend or row["svname"] in ("FRONTEND", "BACKEND"):
            continue
        status = row.get("status") or ""
        servers[row["svname"]] = {
            "status": status,
            "up": status == "UP" or status.startswith("UP "),
            "sessions": int(row.get("scur") or 0),
        }
    return servers


# What haproxy_server says of a server the backend does not list (or the LB answered nothing).
ABSENT: dict[str, object] = {"status": "", "up": False, "sessions": 0}


def haproxy_server(output: object, backend: str, name: str) -> dict[str, object]:
    """One server of ``backend`` as ``haproxy_servers`` gives it; ``ABSENT``'s copy when it
    is not listed (status "", not up, no sessions)."""
    return haproxy_servers(output, backend).get(name, dict(ABSENT))


def haproxy_up_besides(servers: object, leaving: object) -> list[str]:
    """The servers of ``servers`` (as ``haproxy_servers`` gives them) that are exactly UP and
    not among ``leaving``: what carries a backend's traffic while those are out, sorted.
    Not one failing its checks ("UP 1/2", on its way down): a batch leaves only while a
    server that passes them stays."""
    if not isinstance(servers, dict):
        raise AnsibleFilterError(f"fleet_haproxy_up_besides: expected servers, got {type(servers).__name__}")
    if isinstance(leaving, str) or not isinstance(leaving, (list, tuple, set)):
        raise AnsibleFilterError(f"fleet_haproxy_up_besides: expected a list of names, got {type(leaving).__name__}")
    return sorted(name for name, server in servers.items() if server["status"] == "UP" and name not in set(leaving))


class FilterModule:
    """fleet's HAProxy filters."""

    def filters(self):
        return {
            "fleet_haproxy_servers": haproxy_servers,
            "fleet_haproxy_server": haproxy_server,
            "fleet_haproxy_up_besides": haproxy_up_besides,
        }
