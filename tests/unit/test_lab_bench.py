"""The benchmark harness's tables (bench/lab_bench.py): medians, ranges, per-task cost."""

from __future__ import annotations

import pytest

from bench import lab_bench


def run(seconds: float, tasks: int = 100, rc: int = 0) -> dict:
    figure = {"seconds": seconds, "rc": rc, "host_tasks": tasks, "load1": 1.0}
    return dict.fromkeys(lab_bench.FIGURES, figure)


def test_table_has_a_median_and_range_per_cell_count_and_the_growth_ratio():
    results = {2: [run(100), run(120), run(110)], 4: [run(190, 200), run(210, 200), run(200, 200)]}
    text = lab_bench.table(results, "abc1234")
    noop = next(line for line in text.splitlines() if line.startswith("| no-op `site.yml`, project"))
    assert "110 s (100-120), 100 host-tasks, 1.10 s/task" in noop
    assert "200 s (190-210), 200 host-tasks, 1.00 s/task" in noop
    assert "**1.82x**" in text
    assert "abc1234" in text


def test_a_failed_run_is_marked_and_drift_exit_2_is_not_a_failure():
    results = {2: [run(100, rc=1)]}
    results[2][0]["drift"] = {"seconds": 50, "rc": 2, "host_tasks": 10, "load1": 0.5}
    lines = lab_bench.table(results, "x").splitlines()
    assert "**1 failed**" in next(line for line in lines if line.startswith("| no-op `site.yml`, project"))
    assert "failed" not in next(line for line in lines if line.startswith("| `bin/fleet drift`"))


def test_write_doc_replaces_only_the_marked_section(tmp_path, monkeypatch):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# B\nbefore\n{lab_bench.BEGIN}\nold\n{lab_bench.END}\nafter\n")
    monkeypatch.setattr(lab_bench, "DOC", doc)
    lab_bench.write_doc("new table\n")
    assert doc.read_text() == f"# B\nbefore\n{lab_bench.BEGIN}\nnew table\n{lab_bench.END}\nafter\n"
    doc.write_text("no markers")
    with pytest.raises(SystemExit):
        lab_bench.write_doc("x")
