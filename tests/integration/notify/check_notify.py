#!/usr/bin/python3
"""check_notify.py - the real daemon against a NOTIFY_SOCKET this script binds.

Starts DERPER_BIN on loopback (free ports, an empty config file, a key in a
temp dir) with NOTIFY_SOCKET and WATCHDOG_USEC set, and checks the systemd
notification protocol end to end:
  - READY=1 arrives, and when it does the DERP port already answers HTTP;
  - WATCHDOG=1 arrives every half WATCHDOG_USEC;
  - SIGHUP gives RELOADING=1 with a MONOTONIC_USEC taken after the signal,
    then READY=1;
  - SIGTERM gives STOPPING=1 and the daemon exits 0.
Usage: check_notify.py DERPER_BIN TMPDIR. Loopback only.
"""
import os
import signal
import socket
import subprocess
import sys
import time

derper, tmp = sys.argv[1], sys.argv[2]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_answers(port):
    """True when GET /generate_204 on the DERP port gets a 204."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
            c.sendall(b"GET /generate_204 HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return c.recv(64).startswith(b"HTTP/1.1 204")
    except OSError:
        return False


sock_path = os.path.join(tmp, "notify.sock")
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind(sock_path)

tcp, udp = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
ini = os.path.join(tmp, "derper.ini")
open(ini, "w").close()
env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="400000")
env.pop("WATCHDOG_PID", None)
log = open(os.path.join(tmp, "derper.log"), "w")
proc = subprocess.Popen([derper, "-config", ini, "-a", "127.0.0.1:%d" % tcp,
                         "-stun-port", str(udp), "-c", os.path.join(tmp, "derper.key"),
                         "-workers", "2"], env=env, stdout=log, stderr=log)


def daemon_log():
    log.flush()
    return open(os.path.join(tmp, "derper.log")).read()


def next_msg(timeout, skip_watchdog=True):
    """The next datagram (WATCHDOG=1 skipped unless asked), or fail."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("no notification within %.0fs; daemon log:\n%s" % (timeout, daemon_log()))
        ns.settimeout(left)
        try:
            m = ns.recv(8192).decode()
        except socket.timeout:
            continue
        if skip_watchdog and m == "WATCHDOG=1":
            continue
        return m


try:
    # 1. READY=1 only once the port answers.
    m = next_msg(60)
    if "READY=1" not in m.split("\n"):
        fail("first notification is not READY=1: %r" % m)
    if not port_answers(tcp):
        fail("READY=1 arrived but 127.0.0.1:%d does not answer /generate_204" % tcp)
    if "STATUS=serving" not in m:
        fail("READY=1 without a STATUS=serving line: %r" % m)

    # 2. The watchdog: 400 ms interval -> one every 200 ms.
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < 1.0:
        if next_msg(2, skip_watchdog=False) == "WATCHDOG=1":
            n += 1
    if n < 3:
        fail("%d WATCHDOG=1 in 1 s with WATCHDOG_USEC=400000 (want >= 3)" % n)

    # 3. SIGHUP: RELOADING=1 + MONOTONIC_USEC, then READY=1.
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    proc.send_signal(signal.SIGHUP)
    m = next_msg(30)
    lines = m.split("\n")
    if "RELOADING=1" not in lines:
        fail("after SIGHUP the first notification is not RELOADING=1: %r" % m)
    usec = [l for l in lines if l.startswith("MONOTONIC_USEC=")]
    if not usec or int(usec[0].split("=", 1)[1]) < before:
        fail("RELOADING=1 without a MONOTONIC_USEC after the signal (%d): %r" % (before, m))
    m = next_msg(30)
    if "READY=1" not in m.split("\n"):
        fail("after RELOADING=1 the next notification is not READY=1: %r" % m)
    if not port_answers(tcp):
        fail("the port stopped answering after the reload")

    # 4. SIGTERM: STOPPING=1, exit 0.
    proc.send_signal(signal.SIGTERM)
    m = next_msg(30)
    if "STOPPING=1" not in m.split("\n"):
        fail("after SIGTERM the notification is not STOPPING=1: %r" % m)
    rc = proc.wait(60)
    if rc != 0:
        fail("daemon exited %d after SIGTERM; log:\n%s" % (rc, daemon_log()))
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
print("PASS: READY=1 after the port answers, WATCHDOG=1, RELOADING=1 then READY=1, STOPPING=1")
