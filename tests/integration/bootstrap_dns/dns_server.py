#!/usr/bin/python3
"""dns_server.py - a tiny authoritative DNS responder for
test_bootstrap_dns.sh, on 127.0.0.1:53 (UDP) inside the test's network
namespace only. Answers A and TXT from the zone below; AAAA of a known name
is an empty NOERROR answer, anything else NXDOMAIN. Writes "ready" to the
file named by argv[1] once bound. Standard library only."""
import socket
import struct
import sys

A = {
    "pub.test": ["198.51.100.1"],
    "half.test": ["198.51.100.2"],
    "zero.test": ["198.51.100.3"],
    "full.test": ["198.51.100.4"],
    "none.test": ["198.51.100.5"],
    "bad.test": ["198.51.100.6"],
    "joined.test": ["198.51.100.7"],
    "multi.test": ["198.51.100.8"],
    "plain.test": ["198.51.100.9", "198.51.100.10"],
}
# Each TXT record is a list of character-strings; a name may have several.
TXT = {
    "half-pct.test": [["50"]],
    "zero-pct.test": [["0"]],
    "full-pct.test": [["100"]],
    "bad-pct.test": [["lots"]],
    "joined-pct.test": [["3", "0"]],  # one record of two strings: "30"
    "multi-pct.test": [["70"], ["junk"]],  # the last valid value counts
}


def parse_question(msg):
    labels, i = [], 12
    while msg[i]:
        n = msg[i]
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace").lower())
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", msg[i + 1:i + 5])
    return ".".join(labels), qtype, qclass, msg[12:i + 5]


def rr(rtype, rdata):
    # The owner name points at the question (offset 12).
    return struct.pack("!HHHIH", 0xC00C, rtype, 1, 60, len(rdata)) + rdata


def answer(msg):
    name, qtype, _, question = parse_question(msg)
    known = name in A or name in TXT
    answers = []
    if qtype == 1 and name in A:
        answers = [rr(1, socket.inet_aton(ip)) for ip in A[name]]
    elif qtype == 16 and name in TXT:
        for strings in TXT[name]:
            data = b"".join(bytes([len(s)]) + s.encode() for s in strings)
            answers.append(rr(16, data))
    rcode = 0 if known else 3
    flags = 0x8400 | (msg[2] & 0x01) << 8 | rcode  # QR AA, RD copied
    head = struct.pack("!HHHHHH", struct.unpack("!H", msg[:2])[0], flags, 1, len(answers), 0, 0)
    return head + question + b"".join(answers)


def main():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    with open(sys.argv[1], "w") as f:
        f.write("ready\n")
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(msg), peer)
        except (IndexError, struct.error):
            pass  # not a query we understand: no answer


main()
