"""fleet's reference app: a tiny read/write API over PostgreSQL that says where it runs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fleet-app")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
