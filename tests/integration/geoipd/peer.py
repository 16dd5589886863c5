#!/usr/bin/env python3
"""Client and helper listener for test_geoip_daemon.sh (network namespaces).

  peer.py ports N
      Print N distinct ports free for both TCP and UDP in this namespace.
  peer.py listen FILE
      An "SSH-like" TCP listener on [::] (dual-stack, port picked by the
      kernel) that answers every connection with b"ok\\n"; writes the port to
      FILE (atomically) once listening. Runs until killed.
  peer.py check TIMEOUT ITEM...
      Run every ITEM at once (threads) and compare with what it expects.
      ITEM = KIND,SRC,DST,PORT,EXPECT with KIND one of
        tls   TCP connect, TLS handshake, "GET /generate_204"; outcomes:
              open (got 204), silent (no answer to the SYN), closed (the
              server closed or reset the connection before sending a single
              byte), closed-after-N, timeout, refused, http-XXX, error-...
        stun  one RFC 5389 binding request (padded to 52 bytes); open (a success response with
              our transaction ID and XOR-MAPPED-ADDRESS == SRC) or silent
        tcp   connect and read b"ok\\n" (the listener above); open or silent
      Prints one line per item; exit 0 when every outcome is the expected one.
  peer.py loop STOPFILE MAXSECONDS ITEM...
      Repeat each ITEM (EXPECT is ignored: each attempt must be "open")
      back to back in its own thread until STOPFILE exists or MAXSECONDS
      pass. Prints "KIND SRC ok=N fail=M [outcomes]" per item; exit 0 when
      every item has ok > 0 and fail == 0. The TCP connect of an attempt
      must succeed within 0.9 s: a dropped SYN is retransmitted only after
      1 s (the initial RTO), so a drop cannot hide behind a retry. The rest
      of an attempt (TLS, HTTP, a STUN answer) gets 3 s.
"""
import os
import socket
import ssl
import struct
import sys
import threading
import time

CONNECT_TIMEOUT_LOOP = 0.9
MAGIC = 0x2112A442


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class Closed(Exception):
    pass


def tls_once(src, dst, port, timeout, connect_timeout=None):
    s = socket.socket(family(dst), socket.SOCK_STREAM)
    rx = 0
    try:
        s.bind((src, 0))
        s.settimeout(connect_timeout or timeout)
        try:
            s.connect((dst, port))
        except socket.timeout:
            return "silent"
        except ConnectionRefusedError:
            return "refused"
        s.settimeout(timeout)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inb, outb, server_side=False)

        def flush():
            data = outb.read()
            if data:
                s.sendall(data)

        def fill():
            nonlocal rx
            data = s.recv(16384)
            if not data:
                raise Closed()
            rx += len(data)
            inb.write(data)

        try:
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    fill()
            flush()
            obj.write(b"GET /generate_204 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % dst.encode())
            flush()
            resp = b""
            while b"\r\n" not in resp:
                try:
                    chunk = obj.read(4096)
                    if not chunk:
                        break
                    resp += chunk
                except ssl.SSLWantReadError:
                    fill()
                except ssl.SSLZeroReturnError:
                    break
        except (Closed, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            return "closed" if rx == 0 else "closed-after-%d" % rx
        except socket.timeout:
            return "timeout"
        parts = resp.split(b" ", 2)
        if len(parts) >= 2 and parts[1] == b"204":
            return "open"
        return "http-%s" % (parts[1].decode(errors="replace") if len(parts) >= 2 else "none")
    except OSError as e:
        return "error-%s" % (e.__class__.__name__,)
    finally:
        s.close()


def stun_once(src, dst, port, timeout):
    s = socket.socket(family(dst), socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        s.settimeout(timeout)
        txid = os.urandom(12)
        # Padded with SOFTWARE to 52 bytes: derper answers a generic
        # request only when it is at least as long as the answer (40
        # bytes for IPv4, 52 for IPv6), so it never amplifies.
        sw = b"derper-geoipd-probe-padding!"
        attr = struct.pack("!HH", 0x8022, len(sw)) + sw
        s.sendto(struct.pack("!HHI", 0x0001, len(attr), MAGIC) + txid + attr, (dst, port))
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "silent"
            s.settimeout(left)
            try:
                data, _ = s.recvfrom(2048)
            except socket.timeout:
                return "silent"
            if len(data) < 20:
                continue
            mtype, mlen, cookie = struct.unpack("!HHI", data[:8])
            if cookie != MAGIC or data[8:20] != txid:
                continue
            if mtype != 0x0101:
                return "stun-type-%04x" % mtype
            return "open" if xor_mapped(data[20:20 + mlen], txid) == src else "stun-wrong-address"
    except OSError as e:
        return "error-%s" % (e.__class__.__name__,)
    finally:
        s.close()


def xor_mapped(attrs, txid):
    """The XOR-MAPPED-ADDRESS of a binding response, as text, or None."""
    i = 0
    while i + 4 <= len(attrs):
        atype, alen = struct.unpack("!HH", attrs[i:i + 4])
        val = attrs[i + 4:i + 4 + alen]
        if atype == 0x0020 and len(val) >= 8:
            fam = val[1]
            key = struct.pack("!I", MAGIC)
            if fam == 1:
                ip = bytes(a ^ b for a, b in zip(val[4:8], key))
                return socket.inet_ntop(socket.AF_INET, ip)
            if fam == 2 and len(val) >= 20:
                ip = bytes(a ^ b for a, b in zip(val[4:20], key + txid))
                return socket.inet_ntop(socket.AF_INET6, ip)
        i += 4 + ((alen + 3) & ~3)
    return None


def tcp_once(src, dst, port, timeout):
    s = socket.socket(family(dst), socket.SOCK_STREAM)
    try:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.connect((dst, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(16)
            if not chunk:
                break
            data += chunk
        return "open" if data == b"ok\n" else "bad-reply"
    except socket.timeout:
        return "silent"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "error-%s" % (e.__class__.__name__,)
    finally:
        s.close()


def run(kind, src, dst, port, timeout, loop=False):
    if kind == "tls":
        return tls_once(src, dst, port, timeout, CONNECT_TIMEOUT_LOOP if loop else None)
    if kind == "stun":
        # A dropped datagram is never answered, however long we wait: no
        # need for the tight connect timeout here.
        return stun_once(src, dst, port, timeout)
    if kind == "tcp":
        return tcp_once(src, dst, port, CONNECT_TIMEOUT_LOOP if loop else timeout)
    return "bad-kind"


def parse(item):
    kind, src, dst, port, expect = item.split(",")
    return kind, src, dst, int(port), expect


def cmd_check(timeout, items):
    results = [None] * len(items)

    def one(i):
        kind, src, dst, port, _ = parse(items[i])
        results[i] = run(kind, src, dst, port, timeout)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = True
    for item, got in zip(items, results):
        kind, src, dst, port, expect = parse(item)
        good = got == expect
        ok = ok and good
        print("  %s %-4s %s -> %s port %d: %s (expected %s)"
              % ("ok  " if good else "BAD ", kind, src, dst, port, got, expect))
    return 0 if ok else 1


def cmd_loop(stop, maxs, items):
    deadline = time.monotonic() + maxs
    stats = [None] * len(items)

    def one(i):
        kind, src, dst, port, _ = parse(items[i])
        ok = fail = 0
        seen = {}
        while not os.path.exists(stop) and time.monotonic() < deadline:
            got = run(kind, src, dst, port, 3.0, loop=True)
            time.sleep(0.005)  # steady traffic, not a flood
            if got == "open":
                ok += 1
            else:
                fail += 1
                seen[got] = seen.get(got, 0) + 1
        stats[i] = (ok, fail, seen)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    good = True
    for item, (ok, fail, seen) in zip(items, stats):
        kind, src, dst, port, _ = parse(item)
        print("%s %s port %d: ok=%d fail=%d%s" % (kind, src, port, ok, fail,
                                                  (" " + repr(seen)) if seen else ""))
        good = good and ok > 0 and fail == 0
    return 0 if good else 1


def cmd_listen(out):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", 0))
    s.listen(64)
    with open(out + ".tmp", "w") as f:
        f.write("%d\n" % s.getsockname()[1])
    os.rename(out + ".tmp", out)
    while True:
        conn, _ = s.accept()
        try:
            conn.settimeout(2)
            conn.sendall(b"ok\n")
        except OSError:
            pass
        conn.close()


def cmd_ports(n):
    """n ports free for both TCP and UDP on [::] (dual-stack), all distinct."""
    found, held = [], []
    while len(found) < n:
        t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        t.bind(("::", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            u.bind(("::", port))
        except OSError:
            t.close()
            u.close()
            continue
        held += [t, u]
        found.append(port)
    for s in held:
        s.close()
    print(" ".join(str(p) for p in found))
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "check":
        return cmd_check(float(sys.argv[2]), sys.argv[3:])
    if cmd == "loop":
        return cmd_loop(sys.argv[2], float(sys.argv[3]), sys.argv[4:])
    if cmd == "listen":
        return cmd_listen(sys.argv[2])
    if cmd == "ports":
        return cmd_ports(int(sys.argv[2]))
    print("usage: see the docstring", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
