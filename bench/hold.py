#!/usr/bin/env python3
# bench/run memory run: opens N keep-alive connections to 127.0.0.1:PORT, one request each, then
# holds them (touching READY_FILE once all are open) until killed or 10 minutes pass.
import socket, sys, time
port, n, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    s.settimeout(10)
    if not s.recv(4096):
        sys.exit("closed before answering")
    held.append(s)
open(ready, "w").close()
time.sleep(600)
