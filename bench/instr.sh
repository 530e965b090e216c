#!/usr/bin/env bash
# Noise-free per-connection comparison (issue 12): user-space instructions (valgrind callgrind,
# Ir) per request, nginx vs Portico, same route, same upstream, same certificate, one scenario:
#
#   h1-newconn     plain HTTP/1.1, a new connection per request (ab -n N -c 8, no keep-alive)
#   h1-keepalive   plain HTTP/1.1 keep-alive (h2load --h1 -c 8), as /work/shared/tools/instrbench.sh
#   tls-keepalive  HTTP/1.1 over TLS 1.3, keep-alive (h2load --h1 -c 8, ALPN http/1.1)
#   tls-resume     a new TLS 1.3 connection per request, resuming the previous session (a small
#                  python3 ssl client, 8 threads, ALPN http/1.1, `Connection: close`; it counts
#                  how many connections were resumed)
#   tls-full       a new TLS 1.3 connection per request, never resumed (the same client)
#   tls-resume-wrk bench/run's tls_new_conn client: wrk -t1 -c8 with `Connection: close` (OpenSSL 3;
#                  SSL_clear keeps the session, so each reconnect resumes with the last TLS 1.3
#                  ticket: PSK + a fresh X25519 share). Bounded by WRK_SECONDS (20) and N (a Lua
#                  script stops after N responses). CAPTURE=1 (tcpdump) prints which handshakes
#                  each proxy made (bench/tlsflows.py); Portico's own counters are printed too.
#   tls12-resume-wrk  the same with wrk's OpenSSL capped at TLS 1.2 (OPENSSL_CONF MaxProtocol):
#                  a TLS 1.2 abbreviated handshake (ticket, no key exchange), what nginx 1.22
#                  made in bench/run while its ssl_protocols default left TLS 1.3 out
#   h2-tls         HTTP/2 over TLS 1.3, multiplexed (h2load -c 8 -m 10)
#   h1-64k         as h1-keepalive, a 64 KiB response body (bench/run's h1_64k; the upstream
#                  nginx serves a 65,536-byte file)
#   h2c-upstream   as h1-keepalive to the proxy, cleartext HTTP/2 (prior knowledge) from the proxy
#                  to the upstream: nginx `grpc_pass grpc://` (its only HTTP/2 upstream), Portico
#                  `backend-protocol: H2C`. The upstream is the upstream nginx (`listen ... http2`,
#                  `return 200 "ok\n"`), or with H2_UPSTREAM=haproxy HAProxy (one thread, `bind ...
#                  proto h2`, `http-request return` of "ok\n"; it logs each request's HTTP version and
#                  the script prints the tally): Portico builds before branch `h2up` sent `Host`
#                  beside `:authority`, which nginx 1.22 answers 400 (docs/performance.md), so
#                  comparisons with those builds need HAProxy. Only 2xx answers count as served.
#
# Per request = (Ir of a run serving N requests - Ir of a run serving none) / requests that
# succeeded. Kernel work is not in the figure: TOOL=strace counts system calls per request the
# same way (strace -c -f, the "total" calls line) instead.
#
# usage: bench/instr.sh PORTICO_BINARY SCENARIO [REQUESTS]   (env: TOOL=callgrind|strace,
#        PROXIES="nginx portico", PORT_BASE=9200, KEEP=1 keeps the work dir for callgrind_annotate,
#        H2_UPSTREAM=nginx|haproxy for h2c-upstream)
# Needs (Debian): valgrind nginx-light (or nginx) nghttp2-client apache2-utils python3 openssl curl (haproxy for h2c-upstream
#        with H2_UPSTREAM=haproxy, wrk for *-wrk, tcpdump for CAPTURE=1)
set -u
bin=$(readlink -f "$1"); scenario=$2; n=${3:-4000}
tool=${TOOL:-callgrind}; h2_upstream=${H2_UPSTREAM:-nginx}; proxies=${PROXIES:-nginx portico}; p=${PORT_BASE:-9200}
case $scenario in h1-newconn|h1-keepalive|tls-keepalive|tls-resume|tls-full|tls-resume-wrk|tls12-resume-wrk|h2-tls|h1-64k|h2c-upstream) ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;; esac
up=$((p + 1)); up2=$((p + 2)); ng_http=$((p + 11)); ng_https=$((p + 12)); po_http=$((p + 21)); po_https=$((p + 22)); po_admin=$((p + 23))
w=$(mktemp -d /tmp/instr.XXXXXX)
cleanup() { [ -f $w/upstream.pid ] && kill "$(cat $w/upstream.pid)" 2>/dev/null; [ -f $w/h2up.pid ] && kill "$(cat $w/h2up.pid)" 2>/dev/null; if [ -z "${KEEP:-}" ]; then rm -rf "$w"; else echo "kept $w" >&2; fi; }
trap cleanup EXIT
# The path asked for, the upstream port the proxies use, and how they reach it.
path=/api/x; be_port=$up; be_annot=""; ng_pass="proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;"
case $scenario in
  h1-64k) path=/api/64k ;;
  h2c-upstream) be_port=$up2; be_annot=', nginx.ingress.kubernetes.io/backend-protocol: "H2C"'
    ng_pass="grpc_pass grpc://be2; grpc_set_header Host \$host; grpc_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;" ;;
esac
# The upstream nginx worker may run as another user (nobody): it must reach the 64 KiB file.
mkdir -p "$w/www"; head -c 65536 /dev/zero | tr '\0' x > "$w/www/64k"; chmod 711 "$w"; chmod 755 "$w/www"; chmod 644 "$w/www/64k"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench.example -addext subjectAltName=DNS:bench.example,DNS:localhost \
  -keyout "$w/tls.key" -out "$w/tls.crt" 2>/dev/null
cat > "$w/upstream.conf" <<CONF
worker_processes 1;
pid $w/upstream.pid;
error_log $w/upstream.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$up reuseport backlog=4096; location / { return 200 "ok\n"; }
    location = /api/64k { default_type application/octet-stream; alias $w/www/64k; } }
  server { listen 127.0.0.1:$up2 http2; location / { return 200 "ok\n"; } }
}
CONF
[ $h2_upstream = haproxy ] && sed -i '/listen 127.0.0.1:'$up2' http2/d' "$w/upstream.conf"
nginx -c "$w/upstream.conf" -p "$w" 2>/dev/null
if [ $scenario = h2c-upstream ] && [ $h2_upstream = haproxy ]; then
  cat > "$w/h2up.cfg" <<CONF
global
  nbthread 1
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  log-format "%HV %ST"
  timeout client 300s
  timeout server 300s
  timeout connect 5s
frontend h2
  bind 127.0.0.1:$up2 proto h2
  http-request return status 200 content-type text/plain string "ok\n"
CONF
  haproxy -db -f "$w/h2up.cfg" > "$w/upstream-h2.log" 2>"$w/h2up.err" & echo $! > "$w/h2up.pid"
fi
# nginx as the proxy: one worker in the foreground (no master), as ingress-nginx would serve
# this route; TLS resumption offered as Portico offers it (tickets and a session cache).
cat > "$w/nginxproxy.conf" <<CONF
worker_processes 1; daemon off; master_process off;
pid $w/nginxproxy.pid;
error_log $w/nginxproxy.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream be { server 127.0.0.1:$up; keepalive 128; }
  upstream be2 { server 127.0.0.1:$up2; keepalive 128; }
  server { listen 127.0.0.1:$ng_http backlog=4096; listen 127.0.0.1:$ng_https ssl http2 backlog=4096;
    server_name bench.example;
    ssl_certificate $w/tls.crt; ssl_certificate_key $w/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on; ssl_session_cache shared:bench:4m;
    location /api/ { $ng_pass } }
}
CONF
mkdir -p "$w/m"
cat > "$w/m/bench.yaml" <<YAML
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: portico}
spec: {controller: portico.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: be, namespace: default}
spec: {ports: [{port: 80, targetPort: $be_port, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: be-1, namespace: default, labels: {kubernetes.io/service-name: be}}
addressType: IPv4
ports: [{port: $be_port, protocol: TCP}]
endpoints: [{addresses: [127.0.0.1], conditions: {ready: true}}]
---
apiVersion: v1
kind: Secret
metadata: {name: bench-tls, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$w/tls.crt")
  tls.key: $(base64 -w0 "$w/tls.key")
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: bench
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/ssl-redirect: "false"$be_annot}
spec:
  ingressClassName: portico
  tls: [{hosts: [bench.example, localhost], secretName: bench-tls}]
  rules: [{host: bench.example, http: {paths: [{path: /api, pathType: Prefix, backend: {service: {name: be, port: {number: 80}}}}]}}]
YAML
# The TLS client for tls-resume / tls-full: N requests over 8 threads, each a new connection;
# prints "ok=… reused=…".
cat > "$w/tlsclient.py" <<'PY'
import socket, ssl, sys, threading
port, n, cafile, resume = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
ctx = ssl.create_default_context(cafile=cafile)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.set_alpn_protocols(["http/1.1"])
req = b"GET /api/x HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n"
lock = threading.Lock(); ok = [0]; reused = [0]
def worker(count):
    session = None
    for _ in range(count):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
                with ctx.wrap_socket(raw, server_hostname="bench.example", session=session if resume else None) as s:
                    s.sendall(req)
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk: break
                        data += chunk
                    with lock:
                        if data.startswith(b"HTTP/1.1 200"): ok[0] += 1
                        if s.session_reused: reused[0] += 1
                    session = s.session
        except (OSError, ssl.SSLError) as e:
            print("error:", e, file=sys.stderr)
threads = [threading.Thread(target=worker, args=(n // 8 + (1 if i < n % 8 else 0),)) for i in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(f"ok={ok[0]} reused={reused[0]}")
PY
# wrk stops after WRK_REQUESTS responses (its -d is the upper bound).
cat > "$w/stop.lua" <<'LUA'
local n, limit = 0, tonumber(os.getenv("WRK_REQUESTS") or "1000")
function response(status, headers, body)
  n = n + 1
  if n >= limit then wrk.thread:stop() end
end
LUA
# TLS 1.2 at most, for wrk's OpenSSL only.
cat > "$w/tls12.cnf" <<'CNF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
MaxProtocol = TLSv1.2
CNF
# One run of a proxy under $tool, serving `count` requests of the scenario; prints "COST REQS".
run() { # name http_port https_port count cmd...
  local name=$1 hport=$2 sport=$3 count=$4; shift 4
  local out=$w/$name.$count.$tool load=$w/$name.$count.load
  if [ "$tool" = strace ]; then strace -c -f -o "$out" "$@" >/dev/null 2>"$w/$name.$count.err" &
  else valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>"$w/$name.$count.err" & fi
  local vp=$!
  for i in $(seq 1 300); do curl -s -o /dev/null -H 'Host: bench.example' http://127.0.0.1:$hport$path && break; sleep 0.2; done
  local reqs=0
  if [ "$count" -gt 0 ]; then
    local url=https://bench.example:$sport/api/x to=(--connect-to "127.0.0.1:$sport")
    case $scenario in
      h1-newconn) ab -n "$count" -c 8 -H 'Host: bench.example' "http://127.0.0.1:$hport/api/x" > "$load" 2>&1
        reqs=$(awk '/^Complete requests:/ {c=$3} /^Failed requests:/ {f=$3} /^Non-2xx responses:/ {x=$3} END {print c-f-x}' "$load") ;;
      h1-keepalive|h1-64k|h2c-upstream) h2load --h1 -n "$count" -c 8 -H ':authority: bench.example' "http://127.0.0.1:$hport$path" > "$load" 2>&1
        reqs=$(awk '/^status codes:/ {print $3; exit}' "$load") ;;
      tls-keepalive) h2load --h1 -n "$count" -c 8 "${to[@]}" "$url" > "$load" 2>&1
        reqs=$(awk '/^status codes:/ {print $3; exit}' "$load") ;;
      h2-tls) h2load -n "$count" -c 8 -m 10 "${to[@]}" "$url" > "$load" 2>&1
        reqs=$(awk '/^status codes:/ {print $3; exit}' "$load") ;;
      tls-resume-wrk|tls12-resume-wrk)
        local cnf=${OPENSSL_CONF:-}; [ $scenario = tls12-resume-wrk ] && cnf=$w/tls12.cnf
        [ -n "${CAPTURE:-}" ] && { tcpdump -Z root -i lo -s 0 -w "$w/$name.pcap" "tcp port $sport" >/dev/null 2>&1 & echo $! > "$w/tcpdump.pid"; sleep 1; }
        # SNI localhost (wrk sends the URL's host), Host bench.example (the route).
        OPENSSL_CONF=$cnf WRK_REQUESTS=$count wrk -t1 -c8 -d"${WRK_SECONDS:-20}s" -s "$w/stop.lua" \
          -H 'Host: bench.example' -H 'Connection: close' "https://localhost:$sport/api/x" > "$load" 2>&1
        reqs=$(awk '/ requests in / {c=$1} /^  Non-2xx/ {x=$NF} /Socket errors/ {gsub(",", ""); e=$4+$6+$8+$10} END {print c-x-e}' "$load")
        if [ -n "${CAPTURE:-}" ]; then sleep 1; kill "$(cat "$w/tcpdump.pid")"; sleep 1
          echo "$name handshakes seen on the wire:" >&2; python3 "$(dirname "$0")/tlsflows.py" "$w/$name.pcap" "$sport" >&2
          # (Scraping /metrics costs Portico's run some instructions: only with CAPTURE.)
          [ $name = portico ] && curl -s "http://127.0.0.1:$po_admin/metrics" | grep -E '^portico_tls_(resumed_)?handshakes_total' | sed "s/^/$name: /" >&2
        fi ;;
      tls-resume|tls-full) python3 "$w/tlsclient.py" "$sport" "$count" "$w/tls.crt" "$([ $scenario = tls-resume ] && echo 1 || echo 0)" > "$load" 2>&1
        reqs=$(sed -n 's/^ok=\([0-9]*\).*/\1/p' "$load")
        echo "$name: $(grep '^ok=' "$load")" >&2 ;;
    esac
  fi
  # strace detaches on a signal of its own: stop the proxy it runs instead (its child).
  local target=$vp; [ "$tool" = strace ] && target=$(pgrep -P $vp | head -1)
  kill -INT ${target:-$vp} 2>/dev/null; for i in $(seq 1 150); do kill -0 $vp 2>/dev/null || break; sleep 0.2; done
  kill -TERM $vp 2>/dev/null; wait $vp 2>/dev/null
  local cost
  if [ "$tool" = strace ]; then cost=$(awk '$NF == "total" {print $(NF-2); exit}' "$out")
  else cost=$(awk '/^summary:|^totals:/ {print $2; exit}' "$out"); fi
  echo "${cost:-0} ${reqs:-0}"
}
unit="user-space instructions"; [ "$tool" = strace ] && unit="system calls"
for name in $proxies; do
  if [ $name = nginx ]; then hport=$ng_http; sport=$ng_https; cmd="nginx -c $w/nginxproxy.conf -p $w"
  else hport=$po_http; sport=$po_https; cmd="$bin --manifests $w/m --http-addr 127.0.0.1:$po_http --https-addr 127.0.0.1:$po_https --admin-addr 127.0.0.1:$po_admin --access-log off --log-level warn --worker-threads 1"; fi
  read base _ < <(run $name $hport $sport 0 $cmd)
  read full reqs < <(run $name $hport $sport "$n" $cmd)
  per=$(python3 -c "print(round(($full-$base)/max($reqs,1), 1 if \"$tool\" == \"strace\" else None))")
  echo "$scenario $name: $per $unit per request (base $base, with $reqs requests $full)"
  if [ $scenario = h2c-upstream ] && [ $h2_upstream = haproxy ]; then
    echo "$scenario $name: upstream log so far: $(sort "$w/upstream-h2.log" 2>/dev/null | uniq -c | tr -s ' \n' ' ')"
  fi
  eval "per_$name=$per"
done
if [ -n "${per_nginx:-}" ] && [ -n "${per_portico:-}" ]; then
  echo "$scenario portico/nginx $unit per request: $(python3 -c "print(round($per_portico/max($per_nginx,1),2))")"
fi
