#!/usr/bin/env bash
# Installs and starts what the container tests need, from Debian's packages (idempotent):
#   - docker.io (dockerd 20.10, containerd, runc), docker-compose (1.29), debootstrap, socat;
#   - a running dockerd on the default socket (/var/run/docker.sock), its images and layers
#     under $OXIDASK_CONTAINERS_CACHE/docker-root (default ~/.cache/oxidask-containers);
#   - the base image oxidask-base:bookworm, imported from a Debian bookworm minbase root file
#     system made by debootstrap (no registry image can be pulled here), with python3.
#     The root file system's tarball is cached, so later runs only import it.
# Prints nothing on success unless something had to be done. Needs root.
set -euo pipefail

cache="${OXIDASK_CONTAINERS_CACHE:-$HOME/.cache/oxidask-containers}"
base_image="oxidask-base:bookworm"
mkdir -p "$cache"

say() { echo "setup-containers: $*"; }

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  }
}

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
if [ "${#need[@]}" -gt 0 ]; then
  say "installing ${need[*]} (Debian packages)"
  apt_install "${need[@]}"
fi

# Debian's client, whatever else is first on PATH.
docker_cli=/usr/bin/docker
[ -x "$docker_cli" ] || docker_cli="$(command -v docker)"

if ! DOCKER_HOST=unix:///var/run/docker.sock "$docker_cli" info >/dev/null 2>&1; then
  say "starting dockerd (data root $cache/docker-root, log $cache/dockerd.log)"
  rm -f /var/run/docker.pid
  nohup dockerd --data-root "$cache/docker-root" -H unix:///var/run/docker.sock \
    >"$cache/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 100); do
    DOCKER_HOST=unix:///var/run/docker.sock "$docker_cli" info >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! DOCKER_HOST=unix:///var/run/docker.sock "$docker_cli" info >/dev/null 2>&1; then
    say "dockerd did not start; the end of its log:"
    tail -20 "$cache/dockerd.log" >&2
    exit 1
  fi
fi
export DOCKER_HOST=unix:///var/run/docker.sock

if ! "$docker_cli" image inspect "$base_image" >/dev/null 2>&1; then
  tarball="$cache/debian-bookworm-minbase-python3.tar"
  if [ ! -s "$tarball" ]; then
    say "debootstrap: Debian bookworm minbase + python3 (about a minute)"
    root="$cache/rootfs.$$"
    rm -rf "$root"
    mirror="$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
    debootstrap --variant=minbase --include=python3 bookworm "$root" \
      "${mirror:-http://deb.debian.org/debian}" >"$cache/debootstrap.log" 2>&1 || {
      say "debootstrap failed; the end of its log:"
      tail -20 "$cache/debootstrap.log" >&2
      exit 1
    }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
      "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/locale
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  say "importing $base_image"
  "$docker_cli" import "$tarball" "$base_image" >/dev/null
fi
