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


def port_problem(value: object) -> str:
    """Why ``value`` is not a TCP port number, or '' when it is."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"expected an integer, got {value!r}"
    if not _PORT_MIN <= value <= _PORT_MAX:
        return f"{value} is outside {_PORT_MIN}-{_PORT_MAX}"
    return ""


_SIZE = re.compile(r"^[0-9]+[KMGT]?$")


def size_problem(value: object) -> str:
    """Why ``value`` is not a size such as 500M, or '' when it is."""
    if not isinstance(value, str) or not _SIZE.match(value):
        return f"{value!r} is not a size such as 512K, 500M or 2G"
    return ""


class FilterModule:
    """fleet's validation filters."""

    def filters(self):
        return {
            "fleet_ssh_public_key_problem": ssh_public_key_problem,
            "fleet_port_problem": port_problem,
            "fleet_size_problem": size_problem,
        }
