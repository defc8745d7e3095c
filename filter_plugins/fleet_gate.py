"""Whether an app server that was restarted passes its gate (roles/app/tasks/restart.yml).

The rule: the server answers its readiness path (/healthz) with 200 and the release
it should run, and every database path (write, read) that worked on it before the
restart works after it. A path the change broke (a wrong write password: /healthz
still answers 200 "degraded", reads serving) fails the gate, so the change stops at
the first server instead of rolling through the fleet. A path that was already down
before the restart (its cell's replica down, which every server of the cell shares)
is no reason to fail: the change did not cause it, and refusing would block every
deploy while a replica is down. A server with nothing to compare (not running
before: a fresh host) passes with any 200 answer.
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


def app_gate_problems(answer: object, version: object, before: object = None) -> list[str]:
    """Why ``answer`` (a registered ``uri`` result of /healthz after the restart) fails
    the gate for release ``version``, given ``before`` (the /healthz body the server
    answered before its restart, or nothing); [] when it passes."""
    if not isinstance(answer, Mapping):
        raise AnsibleFilterError(f"fleet_app_gate_problems: expected a uri result, got {type(answer).__name__}")
    if not isinstance(version, str) or not version:
        raise AnsibleFilterError("fleet_app_gate_problems: expected the release version")
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
    lost = sorted(_working(before) - _working(body), key=PATHS.index)
    return [f"answered 200 {state}: {path} down, which worked before the restart" for path in lost]


class FilterModule:
    """fleet's gate filter."""

    def filters(self):
        return {"fleet_app_gate_problems": app_gate_problems}
