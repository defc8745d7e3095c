#!/usr/bin/env python3
"""Drift: check the fleet against playbooks/site.yml, report, and optionally correct.

    bin/fleet drift [-i INVENTORY] [--limit HOSTS] [--tags TIERS] [--correct] [--keep N]
                    [--engine mitogen|ansible]

Check: `ansible-playbook --check --diff site.yml` with the fleet_drift callback,
which writes drift.json and drift.md into .cache/drift/<UTC time>/ (and links
.cache/drift/latest to it). Correct: apply site.yml to the hosts with drift or a
failed check (and a replica's primary), then check those again, with every host the
check did not find clean, and report the fleet: each host as the recheck found it,
the clean ones the correction left alone as the check found them.

Reports: one directory per run under --reports; `latest` always points at the
newest, and --keep N deletes all but the newest N. One run at a time: a second
run while one holds the reports directory's lock checks nothing and exits 1.

Exit status, for alerting:
    0  no drift
    2  drift found (nothing failed, every host answered)
    1  a host was unreachable or a task failed (the report still lists any drift),
       a host the inventory and --limit select was not checked to the end (the
       run stopped after a failure elsewhere, no task ran on it, or it never
       answered), the inventory gave no host or failed to load, or another drift
       run was in progress
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.drift_report import merge_recheck, write
from scripts.engine import engine_env
from scripts.redact import redact

ROOT = Path(__file__).resolve().parents[1]
# The name of a run's report directory: <UTC time>-<check|recheck>.
RUN_DIR = re.compile(r"^\d{8}T\d{6}Z-(check|recheck)$")


# An inventory source that fails to load (expired AWS credentials, a typo in -i)
# is an error, never an empty fleet that is "clean".
STRICT_INVENTORY = {"ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"}


def inventory_list(inventory: str, limit: str | None) -> tuple[dict | None, str]:
    """`ansible-inventory --list` of the inventory (and --limit), or None and why it failed."""
    cmd = ["ansible-inventory", "-i", inventory, "--list"] + (["--limit", limit] if limit else [])
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), **STRICT_INVENTORY)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None, (proc.stderr.strip() or proc.stdout.strip())[-2000:]
    return json.loads(proc.stdout), ""


def group_members(data: dict) -> dict[str, set[str]]:
    """Every group of an `ansible-inventory --list` with all its hosts, children's included."""

    def members(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        group = data.get(name, {})
        hosts = set(group.get("hosts", []))
        for child in group.get("children", []):
            if child not in seen:
                hosts |= members(child, seen | {name})
        return hosts

    return {name: members(name) for name in data if name != "_meta"}


def selected_hosts(inventory: str, limit: str | None) -> tuple[list[str] | None, str]:
    """The hosts the inventory and --limit select, or None and the reason they could not be listed."""
    data, why = inventory_list(inventory, limit)
    if data is None:
        return None, why
    hosts = set(data.get("_meta", {}).get("hostvars", {}))
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict):
            hosts.update(group.get("hosts", []))
    return sorted(hosts), ""


# A correction converges only the hosts that need it, plus the hosts their roles
# need in the same play: a replica is cloned and checked against its primary, so
# role postgresql refuses a run of a replica without it (its preflight).
CORRECT_TOGETHER = {"db_replicas": "db_primary"}


def hosts_to_correct(report: dict, groups: dict[str, set[str]]) -> list[str]:
    """The hosts with drift or a failed check, and the hosts they need beside them.

    Unreachable hosts are left out (nothing can reach them); clean ones are not touched."""
    hosts = set(report["hosts_with_drift"]) | set(report["hosts_failed"])
    for group, companion in CORRECT_TOGETHER.items():
        if hosts & groups.get(group, set()):
            hosts |= groups.get(companion, set())
    return sorted(hosts)


def hosts_to_recheck(report: dict, corrected: list[str]) -> list[str]:
    """The hosts the recheck covers: those corrected and every other one the check did not
    find clean (unreachable, not checked to the end). A clean host the correction did not
    touch keeps its result of the same run: checking it again would only cost time."""
    return sorted(set(corrected) | {name for name, host in report["hosts"].items() if host["status"] != "clean"})


def run_playbook(
    inventory: str,
    limit: str | None,
    tags: str | None,
    check: bool,
    out_dir: Path,
    engine: str = "ansible",
    expected: list[str] | None = None,
) -> dict | None:
    cmd = ["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / "site.yml")]
    if check:
        cmd += ["--check", "--diff"]
    if limit:
        cmd += ["--limit", limit]
    if tags:
        cmd += ["--tags", tags]
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        FLEET_DRIFT_DIR=str(out_dir),
        **STRICT_INVENTORY,
        **engine_env(engine),
    )
    if check and expected is not None:
        # The callback reports every selected host that never answered as not checked.
        (out_dir / "selected.json").write_text(json.dumps(expected))
        env["FLEET_DRIFT_SELECTED"] = str(out_dir / "selected.json")
    if check:
        enabled = [c for c in env.get("ANSIBLE_CALLBACKS_ENABLED", "").split(",") if c]
        env["ANSIBLE_CALLBACKS_ENABLED"] = ",".join([*enabled, "fleet_drift"])
    log = out_dir / ("check.log" if check else "correct.log")
    # The raw log is masked like the report (diffs of --diff hold file contents), and
    # written a line at a time: `tail -f` on a running check shows where it is.
    with (
        log.open("w", buffering=1) as out,
        subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        ) as proc,
    ):
        for line in proc.stdout:
            out.write(redact(line))
    report = out_dir / "drift.json"
    return json.loads(report.read_text()) if check and report.exists() else None


def exit_status(report: dict | None) -> int:
    if report is None or report["hosts_failed"] or report["hosts_unreachable"]:
        return 1
    # A run that checked nothing, or not everything it was asked to, is not clean.
    if not report["hosts"] or report.get("hosts_not_checked") or report.get("no_task_ran"):
        return 1
    return 2 if report["hosts_with_drift"] else 0


def check(args: argparse.Namespace, label: str) -> tuple[dict | None, Path]:
    out_dir = Path(args.reports) / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{label}"
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    expected, why = selected_hosts(args.inventory, args.limit)
    if expected is None:
        print(f"[drift] {label}: the inventory {args.inventory} failed to load; nothing checked:\n{why}")
        return None, out_dir
    if not expected:
        where = f"{args.inventory} with --limit {args.limit}" if args.limit else args.inventory
        print(f"[drift] {label}: no host selected by {where}; nothing checked")
        return None, out_dir
    report = run_playbook(args.inventory, args.limit, args.tags, True, out_dir, args.engine, expected)
    # Swap `latest` in one step: a reader never finds it missing or half-made.
    staged = Path(args.reports) / ".latest.new"
    staged.unlink(missing_ok=True)
    staged.symlink_to(out_dir.name)
    staged.replace(Path(args.reports) / "latest")
    summary = report["summary"] if report else f"no report: the check run crashed, see {out_dir / 'check.log'}"
    print(f"[drift] {label}: {summary}")
    print(f"[drift] report: {out_dir / 'drift.md'} (JSON: {out_dir / 'drift.json'})")
    return report, out_dir


def prune(reports: Path, keep: int) -> list[str]:
    """Delete all but the newest `keep` run directories; return the names deleted."""
    if keep <= 0:
        return []
    runs = sorted(d.name for d in reports.iterdir() if d.is_dir() and not d.is_symlink() and RUN_DIR.match(d.name))
    # A correction writes a check and a recheck in the same second at most once;
    # the names sort by time, and recheck sorts after check of the same second.
    doomed = runs[:-keep]
    for name in doomed:
        shutil.rmtree(reports / name)
    return doomed


def lock(reports: Path):
    """Hold the reports directory's lock for the life of the process, or return None."""
    handle = (reports / ".lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/fleet drift", description=__doc__.split("\n\n")[0])
    parser.add_argument("-i", "--inventory", default=str(ROOT / "inventories" / "lab"))
    parser.add_argument("--limit", help="hosts or groups, as ansible-playbook --limit")
    parser.add_argument("--tags", help="tiers to check or correct: base,db,app,lb,web,elb")
    parser.add_argument("--correct", action="store_true", help="apply the fixes, then check again")
    parser.add_argument("--reports", default=os.environ.get("FLEET_DRIFT_REPORTS", str(ROOT / ".cache" / "drift")))
    parser.add_argument(
        "--engine",
        choices=["mitogen", "ansible"],
        default=os.environ.get("FLEET_DRIFT_ENGINE", "mitogen"),
        help="mitogen (default, faster) or ansible (the stock strategy)",
    )
    parser.add_argument("--keep", type=int, default=0, metavar="N", help="keep only the newest N reports (0: all)")
    args = parser.parse_args(argv)
    if args.keep < 0:
        parser.error("--keep must be 0 (keep all) or more")
    # Reports and logs are for the operator alone: files 0600 in 0700 directories
    # (the callback's too: ansible-playbook inherits the umask).
    os.umask(0o077)
    reports = Path(args.reports)
    reports.mkdir(mode=0o700, parents=True, exist_ok=True)
    reports.chmod(0o700)
    held = lock(reports)
    if held is None:
        print(f"[drift] another drift run holds {reports / '.lock'}; nothing checked", file=sys.stderr)
        return 1
    status = run(args)
    for name in prune(reports, args.keep):
        print(f"[drift] retention: deleted report {name}")
    held.close()
    return status


def run(args: argparse.Namespace) -> int:
    report, out_dir = check(args, "check")
    # Nothing checked (the inventory failed or selected nobody): nothing to correct.
    if args.correct and report is not None and exit_status(report) != 0:
        data, why = inventory_list(args.inventory, args.limit)
        if data is None:
            print(f"[drift] correct: the inventory {args.inventory} failed to load; nothing corrected:\n{why}")
            return 1
        hosts = hosts_to_correct(report, group_members(data))
        if not hosts:
            print("[drift] correct: no host has drift or a failed check; nothing corrected")
            return exit_status(report)
        run_playbook(args.inventory, ",".join(hosts), args.tags, False, out_dir, args.engine)
        again = hosts_to_recheck(report, hosts)
        print(f"[drift] corrected {', '.join(hosts)} (log: {out_dir / 'correct.log'})")
        print(f"[drift] checking again {', '.join(again)}")
        recheck, recheck_dir = check(argparse.Namespace(**{**vars(args), "limit": ",".join(again)}), "recheck")
        if recheck is None:
            return 1
        report = merge_recheck(report, recheck)
        write(report, recheck_dir)
        print(f"[drift] after the correction: {report['summary']}")
    return exit_status(report)


if __name__ == "__main__":
    sys.exit(main())
