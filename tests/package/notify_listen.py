#!/usr/bin/python3
"""notify_listen.py - the NOTIFY_SOCKET end of tests/package/test_deb.sh.

Binds SOCKET (mode 0666: the daemon runs as derper), then appends each
datagram it receives to LOG, one per line. When a datagram holds READY=1 it
first tries one HTTPS GET /generate_204 on 127.0.0.1:PORT (certificate not
verified, SNI derp.test as the test's certificate: only whether the port
answers matters) and writes "answered" or
"not answering" right after that datagram's line, so the test can tell that
READY=1 came only once the port served. Runs until killed.
Usage: notify_listen.py SOCKET PORT LOG
"""
import os
import socket
import ssl
import sys

path, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def answers():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
            with ctx.wrap_socket(raw, server_hostname="derp.test") as c:
                c.sendall(b"GET /generate_204 HTTP/1.1\r\nHost: derp.test\r\n\r\n")
                return c.recv(64).startswith(b"HTTP/1.1 204")
    except OSError:
        return False


s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(log, "a", buffering=1) as out:
    out.write("listening\n")
    while True:
        msg = s.recv(8192).decode(errors="replace")
        lines = msg.split("\n")
        out.write(" ".join(lines) + "\n")
        if "READY=1" in lines:
            out.write("answered\n" if answers() else "not answering\n")
