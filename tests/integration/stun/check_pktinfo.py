#!/usr/bin/python3
"""check_pktinfo.py PORT VARZ_URL - run inside a network namespace whose
loopback holds 192.0.2.1, 192.0.2.2, 2001:db8::1 and 2001:db8::2, with the
daemon's STUN socket on the wildcard address of PORT. A request sent from
one of our addresses to another must be answered from the address it was
sent to (IP_PKTINFO / IPV6_PKTINFO), with the sender's address mapped; and
the daemon's stun_no_local_addr counter must stay 0. Exit 0 or 1 with the
reason on stderr."""
import os
import socket
import struct
import sys
import time
import urllib.request
import zlib

PORT = int(sys.argv[1])
VARZ = sys.argv[2]


def request():
    """Tailscale's 40-byte binding request: SOFTWARE "tailnode", FINGERPRINT."""
    txid = os.urandom(12)
    attrs = struct.pack("!HH", 0x8022, 8) + b"tailnode"
    hdr = struct.pack("!HHI", 0x0001, len(attrs) + 8, 0x2112A442) + txid
    crc = zlib.crc32(hdr + attrs) ^ 0x5354554E
    # The fingerprint covers the header with the final length.
    return hdr + attrs + struct.pack("!HHI", 0x8028, 4, crc), txid


def mapped(resp, txid, family):
    """The XOR-MAPPED-ADDRESS of a success response, as (ip, port)."""
    if len(resp) < 20 or resp[0:2] != b"\x01\x01" or resp[8:20] != txid:
        raise ValueError("not a binding success for our transaction")
    a = resp[20:]
    typ, alen = struct.unpack("!HH", a[:4])
    if typ != 0x0020:
        raise ValueError("first attribute 0x%04x, want XOR-MAPPED-ADDRESS" % typ)
    fam = a[5]
    port = struct.unpack("!H", a[6:8])[0] ^ 0x2112
    cookie = struct.pack("!I", 0x2112A442)
    if fam == 1:
        raw = bytes(x ^ y for x, y in zip(a[8:12], cookie))
        return socket.inet_ntop(socket.AF_INET, raw), port
    raw = bytes(x ^ y for x, y in zip(a[8:24], cookie + txid))
    ip = socket.inet_ntop(socket.AF_INET6, raw)
    if family == socket.AF_INET and ip.startswith("::ffff:"):
        ip = ip[7:]
    return ip, port


def ask(family, src, dst, tries=1):
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(1.0)
    for i in range(tries):
        pkt, txid = request()
        s.sendto(pkt, (dst, PORT))
        try:
            resp, frm = s.recvfrom(2048)
        except socket.timeout:
            continue
        got = mapped(resp, txid, family)
        s.close()
        return frm[0], got
    s.close()
    return None, None


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


# Readiness: the daemon answers on a single-address path first.
frm, _ = ask(socket.AF_INET, "127.0.0.1", "127.0.0.1", tries=50)
if frm is None:
    fail("no STUN answer on 127.0.0.1:%d" % PORT)

cases = [
    (socket.AF_INET, "192.0.2.1", "192.0.2.2"),
    (socket.AF_INET, "192.0.2.2", "192.0.2.1"),
    (socket.AF_INET, "127.0.0.1", "192.0.2.2"),
    (socket.AF_INET6, "2001:db8::1", "2001:db8::2"),
    (socket.AF_INET6, "2001:db8::2", "2001:db8::1"),
]
for family, src, dst in cases:
    frm, got = ask(family, src, dst, tries=3)
    if frm is None:
        fail("no answer to %s -> %s" % (src, dst))
    if frm != dst:
        fail("request %s -> %s answered from %s, want %s" % (src, dst, frm, dst))
    if got[0] != src:
        fail("request from %s mapped as %s" % (src, got[0]))
    print("ok: %s -> %s answered from %s, mapped %s:%d" % (src, dst, frm, got[0], got[1]))

varz = urllib.request.urlopen(VARZ, timeout=5).read().decode()
line = [l for l in varz.splitlines() if l.startswith("stun_no_local_addr ")]
if line != ["stun_no_local_addr 0"]:
    fail("/debug/varz stun_no_local_addr: %r, want 0" % line)
print("ok: stun_no_local_addr 0")
