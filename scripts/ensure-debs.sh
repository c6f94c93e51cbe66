#!/usr/bin/env bash
# Usage: scripts/ensure-debs.sh PKG...
# Install the given Debian packages, but only those not already installed.
# Runs `apt-get update` once, and only if something must be installed.
# Idempotent and quiet: prints nothing when everything is present.
set -euo pipefail

log() { echo "ensure-debs: $*" >&2; }

[ "$#" -gt 0 ] || exit 0

missing=()
for pkg in "$@"; do
  # dpkg -s also succeeds for removed-but-not-purged packages, so check Status.
  status="$(dpkg -s "$pkg" 2>/dev/null || true)"
  case "$status" in
    *"Status: install ok installed"*) ;;
    *) missing+=("$pkg") ;;
  esac
done

[ "${#missing[@]}" -gt 0 ] || exit 0

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    log "need root (or sudo) to install: ${missing[*]}"
    exit 1
  fi
fi

log "installing: ${missing[*]}"
aptlog="$(mktemp)"
trap 'rm -f "$aptlog"' EXIT
apt() {
  # Output is kept out of the way unless something goes wrong.
  if ! ${SUDO[@]+"${SUDO[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get "$@" </dev/null >>"$aptlog" 2>&1; then
    log "apt-get $* failed:"
    cat "$aptlog" >&2
    exit 1
  fi
}
apt update -qq
apt install -y -qq --no-install-recommends "${missing[@]}"
