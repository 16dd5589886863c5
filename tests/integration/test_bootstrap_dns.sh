#!/bin/bash
# test_bootstrap_dns.sh - -unpublished-bootstrap-dns-names with rollout TXT
# records (name/txtname), served by a real DNS server through glibc's
# resolver, judged by Go's math/rand/v2.
#
# In a mount and network namespace the test creates (unshare -m -n): a
# resolv.conf naming 127.0.0.1 is bind-mounted over /etc/resolv.conf (in
# that namespace only), a small DNS responder (bootstrap_dns/dns_server.py)
# answers A and TXT records on 127.0.0.1:53, and 198.18.0.0/16 is local to
# loopback so clients can come from 200 addresses. The daemon resolves the
# names at startup; bootstrap_dns/check_rollout.py asks /bootstrap-dns?q=
# from every address and compares each answer with what Go's PCG says for
# that address (bootstrap_dns/percentile.go, run with the local Go), checks
# the loopback coin toss, the published map and the varz counters.
#
# Needs root, util-linux (unshare), iproute2, python3 and Go >= 1.22;
# DERPER_BIN and DERPER_SRC (ctest).
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

here=${DERPER_SRC:-}/tests/integration/bootstrap_dns

if [ "${1:-}" = --inside ]; then
	# In the new namespaces: $2 is the work dir.
	WORK=$2
	mount --make-rprivate / || fail "mount --make-rprivate /"
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:2\n' >"$WORK/resolv.conf"
	mount --bind "$WORK/resolv.conf" /etc/resolv.conf || fail "bind-mount resolv.conf"
	ip link set lo up || fail "lo up"
	ip route add local 198.18.0.0/16 dev lo || fail "local route for the client addresses"
	/usr/bin/python3 "$here/dns_server.py" "$WORK/dns.ready" 2>"$WORK/dns.err" &
	DNS=$!
	for _ in $(seq 100); do
		[ -s "$WORK/dns.ready" ] && break
		kill -0 "$DNS" 2>/dev/null || { cat "$WORK/dns.err" >&2; fail "DNS responder died"; }
		sleep 0.05 # polling for the responder's ready file
	done
	[ -s "$WORK/dns.ready" ] || fail "DNS responder not ready"
	printf '[log]\nlevel = debug\n' >"$WORK/derper.ini"
	"$DERPER_BIN" -a 127.0.0.1:3340 -c "$WORK/derper.key" -config "$WORK/derper.ini" \
		-stun-port 3478 -bootstrap-dns-names pub.test,gone.test \
		-unpublished-bootstrap-dns-names \
		half.test/half-pct.test,zero.test/zero-pct.test,full.test/full-pct.test,none.test/missing-pct.test,bad.test/bad-pct.test,joined.test/joined-pct.test,multi.test/multi-pct.test,plain.test,gone.test/half-pct.test \
		>"$WORK/out" 2>&1 &
	PID=$!
	rc=0
	/usr/bin/python3 "$here/check_rollout.py" 3340 "$WORK/percentiles" || rc=1
	kill "$PID"
	wait "$PID" || { rc=1; echo "daemon exited non-zero on SIGTERM" >&2; }
	kill "$DNS"
	if [ "$rc" != 0 ] || grep -q Sanitizer "$WORK/out"; then
		echo "--- daemon output" >&2
		cat "$WORK/out" >&2
		fail "bootstrap DNS rollout"
	fi
	grep -q 'TXT lookup missing-pct.test' "$WORK/out" || fail "no log line for the missing TXT record"
	exit 0
fi

[ "$(id -u)" = 0 ] || fail "must run as root (creates mount and network namespaces)"
command -v unshare >/dev/null || fail "unshare not found: apt-get install util-linux"
command -v ip >/dev/null || fail "ip not found: apt-get install iproute2"
[ -x /usr/bin/python3 ] || fail "/usr/bin/python3 is missing (scripts/deps.sh --test installs python3)"
[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || fail "go not found: install Go >= 1.22 (https://go.dev/dl/, e.g. into /usr/local/go)"

WORK=$(mktemp -d /tmp/derper-bootstrap-dns.XXXXXX) || fail "mktemp"
trap 'rm -rf "$WORK"' EXIT

# 200 client addresses; their percentiles from Go itself.
addrs=()
for i in $(seq 0 199); do
	addrs+=("198.18.$((i / 50)).$((i % 50 * 5 + 1))")
done
GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go run "$here/percentile.go" "${addrs[@]}" \
	>"$WORK/percentiles" || fail "go run percentile.go"
[ "$(wc -l <"$WORK/percentiles")" = 200 ] || fail "percentile.go printed $(wc -l <"$WORK/percentiles") lines"

unshare -m -n bash "$0" --inside "$WORK" || exit 1
echo "bootstrap DNS: rollout by TXT record matches Go for 200 clients"
