#!/usr/bin/env bash
# Benchmarks (not tests): builds in release mode and, in one run, measures
#  (a) cached hits on the full service with a valid token, (b) a baseline axum server answering
#  the same bytes with no logic, both with wrk at 64 connections, and prints the ratio a/b;
#  then the cold stampede, the miss overhead and resident memory (bench/probe.rs).
# Usage: bench/run.sh [seconds per wrk run, default 5] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-5}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin avs-api --example baseline --example probe
out="${CARGO_TARGET_DIR:-target}/release"
bin="$out/avs-api"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

sid=9A7AF40B2BC2471EA116891839113252
AVS_LISTEN=127.0.0.1:18080 AVS_ADMIN_LISTEN=127.0.0.1:19090 RUST_LOG=warn "$bin" >/dev/null 2>&1 &
pids+=($!)
token=$("$bin" dev-token --icn 1012345678V123456)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18080/healthz && break; sleep 0.1; done
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:18080/avs/v0/avs/$sid" -o "$work/body.json"
"$out/examples/baseline" 127.0.0.1:18081 "$work/body.json" &
pids+=($!)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18081/ && break; sleep 0.1; done

# wrk's figures in one unit: requests/s, and p50/p99 in milliseconds. Both servers get the
# same request, token included, so only what they do with it differs.
measure() {
  wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$1" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { if (bad) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 } printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The machine is shared and noisy: alternate service and baseline over several rounds and take
# medians, so a burst of someone else's load lands on both sides rather than on one.
for port in 18080 18081; do # warm both up (connections, caches, allocator)
  wrk -t2 -c64 -d1s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/avs/v0/avs/$sid" >/dev/null
done
: > "$work/rounds"
for round in $(seq "$rounds"); do
  # Only 200s count: a gated-off or refused request is cheap and would flatter the service.
  a=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid") || exit 1
  b=$(measure "http://127.0.0.1:18081/avs/v0/avs/$sid") || exit 1
  read -r a_rps a_p50 a_p99 <<< "$a"
  read -r b_rps b_p50 b_p99 <<< "$b"
  ratio=$(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN { printf "%.3f", a / b }')
  echo "round $round  hits_rps $a_rps p50_ms $a_p50 p99_ms $a_p99  baseline_rps $b_rps p50_ms $b_p50 p99_ms $b_p99  ratio $ratio"
  echo "$a_rps $a_p50 $a_p99 $b_rps $b_p50 $b_p99 $ratio" >> "$work/rounds"
done
col() { awk -v c="$1" '{ print $c }' "$work/rounds" | median; }

echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
echo "body_bytes $(wc -c < "$work/body.json")"
echo "rounds $rounds of ${secs} s each (medians below)"
echo "hits_rps $(col 1)  hits_p50_ms $(col 2)  hits_p99_ms $(col 3)"
echo "baseline_rps $(col 4)  baseline_p50_ms $(col 5)  baseline_p99_ms $(col 6)"
echo "ratio_hits_over_baseline $(col 7)"
"$out/examples/probe"
