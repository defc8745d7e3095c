"""Bad variables for role base fail before any change, naming the variable."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.containers

GOOD_KEY = (ROOT / "tests" / "fixtures" / "admin_ed25519.pub").read_text().strip()
GOOD = {"base_admin_ssh_keys": [GOOD_KEY], "base_timesync_servers": []}


@pytest.fixture(scope="module")
def fingerprint_before(fresh_host):
    """What a base converge would change first; it must stay as it is."""
    return fresh_host.sh("md5sum /etc/ssh/sshd_config /etc/sudoers; getent passwd fleet; dpkg -l chrony").stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"base_sshd_port": "twenty-two"}, "base_sshd_port"),
        ({"base_sshd_port": 70000}, "base_sshd_port: 70000 is outside 1-65535"),
        ({"base_sshd_permit_root_login": "yes"}, "base_sshd_permit_root_login"),
        ({"base_admin_sudo_nopasswd": "sometimes"}, "base_admin_sudo_nopasswd"),
        ({"base_packages": "curl"}, "base_packages"),
        ({"base_admin_ssh_keys": ["ssh-ed25519 not*a*key fleet"]}, "base_admin_ssh_keys[0] is not an SSH public key"),
        ({"base_admin_ssh_keys": [GOOD_KEY, "ssh-dss AAAA"]}, "base_admin_ssh_keys[1] is not an SSH public key"),
        ({"base_admin_ssh_keys": []}, "base_admin_ssh_keys is empty"),
        ({"base_timezone": "Mars/Olympus_Mons"}, "base_timezone=Mars/Olympus_Mons does not exist"),
        ({"base_timezone": "../../etc/passwd"}, "base_timezone=../../etc/passwd"),
        ({"base_journald_system_max_use": "lots"}, "base_journald_system_max_use: 'lots' is not a size"),
        ({"base_unattended_upgrades_reboot_time": "25:00"}, "base_unattended_upgrades_reboot_time=25:00"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_variable_fails_before_any_change(fresh_host, fingerprint_before, override, expected):
    result = fresh_host.playbook("playbooks/base.yml", {**GOOD, **override})
    assert result.rc != 0, result.output
    assert expected in result.output, result.output
    assert result.recap(fresh_host.name)["changed"] == 0
    assert fresh_host.sh("md5sum /etc/ssh/sshd_config /etc/sudoers; getent passwd fleet; dpkg -l chrony").stdout == (
        fingerprint_before
    )


def test_good_variables_pass_and_check_mode_reports_drift_on_a_fresh_host(fresh_host, fingerprint_before):
    """The control case: the same run with good values gets through preflight,
    and check mode on a never-converged host reports the drift without failing."""
    result = fresh_host.playbook("playbooks/base.yml", GOOD, "--check")
    assert result.rc == 0, result.output
    recap = result.recap(fresh_host.name)
    assert recap["failed"] == 0
    assert recap["changed"] > 0
    assert fresh_host.sh("md5sum /etc/ssh/sshd_config /etc/sudoers; getent passwd fleet; dpkg -l chrony").stdout == (
        fingerprint_before
    )
