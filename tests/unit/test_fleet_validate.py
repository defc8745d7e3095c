"""The validation filters roles use in their preflight checks."""

from __future__ import annotations

import base64
import struct

import pytest

from filter_plugins.fleet_validate import FilterModule, port_problem, size_problem, ssh_public_key_problem
from tests.conftest import ROOT

GOOD_ED25519 = (ROOT / "tests" / "fixtures" / "admin_ed25519.pub").read_text().strip()


def _blob(key_type: str, payload: bytes = b"\0" * 36) -> str:
    raw = struct.pack(">I", len(key_type)) + key_type.encode() + payload
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "key",
    [
        GOOD_ED25519,
        GOOD_ED25519.rsplit(" ", 1)[0],  # no comment
        f"ssh-rsa {_blob('ssh-rsa', b'x' * 270)} ops@example",
        f"ecdsa-sha2-nistp256 {_blob('ecdsa-sha2-nistp256', b'y' * 100)}",
    ],
)
def test_good_keys(key):
    assert ssh_public_key_problem(key) == ""


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "expected a string"),
        ("", "expected '<type> <base64>"),
        ("ssh-ed25519", "expected '<type> <base64>"),
        ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "unknown key type"),
        ("ssh-ed25519 not*base64!", "not valid base64"),
        (f"ssh-rsa {_blob('ssh-ed25519')}", "is for 'ssh-ed25519', not 'ssh-rsa'"),
        (f"ssh-ed25519 {_blob('ssh-ed25519', b'')}", "truncated"),
        ("ssh-ed25519 AAA=", "truncated"),
    ],
)
def test_bad_keys_say_why(key, reason):
    assert reason in ssh_public_key_problem(key)


@pytest.mark.parametrize(("value", "ok"), [(1, True), (22, True), (65535, True), (0, False), (65536, False)])
def test_port_range(value, ok):
    assert (port_problem(value) == "") is ok


@pytest.mark.parametrize("value", ["22", 22.0, True, None])
def test_port_must_be_an_int(value):
    assert "expected an integer" in port_problem(value)


@pytest.mark.parametrize(
    ("value", "ok"), [("500M", True), ("2G", True), ("1024", True), ("lots", False), ("5 M", False)]
)
def test_sizes(value, ok):
    assert (size_problem(value) == "") is ok


def test_filters_are_registered():
    assert set(FilterModule().filters()) == {
        "fleet_ssh_public_key_problem",
        "fleet_port_problem",
        "fleet_size_problem",
    }
