"""A local moto server for the AWS tests, and helpers to drive fleet's AWS playbooks at it.

Every call goes to 127.0.0.1: the playbooks get the endpoint through their one
setting (``aws_endpoint_url``), and botocore's own ``AWS_ENDPOINT_URL`` is set
too, so that anything not wired through the variable still cannot reach AWS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest

from tests.conftest import ROOT, ansible_env

REGION = "us-east-1"
# moto ships no Debian image; any of its Linux AMIs stands in for aws_ami_id.
MOTO_AMI = "ami-785db401"
OPERATOR_CIDR = "203.0.113.0/24"
PUBKEY = ROOT / "tests" / "fixtures" / "admin_ed25519.pub"
RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """Start moto on a free port of 127.0.0.1, wait until it answers, stop it at the end."""
    port = _free_port()
    server = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    cmd = [server] if server else [sys.executable, "-m", "moto.server"]
    with log.open("w") as out:
        proc = subprocess.Popen([*cmd, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto did not start: {log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as url:
        yield url


def reset_moto(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST")
    # Bounded, but not at 10 s: beside the lab at nice 19, a reset of a moto holding a
    # provisioned fleet took longer (the clean-clone run of 0e15815).
    with urllib.request.urlopen(req, timeout=60):
        pass


def enforce_iam(url: str) -> None:
    """From now on this moto checks every request's signature and the caller's IAM policies."""
    # The body is the number of requests still let through unchecked.
    req = urllib.request.Request(
        f"{url}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(req, timeout=10):
        pass


@pytest.fixture
def moto(moto_endpoint: str) -> str:
    """A moto with no state left over from earlier tests."""
    reset_moto(moto_endpoint)
    return moto_endpoint


@pytest.fixture(scope="module")
def moto_module(moto_endpoint: str) -> str:
    """One clean moto for a whole module whose tests build on each other."""
    reset_moto(moto_endpoint)
    return moto_endpoint


# Whatever the machine has must not reach the tests: no profile, token or config.
UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_URL", "AWS_REGION")


def aws_run(cmd: list[str], url: str, unset: tuple[str, ...] = (), **extra: str) -> subprocess.CompletedProcess[str]:
    """Run an ansible command with moto's fake credentials and endpoint, and nothing else of AWS."""
    env = ansible_env(
        **{
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            # botocore's own endpoint setting: anything not wired through
            # aws_endpoint_url still cannot reach AWS.
            "AWS_ENDPOINT_URL": url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # The operator's fact cache must not mix with the tests'.
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(ROOT / ".cache" / "test-facts"),
            # Other credentials, a service's own endpoint (AWS_ENDPOINT_URL_<SERVICE>)...
            **extra,
        }
    )
    for key in (*UNSET, *unset):
        env.pop(key, None)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def client(url: str, service: str):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


class Result:
    def __init__(self, proc: subprocess.CompletedProcess[str]):
        self.proc = proc
        self.out = proc.stdout + proc.stderr
        match = RECAP.search(proc.stdout)
        self.ok, self.changed, self.unreachable, self.failed = (int(g) for g in match.groups()) if match else (-1,) * 4

    @property
    def rc(self) -> int:
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"rc={self.rc} changed={self.changed} failed={self.failed}\n{self.out[-6000:]}"


def operator_inventory(inv: Path, url: str) -> Path:
    """inventories/aws copied to `inv` as an operator has it, pointed at moto `url`, with a cache of its own."""
    shutil.copytree(ROOT / "inventories" / "aws", inv)
    config = inv / "fleet.aws_ec2.yml"
    text = config.read_text()
    assert re.search(r"^cache_connection: ", text, re.M), "the inventory caches; the test must move its cache"
    text = re.sub(r"^cache_connection: .*$", f"cache_connection: {inv / '.cache'}", text, flags=re.M)
    config.write_text(text + f"endpoint_url: {url}\n")
    return inv


@pytest.fixture(scope="session")
def aws_inventory(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Path:
    """inventories/aws as an operator has it, pointed at moto, with a cache of its own."""
    return operator_inventory(tmp_path_factory.mktemp("inventory") / "aws", moto_endpoint)


def playbook(
    url: str,
    inventory: Path,
    name: str,
    *args: str,
    env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
    **extra_vars: object,
) -> Result:
    """Run playbooks/<name> against moto through the AWS inventory, as an operator would.

    An extra variable given as None is left unset.
    """
    cmd = ["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / name), "--flush-cache"]
    settings = {
        "aws_endpoint_url": url,
        "aws_ami_id": MOTO_AMI,
        "aws_ssh_public_key_file": str(PUBKEY),
        "aws_operator_cidr": OPERATOR_CIDR,
        **extra_vars,
    }
    settings = {key: value for key, value in settings.items() if value is not None}
    # One JSON document: lists and mappings stay lists and mappings.
    cmd += ["-e", json.dumps(settings)]
    cmd += list(args)
    return Result(aws_run(cmd, url, unset, **(env or {})))
