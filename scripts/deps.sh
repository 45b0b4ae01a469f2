#!/bin/sh
# Install (when root) or name (otherwise) the Debian 12 packages pgmoat needs
# to build, test, demo and benchmark. Run by `make deps`, which `make`,
# `make test`, `make demo` and `make bench` depend on.
set -eu
PKGS="gcc make pkg-config libssl-dev libyaml-dev libsqlite3-dev libpq-dev
 libpg-query-dev postgresql-server-dev-15 libmicrohttpd-dev libjansson-dev
 libcurl4-openssl-dev libpcre2-dev postgresql-15 postgresql-client-15
 postgresql-contrib pgbouncer python3-psycopg python3-cryptography openssl procps iproute2"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The tests' OpenID provider (tests/oidc) runs on Node.js 18 or later: Debian's nodejs and npm, unless a
# node and npm are on PATH already (another build of nodejs may provide npm itself and conflict with it).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  # Debian starts a pgbouncer service on install; the tests and the bench run their own.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop pgbouncer >/dev/null 2>&1 || true; fi
  [ -x /etc/init.d/pgbouncer ] && /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
  exit 0
fi
echo "pgmoat needs these Debian packages. Run as root:" >&2
echo "  apt-get install -y$missing" >&2
exit 1
