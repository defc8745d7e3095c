#!/usr/bin/env python3
"""Benchmark a rolling deploy on the running 2-cell lab, under load.

    .venv/bin/python -m bench.rollout_bench [--steady 30]

Clients use the fleet through the ELB stand-in (tests.lab.conftest.Load: 4
threads, a write every 4th request) for ``--steady`` seconds, then
playbooks/app.yml deploys a release the servers have never had (built here with
scripts/build-release.sh, so the run ships, stages and installs it), at the
default batch, with Mitogen's strategy. Then the lab is deployed back to the release
it ran. Prints the deploy's wall time, the requests served and failed during it,
and p50/p99 latency during it against the steady state before it.

A script, not a test: its figures depend on the machine. The lab must be up
(bin/fleet lab up) and is left on the release it started with.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import uuid

from tests.lab.conftest import Load
from tests.lab.test_rollout import APPS, CURRENT, build, deploy, versions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steady", type=float, default=30, help="seconds of load before the deploy")
    args = parser.parse_args()
    if set(versions().values()) != {CURRENT}:
        raise SystemExit(f"the lab must run {CURRENT} on every app server first: {versions()}")
    major, minor, _ = CURRENT.split(".")
    fresh = f"{major}.{minor}.{100 + uuid.uuid4().int % 800}"  # a patch no server has had
    build(fresh)
    with Load() as load:
        time.sleep(args.steady)
        t0 = time.monotonic()
        proc = deploy("-e", f"app_release_version={fresh}")
        took = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:])
        raise SystemExit("the deploy failed")
    print(f"commit {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout}")
    print(f"rolling deploy of {len(APPS)} app servers to {fresh}, 1 per cell per batch: {took:.1f} s")
    print(f"steady state ({args.steady:.0f} s before): {load.summary(0, t0)}")
    print(f"during the deploy: {load.summary(t0, t0 + took)}")
    # Back by a deploy of the release it ran (a rollback would take the newest
    # older release on the hosts, which need not be that one).
    back = deploy("-e", f"app_release_version={CURRENT}")
    if back.returncode != 0 or set(versions().values()) != {CURRENT}:
        raise SystemExit(f"the rollback to {CURRENT} failed: {back.stdout[-3000:]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
