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
# The suites that run several daemons at once (three nodes on PostgreSQL, the cluster demo through Kannel, the shared
# carrier limit measured at the gateway over 60 s) run after the rest, one at a time: beside 500 other tests on two
# cores their daemons took more than 20 s to answer /healthz and the shared limit measured the machine, not Loa. The
# Jasmin pace test (a provider's limit of 10 a second held within 10%) joins them for the same reason.
alone='ClusterTests|ClusterOutageTests|ClusterLogTests|ClusterDemoTests|PostgresAnyNodeTests|SharedCarrierLimitTests|throughputKeepsPaceBelowTheUsersLimit'
status=0
swift test --skip-build --skip "$alone" || status=$?
swift test --skip-build --no-parallel --filter "$alone" || status=$?
exit $status
