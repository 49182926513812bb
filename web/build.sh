#!/bin/sh
# Builds the dashboard bundle into $1 (called by CMake; see CMakeLists.txt,
# "dashboard" block). Runs `npm ci` only when package-lock.json changed since
# the last install, so a rebuild needs no network. Fails loudly: a binary
# without its dashboard is never produced.
set -eu
out=${1:?usage: web/build.sh OUTDIR}
cd "$(dirname "$0")"
command -v node >/dev/null 2>&1 || { echo "dashboard: node is missing (run scripts/deps.sh build)" >&2; exit 1; }
# Two build dirs (build, build-asan) share web/node_modules: one npm ci at a time.
exec 9>"${TMPDIR:-/tmp}/tickflow-npm-ci.lock"
flock 9
if ! cmp -s package-lock.json node_modules/.tickflow-lock 2>/dev/null; then
  echo "dashboard: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
  cp package-lock.json node_modules/.tickflow-lock
fi
flock -u 9
exec node build.mjs "$out"
