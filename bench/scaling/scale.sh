#!/usr/bin/env bash
# Issue 12 scaling diagnostics (docs/performance.md, "Scaling with cores"). Loopback only; every load bounded in time; stops only the processes it started.
# scale.sh BIN SCALE_EXAMPLE [SECS] : Portico 1 worker on CPU 1 vs 2 workers on CPUs 0-1,
# wrk -t1 -c50 and upstream on CPUs 0-1 (as bench/run's scaling run), own ports.
set -euo pipefail
BIN=$1 SCALE=$2 D=${3:-5}
UP=28080 HTTP=28081 ADMIN=28090
W=$(mktemp -d /tmp/portico-run.XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null; rm -rf $W' EXIT
taskset -c 0,1 "$SCALE" upstream 127.0.0.1:$UP & PIDS+=($!)
mkdir -p $W/m
cat > $W/m/b.yaml <<Y
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bench, namespace: bench}
spec:
  ingressClassName: portico
  rules:
  - host: localhost
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: bench}
spec: {ports: [{name: http, port: 80, targetPort: $UP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-1, namespace: bench, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
ports: [{name: http, port: $UP}]
endpoints: [{addresses: ["127.0.0.1"]}]
Y
TICKS=$(getconf CLK_TCK)
for workers in ${ORDER:-1 2}; do
  cpus=1; ((workers == 2)) && cpus=0,1
  TOKIO_WORKER_THREADS=1 taskset -c $cpus "$BIN" --manifests $W/m --http-addr 127.0.0.1:$HTTP \
    --admin-addr 127.0.0.1:$ADMIN --access-log off --log-level warn --worker-threads $workers &
  P=$!; PIDS+=($P)
  for _ in $(seq 200); do
    a=$( (exec 3<>/dev/tcp/127.0.0.1/$ADMIN && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -c 12 <&3) 2>/dev/null || true)
    [[ $a == "HTTP/1.1 200" ]] && break; sleep 0.05
  done
  taskset -c 0,1 wrk -t1 -c50 -d1s http://localhost:$HTTP/ >/dev/null
  b=$(awk '{print $14+$15}' /proc/$P/stat)
  declare -A tb=(); for t in /proc/$P/task/*; do tb[$t]=$(awk '{print $14+$15}' $t/stat); done
  out=$(taskset -c 0,1 wrk -t1 -c50 -d${D}s --latency http://localhost:$HTTP/)
  a=$(awk '{print $14+$15}' /proc/$P/stat)
  threads=""; for t in /proc/$P/task/*; do d=$(( $(awk '{print $14+$15}' $t/stat) - ${tb[$t]:-0} )); ((d > 0)) && threads+="$(cat $t/comm)=$d "; done
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  cpu=$(awk -v t=$((a-b)) -v k=$TICKS -v n=$reqs 'BEGIN{printf "%.2f", t/k*1e6/n}')
  echo "workers=$workers rps=$rps cpu_us_per_req=$cpu p99=$p99 load=$(cut -d' ' -f1 /proc/loadavg) ticks: $threads"
  if [[ -n ${METRICS:-} ]]; then curl -s 127.0.0.1:$ADMIN/metrics | grep -E "^portico_requests_total|client_connections" ; fi
  kill $P; wait $P 2>/dev/null || true
done
