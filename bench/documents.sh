#!/usr/bin/env bash
# VistA summary documents (not tests), in one run on the release build:
#  (a) bench/render.rs: render time of the full fixture and the ~1 MB one (PDF and text), and
#      the full one's PDF size (target <= 150 KB);
#  (b) a cached PDF hit (rendered once, then from memory) against nginx serving the same file
#      with sendfile, and against the JSON hit of the same summary: req/s and server CPU per
#      request, alternating rounds, wrk with one thread and 64 connections.
# Usage: bench/documents.sh [seconds per wrk run, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-3}"
[ -n "${BENCH_PREBUILT:-}" ] || cargo build --release --quiet --bin avs-api --example render
. bench/common.sh

[ "${RENDER:-1}" = 0 ] || "$out/examples/render" # RENDER=0: the HTTP rounds only
sid=9A7AF40B2BC2471EA116891839113252
start_service AVS_MAX_IN_FLIGHT_PER_CALLER=1000
pdf="http://127.0.0.1:18080/avs/v0/avs/$sid/pdf"
json="http://127.0.0.1:18080/avs/v0/avs/$sid"
mkdir -p "$work/html"
curl -sf -H "Authorization: Bearer $token" "$pdf" -o "$work/html/doc.pdf" # renders it, once
start_nginx "
  sendfile on;
  tcp_nopush on;
  types { application/pdf pdf; }
  server { listen 127.0.0.1:18082; root $work/html; }"
await_url http://127.0.0.1:18082/doc.pdf
nginx_url="http://127.0.0.1:18082/doc.pdf"


service_pid=${pids[0]}
nginx_pid=${pids[1]}
cmp <(curl -sf -H "Authorization: Bearer $token" "$pdf") "$work/html/doc.pdf"
for url in "$nginx_url" "$pdf" "$json"; do
  wrk -t1 -c64 -d1s -H "Authorization: Bearer $token" "$url" >/dev/null
done
: > "$work/rounds"
for round in $(seq "$rounds"); do
  n=$(measure "$nginx_url" "$nginx_pid") || exit 1
  p=$(measure "$pdf" "$service_pid") || exit 1
  j=$(measure "$json" "$service_pid") || exit 1
  echo "round $round  nginx $n  pdf $p  json $j  (rps cpu_us/req)"
  echo "$n $p $j" >> "$work/rounds"
done
col() { awk -v c="$1" '{ print $c }' "$work/rounds" | median; }
echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
echo "pdf_bytes $(stat -c %s "$work/html/doc.pdf")"
echo "nginx_sendfile_rps $(col 1)  cpu_us_per_req $(col 2)"
echo "pdf_hit_rps $(col 3)  cpu_us_per_req $(col 4)  rps_ratio_to_nginx $(awk '{ print $3 / $1 }' "$work/rounds" | median)  cpu_ratio_to_nginx $(awk '{ print $4 / $2 }' "$work/rounds" | median)"
echo "json_hit_rps $(col 5)  cpu_us_per_req $(col 6)  pdf_rps_ratio_to_json $(awk '{ print $3 / $5 }' "$work/rounds" | median)"
