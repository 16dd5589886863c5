#!/bin/bash
# test_notify_daemon.sh - the real daemon speaks the systemd notification
# protocol (src/core/notify.c) to a socket the test binds: READY=1 only once
# the DERP port answers, WATCHDOG=1, RELOADING=1 then READY=1 on SIGHUP,
# STOPPING=1 on SIGTERM. The work is in notify/check_notify.py. Loopback only.
# Needs: DERPER_BIN, DERPER_SRC (ctest sets them), /usr/bin/python3.
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 is missing (scripts/deps.sh --test installs python3)"

tmp=$(mktemp -d /tmp/derper-test-notify.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 "$DERPER_SRC/tests/integration/notify/check_notify.py" "$DERPER_BIN" "$tmp"
