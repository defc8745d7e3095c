#!/usr/bin/env python3
"""A machine an earlier run used must not fail the next one (issue 27).

    python3 -m scripts.hygiene disk     enough free disk for a whole `bin/fleet test`?
    python3 -m scripts.hygiene clean    Docker answers? then remove what fleet left behind

`clean` removes only what carries one of fleet's own labels — the lab's hosts
(fleet.lab), molecule instances (fleet.molecule), the container tests'
throwaway hosts (fleet.test) — with their networks and volumes, plus fleet's
own stale state: the fact cache (addresses of containers that are gone), the
molecule scenarios' state directories and half-made debootstrap trees. A
container without those labels is never touched. Standard library only: `disk`
runs before the virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every label a fleet container, network or volume carries (scripts/lab.py,
# molecule/shared/create.yml, tests/containers/conftest.py): matched by key.
LABELS = ("fleet.lab", "fleet.molecule", "fleet.test")
# A whole run's peak, measured from a clean clone (docs/testing.md): the
# virtualenv, the test-bed and lab images, 13 lab hosts and molecule's
# instances side by side, moto, logs. Rounded up, with room to spare.
NEED_GB = int(os.environ.get("FLEET_TEST_NEED_GB", "12"))
DOCKER_TIMEOUT = 30
FACT_CACHE = Path(os.environ.get("ANSIBLE_CACHE_PLUGIN_CONNECTION", "~/.cache/fleet/facts")).expanduser()
MOLECULE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "molecule"
ROOTFS_GLOB = "fleet-rootfs.*"


def say(msg: str) -> None:
    print(f"[clean] {msg}", file=sys.stderr)


def docker(*args: str, timeout: float = DOCKER_TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


# ---- checks ------------------------------------------------------------------
def docker_problem() -> str | None:
    """Why Docker cannot serve a run, or None when it answers."""
    if shutil.which("docker") is None:
        return "the docker command is not installed (bin/fleet setup installs docker.io)"
    try:
        info = docker("info", "--format", "{{.ServerVersion}}")
    except subprocess.TimeoutExpired:
        return f"Docker does not answer within {DOCKER_TIMEOUT} s (`docker info` hangs): restart dockerd"
    if info.returncode != 0:
        return f"Docker does not answer: {info.stderr.strip() or info.stdout.strip()}"
    return None


def docker_root() -> Path:
    try:
        out = docker("info", "--format", "{{.DockerRootDir}}").stdout.strip()
    except subprocess.TimeoutExpired:
        out = ""
    path = Path(out or "/var/lib/docker")
    while not path.exists():
        path = path.parent
    return path


def disk_problems(paths: list[Path], need_gb: int) -> list[str]:
    """One line per filesystem (among paths) with less than need_gb free."""
    seen: set[int] = set()
    problems = []
    for path in paths:
        dev = path.stat().st_dev
        if dev in seen:
            continue
        seen.add(dev)
        free_gb = shutil.disk_usage(path).free / 2**30
        if free_gb < need_gb:
            problems.append(f"{path}: {free_gb:.1f} GB free, a whole run needs {need_gb} GB")
    return problems


def run_paths() -> list[Path]:
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return [ROOT, docker_root(), tmp if tmp.exists() else Path("/tmp")]


# ---- clean-up ----------------------------------------------------------------
def labelled(kind: str, labels: tuple[str, ...]) -> list[str]:
    """Names of the containers, networks or volumes that carry one of the labels."""
    found: list[str] = []
    for label in labels:
        if kind == "container":
            args = ["ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}"]
        else:
            args = [kind, "ls", "--filter", f"label={label}", "--format", "{{.Name}}"]
        out = docker(*args)
        if out.returncode != 0:
            raise SystemExit(f"[clean] docker {' '.join(args)} failed: {out.stderr.strip()}")
        found += [name for name in out.stdout.split() if name not in found]
    return found


def remove_labelled(labels: tuple[str, ...] = LABELS) -> dict[str, list[str]]:
    """Remove every container, then network, then volume with one of the labels."""
    removed: dict[str, list[str]] = {}
    for kind, rm in (("container", ["rm", "-f", "-v"]), ("network", ["network", "rm"]), ("volume", ["volume", "rm"])):
        names = labelled(kind, labels)
        if names:
            out = docker(*rm, *names, timeout=120)
            if out.returncode != 0:
                raise SystemExit(f"[clean] could not remove the {kind}s {', '.join(names)}: {out.stderr.strip()}")
        removed[kind] = names
    return removed


def remove_stale_state(root: Path = ROOT) -> list[Path]:
    """fleet's own state an interrupted run leaves: fact cache, molecule state, debootstrap trees."""
    stale: list[Path] = []
    if FACT_CACHE.is_dir():
        stale.append(FACT_CACHE)
    project_cache = MOLECULE_CACHE / root.name
    for scenario in sorted((root / "molecule").glob("*/molecule.yml")):
        state = project_cache / scenario.parent.name
        if state.is_dir():
            stale.append(state)
    tmp = Path(os.environ.get("TMPDIR", "/var/tmp"))
    for base in {tmp, Path("/var/tmp")}:
        # Older than an hour: a debootstrap in progress takes about a minute.
        stale += [p for p in base.glob(ROOTFS_GLOB) if p.is_dir() and time.time() - p.stat().st_mtime > 3600]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


# ---- commands ----------------------------------------------------------------
def cmd_disk(args: argparse.Namespace) -> int:
    problems = disk_problems(run_paths(), args.need_gb)
    for line in problems:
        say(f"not enough free disk: {line}; free some (docker system prune, old clones) and run again")
    return 1 if problems else 0


def cmd_clean(_: argparse.Namespace) -> int:
    problem = docker_problem()
    if problem:
        say(problem)
        return 1
    removed = remove_labelled()
    stale = remove_stale_state()
    parts = [f"{len(names)} {kind}s" for kind, names in removed.items()]
    say(f"removed fleet's leftovers: {', '.join(parts)}, {len(stale)} stale state paths")
    for kind, names in removed.items():
        if names:
            say(f"  {kind}s: {' '.join(names)}")
    for path in stale:
        say(f"  state: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m scripts.hygiene", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    disk = sub.add_parser("disk", help="fail unless a whole run has the free disk it needs")
    disk.add_argument("--need-gb", type=int, default=NEED_GB)
    sub.add_parser("clean", help="check Docker answers, then remove fleet's leftovers (and nothing else)")
    args = parser.parse_args(argv)
    return {"disk": cmd_disk, "clean": cmd_clean}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
