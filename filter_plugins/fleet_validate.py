"""Validation filters: pure functions that say what is wrong with a value.

Each returns an empty string for a good value and a short reason otherwise, so a
role's preflight can assert on it and name the variable in its message.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct

SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)


def ssh_public_key_problem(key: object) -> str:
    """Why ``key`` is not one OpenSSH public key line, or '' when it is."""
    if not isinstance(key, str):
        return f"expected a string, got {type(key).__name__}"
    parts = key.strip().split()
    if len(parts) < 2:
        return "expected '<type> <base64> [comment]'"
    key_type, blob_b64 = parts[0], parts[1]
    if key_type not in SSH_KEY_TYPES:
        return f"unknown key type {key_type!r}"
    try:
        blob = base64.b64decode(blob_b64, validate=True)
    except (binascii.Error, ValueError):
        return "key data is not valid base64"
    # The blob starts with the key type again, as a length-prefixed string.
    if len(blob) < 4:
        return "key data is truncated"
    (length,) = struct.unpack(">I", blob[:4])
    embedded = blob[4 : 4 + length].decode("ascii", errors="replace")
    if embedded != key_type:
        return f"key data is for {embedded!r}, not {key_type!r}"
    if len(blob) < 4 + length + 16:
        return "key data is truncated"
    return ""


_PORT_MIN, _PORT_MAX = 1, 65535
_INTEGER = re.compile(r"\s*-?[0-9]+\s*")


def as_integer(value: object) -> int | None:
    """``value`` as an int when it is one, or a string of digits; None otherwise.

    Extra vars given as ``key=value`` arrive as strings: ``-e fleet_port_http=8081``
    is "8081", and means 8081. Booleans, floats and anything else are not integers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return int(value)
    return None


def port_problem(value: object) -> str:
    """Why ``value`` is not a TCP port number (an int or a string of digits), or '' when it is."""
    port = as_integer(value)
    if port is None:
        return f"expected an integer, got {value!r}"
    if not _PORT_MIN <= port <= _PORT_MAX:
        return f"{port} is outside {_PORT_MIN}-{_PORT_MAX}"
    return ""


_SIZE = re.compile(r"^[0-9]+[KMGT]?$")


def size_problem(value: object) -> str:
    """Why ``value`` is not a size such as 500M, or '' when it is."""
    if not isinstance(value, str) or not _SIZE.match(value):
        return f"{value!r} is not a size such as 512K, 500M or 2G"
    return ""


def _shown(value: object) -> str:
    """A value as an operator would type it: strings quoted, so '' and ' ' show."""
    return repr(value) if isinstance(value, str) else str(value)


def _check_problem(check: dict) -> str:
    """Why ``check['value']`` breaks its rule, or '' when it keeps it."""
    value = check.get("value")
    expected = check.get("expected", "")
    if "port" in check:
        return port_problem(value)
    if "size" in check:
        return size_problem(value)
    if "regex" in check:
        if not isinstance(value, str) or not re.match(check["regex"], value):
            return f"got {_shown(value)}, expected {expected}"
        return ""
    if "items_regex" in check:
        if not isinstance(value, list):
            return f"got {_shown(value)}, expected a list of {expected}"
        bad = [item for item in value if not isinstance(item, str) or not re.match(check["items_regex"], item)]
        if bad:
            return f"items that are not {expected}: {', '.join(map(_shown, bad))}"
        return ""
    if "min" in check:
        # An optional max makes it a range: "at least 1" or "1-300".
        allowed = f"at least {check['min']}" if check.get("max") is None else f"{check['min']}-{check['max']}"
        number = as_integer(value)  # key=value extra vars arrive as strings: "4" is 4
        if number is None:
            return f"got {_shown(value)}, expected an integer of {allowed}"
        if number < check["min"] or (check.get("max") is not None and number > check["max"]):
            return f"got {number}, expected {allowed}"
        return ""
    if "choices" in check:
        if value not in check["choices"]:
            return f"got {_shown(value)}, expected one of {', '.join(map(str, check['choices']))}"
        return ""
    if "ok" in check:
        return "" if check["ok"] else f"got {_shown(value)}, expected {expected}"
    raise ValueError(f"check of {check.get('name')!r} has no rule (port, size, regex, items_regex, min, choices, ok)")


def variable_problems(checks: list[dict]) -> list[str]:
    """One complaint ``name: what is wrong, what is allowed`` per check that fails.

    Each check is a dict with ``name`` (the variable), ``value`` and one rule:
    ``port: true``, ``size: true``, ``regex`` (with ``expected``, the words for
    what matches), ``items_regex`` (a list whose every item matches), ``min``
    (an integer; with ``max`` too, a range), ``choices``, or ``ok`` (a condition
    computed by the caller, with ``expected``).
    Instead of ``name`` and ``value``, ``values`` maps several variables to their
    values, all under the same rule. Checks that pass say nothing, so a preflight
    message names only the variables that are wrong.
    """
    problems = []
    for check in checks:
        if "values" in check:
            rule = {k: v for k, v in check.items() if k != "values"}
            expanded = [{**rule, "name": name, "value": value} for name, value in check["values"].items()]
        else:
            expanded = [check]
        for one in expanded:
            problem = _check_problem(one)
            if problem:
                problems.append(f"{one['name']}: {problem}")
    return problems


class FilterModule:
    """fleet's validation filters."""

    def filters(self):
        return {
            "fleet_ssh_public_key_problem": ssh_public_key_problem,
            "fleet_port_problem": port_problem,
            "fleet_size_problem": size_problem,
            "fleet_variable_problems": variable_problems,
        }
