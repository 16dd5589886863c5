#!/usr/bin/env python3
"""Write the seed corpora in fuzz/corpus/<harness>/ (run from anywhere).

Seeds are real inputs, built here rather than captured so each is readable
and reproducible: DERP frames and ClientInfo JSON as Tailscale clients send
them, STUN requests as net/stun and RFC 5769 build them, HTTP heads of the
DERP/WebSocket upgrade and the small endpoints, masked WebSocket frames as a
browser sends them, INI configs and Go derper key files. The generated files
are committed; rerun this after changing it (it rewrites the directories).
"""
import os
import shutil
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
corpora = {}


def seed(harness, name, data):
    if isinstance(data, str):
        data = data.encode()
    corpora.setdefault(harness, {})[name] = data


# ---------------------------------------------------------------- derp_frame
MESH_HEX = bytes(range(32)).hex()
MAGIC = b"DERP\xf0\x9f\x94\x91"


def frame(ftype, payload):
    return struct.pack(">BI", ftype, len(payload)) + payload


seed("derp_frame", "client_info_min.json", '{"version":2}')
seed("derp_frame", "client_info_full.json",
     '{"version":2,"meshKey":"%s","CanAckPings":true,"IsProber":true,'
     '"AppName":"tailscaled"}' % MESH_HEX)
seed("derp_frame", "client_info_null.json", "null")
seed("derp_frame", "client_info_folds.json",
     '{"VERSION":1,"\u212aey":1,"canackpings":null,"appName":"caf\\u00e9 \\u0000\\u001b[31m",'
     '"ver\u017fion":3}')
seed("derp_frame", "client_info_bad_mesh.json", '{"meshKey":"zz%s"}' % MESH_HEX[2:])
seed("derp_frame", "client_info_types.json", '{"version":2.0,"isProber":"yes"}')
seed("derp_frame", "frame_client_info.bin",
     frame(0x02, b'{"version":2,"CanAckPings":true}'))
seed("derp_frame", "frame_server_key.bin", frame(0x01, MAGIC + bytes(32)))
seed("derp_frame", "frame_send_packet.bin", frame(0x04, bytes(range(32)) + b"hello"))
seed("derp_frame", "frame_keepalive.bin", frame(0x06, b""))
seed("derp_frame", "frame_huge_len.bin", b"\x04\xff\xff\xff\xff")
# PeerPresent as a mesh watcher gets it: v1.102 (key, IPv4-mapped address,
# port, flags) and v1.104 (then an AppName length byte and the name).
PRESENT = bytes(range(32)) + bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1]) + b"\x01\xbb"
seed("derp_frame", "frame_peer_present.bin", frame(0x09, PRESENT + b"\x01"))
seed("derp_frame", "frame_peer_present_app.bin", frame(0x09, PRESENT + b"\x01\x0atailscaled"))

# ---------------------------------------------------------------------- stun
COOKIE = struct.pack(">I", 0x2112A442)
TXID = bytes.fromhex("b7e7a701bc34d686fa87dfae")


def stun_attr(atype, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack(">HH", atype, len(value)) + value + b"\0" * pad


def stun_msg(attrs, fingerprint=True, mtype=0x0001, txid=TXID):
    body = b"".join(attrs)
    if not fingerprint:
        return struct.pack(">HH", mtype, len(body)) + COOKIE + txid + body
    head = struct.pack(">HH", mtype, len(body) + 8) + COOKIE + txid + body
    fp = (zlib.crc32(head) ^ 0x5354554E) & 0xFFFFFFFF
    return head + stun_attr(0x8028, struct.pack(">I", fp))


# net/stun.Request: SOFTWARE "tailnode" + FINGERPRINT, 40 bytes.
seed("stun", "tailscale_request.bin", stun_msg([stun_attr(0x8022, b"tailnode")]))
seed("stun", "tailscale_extra_attr.bin",
     stun_msg([stun_attr(0x8022, b"tailnode"), stun_attr(0x8029, bytes(8))]))
seed("stun", "generic_bare.bin", stun_msg([], fingerprint=False))
seed("stun", "generic_software_fp.bin", stun_msg([stun_attr(0x8022, b"STUN test client")]))
seed("stun", "generic_ice_controlled.bin",
     stun_msg([stun_attr(0x8022, b"STUN test client"), stun_attr(0x8029, bytes(range(8)))]))
# RFC 5769 2.1: authenticated ICE check (USERNAME + MESSAGE-INTEGRITY): refused.
seed("stun", "rfc5769_request.bin", bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a6836765920202000080014"
    "9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"))
seed("stun", "binding_success.bin", stun_msg([stun_attr(0x0020, b"\0\x01\xa1\x47\xe1\x12\xa6\x43")],
                                             mtype=0x0101))
seed("stun", "username.bin", stun_msg([stun_attr(0x0006, b"evtj:h6vY")]))

# ---------------------------------------------------------------------- http
def head(lines):
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


seed("http", "derp_upgrade.txt", head([
    "GET /derp HTTP/1.1", "Host: derp.example.net", "Connection: Upgrade",
    "Upgrade: DERP", "User-Agent: tailscale/1.102.5"]))
seed("http", "derp_fast_start.bin", head([
    "GET /derp HTTP/1.1", "Host: derp.example.net", "Connection: Upgrade",
    "Upgrade: DERP", "Derp-Fast-Start: 1", "Ideal-Node: 900b"])
    + frame(0x02, bytes(32 + 24) + b"sealed"))
seed("http", "websocket.txt", head([
    "GET /derp HTTP/1.1", "Host: derp.example.net:443", "Connection: Upgrade",
    "Upgrade: websocket", "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol: derp"]))
seed("http", "generate_204.txt", head([
    "GET /generate_204 HTTP/1.1", "Host: derp.example.net",
    "X-Tailscale-Challenge: abc-123.XYZ_"]))
seed("http", "probe_head.txt", head(["HEAD /derp/probe HTTP/1.1", "Host: derp.example.net"]))
seed("http", "latency_check.txt", head(["GET /derp/latency-check HTTP/1.0"]))
seed("http", "bootstrap_dns.txt", head([
    "GET /bootstrap-dns?q=controlplane.tailscale.com HTTP/1.1", "Host: derp.example.net"]))
seed("http", "bootstrap_dns_unpublished.txt", head([
    "GET /bootstrap-dns?x=%zz&q=log%2Eexample HTTP/1.1", "Host: derp.example.net"]))
seed("http", "debug_clients.txt", head([
    "GET /debug/clients/?app=tail+cat&app=&format=json&sort=-rx&limit=5 HTTP/1.1",
    "Host: derp.example.net"]))
seed("http", "robots.txt", head(["GET /robots.txt HTTP/1.1", "Host: a"]))
seed("http", "home_absolute_form.txt", head([
    "GET http://derp.example.net/?x=1 HTTP/1.1", "Host: derp.example.net"]))
seed("http", "acme_challenge.txt", head([
    "GET /.well-known/acme-challenge/LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0 HTTP/1.1",
    "Host: derp.example.net"]))
seed("http", "post_port80.txt", head([
    "POST /derp HTTP/1.1", "Host: derp.example.net", "Content-Length: 0"]))
seed("http", "connect.txt", head(["CONNECT derp.example.net:443 HTTP/1.1", "Host: x"]))
seed("http", "obs_fold_lf.txt",
     b"GET / HTTP/1.1\nHost: derp.example.net\nX-Long: a\n  folded\n\n")
seed("http", "two_hosts.txt", head(["GET / HTTP/1.1", "Host: a", "Host: b"]))
seed("http", "many_headers.txt", head(["GET / HTTP/1.1", "Host: a"]
                                       + ["X-H%d: %d" % (i, i) for i in range(31)]))
seed("http", "partial.txt", b"GET /derp HTTP/1.1\r\nHost: derp.exa")
# Longer than HTTP_MAX_HEADER_BYTES (-E2BIG); also lifts libFuzzer's default
# -max_len (the largest seed) above that limit.
seed("http", "too_long.txt", b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * 16500 + b"\r\n\r\n")

# ------------------------------------------------------------------------ ws
WS_MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def ws_frame(opcode, payload, fin=True, mask=WS_MASK):
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n <= 125:
        hdr = struct.pack(">BB", b0, 0x80 | n)
    elif n <= 0xFFFF:
        hdr = struct.pack(">BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack(">BBQ", b0, 0x80 | 127, n)
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return hdr + mask + masked


derp_in_ws = frame(0x04, bytes(range(32)) + b"payload")
seed("ws", "text_hello.bin", ws_frame(0x1, b"Hello"))
seed("ws", "binary_derp.bin", ws_frame(0x2, derp_in_ws))
seed("ws", "binary_256.bin", ws_frame(0x2, bytes(range(256))))
seed("ws", "binary_64k_hdr.bin", b"\x82\xff" + struct.pack(">Q", 65536) + WS_MASK + b"abc")
seed("ws", "fragmented.bin",
     ws_frame(0x2, b"Hel", fin=False) + ws_frame(0x9, b"ping") + ws_frame(0x0, b"lo"))
seed("ws", "close.bin", ws_frame(0x8, struct.pack(">H", 1000) + b"bye"))
seed("ws", "stream.bin", ws_frame(0x2, derp_in_ws) + ws_frame(0xA, b"") + ws_frame(0x2, b"x" * 200))
seed("ws", "unmasked.bin", b"\x82\x05Hello")
seed("ws", "rsv_bits.bin", b"\xc2\x85" + WS_MASK + b"Hello")
seed("ws", "top_bit_len.bin", b"\x82\xff\x80" + bytes(7) + WS_MASK)

# -------------------------------------------------------------------- config
src = os.path.join(os.path.dirname(ROOT), "..", "conf", "derper.ini")
with open(src, "rb") as f:
    shipped = f.read()
seed("config", "derper.ini", shipped)
# The shipped file with every commented-out default switched on (up to the
# closing example, which would set keys twice).
every = []
for line in shipped.split(b"\n"):
    if line.startswith(b"; Example"):
        break
    if line[:1] == b";" and line[1:2].isalpha() and b" =" in line:
        line = line[1:]
    every.append(line)
seed("config", "every_key.ini", b"\n".join(every) + b"\n")
seed("config", "small.ini", """\
; a relay with geo-IP enforcement
[server]
listen = :8443
hostname = "derp1.example.net"
workers = 2
home = blank
bootstrap_dns_names = a.example.net, b.example.net,
	c.example.net
tcp_keepalive_time = 1h30m
tcp_write_timeout = 2.5s

[stun]
enable = true
port = 3478
generic = no

[derp]
queue_depth = 64
handshake_timeout = 500ms

[log]
level = debug

[geoip]
mode = enforce
database = /var/lib/derper/GeoLite2-Country.mmdb
allow_countries = DE, FR,
	NL
allow_asns = 13335, 64512
allow_cidrs = 192.0.2.0/24, 2001:db8::/32
deny_cidrs = 198.51.100.7/32
allow_subdivisions = CN-GD
country_field = registered_country
unknown = allow
fail = closed
table = derper_test
max_shrink_percent = 25
""")
seed("config", "errors.ini", """\
[server]
listen = [::1
workers = -3
no_such_key = 1
tcp_keepalive_time = 10 parsecs
[nope]
x = y
[geoip]
allow_countries = XX, de, 12
allow_cidrs = 300.1.2.3/8
stray line without equals
""")
seed("config", "quotes_comments.ini",
     "# comment\n[server] ; inline\nhostname = \"x\" ; trailing\nhome = \"https://e.net/a;b\"\n"
     "\n[tls]\nacme_eab_kid = \"kid\"\nacme_eab_key = secret\n")
seed("config", "long_line.ini", "[server]\nhostname = " + "h" * 250 + "\n")
# Regression: a value starting with ';' was dumped unquoted and read back
# as a comment (found by fuzz_config).
seed("config", "regress-dump-leading-semicolon.ini",
     '# comment\n[server] ; inline\nhostname =;b"\n\n[tls]\nacme_eab_kid = "kid"\n'
     'acme_eab_key = secret\n')

# ------------------------------------------------------------------- keyfile
PRIV = bytes(range(1, 33)).hex()
seed("keyfile", "go_derper.json", '{\n\t"PrivateKey": "privkey:%s"\n}' % PRIV)
seed("keyfile", "case_extra.json",
     '{"privatekey":"privkey:%s","Other":[1,2,{"x":null}]}' % PRIV.upper())
seed("keyfile", "bad_hex.json", '{"PrivateKey":"privkey:%sg"}' % PRIV[:-1])
seed("keyfile", "no_prefix.json", '{"PrivateKey":"%s"}' % PRIV)
seed("keyfile", "duplicate.json", '{"PrivateKey":"privkey:%s","PrivateKey":"x"}' % PRIV)
seed("keyfile", "not_object.json", '["privkey:%s"]' % PRIV)
seed("keyfile", "truncated.json", '{\n\t"PrivateKey": "privkey:%s' % PRIV[:20])
seed("keyfile", "empty.json", "")

# --------------------------------------------------------------- rate_config
# The Go derper's RateConfig JSON (-rate-config), as operators write it.
seed("rate_config", "go_derper.json",
     '{"PerClientRateLimitBytesPerSec": 500000, "PerClientRateBurstBytes": 1000000}')
seed("rate_config", "rate_only.json", '{"PerClientRateLimitBytesPerSec": 100}')
seed("rate_config", "case_null_extra.json",
     '{"perclientratelimitbytespersec": 70000, "PerClientRateBurstBytes": null, "X": [1, {}]}')
seed("rate_config", "negative.json", '{"PerClientRateLimitBytesPerSec": -1}')
seed("rate_config", "real.json", '{"PerClientRateLimitBytesPerSec": 7e0}')
seed("rate_config", "huge.json", '{"PerClientRateBurstBytes": 18446744073709551615}')
seed("rate_config", "not_object.json", '[500000]')
seed("rate_config", "truncated.json", '{"PerClientRateLimitBytesPerSec": 5')

# ---------------------------------------------------------------------- acme
# Documents as pebble v2.10 and Let's Encrypt send them (RFC 8555 7.1,
# RFC 7807, RFC 9773), plus a few broken ones.
CA = "https://localhost:14000"
seed("acme_directory", "pebble.json",
     '{"keyChange":"%s/rollover-account-key","meta":{"externalAccountRequired":false,'
     '"profiles":{"default":"The profile you know","shortlived":"A short-lived cert profile"},'
     '"termsOfService":"data:text/plain,Do%%20what%%20thou%%20wilt"},'
     '"newAccount":"%s/sign-me-up","newNonce":"%s/nonce-plz","newOrder":"%s/order-plz",'
     '"renewalInfo":"%s/draft-ietf-acme-ari-03/renewalInfo","revokeCert":"%s/revoke-cert"}'
     % ((CA,) * 6))
seed("acme_directory", "eab.json",
     '{"newNonce":"https://a/n","newAccount":"https://a/a","newOrder":"https://a/o",'
     '"meta":{"externalAccountRequired":true,"profiles":{}}}')
seed("acme_directory", "http_url.json",
     '{"newNonce":"http://a/n","newAccount":"https://a/a","newOrder":"https://a/o"}')
seed("acme_account", "valid.json",
     '{"status":"valid","contact":["mailto:ops@example.com"],"orders":"%s/list-orderz/1",'
     '"key":{"kty":"EC","crv":"P-256","x":"a","y":"b"}}' % CA)
seed("acme_account", "deactivated.json", '{"status":"deactivated"}')
seed("acme_problem", "bad_nonce.json",
     '{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid '
     'anti-replay nonce: \\"x\\"","status":400}')
seed("acme_problem", "rate_limited.json",
     '{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","status":429,'
     '"subproblems":[{"type":"urn:ietf:params:acme:error:malformed","identifier":'
     '{"type":"dns","value":"x"}}]}')
seed("acme_problem", "empty.json", "{}")
seed("acme_order", "pending.json",
     '{"status":"pending","expires":"2026-01-16T12:00:00Z","identifiers":[{"type":"dns",'
     '"value":"derp.example.com"},{"type":"ip","value":"192.0.2.1"}],'
     '"finalize":"%s/finalize-order/x","authorizations":["%s/authZ/a","%s/authZ/b"],'
     '"profile":"shortlived"}' % (CA, CA, CA))
seed("acme_order", "valid.json",
     '{"status":"valid","expires":"2026-01-16T12:00:00.123Z","identifiers":[{"type":"dns",'
     '"value":"d"}],"finalize":"%s/f","authorizations":["%s/a"],'
     '"certificate":"%s/certZ/1","notBefore":"2026-01-15T00:00:00+01:00"}' % (CA, CA, CA))
seed("acme_order", "invalid.json",
     '{"status":"invalid","identifiers":[],"finalize":"%s/f","authorizations":[],'
     '"error":{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no","status":403}}'
     % CA)
CHAL = ('{"type":"http-01","url":"%s/chalZ/1","token":"Xy_-9abc","status":"pending"}' % CA)
seed("acme_authz", "pending.json",
     '{"status":"pending","identifier":{"type":"dns","value":"d.example"},"challenges":[%s,'
     '{"type":"tls-alpn-01","url":"%s/chalZ/2","token":"t2","status":"pending"},'
     '{"type":"dns-01","url":"%s/chalZ/3","token":"t3","status":"pending"}],'
     '"expires":"2026-01-16T12:00:00Z","wildcard":false}' % (CHAL, CA, CA))
seed("acme_authz", "ip.json",
     '{"status":"valid","identifier":{"type":"ip","value":"2001:db8::1"},"challenges":[]}')
seed("acme_challenge", "pending.json", CHAL)
seed("acme_challenge", "invalid.json",
     '{"type":"http-01","url":"%s/chalZ/1","token":"t","status":"invalid","validated":'
     '"2026-01-15T00:00:00Z","error":{"type":"urn:ietf:params:acme:error:connection",'
     '"detail":"refused","status":400}}' % CA)
seed("acme_challenge", "traversal.json",
     '{"type":"http-01","url":"%s/c","token":"../../etc","status":"pending"}' % CA)
seed("acme_renewal_info", "window.json",
     '{"suggestedWindow":{"start":"2026-01-15T00:00:00Z","end":"2026-01-16T00:00:00Z"},'
     '"explanationURL":"https://ca/why"}')
seed("acme_renewal_info", "offset.json",
     '{"suggestedWindow":{"start":"2026-01-15T00:00:00.5+05:30","end":"2026-01-15T00:00:00-08:00"}}')
seed("acme_renewal_info", "backwards.json",
     '{"suggestedWindow":{"start":"2026-01-16T00:00:00Z","end":"2026-01-15T00:00:00Z"}}')

# nft_msg: requests the relay sends the nftables helper (geoip/nft_msg.h)
# and its replies.
def nft_req(op, sets):
    body = b""
    for fam, prefixes in sets:
        body += struct.pack(">B3xI", fam, len(prefixes))
        for addr, bits in prefixes:
            body += addr + bytes([bits])
    return struct.pack(">IBBHI", 0x444E5131, op, len(sets), 0, len(body)) + body


seed("nft_msg", "apply.bin", nft_req(1, [
    (4, [(bytes([10, 0, 0, 0]), 8), (bytes([81, 2, 69, 142]), 31)]),
    (6, [(bytes.fromhex("2a02d3c0" + "00" * 12), 29), (bytes.fromhex("fd00" + "00" * 13 + "01"), 128)])]))
seed("nft_msg", "apply_v4_only.bin", nft_req(1, [(4, [(bytes(4), 0)])]))
seed("nft_msg", "apply_empty.bin", nft_req(1, []))
seed("nft_msg", "remove.bin", nft_req(2, []))
seed("nft_msg", "host_bits.bin", nft_req(1, [(4, [(bytes([10, 0, 0, 1]), 8)])]))
seed("nft_msg", "wrong_family.bin", nft_req(1, [(5, [(bytes(4), 8)])]))
seed("nft_msg", "huge_count.bin", struct.pack(">IBBHI", 0x444E5131, 1, 1, 0, 8) +
     struct.pack(">B3xI", 4, 0xFFFFFFFF))
seed("nft_msg", "reply_ok.bin", struct.pack(">IiHH", 0x444E5231, 0, 0, 0))
seed("nft_msg", "reply_err.bin", struct.pack(">IiHH", 0x444E5231, -1, 23, 0) +
     b"Operation not permitted")

# tlsrec: scripts for fuzz_tlsrec.c (a suite byte, then ops: 0 client write
# (2-byte size), 1 key update (1 byte: odd = requested), 2 forward caught
# bytes (2-byte count), 3 forward with a bit flipped (2-byte count, 2-byte
# position), 4 server read (3-byte size), 5 server write (2-byte size)).
def tlsrec(suite, *ops):
    out = bytes([suite])
    for op in ops:
        out += bytes([op[0]]) + b"".join(struct.pack(">H", v) if w == 2 else
                                         struct.pack(">I", v)[1:] if w == 3 else bytes([v])
                                         for w, v in op[1:])
    return out


W = lambda n: (0, (2, n - 1))
FWD = lambda n: (2, (2, n - 1))
RD = lambda n: (4, (3, n - 1))
WR = lambda n: (5, (2, n - 1))
for suite, name in ((0, "aes128"), (1, "aes256"), (2, "chacha")):
    seed("tlsrec", "echo_%s.bin" % name, tlsrec(suite, W(1000), FWD(65535), RD(65535), WR(3000)))
seed("tlsrec", "two_records_small_reads.bin",
     tlsrec(0, W(20000), FWD(65535), RD(7), RD(100), RD(16384), RD(65535)))
seed("tlsrec", "key_update_requested.bin",
     tlsrec(0, W(100), (1, (1, 1)), W(100), FWD(65535), RD(65535), WR(100), RD(65535)))
seed("tlsrec", "key_update_not_requested.bin",
     tlsrec(2, (1, (1, 0)), W(300), FWD(65535), RD(65535), WR(200)))
seed("tlsrec", "byte_chunks.bin",
     tlsrec(0, W(64), *([FWD(1)] * 40 + [RD(65535)]) , FWD(65535), RD(65535)))
seed("tlsrec", "bit_flip.bin",
     tlsrec(0, W(64), (3, (2, 65534), (2, 40)), RD(65535), RD(65535), WR(10)))
seed("tlsrec", "big_write_full_socket.bin",
     tlsrec(1, *([WR(60000)] * 8), W(500), FWD(65535), RD(65535), *([WR(60000)] * 2)))


for harness, seeds in sorted(corpora.items()):
    d = os.path.join(ROOT, harness)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (harness, len(seeds)))
