#!/bin/bash
# test_manpages.sh - man/derper.8 and man/derper.ini.5 against the code:
# mandoc -Tlint must be clean; the keys derper --dump-config prints (the key
# table) and the keys derper.ini.5 documents must be the same set, in both
# directions; each key's documented default and SIGHUP policy must match
# src/core/config_keys.c; every flag of derper -h must be named in
# derper.8; cmake --install must put both pages under share/man.
# Needs: DERPER_BIN, DERPER_SRC, DERPER_BUILD (ctest sets them); mandoc,
# python3 (scripts/deps.sh --test installs them).
set -u

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

[ -x "${DERPER_BIN:-}" ] || fail "DERPER_BIN is not an executable (run through ctest)"
[ -n "${DERPER_SRC:-}" ] || fail "DERPER_SRC is not set (run through ctest)"
[ -n "${DERPER_BUILD:-}" ] || fail "DERPER_BUILD is not set (run through ctest)"
command -v mandoc >/dev/null || fail "mandoc is missing: apt-get install mandoc (scripts/deps.sh --test)"
command -v python3 >/dev/null || fail "python3 is missing"
page8=$DERPER_SRC/man/derper.8
page5=$DERPER_SRC/man/derper.ini.5
[ -r "$page8" ] && [ -r "$page5" ] || fail "man/derper.8 or man/derper.ini.5 missing"

tmp=$(mktemp -d /tmp/derper-test-man.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# 1. mandoc -Tlint: no message at all, style included.
for p in "$page8" "$page5"; do
	out=$(mandoc -Tlint -Wstyle "$p" 2>&1) || fail "mandoc -Tlint $p: $out"
	[ -z "$out" ] || fail "mandoc -Tlint $p: $out"
done

# 2. The key table as the binary prints it (dev mode needs no file or key).
"$DERPER_BIN" -dev --dump-config >"$tmp/dump.ini" 2>"$tmp/dump.err" ||
	fail "derper -dev --dump-config failed: $(cat "$tmp/dump.err")"
"$DERPER_BIN" -h >"$tmp/usage.txt" 2>&1 || fail "derper -h failed"

python3 - "$tmp/dump.ini" "$page5" "$DERPER_SRC/src/core/config_keys.c" \
	"$tmp/usage.txt" "$page8" <<'PY' || exit 1
import re, sys

dump, page5, keys_c, usage, page8 = sys.argv[1:]
bad = []

# Keys of --dump-config: "[section]" then "key = ..." (or "; key = ... (the
# default)" for certmode when it was not given: config_dump).
table = []
sec = None
for line in open(dump):
    m = re.match(r'^\[(\w+)\]$', line.strip())
    if m:
        sec = m.group(1)
        continue
    m = re.match(r'^(?:; )?(\w+) =', line)
    if m and sec:
        table.append((sec, m.group(1)))
if len(table) < 10:
    bad.append("derper --dump-config printed only %d keys" % len(table))

# Keys of derper.ini.5: ".SH [section]" then ".TP" / ".B key" / "Type:" /
# "Default:" / "SIGHUP:" / "Flag:" lines up to ".br".
doc = {}
lines = open(page5).read().split('\n')
sec = None
for i, line in enumerate(lines):
    m = re.match(r'^\.SH \[(\w+)\]$', line)
    if m:
        sec = m.group(1)
        continue
    if line.startswith('.SH '):
        sec = None
    if sec and line == '.TP' and i + 1 < len(lines):
        m = re.match(r'^\.B (\w+)$', lines[i + 1])
        if not m:
            continue
        text = []
        for l in lines[i + 2:]:
            if l == '.br' or l.startswith('.'):
                break
            text.append(l)
        text = ' '.join(text)
        key = (sec, m.group(1))
        if key in doc:
            bad.append("derper.ini.5 documents [%s] %s twice" % key)
        d = re.search(r'Default: (.*?)\. SIGHUP: (reloaded|restart)\. Flag: (.*?)\.$', text)
        if not text.startswith('Type: ') or not d:
            bad.append("derper.ini.5 [%s] %s: no 'Type: ... Default: ... SIGHUP: ... Flag: ...' "
                       "lines after .B" % key)
            continue
        doc[key] = (d.group(1).replace('\\-', '-'), d.group(2) == 'reloaded',
                    d.group(3).replace('\\-', '-'))

for k in table:
    if k not in doc:
        bad.append("[%s] %s is in the key table (derper --dump-config) but not in derper.ini.5" % k)
for k in doc:
    if k not in table:
        bad.append("[%s] %s is in derper.ini.5 but not in the key table" % k)

# Defaults, reload policy and flag from the table's source rows.
src = open(keys_c).read()
start = src.index('config_rows[] = {')
body = src[start:src.index('};', start)]
row_re = re.compile(r'\{\s*"(\w+)",\s*"(\w+)",\s*T\(\w+\),\s*OFF\(\w+\),\s*(NULL|"[^"]*"),\s*'
                    r'(true|false),\s*(?:true|false),\s*(?:true|false),\s*[^,]+,\s*[^,]+,\s*'
                    r'(NULL|"[^"]*")\s*\}')
rows = row_re.findall(body)
if len(rows) != len(table):
    bad.append("parsed %d rows from config_keys.c but --dump-config printed %d keys"
               % (len(rows), len(table)))
for sec, key, default, reload, flag in rows:
    if (sec, key) not in doc:
        continue
    ddef, dreload, dflag = doc[(sec, key)]
    if default != 'NULL':
        want = default.strip('"') or 'empty'
        if ddef != want:
            bad.append("[%s] %s: derper.ini.5 says default %r, the table %r" % (sec, key, ddef, want))
    if dreload != (reload == 'true'):
        bad.append("[%s] %s: derper.ini.5 says SIGHUP %s, the table reloadable=%s"
                   % (sec, key, 'reloaded' if dreload else 'restart', reload))
    want = 'none' if flag == 'NULL' else '-' + flag.strip('"')
    if dflag != want:
        bad.append("[%s] %s: derper.ini.5 says flag %r, the table %r" % (sec, key, dflag, want))

# Every flag of derper -h is named in derper.8 (as \-name).
p8 = open(page8).read().replace('\\-', '-')
for line in open(usage):
    m = re.match(r'^  -([\w-]+)', line)
    if m and not re.search(r'(?<![\w-])-{1,2}%s(?![\w-])' % re.escape(m.group(1)), p8):
        bad.append("flag -%s (derper -h) is not in derper.8" % m.group(1))

for b in bad:
    print("FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# 3. cmake --install puts the pages under share/man (DESTDIR: nothing
# touches the machine's /etc or /usr).
DESTDIR=$tmp/root cmake --install "$DERPER_BUILD" --prefix /usr >"$tmp/install.log" 2>&1 ||
	fail "cmake --install failed: $(cat "$tmp/install.log")"
for f in usr/share/man/man8/derper.8 usr/share/man/man5/derper.ini.5; do
	[ -f "$tmp/root/$f" ] || fail "cmake --install did not install /$f"
done
echo "PASS: man pages lint clean, match the key table and the flags, and install"
