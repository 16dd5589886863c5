#!/usr/bin/env python3
"""Client side of test_nft_netns.sh, run inside the client namespace.

  client.py tcp|udp SRC DST PORT [TIMEOUT]
      One TCP connection (expects b"ok\\n") or one UDP datagram (expects the
      echo) from source address SRC. Exit 0 on an answer, 1 without one.
  client.py loop tcp|udp SRC DST PORT STOPFILE MAXSECONDS
      Repeat the exchange back to back until STOPFILE exists or MAXSECONDS
      pass. Each attempt must be answered within 0.9 s: a dropped TCP SYN is
      retransmitted only after 1 s (the initial RTO), so a drop cannot hide
      behind a retry, while a busy machine gets some slack.
      Prints "ok=N fail=M"; exit 0 when M == 0 and N > 0.
"""
import os
import socket
import sys
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def once(proto, src, dst, port, timeout):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family(dst), kind)
    try:
        s.settimeout(timeout)
        s.bind((src, 0))
        if proto == "tcp":
            s.connect((dst, port))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(16)
                if not chunk:
                    break
                data += chunk
            return data == b"ok\n"
        token = os.urandom(16)
        s.sendto(token, (dst, port))
        while True:
            data, _ = s.recvfrom(2048)
            if data == token:
                return True
    except OSError:
        return False
    finally:
        s.close()


def main():
    if sys.argv[1] == "loop":
        proto, src, dst, port, stop, maxs = sys.argv[2:8]
        deadline = time.monotonic() + float(maxs)
        ok = fail = 0
        while not os.path.exists(stop) and time.monotonic() < deadline:
            if once(proto, src, dst, int(port), 0.9):
                ok += 1
            else:
                fail += 1
        print("ok=%d fail=%d" % (ok, fail))
        sys.exit(0 if fail == 0 and ok > 0 else 1)
    proto, src, dst, port = sys.argv[1:5]
    timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 2.0
    sys.exit(0 if once(proto, src, dst, int(port), timeout) else 1)


if __name__ == "__main__":
    main()
