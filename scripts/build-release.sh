#!/usr/bin/env bash
# Build the app's release artifact once, on the controller:
#   .cache/releases/fleet-app-<version>.tar.gz (+ .sha256 beside it)
# holding wheels/ (the app and every pinned dependency in app/requirements.txt,
# for CPython 3.11 manylinux x86_64 = Debian 12), requirements.lock (every wheel
# pinned with its sha256, for pip --require-hashes) and MANIFEST.json. App servers
# install it with pip --no-index: they never reach PyPI.
#
#   scripts/build-release.sh                  version from app/pyproject.toml
#   scripts/build-release.sh --version 1.1.1  another version of the same tree (tests, hotfixes)
#   scripts/build-release.sh --out DIR        somewhere else than .cache/releases
#   scripts/build-release.sh --source DIR     the app tree in DIR instead of app/ (test fixtures)
#
# The same tree and version give a byte-identical artifact (SOURCE_DATE_EPOCH,
# sorted tar, gzip -n), so rebuilding never shows up as a change on the hosts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FLEET_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] && export PATH="$venv/bin:$PATH"
out=$root/.cache/releases
source=$root/app
version=
# The wheel tags Debian 12 app servers accept.
platform=(--platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311)

while [ $# -gt 0 ]; do
  case "$1" in
    --version) version=${2:?--version needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --source) source=$(cd "${2:?--source needs a directory}" && pwd); shift 2 ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-release: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

project_version=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
  "$source/pyproject.toml")
version=${version:-$project_version}
# The same format the app role accepts (app_release_version).
if ! [[ $version =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
  echo "build-release: version '$version' is not MAJOR.MINOR.PATCH" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
name=fleet-app-$version
stage=$work/$name
mkdir -p "$stage/wheels" "$work/src" "$out"

# Reproducible wheels: file times from the last commit that touched what goes
# into the artifact (a commit elsewhere in the repo must not make a new one), or
# a fixed date outside git.
SOURCE_DATE_EPOCH=$(git -C "$source" log -1 --format=%ct -- . "$root/scripts/build-release.sh" 2>/dev/null || true)
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-315532800}
export SOURCE_DATE_EPOCH PIP_DISABLE_PIP_VERSION_CHECK=1

# The app itself, from a copy of the tree so --version never edits app/.
tar -C "$source" --exclude static --exclude '*.egg-info' --exclude __pycache__ --exclude build -c . | tar -C "$work/src" -x
if [ "$version" != "$project_version" ]; then
  sed -i "s/^version = \"$project_version\"$/version = \"$version\"/" "$work/src/pyproject.toml"
fi
echo "build-release: building $name" >&2
pip wheel -q --no-deps -w "$stage/wheels" "$work/src" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2

# The pinned dependencies, as binary wheels for the app servers' platform.
pip download -q --no-deps --only-binary=:all: "${platform[@]}" -d "$stage/wheels" -r "$source/requirements.txt" 2>&1 |
  { grep -v '^WARNING: Location' || true; } >&2

# Prove the set is complete: resolve the app from these wheels alone, as a host will.
pip download -q --no-index --find-links "$stage/wheels" --only-binary=:all: "${platform[@]}" \
  -d "$work/resolve" "fleet-app==$version" >/dev/null ||
  { echo "build-release: app/requirements.txt does not cover every dependency of fleet-app" >&2; exit 1; }

python3 - "$stage" "$version" <<'PY'
import hashlib, json, pathlib, re, sys

stage, version = pathlib.Path(sys.argv[1]), sys.argv[2]
wheels = []
for whl in sorted((stage / "wheels").glob("*.whl")):
    dist, ver = whl.name.split("-")[:2]
    wheels.append({
        "file": whl.name,
        "name": re.sub(r"[-_.]+", "-", dist).lower(),
        "version": ver,
        "sha256": hashlib.sha256(whl.read_bytes()).hexdigest(),
    })
lock = [f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}" for w in wheels]
(stage / "requirements.lock").write_text(
    "# Every wheel of this release, pinned with its hash: pip install --no-index --require-hashes -r\n"
    + "\n".join(lock) + "\n"
)
manifest = {"name": "fleet-app", "version": version, "python": "cp311-manylinux_x86_64", "wheels": wheels}
(stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
PY

tarball=$out/$name.tar.gz
tar -C "$work" --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -c "$name" | gzip -n -9 >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "build-release: $tarball ($(du -h "$tarball" | cut -f1), $(ls "$stage/wheels" | wc -l) wheels)" >&2
echo "$tarball"
