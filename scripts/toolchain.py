"""What a drift control host runs, taken from the controller's locked toolchain.

A control host (role drift_timer) runs playbooks, not tests: it needs ansible-core,
the collections fleet uses and the libraries they call, not ansible-lint, molecule,
moto or the 100 other collections of the `ansible` bundle (473 MB, 37,000 files,
most of the time a control host took to install its toolchain).

    python -m scripts.toolchain runtime-lock
        print the pins of requirements-runtime.txt: the names of requirements-runtime.in
        and everything they need, at their versions in requirements.txt (run it in the
        virtualenv of that lock; `bin/fleet lock` does)
    python -m scripts.toolchain collections-wheel DIR
        build DIR/fleet_collections-<V>-py3-none-any.whl, the collections of
        requirements.yml (and what they depend on) as the pinned bundle `ansible==V`
        ships them; print its pin, fleet-collections==V

Both read the virtualenv they run in, which must be the lock's (bin/fleet makes it).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_DIST = "fleet-collections"
# zip cannot hold a time before 1980: the fixed time of every entry (reproducible bytes).
EPOCH = (1980, 1, 1, 0, 0, 0)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path) -> dict[str, str]:
    """canonical name -> the NAME==VERSION line of a lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins[canonical(line.split("==", 1)[0])] = line
    return pins


def top_level_names(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def requirement_name(requirement: str) -> str | None:
    """The distribution a Requires-Dist line needs in this interpreter, or None (an extra or
    a marker that does not apply)."""
    spec, _, marker = requirement.partition(";")
    name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)[1]
    if marker.strip():
        env = {"extra": ""}
        from packaging.markers import Marker  # pip's own, in every virtualenv of the lock

        if not Marker(marker.strip()).evaluate(env):
            return None
    return name


def closure(names: list[str]) -> set[str]:
    """Canonical names of ``names`` and every distribution they need, installed here."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonical(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = importlib.metadata.distribution(name)
        todo += [n for n in map(requirement_name, dist.requires or []) if n]
    return seen


def runtime_lock(root: Path = ROOT) -> list[str]:
    pins = lock_pins(root / "requirements.txt")
    needed = closure(top_level_names(root / "requirements-runtime.in"))
    missing = sorted(needed - pins.keys())
    if missing:
        raise SystemExit(f"toolchain: requirements.txt does not pin {', '.join(missing)}")
    return sorted((pins[name] for name in needed), key=str.lower)


def wanted_collections(root: Path = ROOT) -> list[str]:
    """The collections of requirements.yml (namespace.name), read without a YAML library."""
    return re.findall(r"^\s*-\s*name:\s*([a-z0-9_]+\.[a-z0-9_]+)\s*$", (root / "requirements.yml").read_text(), re.M)


def collections_root() -> Path:
    spec = importlib.util.find_spec("ansible_collections")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("toolchain: no ansible_collections here: run it in the lock's virtualenv")
    return Path(next(iter(spec.submodule_search_locations)))


def collection_closure(names: list[str], base: Path) -> dict[str, Path]:
    """namespace.name -> its directory, for ``names`` and the collections they depend on."""
    found: dict[str, Path] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        path = base.joinpath(*name.split("."))
        manifest = path / "MANIFEST.json"
        if not manifest.is_file():
            raise SystemExit(f"toolchain: the ansible bundle here has no collection {name}")
        found[name] = path
        todo += list(json.loads(manifest.read_text())["collection_info"].get("dependencies") or {})
    return dict(sorted(found.items()))


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def collections_wheel(out: Path, root: Path = ROOT) -> str:
    """Build the wheel of the wanted collections; return its pin."""
    bundle = lock_pins(root / "requirements.txt").get("ansible")
    if bundle is None:
        raise SystemExit("toolchain: requirements.txt pins no ansible bundle to take the collections from")
    version = bundle.split("==", 1)[1]
    installed = importlib.metadata.version("ansible")
    if installed != version:
        raise SystemExit(f"toolchain: this virtualenv has ansible {installed}, the lock pins {version}")
    base = collections_root()
    files: list[tuple[str, bytes, int]] = []
    for path in collection_closure(wanted_collections(root), base).values():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            mode = 0o755 if file.stat().st_mode & 0o111 else 0o644
            files.append((f"ansible_collections/{file.relative_to(base).as_posix()}", file.read_bytes(), mode))
    info = f"fleet_collections-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.1\nName: {COLLECTIONS_DIST}\nVersion: {version}\n"
        f"Summary: The Ansible collections fleet uses, as the ansible=={version} bundle ships them\n"
    )
    wheel = "Wheel-Version: 1.0\nGenerator: fleet scripts/toolchain.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files += [(f"{info}/METADATA", metadata.encode(), 0o644), (f"{info}/WHEEL", wheel.encode(), 0o644)]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data, _ in files) + f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode(), 0o644))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"fleet_collections-{version}-py3-none-any.whl"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as whl:
        for name, data, mode in files:
            entry = zipfile.ZipInfo(name, date_time=EPOCH)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            whl.writestr(entry, data)
    return f"{COLLECTIONS_DIST}=={version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.toolchain", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("runtime-lock", help="print the pins of requirements-runtime.txt")
    wheel = sub.add_parser("collections-wheel", help="build the collections' wheel into DIR; print its pin")
    wheel.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.command == "runtime-lock":
        print("\n".join(runtime_lock()))
    else:
        print(collections_wheel(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
