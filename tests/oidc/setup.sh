#!/bin/sh
# Install the test OpenID provider's npm packages (tests/oidc/node_modules) exactly as the lockfile pins
# them. Run by `make test`. Nothing is fetched when node_modules already holds what the lockfile names
# (npm ci would delete and reinstall it), so a machine that installed them once runs the tests offline.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "tests/oidc: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi
stamp="$dir/node_modules/.pgmoat-installed-lock"
if [ -f "$stamp" ] && cmp -s "$stamp" "$dir/package-lock.json"; then
  exit 0
fi
echo "tests/oidc: npm ci (oidc-provider, pinned by tests/oidc/package-lock.json)"
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
cp "$dir/package-lock.json" "$stamp"
