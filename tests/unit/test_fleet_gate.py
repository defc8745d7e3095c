"""The app's gate rule (filter_plugins/fleet_gate.py): what a restarted server must
answer to go back in its LB."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_gate import FilterModule, app_gate_problems


def health(status: str = "ok", write: bool = True, read: bool = True, version: str = "1.2.0") -> dict:
    """A /healthz body as the app answers it."""
    return {"status": status, "version": version, "checks": {"write": {"ok": write}, "read": {"ok": read}}}


def answer(body: dict | None, status: int = 200) -> dict:
    """A registered uri result."""
    return {"status": status} if body is None else {"status": status, "json": body}


def test_ready_with_the_release_and_every_path_passes():
    assert app_gate_problems(answer(health()), "1.2.0", health(version="1.1.1")) == []


def test_a_write_path_the_change_broke_fails_though_the_answer_is_200():
    # A wrong write password: writes fail, reads serve, /healthz answers 200 "degraded".
    after = answer(health("degraded", write=False))
    assert app_gate_problems(after, "1.2.0", health()) == [
        "answered 200 degraded: write down, which worked before the restart"
    ]


def test_a_read_path_the_change_broke_fails():
    after = answer(health("degraded", read=False))
    assert app_gate_problems(after, "1.2.0", health()) == [
        "answered 200 degraded: read down, which worked before the restart"
    ]


def test_a_path_already_down_before_the_restart_does_not_fail_it():
    # The cell's replica down for every server of the cell: no deploy is blocked by it.
    before, after = health("degraded", read=False), answer(health("degraded", read=False))
    assert app_gate_problems(after, "1.2.0", before) == []


def test_with_nothing_to_compare_any_ready_answer_passes():
    # A fresh server and no peer serving (a fresh fleet): nothing to compare with.
    for before in (None, "", {"status": "fail"}):
        assert app_gate_problems(answer(health("degraded", write=False)), "1.2.0", before) == []
        assert app_gate_problems(answer(health("degraded", write=False)), "1.2.0", before, {}) == []


def test_a_path_a_peer_of_the_cell_has_fails_though_the_server_never_had_it():
    # The same wrong write password run again: the server already ran it before this
    # restart (write down before), but app2 writes.
    before, after = health("degraded", write=False), answer(health("degraded", write=False))
    peers = {"app2": health(), "app9": health("degraded", write=False)}
    lost = ["answered 200 degraded: write down, which works on app2"]
    assert app_gate_problems(after, "1.2.0", before, peers) == lost
    # A fresh server (nothing before) is held to its peers too.
    assert app_gate_problems(after, "1.2.0", None, peers) == lost


def test_a_path_down_on_the_server_before_and_on_every_peer_does_not_fail_it():
    # The cell's replica down: down before the restart and on each peer of the cell.
    after = answer(health("degraded", read=False))
    peers = {"app2": health("degraded", read=False)}
    assert app_gate_problems(after, "1.2.0", health("degraded", read=False), peers) == []
    assert app_gate_problems(after, "1.2.0", None, peers) == []


def test_peers_must_be_by_name():
    with pytest.raises(AnsibleFilterError, match="expected peers by name"):
        app_gate_problems(answer(health()), "1.2.0", None, [health()])


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (answer(health("fail", write=False, read=False), 503), "answered 503 fail"),
        (answer(None, -1), "answered nothing"),
        (answer(health(version="1.1.1")), "answered 200 from release 1.1.1, not 1.2.0"),
        (answer({"status": "ok"}), "answered 200 from release unknown, not 1.2.0"),
    ],
)
def test_not_ready_or_another_release_fails(after, expected):
    assert app_gate_problems(after, "1.2.0", health()) == [expected]


@pytest.mark.parametrize(("result", "version"), [("200", "1.2.0"), ({"status": 200}, ""), ({"status": 200}, None)])
def test_anything_else_is_an_error(result, version):
    with pytest.raises(AnsibleFilterError, match="fleet_app_gate_problems"):
        app_gate_problems(result, version)


def test_registered():
    assert FilterModule().filters() == {"fleet_app_gate_problems": app_gate_problems}
