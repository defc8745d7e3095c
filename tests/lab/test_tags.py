"""Tags that mean what they say: every tag the READMEs document is a tag of site.yml,
and a check-mode run of each one alone (the drift check with --tags) passes on the
converged lab with no drift and no failure: each is a complete, consistent subset.

The runs cover one host of each tier of the first cell and the hosts every cell
shares (the primary, the ELB stand-in): the hosts of a tier run the same tasks, and
the whole lab would cost about 6 minutes against 3 without a task these do not run.
Each tag is checked on those of these hosts that run a task of it (as
`ansible-playbook --list-tasks --list-hosts` says): a tag of one role on its tier's
host, `base` and `firewall` on all six. A host that runs none of a tag's tasks only
gathers facts, which proves nothing about the tag.

Tags whose hosts do not meet share one run (`--tags nginx_install,app_install` on
web1 and app1): each host of it runs the tasks of exactly one of its tags (and the
`always` ones), the very tasks that tag alone runs there, so the run proves each tag
as its own run would, at the fixed cost of one (measured alone on an idle lab: 8 s
for one host, 13 s for five: the inventory, site.yml, every play's `always` tasks,
the report). It would miss a task reading another host's result of a task of
another tag of the run: site.yml's only such reads are the postgresql role's (a
replica reads its primary's), and a postgresql tag runs on both, so never beside
another postgresql tag; facts are gathered under any tag. 34 tags: 18 runs, not 34."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from filter_plugins.fleet_cells import ROLE_GROUPS
from tests.conftest import ROOT, ansible_env

pytestmark = pytest.mark.lab

# Two runs at a time keep both cores busy; more only queue (and time out connections).
PARALLEL = 2


def _tags_in(text: str) -> set[str]:
    """The backquoted names of every `Tags:` paragraph of a README."""
    found = set()
    for paragraph in re.findall(r"Tags:(.*?)(?:\n\n|\Z)", text, flags=re.S):
        found |= set(re.findall(r"`([a-z_]+)`", paragraph))
    return found


def _tags_listed(listed: str) -> set[str]:
    """The tags of one `TAGS: [...]` of ansible-playbook's listings."""
    return {t.strip() for t in listed.split(",") if t.strip()}


def list_site(*listing: str) -> str:
    """What ``ansible-playbook playbooks/site.yml --list-...`` prints for the lab."""
    return subprocess.run(
        ["ansible-playbook", "-i", "inventories/lab", "playbooks/site.yml", *listing],
        cwd=ROOT,
        env=ansible_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def site_tags() -> set[str]:
    out = list_site("--list-tags")
    tags = set()
    for listed in re.findall(r"TAGS: \[([^\]]*)\]", out):
        tags |= _tags_listed(listed)
    return tags - {"always"}


def documented_tags(in_site: set[str]) -> set[str]:
    """README's play-level tags, and the step tags of every role site.yml runs."""
    tags = _tags_in((ROOT / "README.md").read_text())
    for readme in sorted((ROOT / "roles").glob("*/README.md")):
        role_tags = _tags_in(readme.read_text())
        if role_tags & in_site:
            tags |= role_tags
    return tags


def test_every_documented_tag_is_a_tag_of_site_yml_and_back():
    in_site = site_tags()
    documented = documented_tags(in_site)
    assert documented - in_site == set(), "documented in a README but not in site.yml"
    assert in_site - documented == set(), "tags of site.yml that no README documents"


def check_tags(tags: list[str], limit: str) -> tuple[str, int, dict, str, float]:
    """One check run of site.yml with ``--tags`` ``tags`` on ``limit``: (the tags as given, exit status,
    report, end of the output, seconds)."""
    start = time.monotonic()
    joined = ",".join(tags)
    with tempfile.TemporaryDirectory(prefix="tags-") as reports:
        proc = subprocess.run(
            [sys.executable, "-m", "scripts.drift", "--reports", reports, "--tags", joined, "--limit", limit],
            cwd=ROOT,
            env=ansible_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=600,
        )
        report_file = Path(reports) / "latest" / "drift.json"
        report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return joined, proc.returncode, report, proc.stdout[-3000:] + proc.stderr[-3000:], time.monotonic() - start


def runs_of_tags_apart(hosts_of: dict[str, list[str]]) -> list[tuple[list[str], list[str]]]:
    """(tags, hosts) of each run: tags grouped so that no two of a run have a host in common,
    the tags with the most hosts placed first, each in the first run it fits."""
    runs: list[tuple[list[str], set[str]]] = []
    for tag in sorted(hosts_of, key=lambda t: (-len(hosts_of[t]), t)):
        mine = set(hosts_of[tag])
        fit = next((run for run in runs if not run[1] & mine), None)
        if fit is None:
            runs.append(([tag], mine))
        else:
            fit[0].append(tag)
            fit[1].update(mine)
    return [(tags, sorted(hosts)) for tags, hosts in runs]


def hosts_running_each_tag(limit: str) -> dict[str, list[str]]:
    """tag -> the hosts of ``limit`` that run at least one task carrying it in site.yml
    (a task tagged only `always` runs under any tag and selects no host)."""
    out = list_site("--list-tasks", "--list-hosts", "--limit", limit)
    running: dict[str, set[str]] = {}
    for play in out.split("\n  play #")[1:]:
        hosts_part, _, tasks_part = play.partition("\n    tasks:")
        hosts = re.findall(r"^      (\S+)$", hosts_part.split("hosts (", 1)[-1], flags=re.M)
        for listed in re.findall(r"TAGS: \[([^\]]*)\]$", tasks_part, flags=re.M):
            for tag in _tags_listed(listed) - {"always"}:
                running.setdefault(tag, set()).update(hosts)
    return {tag: sorted(hosts) for tag, hosts in running.items()}


def test_each_documented_tag_alone_checks_clean_on_the_converged_lab(groups):
    in_site = site_tags()
    tags = sorted(documented_tags(in_site) & in_site)
    assert len(tags) >= 25, tags  # the READMEs list about thirty
    cells = sorted(g for g in groups if g.startswith("cell_"))
    in_cells = set().union(*(groups[c] for c in cells))
    shared = sorted(set().union(*groups.values()) - in_cells)  # the primary, the ELB stand-in
    # One host of each tier (web, lb, app, replica) of the first cell.
    tiers = [sorted(set(groups.get(g, [])) & set(groups[cells[0]])) for g in ROLE_GROUPS]
    one_each = [hosts[0] for hosts in tiers if hosts]
    assert len(one_each) == 4, one_each
    six = [*one_each, *shared]
    running = hosts_running_each_tag(":".join(six))
    # The base and firewall roles run everywhere but on the ELB stand-in (base) or on all six.
    assert set(running["firewall"]) == set(six), running["firewall"]
    assert set(running["base"]) == set(six) - set(groups.get("elb", [])), running["base"]
    assert all(len(running.get(tag, [])) < len(six) for tag in ("nginx_configure", "haproxy_configure", "app_service"))
    # A documented tag that selects no task here would be a run with nothing to check.
    assert set(tags) - set(running) == set(), "tags that select no task on the lab"
    hosts_of = {tag: running[tag] for tag in tags}
    runs = runs_of_tags_apart(hosts_of)
    # Each host of a run runs the tasks of exactly one of its tags: what that tag alone runs there.
    for run_tags, run_hosts in runs:
        for host in run_hosts:
            assert sum(host in hosts_of[tag] for tag in run_tags) == 1, (run_tags, host)
    assert sorted(tag for run_tags, _ in runs for tag in run_tags) == tags
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(check_tags, [t for t, _ in runs], [":".join(h) for _, h in runs]))
    for joined, rc, report, _, seconds in results:
        print(f"--tags {joined}: exit {rc}, {len(report.get('hosts', {}))} hosts in the report, {seconds:.0f} s")
    bad = {joined: (rc, output) for joined, rc, _, output, _ in results if rc != 0}
    assert bad == {}, "\n\n".join(f"--tags {t} exited {rc}:\n{out}" for t, (rc, out) in bad.items())
    # Every run checked the hosts it selected (a run that selects no task is exit 1 above).
    expected = {",".join(run_tags): len(run_hosts) for run_tags, run_hosts in runs}
    assert {joined: report["hosts_checked"] for joined, _, report, _, _ in results} == expected
