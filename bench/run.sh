#!/usr/bin/env bash
# Benchmarks (not tests): builds in release mode and, in one run, measures
#  (a) cached hits on the full service with a valid token, (b) a baseline axum server answering
#  the same bytes with no logic, both with wrk at 64 connections, and prints the ratio a/b;
#  then the cold stampede, the miss overhead and resident memory (bench/probe.rs).
# Usage: bench/run.sh [seconds per wrk run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
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

# wrk's figures in one unit: requests/s, and p50/p99 in milliseconds.
measure() {
  wrk -t2 -c64 -d"${secs}s" --latency "$@" | awk '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }'
}
read -r a_rps a_p50 a_p99 < <(measure -H "Authorization: Bearer $token" "http://127.0.0.1:18080/avs/v0/avs/$sid")
read -r b_rps b_p50 b_p99 < <(measure "http://127.0.0.1:18081/avs/v0/avs/$sid")

echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
echo "body_bytes $(wc -c < "$work/body.json")"
echo "hits_rps $a_rps  hits_p50_ms $a_p50  hits_p99_ms $a_p99"
echo "baseline_rps $b_rps  baseline_p50_ms $b_p50  baseline_p99_ms $b_p99"
awk -v a="$a_rps" -v b="$b_rps" 'BEGIN { printf "ratio_hits_over_baseline %.2f\n", a / b }'
"$out/examples/probe"
