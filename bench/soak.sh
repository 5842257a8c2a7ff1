#!/usr/bin/env bash
# A bounded soak (not a test): the release binary under mixed traffic (hits, misses, searches,
# links, bad tokens, half-sent requests, slow bodies) for SECS seconds (default 600), while the
# upstream flaps (down 5 s of every 30) and the forward proxy (tinyproxy) restarts every 45 s.
# Prints requests, answers by kind and status, wrong-owner answers (must be 0), unexpected 5xx
# (a 500, or a 5xx for a summary already served: must be 0) and RSS at start and end.
# Usage: bench/soak.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
tinyproxy=$(command -v tinyproxy || echo /usr/sbin/tinyproxy)
[ -x "$tinyproxy" ] || { echo "tinyproxy is required: apt-get install tinyproxy" >&2; exit 1; }

[ -n "${BENCH_PREBUILT:-}" ] || cargo build --release --quiet --bin avs-api --example soak
out="${CARGO_TARGET_DIR:-target}/release"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; pkill -f "$work/tinyproxy.conf" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

printf 'User nobody\nGroup nogroup\nPort 18888\nListen 127.0.0.1\nTimeout 600\nMaxClients 200\nAllow 127.0.0.1\nLogLevel Critical\n' > "$work/tinyproxy.conf"
proxy() { "$tinyproxy" -d -c "$work/tinyproxy.conf" >/dev/null 2>&1 & echo $!; }
proxy_pid=$(proxy)
( while sleep 45; do kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null || true; proxy_pid=$(proxy); done ) &
pids+=($!)

printf '[features.avs_enabled]\nboolean = true\n[features.va_online_scheduling_after_visit_summary]\nboolean = true\n' > "$work/toggles.toml"
AVS_ENV=test AVS_LISTEN=127.0.0.1:18080 AVS_ADMIN_LISTEN=127.0.0.1:19090 \
  AVS_UPSTREAM_URL=http://127.0.0.1:18180/ AVS_PROXY_URL=http://127.0.0.1:18888 \
  AVS_TOGGLES="file:$work/toggles.toml" AVS_HEADER_TIMEOUT_MS=5000 RUST_LOG=error \
  "$out/avs-api" >/dev/null 2>&1 &
service=$!
pids+=($service)
for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18080/healthz && break; sleep 0.1; done

echo "date $(date -u +%Y-%m-%dT%H:%MZ)"
echo "machine $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m)"
"$out/examples/soak" 127.0.0.1:18180 http://127.0.0.1:18080 "$service" "$secs"
