#!/usr/bin/env bash
# Issue 12: how keep-alive connections split between two proxy workers (docs/performance.md,
# "Spreading connections between workers"). Loopback only; every load bounded in time; stops
# only the processes it started.
#
#   spread.sh PROXY RUNS CONNS...    PROXY: a Portico binary, or `nginx` / `nginx-reuseport`
#   LOAD=ab spread.sh PORTICO RUNS CONNS...   a new connection per request instead (ab -n 4000)
#
# Upstream: nginx, one worker, `return 200`. The proxy gets two workers on CPUs 0-1 (Portico
# `--worker-threads 2`; nginx `worker_processes 2` with its master, `reuseport` or not); each run
# is `wrk -t1 -cCONNS -d2s`. Per run it prints, per worker:
#   accepted  connections each worker thread accepted (strace -f --seccomp-bpf -e accept4; Portico)
#   held      connections each worker holds mid-run (Portico: portico_worker_connections, when the
#             binary has it; nginx: `ss -tnp` established sockets per worker process)
#   cpu       CPU ticks each worker used during the run (/proc/.../stat utime+stime)
# and the busiest worker's share of the CPU; for Portico also how many connections were handed
# from one worker to the other (portico_worker_handoffs_total, when the binary has it).
# Counts, not timings: accepted/held/handed are exact.
set -euo pipefail
PROXY=$1 RUNS=$2; shift 2
CONNS_LIST=("$@")
UP=28380 HTTP=28381 ADMIN=28390
W=$(mktemp -d /tmp/portico-spread.XXXXXX); PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $W/up.pid ]] && kill "$(cat "$W/up.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
cat >"$W/up.conf" <<CONF
worker_processes 1;
pid $W/up.pid;
error_log $W/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UP reuseport backlog=4096; location / { return 200 "ok\n"; } } }
CONF
taskset -c 0,1 nginx -c "$W/up.conf" -p "$W" 2>/dev/null

worker_pids=() # nginx: worker process ids; Portico: worker thread ids
case $PROXY in
  nginx | nginx-reuseport)
    rp=""; [[ $PROXY == nginx-reuseport ]] && rp=" reuseport"
    mkdir -p "$W/ng"
    cat >"$W/ng.conf" <<CONF
daemon off;
master_process on;
worker_processes 2;
pid $W/ng/ng.pid;
error_log $W/ng/err.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$HTTP$rp; location / { proxy_pass http://up; proxy_http_version 1.1;
    proxy_set_header Connection ""; } } }
CONF
    taskset -c 0,1 nginx -p "$W/ng" -c "$W/ng.conf" & P=$!; PIDS+=("$P")
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$HTTP) 2>/dev/null && break; sleep 0.05; done
    sleep 0.3
    mapfile -t worker_pids < <(pgrep -P "$P" | sort -n)
    ;;
  *)
    mkdir -p "$W/m"; sed -e "s/28080/$UP/g" "$(dirname "$0")/bench.yaml" >"$W/m/b.yaml"
    TOKIO_WORKER_THREADS=1 taskset -c 0,1 "$PROXY" --manifests "$W/m" --http-addr 127.0.0.1:$HTTP \
      --admin-addr 127.0.0.1:$ADMIN --access-log off --log-level warn --worker-threads 2 & P=$!
    PIDS+=("$P")
    for _ in $(seq 200); do
      a=$( (exec 3<>/dev/tcp/127.0.0.1/$ADMIN && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3) 2>/dev/null || true)
      [[ $a == "HTTP/1.1 200" ]] && break; sleep 0.05
    done
    for t in /proc/$P/task/*; do
      [[ $(cat "$t/comm") == portico-worker* ]] && worker_pids+=("$(basename "$t")")
    done
    ;;
esac
ticks() { # ticks of each worker (thread or process), space-separated
  local out=() id
  for id in "${worker_pids[@]}"; do
    local stat=/proc/$id/stat; [[ -e /proc/$P/task/$id/stat ]] && stat=/proc/$P/task/$id/stat
    out+=("$(awk '{print $14 + $15}' "$stat")")
  done
  echo "${out[@]}"
}
held() {
  if [[ $PROXY == nginx* ]]; then
    local id n out=()
    for id in "${worker_pids[@]}"; do
      n=$(ss -Htnp state established "( sport = :$HTTP )" 2>/dev/null | grep -c "pid=$id," || true)
      out+=("$n")
    done
    echo "${out[@]}"
  else
    curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^portico_worker_connections\{/ {printf "%s ", $2} END {print ""}'
  fi
}
handoffs() {
  [[ $PROXY == nginx* ]] && { echo 0; return; }
  curl -s "http://127.0.0.1:$ADMIN/metrics" | awk '/^portico_worker_handoffs_total / {h = $2} END {print h + 0}'
}
wrk -t1 -c50 -d1s "http://localhost:$HTTP/" >/dev/null # warm the upstream pools
for conns in "${CONNS_LIST[@]}"; do
  for r in $(seq "$RUNS"); do
    S=
    if [[ $PROXY != nginx* ]]; then
      strace -f --seccomp-bpf -e trace=accept4 -p "$P" -o "$W/st" 2>/dev/null & S=$!
      sleep 0.3
    fi
    t0=($(ticks)) h0=$(handoffs)
    if [[ ${LOAD:-wrk} == ab ]]; then
      ab -q -n 4000 -c "$conns" -H 'Host: localhost' "http://127.0.0.1:$HTTP/" >"$W/ab" 2>&1 & L=$!
    else
      wrk -t1 -c"$conns" -d2s "http://localhost:$HTTP/" >"$W/wrk" & L=$!
    fi
    sleep 1
    h=$(held)
    wait $L
    t1=($(ticks)) h1=$(handoffs)
    acc=""
    if [[ -n $S ]]; then
      kill -INT "$S"; wait "$S" 2>/dev/null || true
      # accepted per worker thread, in worker order
      for id in "${worker_pids[@]}"; do
        acc+="$(grep -cE "^$id +(accept4\(|<\.\.\. accept4 resumed>).* = [0-9]+$" "$W/st" || true) "
      done
    fi
    cpu=() total=0 max=0
    for i in "${!t0[@]}"; do d=$((t1[i] - t0[i])); cpu+=("$d"); total=$((total + d)); ((d > max)) && max=$d; done
    if [[ ${LOAD:-wrk} == ab ]]; then
      req=$(awk '/^Complete requests:/ {print $3}' "$W/ab")
    else
      req=$(awk '/requests in/ {print $1}' "$W/wrk")
    fi
    share=$(awk -v m=$max -v t=$total 'BEGIN { printf "%.2f", t ? m / t : 0 }')
    echo "c=$conns run=$r requests=$req accepted=[${acc% }] held=[${h% }] cpu=[${cpu[*]}] busiest=$share handed=$((h1 - h0))"
  done
done
