#!/bin/bash
# Idle keep-alive memory per connection (issue 12), nginx vs Portico on the bench/instr.sh route:
# an 8-connection warm-up, then N connections opened with one request each and held; prints
# the RSS growth of the proxy process divided by N. A third argument `tls` holds TLS 1.3 ones.
# usage: bench/idle-mem.sh PORTICO_BINARY N [tls]   (PORT_BASE 9700; ulimit -n must fit N)
here=$(cd "$(dirname "$0")" && pwd); bin=$(readlink -f $1); n=$2; tls=${3:-}
w=$(KEEP=1 PROXIES=" " PORT_BASE=9700 $here/instr.sh $bin h1-keepalive 10 2>&1 | sed -n 's/^kept //p')
sed -i 's/worker_connections 4096/worker_connections 32768/' $w/nginxproxy.conf
# Our own upstream in the foreground (instr.sh stopped its own on exit): killed by its pid at the end.
sleep 1; nginx -c $w/upstream.conf -p $w -g "daemon off;" 2>/dev/null & up=$!
rss() { awk '/^VmRSS/ {print $2}' /proc/$1/status; }
for name in nginx portico; do
  if [ $name = nginx ]; then nginx -c $w/nginxproxy.conf -p $w & pid=$!; hp=9711; sp=9712
  else $bin --manifests $w/m --http-addr 127.0.0.1:9721 --https-addr 127.0.0.1:9722 --admin-addr 127.0.0.1:9723 --access-log off --log-level warn --worker-threads 1 & pid=$!; hp=9721; sp=9722; fi
  for i in $(seq 50); do curl -s -o /dev/null -H 'Host: bench.example' http://127.0.0.1:$hp/api/x && break; sleep 0.2; done
  h2load --h1 -n 2000 -c 8 -H ':authority: bench.example' http://127.0.0.1:$hp/api/x >/dev/null 2>&1
  sleep 0.5; base=$(rss $pid)
  port=$hp; [ -n "$tls" ] && port=$sp
  python3 $here/idle-hold.py $port $n $([ -n "$tls" ] && echo 1 || echo 0) 6 > $w/hold.out 2>&1 & hp2=$!
  for i in $(seq 300); do grep -q held $w/hold.out && break; sleep 0.2; done
  sleep 1; idle=$(rss $pid); echo "estab: $(ss -tn state established "( sport = :$port )" | wc -l)"
  wait $hp2
  echo "$name ${tls:-plain} $n conns: base $base KiB idle $idle KiB -> $(python3 -c "print(round(($idle-$base)/$n,2))") KiB/conn ($(cat $w/hold.out))"
  kill -INT $pid; wait $pid 2>/dev/null
done
kill $up; wait $up 2>/dev/null; rm -rf $w
