"""Whether an app server that was restarted passes its gate (roles/app/tasks/restart.yml).

The rule: the server answers its readiness path (/healthz) with 200 and the release
it should run, and every database path (write, read) that works for its cell works
on it: each path that worked on it before the restart, or that works now on a peer
of its cell serving in its LB. A path the change broke (a wrong write password:
/healthz still answers 200 "degraded", reads serving) fails the gate, so the change
stops at the first server instead of rolling through the fleet; it fails it too when
the server had nothing to compare (not running before, or already running the bad
change after an earlier run stopped: its peers still write). A path down for the
whole cell (its replica down: down before the restart and on every peer) is no
reason to fail: the change did not cause it, and refusing would block every deploy
while a replica is down.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

PATHS = ("write", "read")


def _working(health: object) -> set[str]:
    """The database paths a /healthz body reports as working."""
    if not isinstance(health, Mapping):
        return set()
    checks = health.get("checks")
    if not isinstance(checks, Mapping):
        return set()
    return {path for path in PATHS if isinstance(checks.get(path), Mapping) and checks[path].get("ok") is True}


def app_gate_problems(answer: object, version: object, before: object = None, peers: object = None) -> list[str]:
    """Why ``answer`` (a registered ``uri`` result of /healthz after the restart) fails
    the gate for release ``version``, given ``before`` (the /healthz body the server
    answered before its restart, or nothing) and ``peers`` ({server: its /healthz body}
    of the cell's other servers serving in its LB, or nothing); [] when it passes."""
    if not isinstance(answer, Mapping):
        raise AnsibleFilterError(f"fleet_app_gate_problems: expected a uri result, got {type(answer).__name__}")
    if not isinstance(version, str) or not version:
        raise AnsibleFilterError("fleet_app_gate_problems: expected the release version")
    if peers is None:
        peers = {}
    if not isinstance(peers, Mapping):
        raise AnsibleFilterError(f"fleet_app_gate_problems: expected peers by name, got {type(peers).__name__}")
    status = answer.get("status", 0)
    body = answer.get("json")
    state = body.get("status", "") if isinstance(body, Mapping) else ""
    if status != 200:
        # uri gives -1 when nothing answered (connection refused, timed out).
        shown = status if isinstance(status, int) and status > 0 else "nothing"
        return [f"answered {shown}{' ' + state if state else ''}"]
    running = body.get("version") if isinstance(body, Mapping) else None
    if running != version:
        return [f"answered 200 from release {running or 'unknown'}, not {version}"]
    working = _working(body)
    problems = []
    for path in PATHS:
        if path in working:
            continue
        where = sorted(str(name) for name, peer in peers.items() if path in _working(peer))
        if path in _working(before):
            problems.append(f"answered 200 {state}: {path} down, which worked before the restart")
        elif where:
            problems.append(f"answered 200 {state}: {path} down, which works on {', '.join(where)}")
    return problems


class FilterModule:
    """fleet's gate filter."""

    def filters(self):
        return {"fleet_app_gate_problems": app_gate_problems}
