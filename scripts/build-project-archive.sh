#!/usr/bin/env bash
# Build what a control host needs to run fleet's drift check, once, on the controller
# (role drift_timer ships it; the control host never reaches GitHub or PyPI):
#
#   .cache/project/fleet-project-<sha>.tar.gz    this work tree: git's tracked and untracked
#                                                files (uncommitted work included, ignored files
#                                                such as .cache/ and .venv/ not, except the app
#                                                releases in .cache/releases), symlinks kept
#   .cache/project/fleet-toolchain-<lock>.tar    wheels/ with every pin of requirements-runtime.txt
#                                                (what a control host runs, not the test tools;
#                                                and what the pins need that a lock leaves out:
#                                                setuptools) for CPython 3.11 manylinux x86_64
#                                                (= Debian 12), the wheel of the collections of
#                                                requirements.yml (scripts/toolchain.py) and the
#                                                pins installed; built once per lock
#   .cache/project/fleet-project.json            the manifest the role reads: both archives, their
#                                                sha256 and the pins
#
#   scripts/build-project-archive.sh                 both, into .cache/project
#   scripts/build-project-archive.sh --out DIR       somewhere else
#   scripts/build-project-archive.sh --project-only  skip the toolchain (it is still named in the manifest)
#
# <sha> and <lock> are the first 16 hex digits of the sha256 of the archive and of
# requirements.txt, requirements-runtime.txt and requirements.yml together. The same
# tree gives a byte-identical archive (sorted names, one fixed mtime, owner 0,
# normalised modes, gzip -n), so rebuilding never shows up as a change on the hosts.
# The mtime is a constant rather than the last commit's time so that committing the
# tree that was tested does not make a new archive.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
venv=${FLEET_VENV:-$root/.venv}
[ -x "$venv/bin/python" ] && export PATH="$venv/bin:$PATH"
out=$root/.cache/project
toolchain=true
# The wheel tags Debian 12 hosts accept (the same as scripts/build-release.sh).
platform=(--platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311)
# 1980-01-01, the earliest time zip (and so every wheel) can hold.
epoch=315532800

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --project-only) toolchain=false; shift ;;
    -h | --help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-project-archive: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
  { echo "build-project-archive: $root is not a git work tree" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
export PIP_DISABLE_PIP_VERSION_CHECK=1 LC_ALL=C

# The tree: what git tracks or would track. A tracked file deleted from the work
# tree is left out (tar would fail on it); a symlink is archived as a link. Of the
# ignored files, only the app release artifacts that scripts/build-release.sh made
# come along: a check of the app servers compares them with what the hosts run.
{
  git -C "$root" ls-files -z --cached --others --exclude-standard
  (cd "$root" && find .cache/releases -maxdepth 1 -type f \( -name 'fleet-app-*.tar.gz' -o -name 'fleet-app-*.tar.gz.sha256' \) \
    -printf '%p\0' 2>/dev/null || true)
} | sort -zu |
  while IFS= read -r -d '' path; do
    if [ -e "$root/$path" ] || [ -L "$root/$path" ]; then
      printf '%s\0' "$path"
    fi
  done >"$work/files"
tar -C "$root" --null --no-recursion -T "$work/files" --format=gnu --mtime="@$epoch" \
  --owner=0 --group=0 --numeric-owner --mode='u+rw,go-w,a+rX' -cf - | gzip -n -9 >"$work/project.tar.gz"
project_sha=$(sha256sum "$work/project.tar.gz" | cut -d' ' -f1)
project_name=fleet-project-${project_sha:0:16}.tar.gz
mv "$work/project.tar.gz" "$out/$project_name"
echo "build-project-archive: $out/$project_name ($(tr -cd '\0' <"$work/files" | wc -c) files)" >&2

lock_sha=$(cat "$root/requirements.txt" "$root/requirements-runtime.txt" "$root/requirements.yml" | sha256sum | cut -d' ' -f1)
toolchain_name=fleet-toolchain-${lock_sha:0:16}.tar
if $toolchain && [ ! -f "$out/$toolchain_name" ]; then
  echo "build-project-archive: downloading the wheels of requirements-runtime.txt" >&2
  mkdir -p "$work/toolchain/wheels"
  # With dependencies: pip freeze leaves out setuptools, which some pins need (pbr).
  pip download -q --only-binary=:all: "${platform[@]}" -d "$work/toolchain/wheels" \
    -r "$root/requirements-runtime.txt" 2>&1 | { grep -v '^WARNING: Location' || true; } >&2
  # The collections, from the bundle this controller runs (the lock's: bin/fleet).
  collections_pin=$(cd "$root" && python -m scripts.toolchain collections-wheel "$work/toolchain/wheels")
  { grep -v '^#' "$root/requirements-runtime.txt"; echo "$collections_pin"; } >"$work/toolchain/requirements.txt"
  # Prove the set is complete: resolve the pins from these wheels alone, as a host will.
  pip download -q --no-index --find-links "$work/toolchain/wheels" --only-binary=:all: "${platform[@]}" \
    -d "$work/resolve" -r "$work/toolchain/requirements.txt" >/dev/null ||
    { echo "build-project-archive: requirements-runtime.txt does not pin every dependency" >&2; exit 1; }
  # Wheels are zip files already: gzip would only cost time.
  (cd "$work/toolchain" && find . -type f -printf '%P\0' | sort -z) >"$work/toolchain.files"
  tar -C "$work/toolchain" --null --no-recursion -T "$work/toolchain.files" --format=gnu --mtime="@$epoch" \
    --owner=0 --group=0 --numeric-owner --mode='u+rw,go-w,a+rX' -cf "$out/$toolchain_name.tmp"
  mv "$out/$toolchain_name.tmp" "$out/$toolchain_name"
  echo "build-project-archive: $out/$toolchain_name ($(du -h "$out/$toolchain_name" | cut -f1))" >&2
elif $toolchain; then
  echo "build-project-archive: $out/$toolchain_name is cached" >&2
fi

# The manifest, written last: it names only archives that are complete.
python3 - "$root" "$out" "$project_name" "$project_sha" "$toolchain_name" "$lock_sha" <<'PY'
import json, pathlib, re, sys

root, out, project_name, project_sha, toolchain_name, lock_sha = sys.argv[1:]


def pins_of(name):
    pins = []
    for number, line in enumerate((pathlib.Path(root) / name).read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!_-]+", line):
            sys.exit(f"build-project-archive: {name} line {number} is not NAME==VERSION: {line}")
        pins.append(line)
    return pins


lock = pins_of("requirements.txt")
pins = pins_of("requirements-runtime.txt")
stray = [pin for pin in pins if pin not in lock]
if stray:
    sys.exit(f"build-project-archive: requirements-runtime.txt pins what requirements.txt does not: {', '.join(stray)}")
# The collections' wheel has the version of the bundle it is built from.
bundle = [pin for pin in lock if pin.lower().startswith("ansible==")]
if len(bundle) != 1:
    sys.exit("build-project-archive: requirements.txt pins no ansible bundle to take the collections from")
pins.append("fleet-collections==" + bundle[0].split("==", 1)[1])
manifest = {
    "project": {"archive": project_name, "sha256": project_sha},
    "toolchain": {
        "archive": toolchain_name,
        "lock_sha256": lock_sha,
        "python": "cp311-manylinux_x86_64",
        "requirements": pins,
    },
}
tmp = pathlib.Path(out) / "fleet-project.json.tmp"
tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
tmp.replace(pathlib.Path(out) / "fleet-project.json")
PY

# Only the archives of this manifest stay.
find "$out" -maxdepth 1 -type f \( -name 'fleet-project-*.tar.gz' ! -name "$project_name" \
  -o -name 'fleet-toolchain-*.tar' ! -name "$toolchain_name" \) -delete
echo "$out/fleet-project.json"
