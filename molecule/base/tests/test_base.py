"""Real state of a host converged by the base role."""

from pathlib import Path

import pytest

from scripts.recap import hosts_with_drift

PUBKEY = (Path(__file__).parents[3] / "tests" / "fixtures" / "admin_ed25519.pub").read_text().strip()


def test_check_mode_reports_no_change_on_converged_host(check_mode_stats):
    recap, output = check_mode_stats
    assert recap, "the check run reported no hosts"
    assert hosts_with_drift(recap) == {}, output


def sshd_effective(host):
    out = host.check_output("/usr/sbin/sshd -T")
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_sshd_effective_config_is_hardened(host):
    config = sshd_effective(host)
    assert config["passwordauthentication"] == "no"
    assert config["kbdinteractiveauthentication"] == "no"
    assert config["permitrootlogin"] == "no"
    assert config["pubkeyauthentication"] == "yes"
    assert config["authenticationmethods"] == "publickey"
    assert config["x11forwarding"] == "no"
    assert config["maxauthtries"] == "3"


def test_sshd_runs_and_listens(host):
    assert host.service("ssh").is_running
    assert host.service("ssh").is_enabled
    assert host.socket("tcp://0.0.0.0:22").is_listening


def test_admin_user_has_only_the_managed_key(host):
    user = host.user("fleet")
    assert user.exists
    assert user.shell == "/bin/bash"
    keys = host.file("/home/fleet/.ssh/authorized_keys")
    assert keys.user == "fleet"
    assert keys.mode == 0o600
    assert keys.content_string.strip().splitlines() == [PUBKEY]


def test_admin_user_sudo_without_password(host):
    out = host.check_output("sudo -l -U fleet")
    assert "(ALL : ALL) NOPASSWD: ALL" in out
    # The rule really works: the operator becomes root without a password.
    assert host.check_output("runuser -u fleet -- sudo -n id -u") == "0"


def test_sudoers_is_valid_and_has_only_managed_rules(host):
    assert host.run("visudo -c").rc == 0
    entries = host.check_output("ls -A /etc/sudoers.d").split()
    assert sorted(entries) == ["README", "fleet-admin"]


def test_time_zone_and_locale(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert "LANG=en_US.UTF-8" in host.file("/etc/default/locale").content_string
    assert "en_US.utf8" in host.check_output("locale -a").split()


def test_chrony_runs_without_touching_the_shared_clock(host):
    assert host.service("chrony").is_running
    assert host.service("chrony").is_enabled
    assert "-x" in host.check_output("ps -o args= -C chronyd")
    # No NTP server configured in this test: chrony must not reach outside.
    assert host.check_output("chronyc -n sources | tail -n +3") == ""


@pytest.mark.parametrize(
    ("key", "value"),
    [("SystemMaxUse", "500M"), ("MaxRetentionSec", "1month"), ("Storage", "persistent")],
)
def test_journald_limits(host, key, value):
    merged = host.check_output("systemd-analyze cat-config systemd/journald.conf")
    assert f"{key}={value}" in merged.splitlines()
    assert host.service("systemd-journald").is_running


def test_security_updates_policy(host):
    dump = host.check_output("apt-config dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    patterns = [line for line in dump.splitlines() if line.startswith("Unattended-Upgrade::Origins-Pattern::")]
    assert len(patterns) == 1
    assert "Debian-Security" in patterns[0]
    assert host.package("unattended-upgrades").is_installed
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        assert host.service(timer).is_enabled
