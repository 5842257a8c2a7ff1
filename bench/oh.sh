#!/usr/bin/env bash
# Oracle Health benchmarks (not tests), in one run on the release build:
#  (a) a cached raw document hit (the 443 KB, 8-page fixture PDF; token and index cached)
#      against nginx serving the same file with sendfile, from disk and from tmpfs: req/s and
#      server CPU per request, alternating rounds, wrk with one thread and 64 connections, one
#      worker thread each (bench/common.sh);
#  (b) the compatibility route against the raw route on the same document: bytes on the wire
#      and server CPU per request;
#  (c) bench/oh_probe.rs: 64 concurrent cold downloads of a 10 MiB document (peak RSS, upstream
#      bytes calls), and four documents at 0.5 s upstream latency in one compatibility answer.
# Usage: bench/oh.sh [seconds per wrk run, default 5] [rounds, default 3]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-3}"
[ -n "${BENCH_PREBUILT:-}" ] || cargo build --release --quiet --bin avs-api --example oh_probe
. bench/common.sh

doc=15249638962
start_service AVS_MAX_IN_FLIGHT_PER_CALLER=1000
mkdir -p "$work/html"
cp fixtures/oracle/long-summary.pdf "$work/html/doc.pdf"
# The same file on tmpfs too: shared memory is where the service seals documents (health data
# is never written to a disk), and the kernel sends it page by page (shmem_file_splice_read),
# where a disk file's page cache is read in batches.
shm=$(mktemp -d -p /dev/shm)
trap 'cleanup; rm -rf "$shm"' EXIT
cp fixtures/oracle/long-summary.pdf "$shm/doc.pdf"
start_nginx "
  sendfile on;
  tcp_nopush on;
  types { application/pdf pdf; }
  server { listen 127.0.0.1:18082; root $work/html; }
  server { listen 127.0.0.1:18083; root $shm; }"
await_url http://127.0.0.1:18082/doc.pdf


raw="http://127.0.0.1:18080/avs/v0/oh/documents/$doc"
compat="http://127.0.0.1:18080/avs/v0/oh/appointments/4818609/binaries?doc_ids=$doc"
nginx_url="http://127.0.0.1:18082/doc.pdf"
nginx_shm_url="http://127.0.0.1:18083/doc.pdf"
service_pid=${pids[0]}
nginx_pid=${pids[1]}
cmp <(curl -sf -H "Authorization: Bearer $token" "$raw") "$work/html/doc.pdf" # warm, and the same bytes
for url in "$nginx_url" "$nginx_shm_url" "$raw" "$compat"; do
  wrk -t1 -c64 -d1s -H "Authorization: Bearer $token" "$url" >/dev/null
done
: > "$work/rounds"
for round in $(seq "$rounds"); do
  n=$(measure "$nginx_url" "$nginx_pid") || exit 1
  r=$(measure "$raw" "$service_pid") || exit 1
  c=$(measure "$compat" "$service_pid") || exit 1
  m=$(measure "$nginx_shm_url" "$nginx_pid") || exit 1
  echo "round $round  nginx $n  raw $r  compat $c  nginx_tmpfs $m  (rps cpu_us/req)"
  echo "$n $r $c $m" >> "$work/rounds"
done
col() { awk -v c="$1" '{ print $c }' "$work/rounds" | median; }
echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
echo "nginx_sendfile_rps $(col 1)  cpu_us_per_req $(col 2)"
echo "oh_raw_hit_rps $(col 3)  cpu_us_per_req $(col 4)  rps_ratio_to_nginx $(awk '{ print $3 / $1 }' "$work/rounds" | median)  cpu_ratio_to_nginx $(awk '{ print $4 / $2 }' "$work/rounds" | median)"
echo "nginx_sendfile_tmpfs_rps $(col 7)  cpu_us_per_req $(col 8)  oh_raw_cpu_ratio_to_it $(awk '{ print $4 / $8 }' "$work/rounds" | median)"
echo "oh_compat_hit_rps $(col 5)  cpu_us_per_req $(col 6)  cpu_ratio_to_raw $(awk '{ print $6 / $4 }' "$work/rounds" | median)"
raw_bytes=$(curl -s -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $token" "$raw")
compat_bytes=$(curl -s -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $token" "$compat")
echo "bytes_on_wire raw $raw_bytes compat $compat_bytes ratio $(awk -v a="$compat_bytes" -v b="$raw_bytes" 'BEGIN { printf "%.3f", a / b }')"
[ "${PROBE:-1}" = 0 ] || "$out/examples/oh_probe"
