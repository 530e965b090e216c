#!/usr/bin/env bash
# Issue 12 scaling diagnostics (docs/performance.md, "Scaling with cores"). Loopback only; every load bounded in time; stops only the processes it started.
# split.sh BIN SCALE RUNS: connections accepted per worker thread, per wrk -c50 run (strace accept4).
set -euo pipefail
BIN=$1 SCALE=$2 RUNS=${3:-5}
UP=28280 HTTP=28281 ADMIN=28290
W=$(mktemp -d /tmp/portico-sp.XXXXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf $W' EXIT
"$SCALE" upstream 127.0.0.1:$UP & PIDS+=($!)
mkdir -p $W/m; sed -e "s/28080/$UP/g" "$(dirname "$0")/bench.yaml" > $W/m/b.yaml
TOKIO_WORKER_THREADS=1 "$BIN" --manifests $W/m --http-addr 127.0.0.1:$HTTP --admin-addr 127.0.0.1:$ADMIN --access-log off --log-level warn --worker-threads 2 & P=$!; PIDS+=($P)
for _ in $(seq 200); do a=$( (exec 3<>/dev/tcp/127.0.0.1/$ADMIN && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3) 2>/dev/null || true); [[ $a == "HTTP/1.1 200" ]] && break; sleep 0.05; done
for r in $(seq $RUNS); do
  strace -f -e trace=accept4 -p $P -o $W/st.$r 2>/dev/null & S=$!; sleep 0.5
  wrk -t1 -c50 -d1s http://localhost:$HTTP/ >/dev/null
  kill -INT $S; wait $S 2>/dev/null || true
  echo "run $r: $(grep -v EAGAIN $W/st.$r | grep -E 'accept4\([0-9]+.*= [0-9]+' | awk '{print $1}' | sort | uniq -c | awk '{printf "%s ", $1}')"
done
