#!/usr/bin/env python3
"""Drift: check the fleet against playbooks/site.yml, report, and optionally correct.

    bin/fleet drift [-i INVENTORY] [--limit HOSTS] [--tags TIERS] [--correct]

Check: `ansible-playbook --check --diff site.yml` with the fleet_drift callback,
which writes drift.json and drift.md into .cache/drift/<UTC time>/ (and links
.cache/drift/latest to it). Correct: apply site.yml (limited the same way), then
check again and report what is still off.

Exit status, for alerting:
    0  no drift
    2  drift found (nothing failed, every host answered)
    1  a host was unreachable or a task failed (the report still lists any drift)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_playbook(inventory: str, limit: str | None, tags: str | None, check: bool, out_dir: Path) -> dict | None:
    cmd = ["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / "site.yml")]
    if check:
        cmd += ["--check", "--diff"]
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", tags]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), FLEET_DRIFT_DIR=str(out_dir))
    if check:
        enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
        env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*enabled, "fleet_drift"])
    log = out_dir / ("check.log" if check else "correct.log")
    with log.open("w") as out:
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
    report = out_dir / "drift.json"
    return json.loads(report.read_text()) if check and report.exists() else None


def exit_status(report: dict | None) -> int:
    if report is None or report["hosts_failed"] or report["hosts_unreachable"]:
        return 1
    return 2 if report["hosts_with_drift"] else 0


def check(args: argparse.Namespace, label: str) -> tuple[dict | None, Path]:
    out_dir = Path(args.reports) / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{label}"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = run_playbook(args.inventory, args.limit, args.tags, True, out_dir)
    latest = Path(args.reports) / "latest"
    latest.unlink(missing_ok=True)
    latest.symlink_to(out_dir.name)
    summary = report["summary"] if report else f"no report: the check run crashed, see {out_dir / 'check.log'}"
    print(f"[drift] {label}: {summary}")
    print(f"[drift] report: {out_dir / 'drift.md'} (JSON: {out_dir / 'drift.json'})")
    return report, out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/fleet drift", description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--inventory", default=str(ROOT / "inventories" / "lab"))
    parser.add_argument("--limit", help="hosts or groups, as ansible-playbook --limit")
    parser.add_argument("--tags", help="tiers to check or correct: base,db,app,lb,web,elb")
    parser.add_argument("--correct", action="store_true", help="apply the fixes, then check again")
    parser.add_argument("--reports", default=os.environ.get("FLEET_DRIFT_REPORTS", str(ROOT / ".cache" / "drift")))
    args = parser.parse_args(argv)
    report, out_dir = check(args, "check")
    if args.correct and exit_status(report) != 0:
        subprocess_dir = out_dir
        run_playbook(args.inventory, args.limit, args.tags, False, subprocess_dir)
        print(f"[drift] corrected (log: {subprocess_dir / 'correct.log'}); checking again")
        report, _ = check(args, "recheck")
    return exit_status(report)


if __name__ == "__main__":
    sys.exit(main())
