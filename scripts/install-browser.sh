#!/usr/bin/env bash
# Installs the browser the dashboard tests and screenshots drive: Debian's `chromium`, and
# a CJK font so the Chinese labels render as characters rather than boxes.
#
# Idempotent: nothing happens when /usr/bin/chromium and a Chinese font are there. Playwright's own browser
# download is never used (the machines have no internet); the Python package drives this
# Chromium through `executable_path`. apt's package lists are refreshed only when the
# package is not known yet.
set -euo pipefail

log() { printf '[install-browser] %s\n' "$*" >&2; }

CHROMIUM="${F5G_CHROMIUM:-/usr/bin/chromium}"
has_cjk_font() { fc-list :lang=zh 2>/dev/null | grep -q .; }
need=()
[ -x "$CHROMIUM" ] || need+=(chromium)
has_cjk_font || need+=(fonts-wqy-microhei)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: install the 'chromium' package yourself"; exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show "${need[@]}" >/dev/null 2>&1; then
  log "refreshing package lists"
  $SUDO apt-get update -q
fi
log "installing ${need[*]}"
$SUDO apt-get install -y -q "${need[@]}"
[ -x "$CHROMIUM" ] || { log "$CHROMIUM still missing after install"; exit 1; }
