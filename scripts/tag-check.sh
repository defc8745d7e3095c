#!/usr/bin/env bash
# Check mode for each tag the README lists, on a converged lab: one drift run per
# tag (scripts/drift.py --tags T), $JOBS at a time; prints tag, exit status, seconds.
# A tag is a consistent subset when its run exits 0 on a clean lab. Issue 11 item 6:
# not yet part of the suite (docs: the stop note of 2026-12-02 lists what fails).
#   scripts/tag-check.sh [TAG...]
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
export PATH=$root/.venv/bin:$PATH
cd "$root" || exit 1
jobs=${JOBS:-4}
reports=$(mktemp -d)
tags=("$@")
[ ${#tags[@]} -gt 0 ] || tags=(base base_admin base_journald base_packages base_preflight base_sshd base_time
  base_updates db postgresql_configure postgresql_install postgresql_preflight postgresql_primary postgresql_replica
  app app_configure app_install app_preflight app_service lb haproxy_configure haproxy_install haproxy_preflight
  haproxy_service web nginx_configure nginx_install nginx_preflight nginx_service elb)
run() {
  local t0=$SECONDS rc
  python -m scripts.drift --reports "$2/$1" --tags "$1" >"$2/$1.log" 2>&1
  rc=$?
  echo "$1 exit=$rc $((SECONDS - t0))s"
}
export -f run
start=$SECONDS
printf '%s\n' "${tags[@]}" | xargs -P "$jobs" -I{} bash -c "run {} $reports"
echo "total $((SECONDS - start)) s; reports in $reports"
