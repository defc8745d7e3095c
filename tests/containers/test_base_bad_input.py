"""Bad variables for role base fail before any change, naming the variable."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.containers.conftest import assert_complaint

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
        (
            {"base_sshd_port": "twenty-two"},
            "argument 'base_sshd_port' is of type str and we were unable to convert to int",
        ),
        ({"base_sshd_port": 70000}, "base_sshd_port: 70000 is outside 1-65535"),
        (
            {"base_sshd_permit_root_login": "yes"},
            "value of base_sshd_permit_root_login must be one of: no, prohibit-password",
        ),
        (
            {"base_admin_sudo_nopasswd": "sometimes"},
            "argument 'base_admin_sudo_nopasswd' is of type str and we were unable to convert to bool",
        ),
        ({"base_packages": "curl"}, "base_packages: got 'curl', expected a list of Debian package names"),
        (
            {"base_extra_packages": ["jq", "rm -rf"]},
            "base_extra_packages: items that are not Debian package names: 'rm -rf'",
        ),
        ({"base_admin_ssh_keys": ["ssh-ed25519 not*a*key fleet"]}, "base_admin_ssh_keys[0] is not an SSH public key"),
        ({"base_admin_ssh_keys": [GOOD_KEY, "ssh-dss AAAA"]}, "base_admin_ssh_keys[1] is not an SSH public key"),
        ({"base_admin_ssh_keys": []}, "base_admin_ssh_keys is empty"),
        ({"base_timezone": "Mars/Olympus_Mons"}, "base_timezone=Mars/Olympus_Mons does not exist"),
        ({"base_timezone": "../../etc/passwd"}, "base_timezone: got '../../etc/passwd', expected an IANA zone name"),
        ({"base_journald_system_max_use": "lots"}, "base_journald_system_max_use: 'lots' is not a size"),
        (
            {"base_journald_max_retention": "14 days"},
            "base_journald_max_retention: got '14 days', expected a time span",
        ),
        (
            {"base_unattended_upgrades_reboot_time": "25:00"},
            "base_unattended_upgrades_reboot_time: got '25:00', expected",
        ),
        ({"base_sshd_max_auth_tries": 0}, "base_sshd_max_auth_tries: got 0, expected at least 1"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_bad_variable_fails_before_any_change(fresh_host, fingerprint_before, override, expected):
    result = fresh_host.playbook("playbooks/base.yml", {**GOOD, **override})
    # The complaint names the bad variable and no other.
    assert_complaint(result, expected, set(override), "base_")
    assert result.recap(fresh_host.name)["changed"] == 0
    assert fresh_host.sh("md5sum /etc/ssh/sshd_config /etc/sudoers; getent passwd fleet; dpkg -l chrony").stdout == (
        fingerprint_before
    )


def test_every_bad_variable_is_named_once_and_good_ones_not_at_all(fresh_host, fingerprint_before):
    """Two bad values in one run: both complaints, nothing about the good ones."""
    result = fresh_host.playbook("playbooks/base.yml", {**GOOD, "base_sshd_port": 0, "base_locale": "klingon"})
    assert_complaint(
        result,
        "Bad base variable: base_sshd_port: 0 is outside 1-65535; "
        "base_locale: got 'klingon', expected a UTF-8 locale such as en_US.UTF-8.",
        {"base_sshd_port", "base_locale"},
        "base_",
    )
    assert result.recap(fresh_host.name)["changed"] == 0


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
