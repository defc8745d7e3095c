#!/usr/bin/env python3
"""Benchmark the lab: how long fleet's everyday runs take at N cells, and how much work they do.

    .venv/bin/python -m bench.lab_bench [--cells 2 4] [--runs 3] [--write]

For each cell count, each run: the lab from nothing (`lab down`, then `lab up`,
images cached), then on the converged lab a no-op converge with the stock
strategy, the same with Mitogen, the same with Ansible's defaults (a config with
only the paths the project needs), a `--check --diff` run and the drift check.
Every figure is wall time of the whole command plus host-tasks (ok + failed +
skipped over all hosts, from the recap), with the 1-minute load average before
it and the commit. Medians with min-max go to stdout and, with --write, into
docs/benchmarks.md between its `bench:begin` / `bench:end` markers; the raw runs
go to bench/results/<UTC time>-<commit>.json.

A script, not a test: it takes tens of minutes and wants a quiet machine. The
lab is left down at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.engine import engine_env
from scripts.recap import host_tasks
from tests.conftest import ansible_env as env

ROOT = Path(__file__).resolve().parents[1]
LAB_LOG = ROOT / ".cache" / "lab" / "converge.log"  # lab up writes its converge here
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

# Ansible's defaults for everything but the paths the project cannot run without.
DEFAULTS_CFG = """[defaults]
inventory = {root}/inventories/lab
roles_path = {root}/roles
filter_plugins = {root}/filter_plugins
callback_plugins = {root}/callback_plugins
library = {root}/library
"""

# What each figure is, in the order of the tables.
FIGURES = {
    "up": "`lab up` from nothing (images cached)",
    "noop": "no-op `site.yml`, project ansible.cfg, stock strategy",
    "noop_mitogen": "no-op `site.yml`, project ansible.cfg, Mitogen",
    "noop_defaults": "no-op `site.yml`, Ansible's defaults",
    "check": "`site.yml --check --diff`, stock strategy",
    "drift": "`bin/fleet drift` (Mitogen, the default)",
}


def timed(cmd: list[str], environment: dict[str, str], log: Path | None = None) -> dict:
    """Run `cmd`; its wall time, exit status, host-tasks (from `log`, or its own output)."""
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=environment, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - t0
    output = log.read_text() if log is not None and log.exists() else proc.stdout
    if proc.returncode != 0:
        print(proc.stdout[-3000:] + proc.stderr[-3000:], file=sys.stderr)
    return {"seconds": round(seconds, 1), "rc": proc.returncode, "host_tasks": host_tasks(output), "load1": load}


def one_run(cells: int, defaults_cfg: Path, reports: Path) -> dict[str, dict]:
    lab = [sys.executable, "-m", "scripts.lab"]
    playbook = ["ansible-playbook", "-i", str(ROOT / "inventories" / "lab"), str(ROOT / "playbooks" / "site.yml")]
    subprocess.run([*lab, "down"], cwd=ROOT, env=env(), capture_output=True, check=True)
    run = {"up": timed([*lab, "up", "--cells", str(cells)], env(), LAB_LOG)}
    if run["up"]["rc"] != 0:
        raise SystemExit(f"[bench] lab up --cells {cells} failed; nothing measured")
    run["noop"] = timed(playbook, env())
    run["noop_mitogen"] = timed(playbook, env(**engine_env("mitogen")))
    run["noop_defaults"] = timed(playbook, env(ANSIBLE_CONFIG=str(defaults_cfg)))
    run["check"] = timed([*playbook, "--check", "--diff"], env())
    run["drift"] = timed([sys.executable, "-m", "scripts.drift", "--reports", str(reports)], env())
    return run


def summary(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.0f} s"
    return f"{statistics.median(values):.0f} s ({min(values):.0f}-{max(values):.0f})"


def table(results: dict[int, list[dict]], commit: str) -> str:
    cells = sorted(results)
    head = " | ".join(f"{c} cells ({len(results[c])} runs)" for c in cells)
    lines = [
        f"Commit {commit}, {time.strftime('%Y-%m-%d', time.gmtime())}, `python -m bench.lab_bench`;"
        " wall time median (min-max), host-tasks, seconds per host-task, 1-min load average before.",
        "",
        f"| run | {head} |",
        "|---|" + "---|" * len(cells),
    ]
    for key, title in FIGURES.items():
        row = []
        for c in cells:
            runs = [r[key] for r in results[c]]
            secs = [r["seconds"] for r in runs]
            tasks = statistics.median(r["host_tasks"] for r in runs)
            per = statistics.median(secs) / tasks if tasks else 0
            load = statistics.median(r["load1"] for r in runs)
            bad = sum(1 for r in runs if r["rc"] not in (0, 2))
            note = f", **{bad} failed**" if bad else ""
            row.append(f"{summary(secs)}, {tasks:.0f} host-tasks, {per:.2f} s/task, load {load:.1f}{note}")
        lines.append(f"| {title} | " + " | ".join(row) + " |")
    if len(cells) > 1:
        lo, hi = cells[0], cells[-1]
        ratio = statistics.median(r["noop"]["seconds"] for r in results[hi]) / statistics.median(
            r["noop"]["seconds"] for r in results[lo]
        )
        lines += ["", f"No-op at {hi} cells / no-op at {lo} cells: **{ratio:.2f}x** (target < 2.0x for 4/2)."]
    return "\n".join(lines) + "\n"


def write_doc(text: str) -> None:
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"[bench] {DOC} has no {BEGIN} ... {END} section")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lab_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.runs < 1 or any(c < 1 for c in args.cells):
        parser.error("--runs and --cells must be 1 or more")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    commit = commit.strip() or "unknown"
    results: dict[int, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        defaults_cfg = Path(tmp) / "ansible.cfg"
        defaults_cfg.write_text(DEFAULTS_CFG.format(root=ROOT))
        try:
            for cells in args.cells:
                for n in range(args.runs):
                    print(f"[bench] {cells} cells, run {n + 1} of {args.runs}", flush=True)
                    run = one_run(cells, defaults_cfg, Path(tmp) / f"drift-{cells}-{n}")
                    print(f"[bench]   {json.dumps(run)}", flush=True)
                    results.setdefault(cells, []).append(run)
        finally:
            subprocess.run([sys.executable, "-m", "scripts.lab", "down"], cwd=ROOT, env=env(), capture_output=True)
    out = ROOT / "bench" / "results" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{commit}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"commit": commit, "results": results}, indent=1))
    text = table(results, commit)
    print(text)
    if args.write:
        write_doc(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
