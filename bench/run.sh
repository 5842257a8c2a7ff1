#!/usr/bin/env bash
# Benchmarks (not tests): builds in release mode and, in one run, measures
#  (a) a baseline axum server answering the identity bytes of the full summary with no logic,
#  (b) cached hits on the full service with a valid token: identity, br and gzip,
#  all with wrk at 64 connections in alternating rounds, with the server's CPU per request and
#  each ratio to the baseline; the bytes on the wire per encoding; then the cold stampede, the
#  miss overhead (full and 1 MB summaries), the compression levels and resident memory
#  (bench/probe.rs).
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

# The server's CPU time so far, in clock ticks (user + system).
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# wrk's figures in one unit: requests/s, p50/p99 in milliseconds, and the server's CPU µs per
# request. Every target gets the same request, token included, so only what it does differs.
# Usage: measure URL PID [Accept-Encoding]
measure() {
  local before after
  before=$(ticks "$2")
  wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $token" ${3:+-H "Accept-Encoding: $3"} "$1" > "$work/wrk"
  after=$(ticks "$2")
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END { if (bad) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
          printf "%.0f %.3f %.3f %.1f\n", rps, p50, p99, ticks / hz * 1e6 / n }' "$work/wrk"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# The machine is shared and noisy: alternate the targets over several rounds and take medians,
# so a burst of someone else's load lands on all of them rather than on one.
for port in 18080 18081; do # warm both up (connections, caches, allocator)
  wrk -t2 -c64 -d1s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/avs/v0/avs/$sid" >/dev/null
done
service_pid=${pids[0]}
baseline_pid=${pids[1]}
: > "$work/rounds"
for round in $(seq "$rounds"); do
  # Only 200s count: a gated-off or refused request is cheap and would flatter the service.
  b=$(measure "http://127.0.0.1:18081/avs/v0/avs/$sid" "$baseline_pid") || exit 1
  i=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid") || exit 1
  r=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid" "gzip, deflate, br") || exit 1
  g=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid" "gzip, deflate") || exit 1
  echo "round $round  baseline $b  identity $i  br $r  gzip $g  (rps p50_ms p99_ms cpu_us/req)"
  echo "$b $i $r $g" >> "$work/rounds"
done
col() { awk -v c="$1" '{ print $c }' "$work/rounds" | median; }
ratio() { awk -v c="$1" '{ print $c / $1 }' "$work/rounds" | median; }

echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
echo "rounds $rounds of ${secs} s each (medians below)"
for target in "baseline 1" "identity 5" "br 9" "gzip 13"; do
  set -- $target
  echo "$1_rps $(col "$2")  $1_p50_ms $(col $(($2 + 1)))  $1_p99_ms $(col $(($2 + 2)))  $1_cpu_us_per_req $(col $(($2 + 3)))  ratio_to_baseline $(ratio "$2")"
done
for enc in identity br gzip; do
  case $enc in identity) h="identity";; br) h="gzip, deflate, br";; gzip) h="gzip, deflate";; esac
  bytes=$(curl -s -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $token" -H "Accept-Encoding: $h" "http://127.0.0.1:18080/avs/v0/avs/$sid")
  echo "bytes_on_wire_$enc $bytes"
done
"$out/examples/probe"
"$out/examples/probe" levels
