"""Tags that mean what they say: every tag the READMEs document is a tag of site.yml,
and a check-mode run of each one alone (the drift check with --tags) passes on the
converged lab with no drift and no failure: each is a complete, consistent subset.

Each tag is checked once (issue 27), on a host that runs a task of it (as
`ansible-playbook --list-tasks --list-hosts` says; a host that runs none only gathers
facts, which proves nothing about the tag). The hosts come from one of each tier of
the first cell and the hosts every cell shares (the primary, the ELB stand-in): the
hosts of a tier run the same tasks. A tag of one tier's role runs on that tier's
host; a tag of the postgresql role on the primary and a replica together (they run
different tasks, and a replica reads its primary's results); haproxy's on an LB and
the ELB stand-in (whose settings differ); a tag of a role every host runs (`base`,
`firewall`) on one host, the one least chosen so far, so that between them they
cover all six. The whole lab would cost about 6 minutes against 3 without a task
these do not run; `base` and `firewall` on every host, as before, cost 264 s against
161 s for the whole test (on an idle lab, the same day).

Tags whose hosts do not meet share one run (`--tags nginx_install,app_install` on
web1 and app1): each host of it runs the tasks of exactly one of its tags (and the
`always` ones), the very tasks that tag alone runs there, so the run proves each tag
as its own run would, at the fixed cost of one. "Meet" counts every host of the run
that runs a tag, not only the one chosen for it: `base_packages` on web1 cannot share a
run with `haproxy_install` on lb1, since lb1 runs `base_packages` too. It would miss a
task reading another host's result of a task of another tag of the run: site.yml's
only such reads are the postgresql role's (a replica reads its primary's), and a
postgresql tag runs on both, so never beside another postgresql tag; facts are
gathered under any tag. 34 tags: 18 runs, not 34."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT, ansible_env
from tests.lab.conftest import tier_of

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


def runs_of_tags_apart(
    chosen: dict[str, list[str]], running: dict[str, list[str]]
) -> list[tuple[list[str], list[str]]]:
    """(tags, hosts) of each run: each tag checked on its ``chosen`` hosts, tags grouped so
    that every host of a run runs (per ``running``) the tasks of exactly one of the run's
    tags; the tags that run on the most hosts placed first, each in the first run it fits."""

    def fits(tags: list[str], hosts: set[str]) -> bool:
        return all(sum(host in running[tag] for tag in tags) == 1 for host in hosts)

    runs: list[tuple[list[str], set[str]]] = []
    for tag in sorted(chosen, key=lambda t: (-len(running[t]), t)):
        fit = next((run for run in runs if fits([*run[0], tag], run[1] | set(chosen[tag]))), None)
        if fit is None:
            runs.append(([tag], set(chosen[tag])))
        else:
            fit[0].append(tag)
            fit[1].update(chosen[tag])
    return [(tags, sorted(hosts)) for tags, hosts in runs]


def one_host_of_everywhere_roles(running: dict[str, list[str]], tier_of: dict[str, str]) -> dict[str, list[str]]:
    """tag -> the hosts to check it on: a tag of a role every host runs (its hosts span every
    tier but at most one: `base` skips the ELB stand-in) on one of them, the one least
    chosen so far, so that such tags spread over every host; any other tag on all its
    hosts (one tier's: its host, or the primary and a replica; haproxy's: an LB and the
    ELB stand-in, whose settings differ)."""
    tiers = set(tier_of.values())
    chosen: dict[str, list[str]] = {}
    used: Counter[str] = Counter()
    for tag in sorted(running):
        hosts = running[tag]
        if len({tier_of[host] for host in hosts}) >= len(tiers) - 1:
            host = min(hosts, key=lambda h: (used[h], h))
            used[host] += 1
            chosen[tag] = [host]
        else:
            chosen[tag] = hosts
    return chosen


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


def test_each_documented_tag_alone_checks_clean_on_the_converged_lab(groups, one_of_each_tier):
    in_site = site_tags()
    tags = sorted(documented_tags(in_site) & in_site)
    assert len(tags) >= 25, tags  # the READMEs list about thirty
    six = one_of_each_tier
    running = hosts_running_each_tag(":".join(six))
    # The base and firewall roles run everywhere but on the ELB stand-in (base) or on all six.
    assert set(running["firewall"]) == set(six), running["firewall"]
    assert set(running["base"]) == set(six) - set(groups.get("elb", [])), running["base"]
    assert all(len(running.get(tag, [])) < len(six) for tag in ("nginx_configure", "haproxy_configure", "app_service"))
    # A documented tag that selects no task here would be a run with nothing to check.
    assert set(tags) - set(running) == set(), "tags that select no task on the lab"
    running = {tag: running[tag] for tag in tags}
    chosen = one_host_of_everywhere_roles(running, {host: tier_of(groups, host) for host in six})
    # Each tag once: one of base's or firewall's on one host, and between them on all six;
    # postgresql's on the primary and the replica together.
    everywhere = [tag for tag in tags if tag.startswith(("base", "firewall"))]
    assert all(len(chosen[tag]) == 1 for tag in everywhere), chosen
    assert {chosen[tag][0] for tag in everywhere} == set(six), chosen
    db_hosts = sorted(set(six) & set(groups["db"]))
    assert all(chosen[tag] == db_hosts for tag in tags if tag.startswith("postgresql")), chosen
    # Each host of a run runs the tasks of exactly one of its tags, what that tag alone
    # runs there (runs_of_tags_apart: tests/unit/test_tag_runs.py).
    runs = runs_of_tags_apart(chosen, running)
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
