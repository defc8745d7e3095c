"""How the lab's tag test groups tags into runs (tests/lab/test_tags.py): each tag once,
and a run's hosts each run the tasks of exactly one of its tags."""

from __future__ import annotations

from tests.lab.test_tags import one_host_of_everywhere_roles, runs_of_tags_apart

TIER_OF = {"web1": "web", "lb1": "lb", "app1": "app", "primary": "db", "replica1": "db", "elb": "elb"}
SIX = sorted(TIER_OF)
# tag -> the hosts that run a task of it (as --list-tasks --list-hosts says).
RUNNING = {
    "base_packages": [h for h in SIX if h != "elb"],
    "base_sshd": [h for h in SIX if h != "elb"],
    "firewall_install": SIX,
    "firewall_configure": SIX,
    "nginx_install": ["web1"],
    "app_install": ["app1"],
    "haproxy_install": ["elb", "lb1"],
    "postgresql_install": ["primary", "replica1"],
    "postgresql_replica": ["replica1"],
}


def test_a_tag_of_a_role_every_host_runs_goes_on_one_host_the_least_chosen():
    chosen = one_host_of_everywhere_roles(RUNNING, TIER_OF)
    everywhere = ["base_packages", "base_sshd", "firewall_configure", "firewall_install"]
    assert all(len(chosen[tag]) == 1 for tag in everywhere), chosen
    assert len({chosen[tag][0] for tag in everywhere}) == 4  # spread, never twice on one host
    # A tag of one tier, or of two, keeps all its hosts.
    assert chosen["haproxy_install"] == ["elb", "lb1"]
    assert chosen["postgresql_install"] == ["primary", "replica1"]
    assert chosen["nginx_install"] == ["web1"]


def test_each_host_of_a_run_runs_the_tasks_of_exactly_one_of_its_tags():
    chosen = one_host_of_everywhere_roles(RUNNING, TIER_OF)
    runs = runs_of_tags_apart(chosen, RUNNING)
    assert sorted(tag for tags, _ in runs for tag in tags) == sorted(RUNNING)
    assert len(runs) < len(RUNNING)
    for tags, hosts in runs:
        assert hosts == sorted({host for tag in tags for host in chosen[tag]}), (tags, hosts)
        for host in hosts:
            assert sum(host in RUNNING[tag] for tag in tags) == 1, (tags, host)


def test_tags_whose_hosts_meet_are_never_in_one_run():
    # lb1 runs base_packages too: on web1 it cannot share a run with haproxy_install on lb1.
    chosen = {"base_packages": ["web1"], "haproxy_install": ["lb1"], "nginx_install": ["web1"]}
    runs = runs_of_tags_apart(chosen, RUNNING)
    together = [set(tags) for tags, _ in runs]
    assert {"base_packages", "haproxy_install"} not in together
    assert not any({"base_packages", "nginx_install"} <= tags for tags in together)
    # Two postgresql tags meet on the replica: apart.
    runs = runs_of_tags_apart(
        {"postgresql_install": ["primary", "replica1"], "postgresql_replica": ["replica1"]}, RUNNING
    )
    assert len(runs) == 2
