"""Which of an app server's releases to remove, and which never to.

A server keeps at most ``app_releases_keep`` releases under <app_root>/releases. Two of
them are never removed, whatever their age: the release it runs now (its rollback
target while it switches, and what a failed gate points ``current`` back at) and the
release it is about to run. Removing either is how three broken releases in a row left
``current`` pointing at a deleted directory (issue 28). The others go oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable

from ansible.errors import AnsibleFilterError


def _version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise AnsibleFilterError(f"fleet_releases_to_prune: {version!r} is not a MAJOR.MINOR.PATCH version") from None


def releases_to_prune(present: Iterable[str], keep: int, protected: Iterable[str]) -> list[str]:
    """The releases of ``present`` to remove, oldest first, so that ``keep`` remain, the
    ``protected`` ones (the running release and the one about to run; an empty name is
    none) counted among them and never removed, whether present yet or not."""
    keep = int(keep)
    guarded = {version for version in protected if version}
    if keep < len(guarded):
        raise AnsibleFilterError(
            f"fleet_releases_to_prune: keeping {keep} releases cannot keep every protected one"
            f" ({', '.join(sorted(guarded, key=_version_key))}: the running, the next and any recorded"
            " rollback target); raise app_releases_keep"
        )
    others = sorted({version for version in present if version not in guarded}, key=_version_key)
    room = keep - len(guarded)
    return others[: max(0, len(others) - room)]


class FilterModule:
    def filters(self):
        return {"fleet_releases_to_prune": releases_to_prune}
