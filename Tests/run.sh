#!/usr/bin/env bash
# The whole test suite: installs missing Debian packages, builds loa and its tests with warnings as
# errors, and runs every test target: unit tests per module, and integration tests that start a real
# Kannel and the real loa daemon on 127.0.0.1, and the store's suites on SQLite and on a PostgreSQL started for the
# run (Tests/pg.sh). Extra arguments go to `swift test` (e.g. --filter Store).
set -euo pipefail
cd "$(dirname "$0")/.."
Deploy/setup-debian.sh test
swift build --build-tests -Xswiftc -warnings-as-errors 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]|^Building|^Compiling|^Write|^Planning' || true
swift build --build-tests -Xswiftc -warnings-as-errors >/dev/null 2>&1 || { echo "tests: the build failed (see above)" >&2; exit 1; }
export LOA_BIN="$(swift build --show-bin-path -Xswiftc -warnings-as-errors)/loa"
# A PostgreSQL 15 of its own for the store's PostgreSQL cases (Tests/pg.sh), stopped however the run ends.
pgdir=$(mktemp -d "${TMPDIR:-/tmp}/loa-pg.XXXXXX")
rmdir "$pgdir"
trap 'Tests/pg.sh stop "$pgdir"' EXIT
Tests/pg.sh start "$pgdir"
export LOA_PG_URL="$(Tests/pg.sh url "$pgdir")" LOA_PG_PASSWORD_FILE="$pgdir/password"
if [ $# -gt 0 ]; then
  swift test --skip-build "$@"
  exit
fi
# The shared carrier limit measured at the gateway (SharedCarrierLimitTests: three daemons holding 300 messages/s for
# 60 s) runs alone after the rest: beside 500 other tests on two cores it would measure the machine, not Loa.
swift test --skip-build --skip SharedCarrierLimitTests
swift test --skip-build --filter SharedCarrierLimitTests
