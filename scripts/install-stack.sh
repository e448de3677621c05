#!/usr/bin/env bash
# Installs what the local stack needs: Mosquitto 2, PostgreSQL 15 and TimescaleDB, and for
# the high-availability stack (`factory5g stack up --ha`, tests/test_db_failover.py)
# Patroni with etcd.
#
# Idempotent: every step checks first and does nothing when its result is already there,
# so `factory5g stack up`, `make run` and `make test` can call it on every start.
# TimescaleDB is not packaged for Debian 12, so it is built from Debian 13's source
# package (Apache-2.0 edition) against postgresql-server-dev-15. The mirror is read
# from this machine's own apt configuration; no host name is hard-coded here.
set -euo pipefail

PG_MAJOR=15
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="${F5G_STACK_BUILD_DIR:-$here/.stack/build}"

log() { printf '[install-stack] %s\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    log "not root and no sudo: install mosquitto, postgresql-$PG_MAJOR and TimescaleDB yourself"; exit 1
  fi
fi

pg_bindir="/usr/lib/postgresql/$PG_MAJOR/bin"
pg_sharedir="/usr/share/postgresql/$PG_MAJOR"

need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
# mosquitto_sub, the C client the MQTT drain benchmark compares with (loadtests/mqtt_drain.py).
command -v mosquitto_sub >/dev/null 2>&1 || need_pkgs+=(mosquitto-clients)
# promtool (from Debian's prometheus package) checks the services' /metrics in the tests.
command -v promtool >/dev/null 2>&1 || need_pkgs+=(prometheus)
[ -x "$pg_bindir/postgres" ] || need_pkgs+=("postgresql-$PG_MAJOR")
# Patroni (Debian's package runs on the system python3) keeps its leader key in etcd;
# python3-etcd is named because Patroni's package is satisfied by any one of several DCS
# client libraries and apt may pick another one.
command -v patroni >/dev/null 2>&1 || need_pkgs+=(patroni)
/usr/bin/python3 -c 'import etcd' >/dev/null 2>&1 || need_pkgs+=(python3-etcd)
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server)
has_tsdb() { ls "$pg_sharedir"/extension/timescaledb.control >/dev/null 2>&1; }
if ! has_tsdb; then
  [ -x "$pg_bindir/pg_config" ] && [ -d "/usr/include/postgresql/$PG_MAJOR/server" ] || need_pkgs+=("postgresql-server-dev-$PG_MAJOR")
  for p in cmake gcc make dpkg-dev libssl-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
  done
fi

export DEBIAN_FRONTEND=noninteractive
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# Debian starts packaged services on install; the project runs its own instances instead.
stop_svcs=(mosquitto postgresql etcd patroni)
# The prometheus package also starts a Prometheus server: only its promtool is wanted, so
# when this script installed it, the server is stopped and kept from starting at boot (a
# Prometheus the machine already ran is left alone).
if [[ " ${need_pkgs[*]} " == *" prometheus "* ]]; then
  stop_svcs+=(prometheus)
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --quiet prometheus 2>/dev/null || true
  fi
fi
# Likewise Debian's etcd (a single member on the default ports 2379/2380) would stand in
# the way of the project's own members: stopped and kept from starting when installed here.
if [[ " ${need_pkgs[*]} " == *" etcd-server "* ]] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --quiet etcd 2>/dev/null || true
fi
for svc in "${stop_svcs[@]}"; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done

if has_tsdb; then
  log "TimescaleDB already installed"
  exit 0
fi

# Mirror for the deb-src line: the first Debian archive URI in this machine's apt sources.
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  if grep -qi '^Suites:.*\bbookworm\b' "$f" 2>/dev/null || grep -qi '^Suites:.*\b\(trixie\|stable\)\b' "$f"; then
    mirror=$(awk 'tolower($1)=="uris:" && $2 !~ /security/ {print $2; exit}' "$f")
    [ -n "$mirror" ] && break
  fi
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit} }' /etc/apt/sources.list)
fi
if [ -z "$mirror" ]; then
  log "cannot find a Debian mirror in /etc/apt sources"; exit 1
fi

apt_dir="$work/apt"
mkdir -p "$apt_dir/lists/partial" "$work/src"
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$apt_dir/lists" -o "APT::Sandbox::User=root")
log "fetching the TimescaleDB source package (Debian 13)"
$SUDO apt-get "${apt_opts[@]}" update -qq
cd "$work/src"
export GIT_CEILING_DIRECTORIES="$work/src"
rm -rf timescaledb-*/
$SUDO apt-get "${apt_opts[@]}" source -qq timescaledb >/dev/null
srcdir=$(ls -d timescaledb-*/ | head -1)
cd "$srcdir"
log "building TimescaleDB (Apache edition) in $work/src/$srcdir"
PATH="$pg_bindir:$PATH" ./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF \
  -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$pg_bindir/pg_config" >/dev/null
cd build
make -j"$(nproc)" >/dev/null
$SUDO make install >/dev/null
has_tsdb && log "TimescaleDB installed"
