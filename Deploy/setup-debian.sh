#!/usr/bin/env bash
# Installs the Debian 12 packages Loa needs to build, test and run its demo, when they are missing.
# Usage: Deploy/setup-debian.sh [build|test|demo|cluster]   (as root, or with sudo available; cluster: Deploy/cluster-demo.sh)
set -euo pipefail
what=${1:-build}
# libsodium-dev: users' passwords (Argon2id) and API tokens' hashes; the run and test sets both build Loa.
# libpq-dev: the PostgreSQL store (store.kind "postgresql"), linked into every build.
pkgs=(pkg-config libcurl4-openssl-dev libsqlite3-dev libmicrohttpd-dev libsodium-dev libpq-dev)
case "$what" in
  # kannel-extras holds the fake SMSC (/usr/lib/kannel/test/fakesmsc) the tests and the demo use.
  test|demo|cluster) pkgs+=(kannel kannel-extras curl python3) ;;&
  cluster) pkgs+=(postgresql-15) ;;&
  # logrotate runs the shipped Deploy/logrotate.conf against a daemon; systemd gives systemd-analyze (verify, security,
  # syscall-filter) for the shipped unit; strace lists the daemon's system calls against the unit's SystemCallFilter.
  test) pkgs+=(logrotate systemd strace) ;;&
  # sqlite3, the command-line tool: a test holds the store's write lock with it while /readyz must still answer.
  # prometheus gives promtool: the tests check the metrics the daemon serves and the shipped alert rules with it.
  # chromium renders the report page to a screenshot (Deploy/report-screenshot.sh) in the report test: installed here,
  # before the tests start, not by the script inside a test's time limit.
  # chromium-driver and python3-selenium drive the console's real-browser test (Tests/Browser/console_test.py, run
  # with /usr/bin/python3: Debian's selenium, not a pip one).
  test) pkgs+=(sqlite3 prometheus chromium chromium-driver python3-selenium) ;;&
  # postgresql-15: the server Tests/pg.sh starts (initdb in a temporary directory) for the store's PostgreSQL cases.
  # nginx and openssl: the console's TLS recipe (Deploy/nginx-console.conf) is run in front of the daemon in a test.
  test) pkgs+=(postgresql-15 nginx openssl) ;;
esac
# The server refuses to run as root: Tests/pg.sh runs it as this user when the tests run as root.
if { [ "$what" = test ] || [ "$what" = cluster ]; } && ! id loa-test >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO useradd --system --no-create-home --shell /usr/sbin/nologin loa-test
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || $SUDO apt-get update >&2
# Kannel's package ships an init script; policy-rc.d 101 keeps it from starting a bearerbox of its own.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod +x "$policy" && created_policy=1
fi
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi
