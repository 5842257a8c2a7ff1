# What bench/run.sh and bench/oh.sh share, sourced after they build: the release binary, a
# work directory and the processes to stop on exit, the service on the embedded default, a
# one-worker nginx, and the CPU and median helpers.

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx is required: apt-get install nginx" >&2; exit 1; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# BENCH_PREBUILT=DIR measures the binaries already in DIR (a build kept from before a change,
# for a baseline) instead of building.
out="${BENCH_PREBUILT:-${CARGO_TARGET_DIR:-target}/release}"
bin="$out/avs-api"
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# Waits (up to 5 s) until URL answers 2xx.
await_url() { for _ in $(seq 50); do curl -sf -o /dev/null "$1" && return; sleep 0.1; done; }

# Worker threads of every measured server: 1, as nginx's one worker (WORKERS=N to change).
# Two runtime workers beside the one wrk thread on a 2-core machine measured 1.5-2x the CPU per
# document hit of one (cross-CPU wake-ups; bench/README.md, 2026-12-04): like for like, or the
# peer's figure flatters it.
workers="${WORKERS:-1}"

# The service on 127.0.0.1:18080 at RUST_LOG=warn with these extra VAR=value settings; sets
# $token to a development token for the fixture patient.
start_service() {
  env AVS_LISTEN=127.0.0.1:18080 AVS_ADMIN_LISTEN=127.0.0.1:19090 AVS_WORKER_THREADS="$workers" RUST_LOG=warn "$@" "$bin" >/dev/null 2>&1 &
  pids+=($!)
  token=$("$bin" dev-token --icn 1012345678V123456)
  await_url http://127.0.0.1:18080/healthz
}

# nginx with one worker and no master (one process to measure, as the service has), its temp
# files under $work, and these lines inside its `http` block.
start_nginx() {
  mkdir -p "$work/tmp"
  cat > "$work/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
$1
}
CONF
  "$nginx_bin" -p "$work" -c "$work/nginx.conf" -e stderr &
  pids+=($!)
}

# A process's CPU time so far, in clock ticks (user + system).
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Usage: measure URL PID -> "rps cpu_us_per_req": wrk with one thread and 64 connections for
# $secs seconds (with $token), and PID's CPU over the run per request; fails on a non-2xx.
measure() {
  local before after
  before=$(ticks "$2")
  wrk -t1 -c64 -d"${secs}s" -H "Authorization: Bearer $token" "$1" > "$work/wrk"
  after=$(ticks "$2")
  awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
    /Requests\/sec/ { rps = $2 } / requests in / { n = $1 } /Non-2xx/ { bad = $NF }
    END { if (bad) { print "non-2xx answers: " bad > "/dev/stderr"; exit 1 }
          printf "%.0f %.1f\n", rps, ticks / hz * 1e6 / n }' "$work/wrk"
}
