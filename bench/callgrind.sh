#!/usr/bin/env bash
# User-space instructions per cached identity hit, counted exactly with callgrind (repeatable
# whatever else the shared machine does, unlike CPU time): the release binary under valgrind,
# warmed up, its counters zeroed, then wrk (one thread, 4 connections) for a while, and the
# instructions of every thread over that window divided by the requests wrk counted.
# Usage: bench/callgrind.sh [seconds, default 10]   (BENCH_PREBUILT=DIR: the binary in DIR)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
command -v valgrind >/dev/null || { echo "valgrind is required: apt-get install valgrind" >&2; exit 1; }
[ -n "${BENCH_PREBUILT:-}" ] || cargo build --release --quiet --bin avs-api
. bench/common.sh

sid=9A7AF40B2BC2471EA116891839113252
env AVS_LISTEN=127.0.0.1:18080 AVS_ADMIN_LISTEN=127.0.0.1:19090 RUST_LOG=warn \
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$bin" >/dev/null 2>"$work/valgrind.log" &
pids+=($!)
token=$("$bin" dev-token --icn 1012345678V123456)
for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:18080/healthz && break; sleep 0.2; done
url="http://127.0.0.1:18080/avs/v0/avs/$sid"
wrk -t1 -c4 -d3s -H "Authorization: Bearer $token" "$url" >/dev/null # the miss, then warm hits
callgrind_control -z >/dev/null
wrk -t1 -c4 -d"${secs}s" -H "Authorization: Bearer $token" "$url" > "$work/wrk"
callgrind_control -d >/dev/null
for _ in $(seq 50); do compgen -G "$work/cg.out.*" >/dev/null && break; sleep 0.1; done; sleep 0.5
requests=$(awk '/ requests in / { print $1 }' "$work/wrk")
instructions=$(cat "$work"/cg.out.* | awk '/^summary:/ { s += $2 } END { print s }')
echo "requests $requests"
echo "instructions_per_hit $((instructions / requests))"
[ -z "${CALLGRIND_KEEP:-}" ] || cp "$work"/cg.out.* "$CALLGRIND_KEEP"
