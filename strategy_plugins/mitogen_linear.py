"""Mitogen's linear strategy, reachable by name from the project's own plugin path.

The molecule scenarios run with it (.config/molecule/config.yml): one Python per
container for the whole run instead of one ``docker exec`` per task. The package
ships the strategy inside its own tree; this file only names it, so a config can
say ``strategy_plugins = strategy_plugins`` wherever the virtualenv lives.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
