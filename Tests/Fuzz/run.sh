#!/usr/bin/env bash
# Fuzzes Loa's parsers with libFuzzer: the targets in Tests/LoaDaemonTests/Fuzz/FuzzTargets.swift (the test
# suite runs the same functions on seeds and seeded mutations) are built with `-sanitize=fuzzer,address` against
# Loa's modules, compiled here (not by SwiftPM, which would link libFuzzer's main into loa) into .build-fuzz/, and
# each is run for a fixed number of cases. Prints per target the cases run and crashes found;
# exits 1 if any target crashed (the input is kept in .build-fuzz/crashes/ and named in the output).
#
#   Tests/Fuzz/run.sh                      # every target, 1,000,000 cases each (the long run)
#   FUZZ_RUNS=20000 Tests/Fuzz/run.sh csv  # a short run of some targets
#   Tests/Fuzz/run.sh --build-only         # build the targets, run nothing
#   FUZZ_OUT=.build-fuzz2 Tests/Fuzz/run.sh  # another build and corpus directory (e.g. beside a running run)
#
# Targets run one after another, each in one process (no -jobs/-workers): the machine is shared. Inputs that
# reached new code are kept in .build-fuzz/corpus/<target>/ and seed the next run, with Tests/Fuzz/seeds/<target>/
# and Tests/Fuzz/regressions/<target>/ (every crash found so far: FuzzTests replays them on every `swift test`).
# Tests/Fuzz/loa.dict gives libFuzzer the tokens of Loa's formats (edge numbers, JSON5 syntax, API paths).
# A Swift trap (precondition, overflow, force unwrap, index out of range) counts as a crash.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${FUZZ_RUNS:-1000000}
OUT=${FUZZ_OUT:-.build-fuzz}
BUILD_ONLY=0
if [[ ${1:-} == --build-only ]]; then BUILD_ONLY=1; shift; fi
ALL=(csv template smstext phone json config campaign receipt-kannel receipt-jasmin receipt-generic route)
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=("${ALL[@]}")
mkdir -p "$OUT/modules" "$OUT/obj" "$OUT/bin" "$OUT/crashes"

FLAGS=(-O -gline-tables-only -enable-testing -sanitize=fuzzer,address -parse-as-library -swift-version 6
       -I "$OUT/modules" -I Sources/CCurl -I Sources/CSQLite -I Sources/CMicroHTTPD)

# One object per Loa module (whole-module), rebuilt when a source of it is newer.
module() {
    local name=$1 obj="$OUT/obj/$1.o"
    local sources; sources=$(find "Sources/$name" -name '*.swift' | sort)
    if [[ -f $obj ]] && [[ -z $(find "Sources/$name" -name '*.swift' -newer "$obj") ]]; then return; fi
    echo "fuzz: building module $name" >&2
    # shellcheck disable=SC2086
    swiftc "${FLAGS[@]}" -module-name "$name" -wmo -emit-module -emit-module-path "$OUT/modules/$name.swiftmodule" \
        -c $sources -o "$obj"
    touch "$obj"  # swiftc leaves an unchanged object as it was
}
for m in LoaCore LoaStore LoaCarriers LoaServer LoaDaemon LoaSim LoaCommandLine; do module "$m"; done

# One binary for every target: the entry point here, the targets as the test suite compiles them.
bin="$OUT/bin/loa-fuzz"
harness=(Tests/Fuzz/Entry.swift Tests/LoaDaemonTests/Fuzz/*.swift)
if [[ ! -f $bin ]] || [[ -n $(find "${harness[@]}" "$OUT"/obj/*.o -newer "$bin") ]]; then
    echo "fuzz: building $bin" >&2
    swiftc "${FLAGS[@]}" -warnings-as-errors -module-name LoaFuzz "${harness[@]}" "$OUT"/obj/*.o -lcurl -lsqlite3 -lmicrohttpd \
        -o "$bin" 2> >(grep -v 'Cannot export local symbol' >&2)
fi
[[ $BUILD_ONLY == 1 ]] && exit 0

# The Swift runtime's backtracer would wait on a crashed process; libFuzzer reports the crash itself.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:allocator_may_return_null=1}
failed=0
printf '%-16s %10s %8s %8s %s\n' target cases crashes seconds note
for t in "${TARGETS[@]}"; do
    corpus="$OUT/corpus/$t"; mkdir -p "$corpus"
    seeds=(); for d in Tests/Fuzz/seeds/$t Tests/Fuzz/regressions/$t; do [[ -d $d ]] && seeds+=("$d"); done
    log="$OUT/$t.log"
    start=$(date +%s)
    rc=0
    LOA_FUZZ_TARGET=$t "$bin" "$corpus" "${seeds[@]}" -runs="$RUNS" -dict=Tests/Fuzz/loa.dict -max_len=4096 -timeout=20 -rss_limit_mb=2048 -detect_leaks=0 \
        -print_final_stats=1 -artifact_prefix="$OUT/crashes/$t-" > "$log" 2>&1 || rc=$?
    secs=$(( $(date +%s) - start ))
    cases=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [[ $rc == 0 ]]; then
        printf '%-16s %10s %8s %8s\n' "$t" "${cases:-?}" 0 "$secs"
    else
        failed=1
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        printf '%-16s %10s %8s %8s %s\n' "$t" "${cases:-?}" 1 "$secs" "rc=$rc ${artifact:-see $log}"
    fi
done
exit $failed
