"""Which Debian packages are not installed, from dpkg's own list.

The roles ask dpkg first (``dpkg-query --show --showformat='${Package} ${db:Status-Abbrev}\\n'``,
a few milliseconds) and run the apt module only when a package is missing: apt
opens its whole cache on every call, about 0.6 s of CPU a host, which on a
converged fleet is most of a no-op run's package work.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# The showformat every role passes to dpkg-query; this filter reads exactly it.
SHOWFORMAT = "--showformat=${Package} ${db:Status-Abbrev}\\n"


def dpkg_missing(output: object, names: object) -> list[str]:
    """The names of ``names`` that ``output`` does not list as installed ("ii").

    A name dpkg does not know (not installed, a virtual package, a version pin such
    as ``pkg=1.2``) is missing: apt then decides, as it would have anyway.
    """
    if not isinstance(output, str):
        raise AnsibleFilterError(f"fleet_dpkg_missing: expected dpkg-query output, got {type(output).__name__}")
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise AnsibleFilterError(f"fleet_dpkg_missing: expected a list of package names, got {type(names).__name__}")
    installed = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[1] == "ii":
            installed.add(fields[0])
    return [name for name in names if name not in installed]


class FilterModule:
    """fleet's package filters."""

    def filters(self):
        return {"fleet_dpkg_missing": dpkg_missing}
