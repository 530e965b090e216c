#!/usr/bin/env python3
"""Which TLS handshakes a loopback capture holds, per connection (bench/instr.sh CAPTURE=1).

usage: tlsflows.py CAPTURE.pcap SERVER_PORT   (tcpdump -i lo -s 0 -w CAPTURE.pcap 'tcp port P')

Per connection to SERVER_PORT, from the server's plaintext handshake messages: the version the
ServerHello chose; for TLS 1.3 whether it accepted a PSK (pre_shared_key extension: resumed)
and whether it carries a key share (ECDHE with the PSK, or not); for TLS 1.2 whether the
session was resumed (no Certificate before ChangeCipherSpec) and whether a NewSessionTicket
was sent. Prints a tally with the server's encrypted records and bytes per connection (TLS
1.3 tickets are encrypted: count them with `openssl s_client -msg` instead). Connections
whose ServerHello is not in the capture are counted as `?`.
"""
import collections
import struct
import sys


def records(data):
    i = 0
    while i + 5 <= len(data):
        kind, _version, length = struct.unpack(">BHH", data[i : i + 5])
        yield kind, data[i + 5 : i + 5 + length]
        i += 5 + length


def extensions(body, i):
    end = i + 2 + struct.unpack(">H", body[i : i + 2])[0]
    i += 2
    out = {}
    while i + 4 <= end:
        kind, length = struct.unpack(">HH", body[i : i + 4])
        out[kind] = body[i + 4 : i + 4 + length]
        i += 4 + length
    return out


def handshake_kind(recs):
    for kind, body in recs:
        if kind != 22 or not body or body[0] != 2:  # ServerHello
            continue
        hello = body[4:]
        exts = extensions(hello, 35 + hello[34] + 3)  # random, session id, suite, compression
        if 43 in exts and struct.unpack(">H", exts[43][:2])[0] == 0x0304:
            return "TLS1.3 " + ("psk" if 41 in exts else "full") + ("+ecdhe" if 51 in exts else " psk_ke")
        types = []
        for kind2, body2 in recs:  # plaintext handshake messages: those before ChangeCipherSpec
            if kind2 == 20:
                break
            j = 0
            while kind2 == 22 and j + 4 <= len(body2):
                types.append(body2[j])
                j += 4 + int.from_bytes(body2[j + 1 : j + 4], "big")
        return "TLS1.2 " + ("full" if 11 in types else "resumed") + (" +ticket" if 4 in types else "")
    return "?"


def main():
    path, port = sys.argv[1], int(sys.argv[2])
    with open(path, "rb") as f:
        header = f.read(24)
        link = struct.unpack("<I", header[20:24])[0]
        offset = {1: 14, 113: 16, 276: 20, 0: 4}.get(link, 14)
        flows = collections.defaultdict(bytearray)  # client port -> server's bytes
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            length = struct.unpack("<IIII", h)[2]
            ip = f.read(length)[offset:]
            if not ip or ip[0] >> 4 != 4:
                continue
            tcp = ip[(ip[0] & 15) * 4 :]
            sport, dport = struct.unpack(">HH", tcp[:4])
            payload = tcp[(tcp[12] >> 4) * 4 :]
            if payload and sport == port:
                flows[dport] += payload
    tally, recs_n, bytes_n = collections.Counter(), collections.Counter(), collections.Counter()
    for data in flows.values():
        recs = list(records(bytes(data)))
        kind = handshake_kind(recs)
        tally[kind] += 1
        recs_n[kind] += sum(1 for k, _ in recs if k == 23)
        bytes_n[kind] += len(data)
    for kind, n in tally.most_common():
        print(f"{n:7d} {kind}: {recs_n[kind] / n:.2f} encrypted records and {bytes_n[kind] / n:.0f} bytes from the server per connection")


if __name__ == "__main__":
    main()
