"""The show stat reader of the rolling restarts."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_haproxy import FilterModule, haproxy_server, haproxy_servers, haproxy_up_besides

# What HAProxy 2.6 answers, cut to the columns that matter and a few others.
SHOW_STAT = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight
web,FRONTEND,,,3,10,4096,100,OPEN,
app,app1,0,0,2,5,,50,UP,1
app,app2,0,0,0,4,,40,DRAIN,1
app,app3,0,0,0,1,,9,MAINT,1
app,app4,0,0,1,1,,9,UP 1/2,1
app,app5,0,0,0,1,,9,DOWN,1
app,BACKEND,0,0,3,9,410,99,UP,2
stats,FRONTEND,,,0,1,4096,5,OPEN,

"""


def test_servers_of_the_backend_with_state_and_sessions():
    assert haproxy_servers(SHOW_STAT, "app") == {
        "app1": {"status": "UP", "up": True, "sessions": 2},
        "app2": {"status": "DRAIN", "up": False, "sessions": 0},
        "app3": {"status": "MAINT", "up": False, "sessions": 0},
        "app4": {"status": "UP 1/2", "up": True, "sessions": 1},
        "app5": {"status": "DOWN", "up": False, "sessions": 0},
    }
    assert haproxy_servers(SHOW_STAT, "other") == {}


def test_no_output_no_servers():
    assert haproxy_servers("", "app") == {}
    assert haproxy_servers("\n", "app") == {}


@pytest.mark.parametrize("output", ["Unknown command\n", 42])
def test_anything_else_is_an_error(output):
    with pytest.raises(AnsibleFilterError, match="fleet_haproxy_servers"):
        haproxy_servers(output, "app")


def test_the_servers_up_besides_those_leaving():
    servers = haproxy_servers(SHOW_STAT, "app")
    # app4 (UP 1/2) fails its checks: it carries nothing a batch may count on.
    assert haproxy_up_besides(servers, []) == ["app1"]
    assert haproxy_up_besides(servers, ["app1"]) == []
    assert haproxy_up_besides(servers, ["app2", "app4"]) == ["app1"]
    # Names of other LBs' servers change nothing.
    assert haproxy_up_besides(servers, ["app9"]) == ["app1"]
    assert haproxy_up_besides({}, ["app1"]) == []


def test_one_server_or_absent():
    assert haproxy_server(SHOW_STAT, "app", "app2") == {"status": "DRAIN", "up": False, "sessions": 0}
    assert haproxy_server(SHOW_STAT, "app", "app1")["sessions"] == 2
    # Not listed, or no LB yet: no status, not up, nothing in flight.
    absent = {"status": "", "up": False, "sessions": 0}
    assert haproxy_server(SHOW_STAT, "app", "app9") == absent
    assert haproxy_server("", "app", "app1") == absent
    with pytest.raises(AnsibleFilterError, match="fleet_haproxy_servers"):
        haproxy_server("Unknown command\n", "app", "app1")


@pytest.mark.parametrize(("servers", "leaving"), [("app1", []), ({}, "app1"), ({}, None)])
def test_up_besides_refuses_anything_else(servers, leaving):
    with pytest.raises(AnsibleFilterError, match="fleet_haproxy_up_besides"):
        haproxy_up_besides(servers, leaving)


def test_registered():
    assert FilterModule().filters() == {
        "fleet_haproxy_servers": haproxy_servers,
        "fleet_haproxy_server": haproxy_server,
        "fleet_haproxy_up_besides": haproxy_up_besides,
    }
