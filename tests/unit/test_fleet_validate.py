"""The validation filters roles use in their preflight checks."""

from __future__ import annotations

import base64
import struct

import pytest
import yaml
from ansible.parsing.splitter import parse_kv

from filter_plugins.fleet_validate import (
    FilterModule,
    as_integer,
    port_problem,
    size_problem,
    ssh_public_key_problem,
    variable_problems,
)
from tests.conftest import ROOT

GOOD_ED25519 = (ROOT / "tests" / "fixtures" / "admin_ed25519.pub").read_text().strip()
# Every port of the contract: a new fleet_port_* is tested without editing this file.
FLEET_PORTS = {
    name: value
    for name, value in yaml.safe_load((ROOT / "group_vars" / "all" / "fleet.yml").read_text()).items()
    if name.startswith("fleet_port_")
}


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


# Extra vars given as key=value arrive as strings: -e fleet_port_lb_frontend=8081 is "8081".
@pytest.mark.parametrize("value", ["1", "22", "8081", "65535", " 8081 "])
def test_a_port_may_be_a_string_of_digits(value):
    assert port_problem(value) == ""


@pytest.mark.parametrize(
    ("value", "problem"),
    [("0", "0 is outside 1-65535"), ("70000", "70000 is outside 1-65535"), ("-1", "-1 is outside 1-65535")],
)
def test_a_string_port_is_range_checked_as_a_number(value, problem):
    assert port_problem(value) == problem


@pytest.mark.parametrize(
    "value", ["80a", "", " ", "8080.0", "0x50", "+80", "8 080", "٨٠", 8080.0, 22.0, True, False, None, [80]]
)
def test_port_must_be_an_int_or_its_digits(value):
    assert port_problem(value) == f"expected an integer, got {value!r}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (8081, 8081),
        ("8081", 8081),
        (" 42 ", 42),
        ("-3", -3),
        (0, 0),
        ("4a", None),
        (True, None),
        (4.0, None),
        (None, None),
    ],
)
def test_as_integer(value, expected):
    assert as_integer(value) == expected


def key_value(name: str, value: object) -> object:
    """``name``'s value as ``-e name=value`` gives it (ansible-playbook's own parser)."""
    return parse_kv(f"{name}={value}")[name]


@pytest.mark.parametrize("name", sorted(FLEET_PORTS))
def test_every_port_of_the_contract_is_accepted_as_key_value(name):
    """Each fleet_port_* of group_vars/all/fleet.yml, typed as -e fleet_port_x=NNNN."""
    given = key_value(name, FLEET_PORTS[name])
    assert given == str(FLEET_PORTS[name])  # a string, not the int of fleet.yml
    assert variable_problems([{"name": name, "value": given, "port": True}]) == []


@pytest.mark.parametrize("name", sorted(FLEET_PORTS))
@pytest.mark.parametrize(
    ("bad", "problem"),
    [("80a", "expected an integer, got '80a'"), ("0", "0 is outside 1-65535"), ("70000", "70000 is outside 1-65535")],
)
def test_a_bad_port_of_the_contract_as_key_value_is_refused(name, bad, problem):
    given = key_value(name, bad)
    assert variable_problems([{"name": name, "value": given, "port": True}]) == [f"{name}: {problem}"]


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
        ({"min": 1, "value": "2.0"}, "p: got '2.0', expected an integer of at least 1"),
        ({"min": 1, "value": "0"}, "p: got 0, expected at least 1"),
        ({"port": True, "value": "80a"}, "p: expected an integer, got '80a'"),
        ({"port": True, "value": "0"}, "p: 0 is outside 1-65535"),
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
        {"min": 0, "value": " 0 "},
        {"min": -1, "value": "-1"},
        {"port": True, "value": "8081"},
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
