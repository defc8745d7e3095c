"""Each step of `bin/fleet test` has a time budget in one file, and the command
ends with each step's time against it (issue 27 item 3)."""

from __future__ import annotations

import os
import re
import subprocess

import yaml

from tests.conftest import ROOT

BUDGETS = yaml.safe_load((ROOT / "tests" / "step-budgets.yml").read_text())
FLEET = (ROOT / "bin" / "fleet").read_text()
# Run beside another step: their time is not added to the wall time.
BESIDE = set(re.findall(r"\[(\w+)\]=", re.search(r"declare -A beside_of=\((.*?)\)", FLEET)[1]))


def default_steps() -> list[str]:
    return re.search(r"^all_steps=\(([a-z ]+)\)", FLEET, flags=re.M)[1].split()


def test_every_step_has_a_budget_and_the_sequence_fits_the_total():
    steps = default_steps()
    assert set(BUDGETS) == {*steps, "total"}
    assert BUDGETS["total"] <= 1800, "issue 27: the whole command in at most 30 minutes"
    assert {"aws", "lint"} == BESIDE
    assert sum(BUDGETS[s] for s in steps if s not in BESIDE) <= BUDGETS["total"]


def test_the_summary_marks_a_step_over_its_budget(tmp_path):
    budgets = tmp_path / "budgets.yml"
    budgets.write_text("syntax: 0\ntotal: 100000\n")
    proc = subprocess.run(
        [str(ROOT / "bin" / "fleet"), "test", "syntax"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "FLEET_STEP_BUDGETS": str(budgets)},
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stderr[proc.stderr.index("== summary") :]
    syntax = next(line for line in table.splitlines() if line.split()[:1] == ["syntax"])
    total = next(line for line in table.splitlines() if line.split()[:1] == ["total"])
    assert re.search(r"ok +\d+s +0s OVER BUDGET by \d+ s", syntax), table
    assert re.search(r"ok +\d+s +100000s *$", total), table
