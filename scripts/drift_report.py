"""A drift report's counts, summary line and Markdown, from its hosts.

One place for the callback that writes each run's report (callback_plugins/fleet_drift.py)
and for `bin/fleet drift --correct`, which merges its recheck into the check.
"""

from __future__ import annotations

import json
from pathlib import Path

STATUSES = ("drift", "failed", "unreachable")


def finish(report: dict) -> dict:
    """Set the counts and the summary of ``report`` from ``report["hosts"]`` (and its
    ``no_task_ran``). A host answered when Ansible processed it (``tasks_ok``); one the
    inventory selected that never did is listed, not counted as checked."""
    hosts = report["hosts"]
    by_status = {status: sorted(h for h, v in hosts.items() if v["status"] == status) for status in STATUSES}
    not_checked = sorted(h for h, v in hosts.items() if v.get("not_checked"))
    answered = sum("tasks_ok" in host for host in hosts.values())
    report.update(
        hosts_checked=answered,
        hosts_with_drift=by_status["drift"],
        hosts_failed=by_status["failed"],
        hosts_unreachable=by_status["unreachable"],
        hosts_not_checked=not_checked,
    )
    report["summary"] = (
        f"{answered} hosts checked: {len(by_status['drift'])} with drift "
        f"({sum(len(h['changes']) for h in hosts.values())} changes), "
        f"{len(by_status['failed'])} failed, {len(by_status['unreachable'])} unreachable"
    ) + (f", {len(not_checked)} not checked to the end" if not_checked else "")
    if report.get("no_task_ran"):
        report["summary"] += f"; nothing was checked: {report['no_task_ran']}"
    return report


def merge_recheck(check: dict, recheck: dict) -> dict:
    """The fleet after a correction: each host the recheck covered as the recheck found it,
    every other host as the check found it (clean: the correction did not touch it)."""
    hosts = {**check["hosts"], **recheck["hosts"]}
    merged = {
        "started": check["started"],
        "duration_s": round(check["duration_s"] + recheck["duration_s"], 1),
        "stopped_in": recheck["stopped_in"],
        "no_task_ran": recheck["no_task_ran"],
        "rechecked": sorted(recheck["hosts"]),
        "hosts": dict(sorted(hosts.items())),
    }
    return finish(merged)


def markdown(report: dict) -> str:
    lines = [f"# Drift report — {report['started']}", "", report["summary"], ""]
    if report.get("rechecked"):
        again = ", ".join(report["rechecked"])
        lines += [f"Checked again after the correction: {again}; the others as first checked.", ""]
    for name, host in report["hosts"].items():
        if host["status"] == "clean":
            continue
        lines.append(f"## {name}: {host['status']}")
        if host.get("not_checked"):
            lines.append(f"- **not checked to the end**: {host['not_checked']}")
        for err in host["errors"]:
            lines.append(f"- **{err['kind']}** in `{err['task']}`: {err['msg']}")
        for change in host["changes"]:
            item = f" ({change['item']})" if change.get("item") else ""
            lines.append(f"- `{change['role'] or '-'}` · {change['task']}{item}")
            if change["diff"]:
                lines += ["", "  ```diff", *[f"  {line}" for line in change["diff"].splitlines()], "  ```", ""]
        lines.append("")
    clean = [n for n, h in report["hosts"].items() if h["status"] == "clean"]
    lines.append(f"Clean: {', '.join(clean) if clean else 'none'}")
    return "\n".join(lines) + "\n"


def write(report: dict, out_dir: Path) -> None:
    """A report as the run's two files: drift.json for tools, drift.md for people."""
    (out_dir / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "drift.md").write_text(markdown(report))
