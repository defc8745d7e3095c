"""scripts/drift.py's own logic: exit status, retention, and the one-run-at-a-time lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts import drift

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("report", "status"),
    [
        (None, 1),
        ({"hosts_failed": [], "hosts_unreachable": [], "hosts_with_drift": []}, 0),
        ({"hosts_failed": [], "hosts_unreachable": [], "hosts_with_drift": ["web1"]}, 2),
        ({"hosts_failed": [], "hosts_unreachable": ["web2"], "hosts_with_drift": ["web1"]}, 1),
        ({"hosts_failed": ["db"], "hosts_unreachable": [], "hosts_with_drift": []}, 1),
        ({"hosts_failed": [], "hosts_unreachable": [], "hosts_with_drift": [], "hosts_not_checked": ["web1"]}, 1),
        ({"hosts_failed": [], "hosts_unreachable": [], "hosts_with_drift": ["a"], "hosts_not_checked": ["a"]}, 1),
        ({"hosts_failed": [], "hosts_unreachable": [], "hosts_with_drift": [], "hosts": {}}, 1),
    ],
)
def test_exit_status(report, status):
    if report is not None:
        report.setdefault("hosts", {"web1": {}})
    assert drift.exit_status(report) == status


def make_runs(reports: Path, names: list[str]) -> None:
    for name in names:
        (reports / name).mkdir()
        (reports / name / "drift.json").write_text("{}")


def test_prune_keeps_the_newest_runs_only(tmp_path):
    names = ["20261125T100000Z-check", "20261125T110000Z-check", "20261125T110000Z-recheck", "20261125T120000Z-check"]
    make_runs(tmp_path, names)
    (tmp_path / "notes").mkdir()  # not a run: never touched
    (tmp_path / "latest").symlink_to("20261125T120000Z-check")
    assert drift.prune(tmp_path, 2) == names[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20261125T110000Z-recheck",
        "20261125T120000Z-check",
        "latest",
        "notes",
    ]
    assert (tmp_path / "latest" / "drift.json").exists()


def test_prune_zero_keeps_everything(tmp_path):
    make_runs(tmp_path, ["20261125T100000Z-check", "20261125T110000Z-check"])
    assert drift.prune(tmp_path, 0) == []
    assert len(list(tmp_path.iterdir())) == 2


def test_a_second_run_waits_for_nothing_and_checks_nothing(tmp_path):
    held = drift.lock(tmp_path)
    assert held is not None
    try:
        # Another process (as a timer and an operator would be) cannot take it.
        proc = subprocess.run(
            [sys.executable, "-m", "scripts.drift", "--reports", str(tmp_path), "-i", str(tmp_path / "none")],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 1
        assert "another drift run holds" in proc.stderr
        assert not [p for p in tmp_path.iterdir() if drift.RUN_DIR.match(p.name)]
    finally:
        held.close()
    again = drift.lock(tmp_path)
    assert again is not None
    again.close()


def test_keep_must_not_be_negative(tmp_path):
    with pytest.raises(SystemExit) as exc:
        drift.main(["--reports", str(tmp_path), "--keep", "-1"])
    assert exc.value.code == 2
