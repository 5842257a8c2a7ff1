#!/usr/bin/env bash
# Peak resident memory of the release binary rendering each case of bench/cases.rs as a PDF
# (not a test; #36), the service reading them from a stand-in upstream (python's http.server
# over files that `render dump` writes). Before each case the process's peak is reset
# (/proc/PID/clear_refs, 5), so each figure is what that render added to a service already
# running; then the two largest at once. Prints name, seconds, PDF bytes and VmHWM.
# Usage: bench/memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${BENCH_PREBUILT:-}" ] || cargo build --release --quiet --bin avs-api --example render
. bench/common.sh

"$out/examples/render" dump "$work/upstream"
python3 -m http.server 18081 --bind 127.0.0.1 --directory "$work/upstream" >/dev/null 2>&1 &
pids+=($!)
await_url http://127.0.0.1:18081/avs/9A7AF40B2BC2471EA116891839113252
start_service AVS_ENV=development AVS_UPSTREAM_URL=http://127.0.0.1:18081/ AVS_PROXY_URL=direct
pid=${pids[-1]}
hwm() { awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }
rss() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }
pdf() { curl -s -o "$work/$1.pdf" -w '%{http_code} %{time_total} %{size_download}\n' -H "Authorization: Bearer $token" "http://127.0.0.1:18080/avs/v0/avs/$1/pdf"; }
echo "service at rest: rss_mb $(rss)"
echo "case status seconds pdf_bytes peak_rss_mb rss_after_mb"
while read -r name sid; do
  echo 5 > "/proc/$pid/clear_refs"
  read -r status secs bytes < <(pdf "$sid")
  echo "$name $status $secs $bytes $(hwm) $(rss)"
done < <("$out/examples/render" list)
# The two costliest at once, on a fresh service (the first run keeps what it rendered).
kill "$pid"; wait "$pid" 2>/dev/null || true
start_service AVS_ENV=development AVS_UPSTREAM_URL=http://127.0.0.1:18081/ AVS_PROXY_URL=direct
pid=${pids[-1]}
echo 5 > "/proc/$pid/clear_refs"
started=$(date +%s.%N)
pdf E1B2C3D4E5F60718293A4B5C6D7E8F90 >/dev/null & a=$!
pdf C0000000000000000000000000010000 >/dev/null & b=$!
wait "$a" "$b"
echo "large_1mb+labs_10k at once: seconds $(echo "$(date +%s.%N) - $started" | bc) peak_rss_mb $(hwm) rss_after_mb $(rss)"
