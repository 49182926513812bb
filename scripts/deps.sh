#!/usr/bin/env bash
# Installs what tickflow needs from Debian, idempotently: quiet and fast when
# everything is already there. Usage: scripts/deps.sh [build|run|test]
set -euo pipefail
what=${1:-build}

pkgs=(build-essential cmake pkg-config libpq-dev libuv1-dev librdkafka-dev
      libinih-dev libwslay-dev libhttp-parser-dev libjansson-dev libssl-dev zlib1g-dev
      postgresql postgresql-contrib python3 tzdata)
case $what in
  test|bench) pkgs+=(kcat clang libclang-rt-14-dev wrk procps psmisc) ;;
esac
case $what in
  test|bench|kafka) pkgs+=(maven default-jre-headless) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A JDK may come from elsewhere (the machine's own Java 17): accept any java+mvn.
if command -v java >/dev/null && command -v mvn >/dev/null; then
  tmp=(); for p in "${missing[@]}"; do case $p in maven|default-jre-headless) ;; *) tmp+=("$p");; esac; done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
