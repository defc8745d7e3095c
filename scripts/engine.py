"""How Ansible reaches the hosts: the stock strategy or Mitogen's, for every fleet command."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def engine_env(engine: str) -> dict[str, str]:
    """The environment that selects how Ansible reaches the hosts.

    "mitogen": Mitogen's linear strategy keeps one Python interpreter per host for
    the whole run instead of starting one (and re-importing Ansible's module_utils)
    per task; same tasks, same order, same results, about half the wall time
    (docs/benchmarks.md). "ansible": the stock linear strategy.
    """
    if engine == "ansible":
        return {}
    spec = importlib.util.find_spec("ansible_mitogen")
    if spec is None or spec.origin is None:
        raise SystemExit("--engine mitogen needs the mitogen package (requirements.txt); or use --engine ansible")
    strategies = Path(spec.origin).parent / "plugins" / "strategy"
    return {"ANSIBLE_STRATEGY_PLUGINS": str(strategies), "ANSIBLE_STRATEGY": "mitogen_linear"}
