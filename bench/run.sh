#!/usr/bin/env bash
# Benchmarks (not tests): builds in release mode and, in one run, measures cached hits of the
# same 31,699-byte summary on
#  (a) bare axum answering those bytes from memory with no logic (bench/baseline.rs),
#  (b) nginx's proxy_cache answering them from its cache (what an operator could put in front),
#  (c) this service: a cached hit with a valid token (SiS bearer), identity, br and gzip, and a
#      SiS cookie hit beside a claims-token hit on a second instance in `claims` mode,
# with wrk at one thread and 64 connections, so the server keeps a core of its own on a 2-core
# machine (two client threads starve it and every target turns client-bound). The headline is
# the server's CPU per request (user + system, from /proc), and its ratio to bare axum's; req/s
# beside it. Targets alternate round by round and medians are taken (the machine is shared).
# Then the bytes on the wire per encoding, the cold stampede, the miss overhead, the
# compression levels and resident memory (bench/probe.rs).
# Usage: bench/run.sh [seconds per wrk run, default 5] [rounds, default 3]
#        WRK_THREADS=2 bench/run.sh  (the older, client-bound way)
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"
rounds="${2:-3}"
threads="${WRK_THREADS:-1}"
[ -n "${BENCH_PREBUILT:-}" ] || cargo build --release --quiet --bin avs-api --example baseline --example probe
. bench/common.sh

sid=9A7AF40B2BC2471EA116891839113252
start_service
curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:18080/avs/v0/avs/$sid" -o "$work/body.json"
TOKIO_WORKER_THREADS="$workers" "$out/examples/baseline" 127.0.0.1:18081 "$work/body.json" &
pids+=($!)
await_url http://127.0.0.1:18081/
# The same service in `claims` mode beside it (#25): a hit with a claims token is the peer of a
# hit with a Sign-in Service cookie (token and session both cached) on the SiS instance above.
env AVS_IDENTITY=claims AVS_LISTEN=127.0.0.1:18083 AVS_ADMIN_LISTEN=127.0.0.1:19093 AVS_WORKER_THREADS="$workers" RUST_LOG=warn "$bin" >/dev/null 2>&1 &
pids+=($!)
claims_token=$(AVS_IDENTITY=claims "$bin" dev-token --icn 1012345678V123456)
await_url http://127.0.0.1:18083/healthz

# nginx with proxy_cache in front of the baseline: after the first request every answer is a
# cache hit from nginx's own memory and page cache.
mkdir -p "$work/cache"
start_nginx "
  # A cache hit at its cheapest: the cached file's descriptor kept open, sent with sendfile.
  sendfile on;
  tcp_nopush on;
  open_file_cache max=64 inactive=1h;
  open_file_cache_valid 1h;
  proxy_cache_path $work/cache keys_zone=hits:1m;
  upstream bare { server 127.0.0.1:18081; keepalive 8; }
  server {
    listen 127.0.0.1:18082;
    location / {
      proxy_pass http://bare;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_cache hits;
      proxy_cache_valid 200 1h;
      proxy_ignore_headers Cache-Control Expires Set-Cookie;
      proxy_cache_key \$uri;
    }
  }"
await_url "http://127.0.0.1:18082/avs/v0/avs/$sid"

# wrk's figures in one unit: requests/s, p50/p99 in milliseconds, and the server's CPU µs per
# request. Every target gets the same request, token included, so only what it does differs.
# Usage: measure URL PID [Accept-Encoding]
measure() {
  local before after
  before=$(ticks "$2")
  wrk -t"$threads" -c64 -d"${secs}s" --latency -H "${AUTH:-Authorization: Bearer $token}" ${3:+-H "Accept-Encoding: $3"} "$1" > "$work/wrk"
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

# The machine is shared and noisy: alternate the targets over several rounds and take medians,
# so a burst of someone else's load lands on all of them rather than on one.
for port in 18080 18081 18082; do # warm all up (connections, caches, allocator)
  wrk -t"$threads" -c64 -d1s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/avs/v0/avs/$sid" >/dev/null
done
wrk -t"$threads" -c64 -d1s -H "Authorization: Bearer $claims_token" "http://127.0.0.1:18083/avs/v0/avs/$sid" >/dev/null
service_pid=${pids[0]}
baseline_pid=${pids[1]}
claims_pid=${pids[2]}
nginx_pid=${pids[3]}
: > "$work/rounds"
for round in $(seq "$rounds"); do
  # Only 200s count: a gated-off or refused request is cheap and would flatter the service.
  b=$(measure "http://127.0.0.1:18081/avs/v0/avs/$sid" "$baseline_pid") || exit 1
  n=$(measure "http://127.0.0.1:18082/avs/v0/avs/$sid" "$nginx_pid") || exit 1
  i=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid") || exit 1
  r=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid" "gzip, deflate, br") || exit 1
  g=$(measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid" "gzip, deflate") || exit 1
  c=$(AUTH="Authorization: Bearer $claims_token" measure "http://127.0.0.1:18083/avs/v0/avs/$sid" "$claims_pid") || exit 1
  s=$(AUTH="Cookie: vagov_access_token=$token" measure "http://127.0.0.1:18080/avs/v0/avs/$sid" "$service_pid") || exit 1
  echo "round $round  bare $b  nginx $n  identity $i  br $r  gzip $g  claims $c  sis_cookie $s  (rps p50_ms p99_ms cpu_us/req)"
  echo "$b $n $i $r $g $c $s" >> "$work/rounds"
done
col() { awk -v c="$1" '{ print $c }' "$work/rounds" | median; }
# Ratios to bare axum, per round (both measured side by side), then the median.
ratio() { awk -v c="$1" -v b="$2" '{ print $c / $b }' "$work/rounds" | median; }

echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m); wrk -t$threads -c64"
echo "rounds $rounds of ${secs} s each (medians below)"
printf "%-9s %8s %8s %8s %12s %12s %10s\n" target req/s p50_ms p99_ms cpu_us/req cpu_vs_bare rps_vs_bare
for target in "bare 1" "nginx 5" "identity 9" "br 13" "gzip 17" "claims 21" "sis_cookie 25"; do
  set -- $target
  printf "%-9s %8s %8s %8s %12s %12.2f %10.2f\n" "$1" "$(col "$2")" "$(col $(($2 + 1)))" "$(col $(($2 + 2)))" \
    "$(col $(($2 + 3)))" "$(ratio $(($2 + 3)) 4)" "$(ratio "$2" 1)"
done
# #28's figure: the identity hit against nginx's proxy_cache hit of the same bytes, per round.
echo "identity_cpu_vs_nginx $(ratio 12 8)  identity_rps_vs_nginx $(ratio 9 5)"
# #25's figure: a cached hit with a SiS cookie against one with a claims token, per round.
echo "sis_cookie_cpu_vs_claims $(ratio 28 24)  sis_cookie_rps_vs_claims $(ratio 25 21)"
for enc in identity br gzip; do
  case $enc in identity) h="identity";; br) h="gzip, deflate, br";; gzip) h="gzip, deflate";; esac
  bytes=$(curl -s -o /dev/null -w '%{size_download}' -H "Authorization: Bearer $token" -H "Accept-Encoding: $h" "http://127.0.0.1:18080/avs/v0/avs/$sid")
  echo "bytes_on_wire_$enc $bytes"
done
[ "${PROBE:-1}" = 0 ] && exit 0
"$out/examples/probe"
"$out/examples/probe" levels
