#!/usr/bin/env bash
# Prepare this machine to run fleet's containers: Docker engine, debootstrap, and
# the systemd-capable Debian 12 image every container test uses.
#
# Idempotent and cached: the image is tagged with a hash of its inputs, so a second
# run only checks that dockerd answers and the tag exists (a few seconds).
# No image registry is needed: the root filesystem comes from debootstrap.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
image_repo=${FLEET_IMAGE_REPO:-fleet/debian12-systemd}
lab_repo=${FLEET_LAB_IMAGE_REPO:-fleet/debian12-lab}
mirror=${FLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache_dir=${FLEET_CACHE_DIR:-$HOME/.cache/fleet}
# Packages baked into the image: what systemd, sshd and Ansible need before any
# role runs. Everything else is the roles' job.
packages=systemd,systemd-sysv,dbus,python3,python3-apt,sudo,iproute2,procps,openssh-server,tzdata,ca-certificates

log() { printf '[testbed] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then return; fi
  log "starting dockerd in the background (log: $cache_dir/dockerd.log)"
  mkdir -p "$cache_dir"
  as_root sh -c "nohup dockerd >'$cache_dir/dockerd.log' 2>&1 &"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  log "dockerd did not answer within 60 s; see $cache_dir/dockerd.log"
  exit 1
}

image_tag() {
  # The tag changes whenever an input of the image changes.
  { printf '%s\n' "$packages"; cat "$here/testbed/Dockerfile" "$here/testbed/fleet-ssh-hostkeys.service"; } \
    | sha256sum | cut -c1-12
}

build_image() {
  local tag rootfs_tag rootfs
  tag=$(image_tag)
  if docker image inspect "$image_repo:$tag" >/dev/null 2>&1; then
    docker tag "$image_repo:$tag" "$image_repo:latest"
    log "image $image_repo:$tag is cached"
    return
  fi
  # The debootstrap root filesystem only depends on the package list.
  rootfs_tag="fleet/debian12-rootfs:$(printf '%s\n' "$packages" | sha256sum | cut -c1-12)"
  if ! docker image inspect "$rootfs_tag" >/dev/null 2>&1; then
    rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/fleet-rootfs.XXXXXX")
    log "debootstrap bookworm into $rootfs (about a minute)"
    as_root debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 \
      || { log "debootstrap failed; see $cache_dir/debootstrap.log"; exit 1; }
    as_root tar -C "$rootfs" -c . | docker import - "$rootfs_tag" >/dev/null
    as_root rm -rf "$rootfs"
  fi
  log "building $image_repo:$tag"
  docker build -q --build-arg FLEET_ROOTFS_IMAGE="$rootfs_tag" -t "$image_repo:$tag" -t "$image_repo:latest" "$here/testbed" >/dev/null
}

build_lab_image() {
  # The lab image sits on top of the test-bed image; its tag hashes both.
  local base_id tag
  base_id=$(docker image inspect -f '{{.Id}}' "$image_repo:latest")
  tag=$({ echo "$base_id"; cat "$here"/testbed/lab/*; } | sha256sum | cut -c1-12)
  if docker image inspect "$lab_repo:$tag" >/dev/null 2>&1; then
    docker tag "$lab_repo:$tag" "$lab_repo:latest"
    log "image $lab_repo:$tag is cached"
    return
  fi
  log "building $lab_repo:$tag (the fleet's packages, about 2 minutes)"
  docker build -q --build-arg FLEET_BASE_IMAGE="$image_repo:latest" -t "$lab_repo:$tag" -t "$lab_repo:latest" \
    "$here/testbed/lab" >/dev/null
}

main() {
  mkdir -p "$cache_dir"
  ensure_packages
  ensure_dockerd
  build_image
  if [ "${1:-}" = --lab ]; then
    build_lab_image
    printf '%s:latest\n' "$lab_repo"
  else
    printf '%s:latest\n' "$image_repo"
  fi
}

main "$@"
