"""Reads the PLAY RECAP of ansible-playbook's default output."""

from __future__ import annotations

import re

RECAP = re.compile(
    r"^(?P<host>\S+)\s+: ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)(?:\s+skipped=(?P<skipped>\d+))?",
    re.M,
)
FIELDS = ("ok", "changed", "unreachable", "failed")


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """host -> {ok, changed, unreachable, failed} from every recap line in ``output``."""
    return {m["host"]: {k: int(m[k]) for k in FIELDS} for m in RECAP.finditer(output)}


def hosts_with_drift(recap: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """The hosts of ``recap`` that changed, failed or were unreachable: after a
    converge, a check run must leave this empty."""
    return {host: stats for host, stats in recap.items() if any(stats[k] for k in ("changed", "unreachable", "failed"))}


def host_tasks(output: str) -> int:
    """How many host-tasks a run did: ok (changed included), failed and skipped, over every host.

    The work a run costs, independent of the machine's speed: CI holds the no-op
    converge of the lab to a ceiling of these (bench/ceilings.yml)."""
    return sum(int(m["ok"]) + int(m["failed"]) + int(m["skipped"] or 0) for m in RECAP.finditer(output))
