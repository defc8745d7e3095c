"""End-to-end tests over the running lab (bin/fleet lab up)."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import testinfra

from filter_plugins.fleet_cells import ROLE_GROUPS
from filter_plugins.fleet_haproxy import haproxy_servers as fleet_haproxy_servers
from tests.conftest import ROOT, ansible_env, plain, rendered, run

ELB = f"http://127.0.0.1:{os.environ.get('FLEET_LAB_ELB_PORT', '8088')}"
INVENTORY = ROOT / "inventories" / "lab"


def _inventory() -> dict:
    proc = run(["ansible-inventory", "-i", str(INVENTORY), "--list"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def lab_inventory() -> dict:
    inv = _inventory()
    if not inv.get("web", {}).get("hosts"):
        pytest.fail("the lab is not up: run bin/fleet lab up first")
    return inv


@pytest.fixture(scope="session")
def groups(lab_inventory) -> dict[str, list[str]]:
    return {name: sorted(body.get("hosts", [])) for name, body in lab_inventory.items() if isinstance(body, dict)}


@pytest.fixture(scope="session")
def hostvars(lab_inventory) -> dict[str, dict]:
    return plain(lab_inventory["_meta"]["hostvars"])


def tier_of(groups: dict[str, list[str]], host: str) -> str:
    """The primary and the replicas are one tier (db); a host of no other group is its own."""
    in_db = host in groups.get("db", [])
    return "db" if in_db else next((g for g in ROLE_GROUPS if host in groups.get(g, [])), host)


@pytest.fixture(scope="session")
def one_of_each_tier(groups) -> list[str]:
    """One host of each tier (web, lb, app, replica) of the first cell, and the hosts every
    cell shares (the primary, the ELB stand-in): six hosts that run every task site.yml
    has, each tier's as its other hosts run them (a cell's hosts are another cell's but
    for their names and addresses). Where a claim is about the tasks, not the fleet's
    size, these cost under half of the whole lab (issue 27)."""
    cells = sorted(g for g in groups if g.startswith("cell_"))
    in_cells = set().union(*(groups[c] for c in cells))
    shared = sorted(set().union(*groups.values()) - in_cells)
    first_of_tier: dict[str, str] = {}
    for host in sorted(groups[cells[0]]):
        first_of_tier.setdefault(tier_of(groups, host), host)
    one_each = sorted(first_of_tier.values())
    assert len(one_each) == 4, one_each
    assert shared == ["elb", "primary"], shared
    return [*one_each, *shared]


@pytest.fixture(scope="session")
def host() -> Callable[[str], testinfra.host.Host]:
    """A testinfra host reached through the lab inventory (SSH, as Ansible does)."""
    cache: dict[str, testinfra.host.Host] = {}
    os.environ["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")

    def get(name: str) -> testinfra.host.Host:
        if name not in cache:
            cache[name] = testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}", sudo=True)
        return cache[name]

    return get


def http(method: str, url: str, body: dict | None = None, timeout: float = 5) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read().decode()
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        return 0, str(err)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Freezer:
    """Freezes lab hosts: a dead server that keeps its address and comes back as it was."""

    def __init__(self) -> None:
        self.frozen: set[str] = set()

    @staticmethod
    def _docker(verb: str, name: str) -> None:
        # The cgroup freezer can give up on a loaded machine (a task that would not
        # stop in time; seen once in a clean-clone run): ask again, a bounded number
        # of times, and fail with docker's own words.
        for attempt in range(3):
            proc = subprocess.run(["docker", verb, name], capture_output=True, text=True, check=False)
            if proc.returncode == 0:
                return
            time.sleep(0.5 * (attempt + 1))
        raise AssertionError(f"docker {verb} {name}: {proc.stderr.strip()}")

    def pause(self, name: str) -> None:
        self._docker("pause", name)
        self.frozen.add(name)

    def unpause(self, name: str) -> None:
        self._docker("unpause", name)
        self.frozen.discard(name)


@pytest.fixture
def freezer() -> Iterator[Freezer]:
    """Always thaws what a test froze, whatever the test's outcome."""
    f = Freezer()
    yield f
    for name in list(f.frozen):
        f.unpause(name)


def lab_exec(name: str, script: str, timeout: float = 30, args: tuple[str, ...] = ()) -> str:
    """Run a shell script on a lab host through docker (no Ansible in between: fast).

    ``args`` are the script's $1, $2, ...: a secret passed so is on no command line a log shows."""
    proc = subprocess.run(
        ["docker", "exec", name, "sh", "-c", script, "sh", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name}: {script}: {proc.stderr}"
    return proc.stdout


def http_from(name: str, method: str, url: str, body: dict | None = None, timeout: float = 5) -> tuple[int, object]:
    """An HTTP request sent from inside lab host ``name`` (where the host firewalls admit it: a web
    server, for one, answers only the ELB), with curl; (status, JSON or text) like http()."""
    cmd = ["docker", "exec", name, "curl", "-sS", "-m", str(timeout), "-X", method, "-w", "\n%{http_code}"]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    proc = subprocess.run([*cmd, url], capture_output=True, text=True, check=False, timeout=timeout + 10)
    raw, _, code = proc.stdout.rpartition("\n")
    status = int(code) if code.isdigit() else 0
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw or proc.stderr


@functools.cache
def haproxy_backends() -> dict[str, str]:
    """HAProxy host (the LBs and the ELB stand-in) -> the name of its backend, as the
    lab inventory renders haproxy_backend_name (group_vars/lb.yml, group_vars/elb.yml)."""
    return rendered(INVENTORY, "lb:elb", "haproxy_backend_name")


def haproxy_command(lb: str, command: str) -> str:
    """One command on the admin socket of an LB (or the ELB stand-in); its answer."""
    return lab_exec(lb, 'echo "$1" | socat stdio unix-connect:/run/haproxy/admin.sock', args=(command,))


def haproxy_servers(lb: str) -> dict[str, str]:
    """server name -> status (UP/DOWN/DRAIN...) of the backend of one LB (or the ELB
    stand-in), from its admin socket."""
    out = haproxy_command(lb, "show stat")
    return {name: server["status"] for name, server in fleet_haproxy_servers(out, haproxy_backends()[lb]).items()}


def drift_command(reports: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "scripts.drift", "--reports", str(reports), *args]


def latest_report(reports: Path) -> dict:
    return json.loads((reports / "latest" / "drift.json").read_text())


def drift(reports: Path, *args: str) -> tuple[int, dict, str]:
    """`bin/fleet drift` with ``args``, its reports under ``reports``: (exit status, the
    latest report, output)."""
    proc = subprocess.run(
        drift_command(reports, *args), cwd=ROOT, env=ansible_env(), capture_output=True, text=True, check=False
    )
    return proc.returncode, latest_report(reports), proc.stdout + proc.stderr


def haproxy_sessions(lb: str) -> dict[str, int]:
    """server name -> requests in flight on it (scur) in the backend of one LB."""
    servers = fleet_haproxy_servers(haproxy_command(lb, "show stat"), haproxy_backends()[lb])
    return {name: int(server["sessions"]) for name, server in servers.items()}


# Clients beside an Ansible run whose effect on traffic a test observes (a rollout, a
# drift correction, a site change): four at a time, 0.2 s apart, about 18 requests a
# second, a quarter of this 2-core machine. Every request goes ELB -> web -> LB -> app
# -> PostgreSQL, about 28 ms of CPU in all (measured, 2026-12-06): the default below,
# about 63 a second, took 96 % of the machine by itself and made the observed run
# 1.6x longer (the rollout tests 245 s against 156 s), while each drain, switch or
# reload it observes lasts seconds, not the 55 ms between one client's requests.
BESIDE_A_RUN = {"threads": 4, "pause": 0.2}
# The fewest requests such a test must have sent before its "none failed" counts: the
# runs observed take 40 s or more, about 700 requests at the rate above.
FLOOR_BESIDE_A_RUN = 200


class Load:
    """Clients on the controller using the fleet through the ELB stand-in, each request counted.

    ``threads`` clients each send a read (GET /items) or, every ``write_every``-th
    request, a write (POST /items), with ``pause`` seconds between requests. Bounded:
    at most ``max_requests`` in all and ``max_seconds`` of running, whatever happens.
    """

    def __init__(
        self,
        threads: int = 4,
        write_every: int = 4,
        pause: float = 0.02,
        timeout: float = 5,
        max_requests: int = 20000,
        max_seconds: float = 600,
    ) -> None:
        self.threads, self.write_every, self.pause, self.timeout = threads, write_every, pause, timeout
        self.max_requests, self.max_seconds = max_requests, max_seconds
        # (started at, kind "read"/"write", status, seconds taken, body)
        self.results: list[tuple[float, str, int, float, object]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def _client(self, number: int) -> None:
        deadline = time.monotonic() + self.max_seconds
        sent = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self._lock:
                if len(self.results) >= self.max_requests:
                    return
            sent += 1
            write = sent % self.write_every == 0
            started = time.monotonic()
            try:
                if write:
                    status, body = http("POST", f"{ELB}/items", {"name": f"load-{number}-{sent}"}, timeout=self.timeout)
                else:
                    status, body = http("GET", f"{ELB}/items?limit=1", timeout=self.timeout)
            # Any exception (IncompleteRead, BadStatusLine, ...) is a failed request, counted:
            # one that ended the thread would stop its requests being counted at all.
            except Exception as err:
                status, body = 0, f"{type(err).__name__}: {err}"
            with self._lock:
                self.results.append((started, "write" if write else "read", status, time.monotonic() - started, body))
            time.sleep(self.pause)

    def __enter__(self) -> Load:
        self._workers = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.threads)]
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=self.timeout + 5)

    def since(
        self, t0: float, kind: str | None = None, until: float = float("inf")
    ) -> list[tuple[float, str, int, float, object]]:
        with self._lock:
            return [r for r in self.results if t0 <= r[0] < until and (kind is None or r[1] == kind)]

    @staticmethod
    def _ok(result: tuple[float, str, int, float, object]) -> bool:
        return result[2] == 200 or (result[1] == "write" and result[2] == 201)

    def failed(
        self, t0: float = 0, kind: str | None = None, until: float = float("inf")
    ) -> list[tuple[float, str, int, float, object]]:
        return [r for r in self.since(t0, kind, until) if not self._ok(r)]

    def summary(self, t0: float = 0, until: float = float("inf")) -> str:
        done = self.since(t0, until=until)
        if not done:
            return "no requests"
        times = sorted(r[3] for r in done)
        p50, p99 = times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]
        return (
            f"{len(done)} requests ({sum(r[1] == 'write' for r in done)} writes), "
            f"{sum(not self._ok(r) for r in done)} failed, "
            f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
        )


def lab_secrets() -> dict[str, str]:
    """name -> value of every secret the lab generated: its vault passwords
    (.cache/lab/secrets/, the password lookup's files) and its SSH private key's lines."""
    lab_dir = Path(os.environ.get("FLEET_LAB_DIR", ROOT / ".cache" / "lab"))
    secrets = {f"vault {p.name}": p.read_text().split()[0] for p in sorted((lab_dir / "secrets").iterdir())}
    key_lines = (lab_dir / "id_ed25519").read_text().splitlines()
    secrets |= {f"SSH key line {n}": line for n, line in enumerate(key_lines) if len(line) >= 20 and "---" not in line}
    assert len(secrets) >= 4, sorted(secrets)  # three passwords and the key
    return secrets


def assert_private_and_free_of_secrets(paths: list[Path]) -> None:
    """Each file holds no lab secret (named, never shown) and only its owner may read it."""
    secrets = lab_secrets()
    leaks = [
        f"{path}: {name}"
        for path in paths
        for name, value in secrets.items()
        if value in path.read_text(errors="replace")
    ]
    assert leaks == [], "secrets found in: " + "; ".join(leaks)
    shared = [f"{path}: {oct(path.stat().st_mode & 0o777)}" for path in paths if path.stat().st_mode & 0o077]
    assert shared == [], "readable by others: " + "; ".join(shared)
