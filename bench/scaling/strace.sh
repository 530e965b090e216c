#!/usr/bin/env bash
# Issue 12 scaling diagnostics (docs/performance.md, "Scaling with cores"). Loopback only; every load bounded in time; stops only the processes it started.
# strace.sh BIN SCALE WORKERS: syscalls per request under wrk -c50 for 3 s (strace -f -c).
set -euo pipefail
BIN=$1 SCALE=$2 workers=$3
UP=28180 HTTP=28181 ADMIN=28190
W=$(mktemp -d /tmp/portico-st.XXXXXX); PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf $W' EXIT
"$SCALE" upstream 127.0.0.1:$UP & PIDS+=($!)
mkdir -p $W/m; sed -e "s/28080/$UP/g" "$(dirname "$0")/bench.yaml" > $W/m/b.yaml
TOKIO_WORKER_THREADS=1 "$BIN" --manifests $W/m --http-addr 127.0.0.1:$HTTP --admin-addr 127.0.0.1:$ADMIN --access-log off --log-level warn --worker-threads $workers & P=$!; PIDS+=($P)
for _ in $(seq 200); do a=$( (exec 3<>/dev/tcp/127.0.0.1/$ADMIN && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3) 2>/dev/null || true); [[ $a == "HTTP/1.1 200" ]] && break; sleep 0.05; done
wrk -t1 -c50 -d1s http://localhost:$HTTP/ >/dev/null
strace -f -c -p $P -o $W/st 2>/dev/null & S=$!
sleep 0.5
out=$(wrk -t1 -c50 -d3s http://localhost:$HTTP/)
kill -INT $S; wait $S 2>/dev/null || true
n=$(awk '/requests in/ {print $1}' <<<"$out")
echo "workers=$workers requests=$n"
awk -v n=$n 'NR>2 && $NF!="total" && $4 ~ /^[0-9]+$/ {printf "  %-14s %.3f/req\n", $NF, $4/n}' $W/st | sort -k2 -t' ' -rn | head -12
