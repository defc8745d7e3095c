"""fleet's drift report: what a --check --diff run says would change, per host.

Enabled only by `bin/fleet drift` (ANSIBLE_CALLBACKS_ENABLED=fleet_drift). It
records every task that reports a change, with its diff, and every host that was
unreachable or failed, and writes them as JSON (for machines) and Markdown (for
people) into FLEET_DRIFT_DIR. Secrets never reach the report: results of no_log
tasks are already censored by Ansible, and diff lines that look like a secret
assignment are masked here as well.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleet_drift
type: aggregate
short_description: Writes fleet's drift report (JSON + Markdown) from a check-mode run
description:
  - Records changed tasks with their diffs, failed and unreachable hosts; writes them to FLEET_DRIFT_DIR.
requirements:
  - enable in configuration (bin/fleet drift does)
"""

SECRET = re.compile(r"(?i)(password|passwd|secret|token|dsn|key)(\s*[=:]\s*|\s+)(\S+)")


def redact(text: str) -> str:
    """Mask the value of anything that looks like a secret assignment."""
    return SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}********", text)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_drift"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = time.time()
        self.hosts: dict[str, dict] = {}

    def _host(self, name: str) -> dict:
        return self.hosts.setdefault(name, {"status": "clean", "changes": [], "errors": []})

    def _task_label(self, result) -> dict[str, str]:
        task = result.task
        role = getattr(task, "_role", None)
        return {"task": task.get_name().strip(), "role": role.get_name() if role else "", "action": task.action}

    def _diff_text(self, res: dict) -> str:
        diffs = res.get("diff")
        if not diffs:
            return ""
        if isinstance(diffs, dict):
            diffs = [diffs]
        return redact(self._get_diff(diffs))

    def _record_change(self, result, res: dict) -> None:
        entry = self._task_label(result)
        if res.get("_ansible_no_log") or res.get("censored"):
            entry["diff"] = "(hidden: the task handles a secret)"
        else:
            entry["diff"] = self._diff_text(res)
        item = res.get("_ansible_item_label", res.get("item"))
        if item is not None and not res.get("_ansible_no_log"):
            entry["item"] = redact(str(item))
        host = self._host(result.host.get_name())
        host["changes"].append(entry)
        if host["status"] == "clean":
            host["status"] = "drift"

    def v2_runner_on_ok(self, result):
        self._host(result.host.get_name())
        if result.result.get("changed"):
            self._record_change(result, result.result)

    def v2_runner_item_on_ok(self, result):
        if result.result.get("changed"):
            self._record_change(result, result.result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        if ignore_errors:
            return
        host = self._host(result.host.get_name())
        res = result.result
        msg = "(hidden: the task handles a secret)" if res.get("_ansible_no_log") else res.get("msg", "")
        host["errors"].append({**self._task_label(result), "kind": "failed", "msg": redact(str(msg))[:2000]})
        host["status"] = "failed"

    def v2_runner_on_unreachable(self, result):
        host = self._host(result.host.get_name())
        msg = redact(str(result.result.get("msg", "")))[:500]
        host["errors"].append({**self._task_label(result), "kind": "unreachable", "msg": msg})
        host["status"] = "unreachable"

    def v2_playbook_on_stats(self, stats):
        out_dir = Path(os.environ.get("FLEET_DRIFT_DIR", "."))
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in stats.processed:
            # How many tasks each host answered: an unreachable host stops early,
            # the others show they were checked to the end.
            self._host(name)["tasks_ok"] = stats.summarize(name)["ok"]
        counts = {
            status: sorted(h for h, v in self.hosts.items() if v["status"] == status)
            for status in ("drift", "failed", "unreachable")
        }
        report = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
            "duration_s": round(time.time() - self.started, 1),
            "hosts_checked": len(self.hosts),
            "hosts_with_drift": counts["drift"],
            "hosts_failed": counts["failed"],
            "hosts_unreachable": counts["unreachable"],
            "hosts": dict(sorted(self.hosts.items())),
        }
        report["summary"] = (
            f"{len(self.hosts)} hosts checked: {len(counts['drift'])} with drift "
            f"({sum(len(h['changes']) for h in self.hosts.values())} changes), "
            f"{len(counts['failed'])} failed, {len(counts['unreachable'])} unreachable"
        )
        (out_dir / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
        (out_dir / "drift.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    lines = [f"# Drift report — {report['started']}", "", report["summary"], ""]
    for name, host in report["hosts"].items():
        if host["status"] == "clean":
            continue
        lines.append(f"## {name}: {host['status']}")
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
