"""PostgreSQL filters: settings sized from the host, and names PostgreSQL accepts.

Pure functions. The ``*_problem`` filters return an empty string for a good value
and a short reason otherwise, so the role's preflight can assert on them and name
the variable; ``fleet_postgresql_tuning`` raises AnsibleFilterError on bad input.
"""

from __future__ import annotations

import re

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - the unit tests run with ansible installed

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        """Stand-in when Ansible is not importable."""


# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes; fleet rejects
# longer ones instead of letting two names collide after truncation.
_MAX_IDENTIFIER = 63
# Unquoted identifiers: fleet never quotes role or database names in SQL it writes.
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# Replication slot names: lower-case letters, digits and underscores only.
_SLOT = re.compile(r"^[a-z0-9_]+$")
# Role names PostgreSQL reserves or that mean something else in pg_hba.conf.
_RESERVED_ROLES = frozenset({"public", "none", "all", "current_user", "session_user", "current_role", "replication"})
_RESERVED_DATABASES = frozenset({"all", "sameuser", "samerole", "samegroup", "replication", "template0", "template1"})


def identifier_problem(name: object) -> str:
    """Why ``name`` is not a plain lower-case PostgreSQL identifier, or ''."""
    if not isinstance(name, str) or not name:
        return f"expected a non-empty string, got {name!r}"
    if len(name.encode()) > _MAX_IDENTIFIER:
        return f"{name!r} is longer than {_MAX_IDENTIFIER} bytes"
    if not _IDENTIFIER.match(name):
        return f"{name!r} must start with a-z or _ and contain only a-z, 0-9 and _"
    return ""


def role_name_problem(name: object) -> str:
    """Why ``name`` is not a role name fleet can create, or ''."""
    problem = identifier_problem(name)
    if problem:
        return problem
    if name.startswith("pg_"):
        return f"{name!r}: role names starting with pg_ are reserved"
    if name in _RESERVED_ROLES:
        return f"{name!r} is a reserved role name"
    return ""


def database_name_problem(name: object) -> str:
    """Why ``name`` is not a database name fleet can create, or ''."""
    problem = identifier_problem(name)
    if problem:
        return problem
    if name in _RESERVED_DATABASES:
        return f"{name!r} is reserved in pg_hba.conf or by PostgreSQL"
    return ""


def slot_name_problem(name: object) -> str:
    """Why ``name`` is not a replication slot name PostgreSQL accepts, or ''."""
    if not isinstance(name, str) or not name:
        return f"expected a non-empty string, got {name!r}"
    if len(name) > _MAX_IDENTIFIER:
        return f"{name!r} is longer than {_MAX_IDENTIFIER} characters"
    if not _SLOT.match(name):
        return f"{name!r} may contain only lower-case letters, numbers and _"
    return ""


def slot_name(hostname: object) -> str:
    """The replication slot name of an inventory host: db-replica1.lab -> db_replica1_lab."""
    if not isinstance(hostname, str) or not hostname:
        raise AnsibleFilterError(f"fleet_postgresql_slot_name: expected a host name, got {hostname!r}")
    return re.sub(r"[^a-z0-9_]", "_", hostname.lower())[:_MAX_IDENTIFIER]


def _positive_int(name: str, value: object) -> int:
    # Extra vars given as key=value arrive as strings: -e postgresql_max_connections=200 is "200".
    number = int(value) if isinstance(value, str) and re.fullmatch(r"\s*[0-9]+\s*", value) else value
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        raise AnsibleFilterError(f"fleet_postgresql_tuning: {name} must be a positive integer, got {value!r}")
    return number


TUNED = ("max_connections", "shared_buffers_mb", "effective_cache_size_mb", "work_mem_mb", "maintenance_work_mem_mb")


def tuning(memory_mb: object, cpus: object, overrides: dict | None = None) -> dict[str, int]:
    """Memory and connection settings for a host with ``memory_mb`` of RAM and ``cpus`` CPUs.

    shared_buffers is a quarter of RAM, effective_cache_size three quarters,
    max_connections 25 per CPU (100 to 500), maintenance_work_mem RAM/16 (64 MB to
    2 GB) and work_mem what is left after shared_buffers spread over three sorts per
    connection (at least 4 MB). Any value in ``overrides`` that is not None wins.
    """
    memory = _positive_int("memory_mb", memory_mb)
    cpu = _positive_int("cpus", cpus)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(overrides) - set(TUNED))
    if unknown:
        raise AnsibleFilterError(f"fleet_postgresql_tuning: unknown settings {unknown}; known: {list(TUNED)}")
    overrides = {key: _positive_int(key, value) for key, value in overrides.items()}

    result: dict[str, int] = {}
    result["max_connections"] = overrides.get("max_connections", min(500, max(100, 25 * cpu)))
    result["shared_buffers_mb"] = overrides.get("shared_buffers_mb", max(128, memory // 4))
    result["effective_cache_size_mb"] = overrides.get("effective_cache_size_mb", max(128, memory * 3 // 4))
    result["maintenance_work_mem_mb"] = overrides.get("maintenance_work_mem_mb", min(2048, max(64, memory // 16)))
    spare = max(0, memory - result["shared_buffers_mb"])
    result["work_mem_mb"] = overrides.get("work_mem_mb", max(4, spare // (3 * result["max_connections"])))
    return result


def tuning_problem(settings: object, memory_mb: int) -> str:
    """Why ``settings`` (from fleet_postgresql_tuning) do not fit ``memory_mb`` of RAM, or ''."""
    if not isinstance(settings, dict):
        return f"expected a dict of settings, got {settings!r}"
    for key in ("shared_buffers_mb", "maintenance_work_mem_mb", "work_mem_mb"):
        if settings.get(key, 0) >= memory_mb:
            return f"{key}={settings[key]} is not below the memory of {memory_mb} MB"
    return ""


# pg_controldata's "Database cluster state" of a cluster that is not in recovery: a
# primary running, stopping, stopped or recovering from its own crash. A standby
# shows "in archive recovery" running and "shut down in recovery" stopped.
_OUT_OF_RECOVERY = frozenset({"in production", "shutting down", "shut down", "in crash recovery"})


def control_state(controldata: object) -> dict[str, str]:
    """The system identifier and cluster state pg_controldata printed (LC_ALL=C), or {}
    when it printed neither (no cluster, no binary, an unreadable control file)."""
    text = controldata if isinstance(controldata, str) else ""
    identifier = re.search(r"^Database system identifier:\s+(\d+)\s*$", text, flags=re.M)
    state = re.search(r"^Database cluster state:\s+(.+?)\s*$", text, flags=re.M)
    if not identifier or not state:
        return {}
    return {"system_identifier": identifier[1], "state": state[1]}


def split_brain(controldata_by_host: object) -> list[list[str]]:
    """Hosts that run one cluster (the same system identifier) out of recovery, two or
    more of them: each such set sorted, the sets sorted. ``controldata_by_host`` maps an
    inventory name to what pg_controldata printed there ('' where it found no cluster).

    A cluster of another identifier out of recovery is not a split brain of this one
    (Debian's freshly made cluster on a new replica, before its clone): the replica
    tasks decide about it, guarded."""
    if not isinstance(controldata_by_host, dict):
        raise AnsibleFilterError(f"expected a dict of host -> pg_controldata output, got {controldata_by_host!r}")
    primaries: dict[str, list[str]] = {}
    for host, text in controldata_by_host.items():
        control = control_state(text)
        if control and control["state"] in _OUT_OF_RECOVERY:
            primaries.setdefault(control["system_identifier"], []).append(str(host))
    return sorted(sorted(hosts) for hosts in primaries.values() if len(hosts) > 1)


class FilterModule:
    """fleet's PostgreSQL filters."""

    def filters(self):
        return {
            "fleet_postgresql_identifier_problem": identifier_problem,
            "fleet_postgresql_role_name_problem": role_name_problem,
            "fleet_postgresql_database_name_problem": database_name_problem,
            "fleet_postgresql_slot_name_problem": slot_name_problem,
            "fleet_postgresql_slot_name": slot_name,
            "fleet_postgresql_tuning": tuning,
            "fleet_postgresql_tuning_problem": tuning_problem,
            "fleet_postgresql_split_brain": split_brain,
        }
