#!/usr/bin/env bash
# Installs the load generators the benchmarks drive the API with: wrk (Debian's package).
#
# A C generator matters on the reference 2-core box: a Python client sharing the cores with
# the API and PostgreSQL saturates first and then measures itself, not the server.
# Idempotent: does nothing when wrk is already on PATH, so `python -m loadtests.bench_api`
# calls it on every run. Run by hand with `bash scripts/install-bench-tools.sh`.
set -euo pipefail

log() { printf '[install-bench-tools] %s\n' "$*" >&2; }

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: install wrk yourself (apt-get install wrk)"; exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
log "installing: wrk"
if ! $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null; then
  # A fresh machine may not have read its package lists yet.
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
command -v wrk >/dev/null 2>&1 || { log "wrk is still not on PATH after installing it"; exit 1; }
log "wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}') installed"
