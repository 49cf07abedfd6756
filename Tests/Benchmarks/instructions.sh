#!/usr/bin/env bash
# Instructions per message on the HTTP path, counted by valgrind's callgrind: the same figure however busy the
# machine is (its speed drifts by tens of percent within minutes, which throughput ratios feel). Same nginx sink,
# same POST (Kannel's X-Kannel-* headers), 64 in flight:
#   - Loa's HTTP path (`loa-bench send`: the Kannel adapter and the curl engine, started as the dispatcher starts
#     them): the engine thread's instructions (CurlLoop.run, inclusive) per message;
#   - the plain libcurl multi client (Tests/Benchmarks/curl-multi.c): its main loop's instructions per message.
# Kernel time (the sockets) is not counted: both make the same system calls per message.
#   Tests/Benchmarks/instructions.sh [N=20000]
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-20000}
Deploy/setup-debian.sh build
source Tests/Benchmarks/lib.sh
bench_need nginx nginx-light
bench_need valgrind valgrind
bench_init instructions
swift build -c release --product loa-bench 2>&1 | grep -E 'error|warning' || true
bench="$(dirname "$loa")/loa-bench"
bench_start_sink
gcc -O2 -g -o "$work/curl-multi" Tests/Benchmarks/curl-multi.c -lcurl
url="http://127.0.0.1:$sink/cgi-bin/sendsms"
valgrind --tool=callgrind --callgrind-out-file="$work/loa.cg" "$bench" send "$url" "$n" 64 POST >/dev/null 2>"$work/loa.vg"
valgrind --tool=callgrind --callgrind-out-file="$work/plain.cg" "$work/curl-multi" "$url" "$n" 64 "Moi gop y du thao tren VNeID" \
  >/dev/null 2>"$work/plain.vg"
# The inclusive count of the first function matching $2 (awk reads all of callgrind_annotate's output: no SIGPIPE).
inclusive() { callgrind_annotate --inclusive=yes "$1" 2>/dev/null | awk -v pat="$2" '!done && $0 ~ pat {gsub(",", "", $1); print $1; done = 1}'; }
loa_ir=$(inclusive "$work/loa.cg" 'CurlLoopC3runyyF')
plain_ir=$(inclusive "$work/plain.cg" 'curl-multi.c:main')
python3 - "$n" "$loa_ir" "$plain_ir" <<'PY'
import sys
n, loa, plain = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"{'what (instructions per message, user space, callgrind)':58} {'value':>10}")
print(f"{'loa HTTP path: the engine thread (loa-bench send)':58} {loa / n:>10.0f}")
print(f"{'plain libcurl multi client: its loop':58} {plain / n:>10.0f}")
print(f"{'ratio loa / plain':58} {loa / plain:>10.2f}")
print(f"({n} POSTs each, 64 in flight, one nginx sink)")
PY
