"""fleet's drift report: what a --check --diff run says would change, per host.

Enabled only by `bin/fleet drift` (ANSIBLE_CALLBACKS_ENABLED=fleet_drift). It
records every task that reports a change, with its diff, and every host that was
unreachable or failed, and writes them as JSON (for machines) and Markdown (for
people) into FLEET_DRIFT_DIR. Secrets never reach the report: results of no_log
tasks are already censored by Ansible, and whatever looks like a secret in a
diff, an item or a message is masked as well (scripts/redact.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ansible import context
from ansible.plugins.callback import CallbackBase

# The project's masking (scripts/redact.py), the same for the report and its logs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.drift_report import finish, write
from scripts.redact import redact

DOCUMENTATION = """
name: fleet_drift
type: aggregate
short_description: Writes fleet's drift report (JSON + Markdown) from a check-mode run
description:
  - Records changed tasks with their diffs, failed and unreachable hosts; writes them to FLEET_DRIFT_DIR.
requirements:
  - enable in configuration (bin/fleet drift does)
"""

# The implicit fact gathering runs with any --tags: it is not a check of the host.
FACT_GATHERING = frozenset({"gather_facts", "ansible.builtin.gather_facts", "setup", "ansible.builtin.setup"})


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_drift"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = time.time()
        self.hosts: dict[str, dict] = {}
        # Which plays ran, which hosts answered in the current one, and where the
        # run stopped early (any_errors_fatal, max_fail_percentage, a whole play
        # failed): hosts not checked to the end are never reported clean.
        self.plays_total = 0
        self.plays_seen: list[str] = []
        self.play_name = ""
        self.no_task_ran = ""
        self.play_hosts: set[str] = set()
        self.stopped_in: str | None = None
        self.stopped_hosts: set[str] = set()

    def _host(self, name: str) -> dict:
        self.play_hosts.add(name)
        return self.hosts.setdefault(name, {"status": "clean", "changes": [], "errors": [], "tasks_run": 0})

    def _ran(self, result) -> dict:
        """The host's record, counting the task if it is one of fleet's (not fact gathering)."""
        host = self._host(result.host.get_name())
        if result.task.action not in FACT_GATHERING:
            host["tasks_run"] += 1
        return host

    def v2_playbook_on_start(self, playbook):
        self.plays_total = len(playbook.get_plays())

    def v2_playbook_on_play_start(self, play):
        # A play in serial batches starts once per batch: count it once.
        if play._uuid not in self.plays_seen:
            self.plays_seen.append(play._uuid)
        self.play_name = play.get_name().strip()
        self.play_hosts = set()

    def _stop(self) -> None:
        """Every host of the current play stops here: the run ends, whatever plays are left."""
        self.stopped_in = self.play_name
        # The play's own set: hosts whose result for this task comes later join it.
        self.stopped_hosts = self.play_hosts

    def v2_playbook_on_no_hosts_remaining(self):
        # max_fail_percentage was exceeded, or every host of the play failed.
        self._stop()

    def _stops_everyone(self, result) -> None:
        # As the linear strategy decides: a failure in an any_errors_fatal (or
        # run_once) task marks every other host of the play failed, silently.
        task = result.task
        if (task.any_errors_fatal or task.run_once) and not task.ignore_errors:
            self._stop()

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
        self._ran(result)
        # A loop's changes were recorded item by item; its aggregate result is not one more.
        if result.result.get("changed") and "results" not in result.result:
            self._record_change(result, result.result)

    def v2_runner_on_skipped(self, result):
        self._host(result.host.get_name())

    def v2_runner_item_on_ok(self, result):
        if result.result.get("changed"):
            self._record_change(result, result.result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        host = self._ran(result)
        if ignore_errors:
            return
        res = result.result
        msg = "(hidden: the task handles a secret)" if res.get("_ansible_no_log") else res.get("msg", "")
        host["errors"].append({**self._task_label(result), "kind": "failed", "msg": redact(str(msg))[:2000]})
        host["status"] = "failed"
        self._stops_everyone(result)

    def v2_runner_on_unreachable(self, result):
        host = self._host(result.host.get_name())
        msg = redact(str(result.result.get("msg", "")))[:500]
        host["errors"].append({**self._task_label(result), "kind": "unreachable", "msg": msg})
        host["status"] = "unreachable"
        self._stops_everyone(result)

    def _mark_not_checked(self) -> None:
        """Say why a host that neither failed nor was unreachable was not checked to the end."""
        # With --tags, a host none of whose tasks carry them is rightly left alone;
        # but a run in which no task ran anywhere checked nothing.
        tags = [t for t in context.CLIARGS.get("tags") or () if t != "all"]
        if tags and not any(h["tasks_run"] for h in self.hosts.values()):
            self.no_task_ran = f"no task matches --tags {','.join(tags)}"
        selected = os.environ.get("FLEET_DRIFT_SELECTED")
        for name in json.loads(Path(selected).read_text()) if selected and (self.no_task_ran or not tags) else []:
            if name not in self.hosts:
                self._host(name)["not_checked"] = (
                    self.no_task_ran or "selected by the inventory and --limit, but no task ran on it"
                )
        # When plays were left unrun, any host might have been in them.
        unrun = self.plays_total - len(self.plays_seen)
        if unrun > 0 and self.stopped_in is None:
            self.stopped_in = self.play_name
        for name, host in self.hosts.items():
            if host["status"] in ("failed", "unreachable"):
                continue
            if "not_checked" in host:
                pass
            elif self.stopped_in is not None and (name in self.stopped_hosts or unrun > 0):
                host["not_checked"] = f"the run stopped in play '{self.stopped_in}' after a failure on another host"
            elif host["tasks_run"] == 0 and (self.no_task_ran or not tags):
                host["not_checked"] = self.no_task_ran or "no task ran on it"
            else:
                continue
            if host["status"] == "clean":
                host["status"] = "not checked"

    def v2_playbook_on_stats(self, stats):
        out_dir = Path(os.environ.get("FLEET_DRIFT_DIR", "."))
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in stats.processed:
            # How many tasks each host answered: an unreachable host stops early,
            # the others show they were checked to the end.
            self._host(name)["tasks_ok"] = stats.summarize(name)["ok"]
        self._mark_not_checked()
        report = finish(
            {
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "duration_s": round(time.time() - self.started, 1),
                "stopped_in": self.stopped_in,
                "no_task_ran": self.no_task_ran,
                "hosts": dict(sorted(self.hosts.items())),
            }
        )
        write(report, out_dir)
