#!/usr/bin/env python3
"""Deploy: roll a release through the app servers and record it where the inventory reads it.

    bin/fleet deploy VERSION [-i INVENTORY] [--engine mitogen|ansible]
    bin/fleet deploy --rollback [-i INVENTORY] [--engine mitogen|ansible]

The release the fleet runs lives in one file, the inventory's
group_vars/app/release.yml (app_release_version, and fleet_release_previous, the
one deployed before it). The drift check reads it like every playbook does.

VERSION: builds .cache/releases/fleet-app-VERSION.tar.gz if it is not there
(scripts/build-release.sh, from app/), runs the rolling deploy (playbooks/app.yml
-e app_release_version=VERSION) and, once it has passed, records VERSION in the
file and the release it replaced as the previous one.

--rollback: goes back to the previous release the file records, installed on the
servers already: nothing is built or shipped (app_release_installed_only), so a
fresh clone can roll back. Once it has passed, the file records it, with no
previous one (a second --rollback refuses; deploy a version by name).

The file is written only after the whole rollout passed. When the deploy fails
(a server failed its gate, an LB could not be read, a bad variable) the file still
names the release the fleet ran before, which the run left in service, and the
next drift check reports any server the run changed. Commit the file after a
deploy: the drift timer's control host checks what is committed (docs/runbooks.md).

Exit status: 0 deployed and recorded; 1 the deploy failed (nothing recorded);
2 bad input (nothing ran).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from scripts.engine import engine_env

ROOT = Path(__file__).resolve().parents[1]
# The format the app role and scripts/build-release.sh accept.
VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
KEYS = ("app_release_version", "fleet_release_previous")


class BadInput(Exception):
    """What the operator asked for cannot be done; nothing ran."""


def release_file(inventory: str | Path) -> Path:
    """The inventory's release file: <inventory dir>/group_vars/app/release.yml."""
    path = Path(inventory)
    directory = path if path.is_dir() else path.parent
    return directory / "group_vars" / "app" / "release.yml"


def _line(key: str) -> re.Pattern[str]:
    return re.compile(rf'^{key}:[ \t]*"?([^"\n]*)"?[ \t]*$', re.M)


def read_release(path: Path) -> dict[str, str]:
    """The recorded release and the previous one, from the file's two top-level lines."""
    if not path.is_file():
        raise BadInput(f"{path} does not exist: this inventory records no release (see docs/runbooks.md)")
    text = path.read_text()
    found = {}
    for key in KEYS:
        match = _line(key).search(text)
        if match is None:
            raise BadInput(f"{path} has no line '{key}: \"...\"'")
        found[key] = match.group(1).strip()
    if not VERSION.match(found["app_release_version"]):
        raise BadInput(f"{path}: app_release_version {found['app_release_version']!r} is not MAJOR.MINOR.PATCH")
    if found["fleet_release_previous"] and not VERSION.match(found["fleet_release_previous"]):
        raise BadInput(f"{path}: fleet_release_previous {found['fleet_release_previous']!r} is not MAJOR.MINOR.PATCH")
    return found


def record(path: Path, version: str, previous: str) -> None:
    """Rewrite the two values in place (comments kept), atomically."""
    text = path.read_text()
    for key, value in zip(KEYS, (version, previous), strict=True):
        text = _line(key).sub(f'{key}: "{value}"', text, count=1)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def plan(current: dict[str, str], version: str | None, rollback: bool) -> tuple[str, list[str], dict[str, str]]:
    """The release to run, the extra variables for playbooks/app.yml and what to record once it passed."""
    if rollback == (version is not None):
        raise BadInput("name a VERSION to deploy, or --rollback (not both)")
    if rollback:
        previous = current["fleet_release_previous"]
        if not previous:
            raise BadInput(
                f"no previous release is recorded (the fleet runs {current['app_release_version']}); "
                "deploy the release to go back to by its version"
            )
        extra = ["-e", f"app_release_version={previous}", "-e", "app_release_installed_only=true"]
        return previous, extra, {"app_release_version": previous, "fleet_release_previous": ""}
    if not VERSION.match(version):
        raise BadInput(f"version {version!r} is not MAJOR.MINOR.PATCH such as 1.2.0")
    # A redeploy of the running release keeps the previous one.
    previous = (
        current["fleet_release_previous"]
        if version == current["app_release_version"]
        else current["app_release_version"]
    )
    return (
        version,
        ["-e", f"app_release_version={version}"],
        {
            "app_release_version": version,
            "fleet_release_previous": previous,
        },
    )


def build_if_missing(version: str) -> None:
    artifact = ROOT / ".cache" / "releases" / f"fleet-app-{version}.tar.gz"
    if artifact.is_file():
        return
    print(f"[deploy] building {artifact.name} from app/", file=sys.stderr)
    proc = subprocess.run([str(ROOT / "scripts" / "build-release.sh"), "--version", version], cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"[deploy] building release {version} failed (above); nothing was deployed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/fleet deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("version", nargs="?", help="the release to deploy, MAJOR.MINOR.PATCH")
    parser.add_argument("--rollback", action="store_true", help="go back to the previous recorded release")
    parser.add_argument("-i", "--inventory", default=str(ROOT / "inventories" / "lab"))
    parser.add_argument(
        "--engine",
        choices=["mitogen", "ansible"],
        default=os.environ.get("FLEET_ENGINE", "mitogen"),
        help="mitogen (default, faster) or ansible (the stock strategy)",
    )
    args = parser.parse_args(argv)
    path = release_file(args.inventory)
    try:
        current = read_release(path)
        target, extra, after = plan(current, args.version, args.rollback)
    except BadInput as err:
        print(f"[deploy] {err}; nothing ran", file=sys.stderr)
        return 2
    if not args.rollback:
        build_if_missing(target)
    verb = "rolling back" if args.rollback else "deploying"
    print(f"[deploy] {verb} from {current['app_release_version']} to {target} ({args.inventory})", file=sys.stderr)
    cmd = ["ansible-playbook", "-i", args.inventory, str(ROOT / "playbooks" / "app.yml"), *extra]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), **engine_env(args.engine))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    if proc.returncode != 0:
        recorded = current["app_release_version"]
        print(
            f"[deploy] the rollout to {target} failed (above); {shown} still records {recorded}, which "
            f"every server the run did not switch still runs. A server of a batch that passed may run "
            f"{target}: `bin/fleet drift --limit app --tags app` shows which, and `bin/fleet deploy "
            f"{recorded}` puts every server back on {recorded} (not --rollback: that goes to the one before).",
            file=sys.stderr,
        )
        return 1
    record(path, after["app_release_version"], after["fleet_release_previous"])
    print(f"[deploy] {target} runs on every app server; recorded in {shown}: commit it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
