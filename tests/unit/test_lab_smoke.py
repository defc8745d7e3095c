"""scripts/lab.py's smoke check: every cell of the lab must answer through the ELB stand-in."""

from __future__ import annotations

import itertools

import pytest

from scripts import lab

URL = "http://127.0.0.1:8088"


def healthz(cell: str) -> tuple[int, dict]:
    return 200, {"status": "ok", "host": f"app-{cell}", "cell": cell, "version": "1"}


def test_cell_groups_are_the_lab_inventory_groups():
    assert lab.cell_groups(lab.fleet_hosts(2)) == ["cell_a", "cell_b"]
    assert lab.cell_groups(lab.fleet_hosts(3)) == ["cell_a", "cell_b", "cell_c"]


@pytest.mark.parametrize(
    ("answers", "missing"),
    [
        ([healthz("cell_a"), healthz("cell_b")] * 8, []),
        ([healthz("cell_a")] * 16, ["cell_b"]),
        ([], ["cell_a", "cell_b"]),
        # Only healthy answers count: an error page, a body that is not JSON, a body without a cell.
        ([healthz("cell_a"), (503, {"cell": "cell_b"}), (200, "<html>"), (200, {"status": "ok"})], ["cell_b"]),
        # Ready but degraded (a database down) is not a healthy fleet.
        ([healthz("cell_a"), (200, {"status": "degraded", "cell": "cell_b"})], ["cell_b"]),
        # A cell nobody expects does not stand in for one that is missing.
        ([healthz("cell_a"), healthz("cell_c")], ["cell_b"]),
    ],
    ids=["both", "one_cell_silent", "no_answers", "unhealthy_answers", "degraded", "unexpected_cell"],
)
def test_missing_cells(answers, missing):
    assert lab.missing_cells(["cell_a", "cell_b"], answers) == missing


def fake_elb(monkeypatch, answers) -> list[tuple[str, str]]:
    """Point lab.http at a canned sequence of /healthz answers; writes succeed. Returns the calls."""
    calls: list[tuple[str, str]] = []
    healthz_answers = iter(answers)

    def http(method, url, body=None, timeout=5):
        calls.append((method, url))
        if method == "POST":
            return 201, {"id": 1, "name": body["name"]}
        return next(healthz_answers)

    monkeypatch.setattr(lab, "http", http)
    monkeypatch.setattr(lab.time, "sleep", lambda _: None)
    return calls


def test_smoke_fails_naming_the_cell_that_did_not_answer(monkeypatch):
    calls = fake_elb(monkeypatch, itertools.repeat(healthz("cell_a")))
    with pytest.raises(SystemExit) as failure:
        lab.smoke(URL, ["cell_a", "cell_b"])
    message = str(failure.value)
    assert message.startswith("smoke: cell(s) cell_b did not answer: 16 requests"), message
    assert "were answered by cell_a" in message, message
    # It stops there: no item is written through a fleet that is half down.
    assert ("POST", f"{URL}/items") not in calls


def test_smoke_names_every_silent_cell_of_a_bigger_lab(monkeypatch):
    fake_elb(monkeypatch, itertools.cycle([healthz("cell_a"), (503, "no server available")]))
    with pytest.raises(SystemExit, match=r"cell\(s\) cell_b, cell_c did not answer: 24 requests .* 12\)$"):
        lab.smoke(URL, ["cell_a", "cell_b", "cell_c"])


def test_smoke_passes_when_every_cell_answers(monkeypatch, capsys):
    calls = fake_elb(monkeypatch, itertools.cycle([healthz("cell_a"), healthz("cell_b")]))
    lab.smoke(URL, ["cell_a", "cell_b"])
    assert "healthz 200 from cells ['cell_a', 'cell_b']" in capsys.readouterr().out
    # One request to see the ELB up, then two until both cells answered, then the write.
    assert calls == [("GET", f"{URL}/healthz")] * 3 + [("POST", f"{URL}/items")]
