"""Bad variables for role app fail before any change, naming the variable."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from tests.containers.conftest import Container, start_container

pytestmark = pytest.mark.containers

# Everything the role needs, with the cell wiring given directly (this host is
# alone in its inventory: no primary, no replica for the filters to find).
GOOD = {
    "app_cell": "cell_a",
    "app_db_write_host": "primary",
    "app_db_read_host": "replica1",
    "app_db_write_password": "w",
    "app_db_read_password": "r",
    "app_release_version": "1.0.0",
    "app_release_url": "/nonexistent/fleet-app-1.0.0.tar.gz",
}
FINGERPRINT = "getent passwd fleet-app; ls -la /opt /etc/fleet-app 2>&1; dpkg -l python3-venv 2>&1 | tail -1"


@pytest.fixture(scope="module")
def app_host(tmp_path_factory) -> Iterator[Container]:
    """A never-converged Debian 12 host in groups app and cell_a, removed afterwards."""
    name = f"fleet-test-app-{uuid.uuid4().hex[:8]}"
    container = start_container(name, ("app", "cell_a"), tmp_path_factory.mktemp(name))
    try:
        yield container
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.fixture(scope="module")
def fingerprint_before(app_host):
    return app_host.sh(FINGERPRINT).stdout


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"app_port": 70000}, "app_port: 70000 is outside 1-65535"),
        ({"app_port": 0}, "app_port: 0 is outside 1-65535"),
        ({"app_port": "http"}, "app_port"),
        ({"app_db_port": 99999}, "app_db_port: 99999 is outside 1-65535"),
        ({"app_release_version": "1.0"}, "app_release_version=1.0 (MAJOR.MINOR.PATCH"),
        ({"app_release_version": "v1.0.0"}, "app_release_version=v1.0.0"),
        ({"app_release_url": "ftp://example.org/fleet-app-1.0.0.tar.gz"}, "app_release_url=ftp://"),
        ({"app_release_url": "releases/fleet-app-1.0.0.tar.gz"}, "app_release_url=releases/"),
        ({"app_release_url": "https://example.org/fleet-app-2.0.0.tar.gz"}, "ending in fleet-app-1.0.0.tar.gz"),
        ({"app_release_url": "https://exa mple.org/fleet-app-1.0.0.tar.gz"}, "app_release_url=https://exa mple"),
        ({"app_runtime": "node"}, "app_runtime"),
        ({"app_releases_keep": 0}, "app_releases_keep=0 (at least 1)"),
        ({"app_cell": "a"}, "app_cell=a"),
        ({"app_db_write_password": ""}, "app_db_write_password and app_db_read_password must be set"),
        ({}, "app_release_url=/nonexistent/fleet-app-1.0.0.tar.gz does not exist on the controller"),
    ],
    ids=lambda v: (next(iter(v)) if v else "missing-artifact") if isinstance(v, dict) else None,
)
def test_bad_variable_fails_before_any_change(app_host, fingerprint_before, override, expected):
    result = app_host.playbook("playbooks/app.yml", {**GOOD, **override})
    assert result.rc != 0, result.output
    assert expected in result.output, result.output
    assert result.recap(app_host.name)["changed"] == 0
    assert app_host.sh(FINGERPRINT).stdout == fingerprint_before


def test_unknown_runtime_is_named_with_its_choices(app_host):
    result = app_host.playbook("playbooks/app.yml", {**GOOD, "app_runtime": "node"})
    assert result.rc != 0
    assert "app_runtime" in result.output
    assert "python" in result.output
    assert "node" in result.output


def test_passwords_never_reach_the_output(app_host):
    secret = "s3cr3t-never-printed"
    result = app_host.playbook(
        "playbooks/app.yml", {**GOOD, "app_db_write_password": secret, "app_db_read_password": secret + "\nx"}
    )
    assert result.rc != 0
    assert secret not in result.output
