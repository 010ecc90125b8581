#!/usr/bin/env bash
# Builds the oxidask image from what is built on this host (no registry image is pulled):
#   deploy/docker/build.sh [--python] [--tag NAME] [--binary PATH] [--site-packages DIR]
# --binary: the `oxidask` binary (default $CARGO_TARGET_DIR/debug/oxidask, else
#   target/release/oxidask); --python: also Python with the oxidask package as installed in
#   --site-packages (default: where `python3 -c 'import oxidask'` finds it) and cloudpickle.
# Debug information is stripped from the staged copies. The base image comes from
# .ci/setup-containers.sh (oxidask-base:bookworm); override with BASE=...
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tag="oxidask/oxidask:0.1.0"
python=0
binary=""
site=""
while [ $# -gt 0 ]; do
  case "$1" in
    --python) python=1 ;;
    --tag) tag="$2"; shift ;;
    --binary) binary="$2"; shift ;;
    --site-packages) site="$2"; shift ;;
    *) echo "build.sh: unknown option $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$binary" ]; then
  for b in "${CARGO_TARGET_DIR:-$here/../../target}/debug/oxidask" "$here/../../target/release/oxidask"; do
    [ -x "$b" ] && { binary="$b"; break; }
  done
fi
[ -x "$binary" ] || { echo "build.sh: no oxidask binary (cargo build -p oxidask-cli, or pass --binary)" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/python"
cp "$here/Dockerfile" "$ctx/"
if [ "$python" = 1 ]; then
  objcopy --strip-debug "$binary" "$ctx/bin/oxidask-rust"
  install -m 0755 "$here/oxidask-python-entry" "$ctx/bin/oxidask"
else
  objcopy --strip-debug "$binary" "$ctx/bin/oxidask"
fi
if [ "$python" = 1 ]; then
  if [ -z "$site" ]; then
    site="$(python3 -c 'import os, oxidask; print(os.path.dirname(os.path.dirname(oxidask.__file__)))')"
  fi
  [ -d "$site/oxidask" ] && [ -d "$site/cloudpickle" ] || {
    echo "build.sh: $site has no oxidask or cloudpickle package (pip install ./python first, or pass --site-packages)" >&2
    exit 1
  }
  cp -r "$site/oxidask" "$site/cloudpickle" "$ctx/python/"
  find "$ctx/python" -name __pycache__ -prune -exec rm -rf {} +
  for so in "$ctx"/python/oxidask/*.so; do objcopy --strip-debug "$so"; done
fi
docker build -q --build-arg "WITH_PYTHON=$python" ${BASE:+--build-arg "BASE=$BASE"} -t "$tag" "$ctx"
