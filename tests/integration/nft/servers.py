#!/usr/bin/env python3
"""Listeners for test_nft_netns.sh, run inside the server namespace.

TCP "protected" and TCP "ssh-like" ports answer every connection with b"ok\n"
and close; the UDP port echoes each datagram. All bind [::] dual-stack, on
ports the kernel picks; they are written to argv[1] as "tcp=P udp=Q ssh=R"
(atomically, via rename) once listening. Runs until killed.

Stand-in for the derper daemon (DERP TLS on TCP, STUN on UDP) until the
integration test can start the real binary.
"""
import os
import selectors
import socket
import sys


def listener(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", 0))
    if kind == socket.SOCK_STREAM:
        s.listen(256)
    s.setblocking(False)
    return s


def main():
    out = sys.argv[1]
    sel = selectors.DefaultSelector()
    tcp, ssh, udp = listener(socket.SOCK_STREAM), listener(socket.SOCK_STREAM), listener(socket.SOCK_DGRAM)
    for s, what in ((tcp, "tcp"), (ssh, "tcp"), (udp, "udp")):
        sel.register(s, selectors.EVENT_READ, what)
    with open(out + ".tmp", "w") as f:
        f.write("tcp=%d udp=%d ssh=%d\n" % (tcp.getsockname()[1], udp.getsockname()[1], ssh.getsockname()[1]))
    os.rename(out + ".tmp", out)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            try:
                if key.data == "tcp":
                    conn, _ = s.accept()
                    conn.setblocking(True)
                    conn.settimeout(2)
                    conn.sendall(b"ok\n")
                    conn.close()
                else:
                    data, addr = s.recvfrom(2048)
                    s.sendto(data, addr)
            except (BlockingIOError, InterruptedError, ConnectionError, socket.timeout):
                pass


if __name__ == "__main__":
    main()
