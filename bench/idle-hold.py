#!/usr/bin/env python3
# bench/idle-mem.sh: opens N keep-alive connections (TLS when the third argument is 1), one request
# each, prints "held N" and holds them for the given seconds.
import socket, sys, time, ssl
port, n, tls = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
ctx = None
if tls:
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if ctx: s = ctx.wrap_socket(s, server_hostname="bench.example")
    s.sendall(b"GET /api/x HTTP/1.1\r\nHost: bench.example\r\n\r\n")
    s.settimeout(10)
    if not s.recv(4096): sys.exit("closed")
    held.append(s)
print("held", len(held), flush=True)
time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 8)
