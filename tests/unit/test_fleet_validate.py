"""The validation filters roles use in their preflight checks."""

from __future__ import annotations

import base64
import struct

import pytest

from filter_plugins.fleet_validate import (
    FilterModule,
    port_problem,
    size_problem,
    ssh_public_key_problem,
    variable_problems,
)
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
        "fleet_variable_problems",
    }


@pytest.mark.parametrize(
    ("check", "problem"),
    [
        ({"port": True, "value": 70000}, "p: 70000 is outside 1-65535"),
        ({"size": True, "value": "lots"}, "p: 'lots' is not a size such as 512K, 500M or 2G"),
        ({"regex": "^[a-z]+$", "expected": "a word", "value": "Two words"}, "p: got 'Two words', expected a word"),
        ({"regex": "^[a-z]+$", "expected": "a word", "value": 7}, "p: got 7, expected a word"),
        ({"items_regex": "^[a-z]+$", "expected": "names", "value": "curl"}, "p: got 'curl', expected a list of names"),
        (
            {"items_regex": "^[a-z]+$", "expected": "names", "value": ["ok", "not ok", 3]},
            "p: items that are not names: 'not ok', 3",
        ),
        ({"min": 1, "value": 0}, "p: got 0, expected at least 1"),
        ({"min": 1, "value": "x"}, "p: got 'x', expected an integer of at least 1"),
        ({"min": 1, "value": True}, "p: got True, expected an integer of at least 1"),
        ({"min": 1, "max": 300, "value": 301}, "p: got 301, expected 1-300"),
        ({"min": 1, "max": 300, "value": 0}, "p: got 0, expected 1-300"),
        ({"min": 1, "max": 300, "value": "301"}, "p: got 301, expected 1-300"),
        ({"min": 1, "max": 300, "value": 2.5}, "p: got 2.5, expected an integer of 1-300"),
        ({"choices": ["python"], "value": "node"}, "p: got 'node', expected one of python"),
        ({"ok": False, "expected": "something else", "value": ""}, "p: got '', expected something else"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_a_failing_check_names_the_variable_what_is_wrong_and_what_is_allowed(check, problem):
    assert variable_problems([{"name": "p", **check}]) == [problem]


@pytest.mark.parametrize(
    "check",
    [
        {"port": True, "value": 22},
        {"size": True, "value": "500M"},
        {"regex": "^[a-z]+$", "expected": "a word", "value": "word"},
        {"items_regex": "^[a-z]+$", "expected": "names", "value": []},
        {"min": 1, "value": 1},
        {"min": 1, "value": "4"},  # key=value extra vars arrive as strings
        {"min": 1, "max": 300, "value": 300},
        {"min": 1, "max": 300, "value": "1"},
        {"min": 1, "max": None, "value": 10**6},  # max: null is no maximum
        {"choices": ["python"], "value": "python"},
        {"ok": True, "expected": "anything", "value": "x"},
    ],
    ids=lambda v: next(iter(v)),
)
def test_a_passing_check_says_nothing(check):
    assert variable_problems([{"name": "p", **check}]) == []


def test_only_the_failing_variables_are_named_in_order():
    checks = [
        {"name": "a_port", "value": 22, "port": True},
        {"name": "b_port", "value": 0, "port": True},
        {"regex": "^[0-9]+s$", "expected": "seconds", "values": {"c_timeout": "5s", "d_timeout": "soon"}},
        {"name": "e_count", "value": 3, "min": 1},
    ]
    assert variable_problems(checks) == [
        "b_port: 0 is outside 1-65535",
        "d_timeout: got 'soon', expected seconds",
    ]


def test_a_check_without_a_rule_is_a_bug_in_the_role():
    with pytest.raises(ValueError, match="has no rule"):
        variable_problems([{"name": "p", "value": 1}])
