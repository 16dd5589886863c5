/*
 * derp_frame.c - DERP v2 frame headers, the server's frame builders, the
 * ClientInfo/ServerInfo JSON and the disco sniffing test.
 *
 * Owns nothing: every buffer belongs to the caller and every function is
 * pure (no I/O, no global state), so any thread may call anything here.
 * Invariant: builders write exactly the size their _LEN macro names; the
 * length field of a frame never includes the 5-byte header.
 */
#include "derp/derp_frame.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/hex.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int derp_frame_header_parse(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *plen)
{
	if (len < DERP_FRAME_HEADER_LEN)
		return -EAGAIN;
	*type = buf[0];
	*plen = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 |
		(uint32_t)buf[4];
	return DERP_FRAME_HEADER_LEN;
}

void derp_frame_header_put(uint8_t out[DERP_FRAME_HEADER_LEN], uint8_t type, uint32_t plen)
{
	out[0] = type;
	put_be32(out + 1, plen);
}

size_t derp_frame_server_key(uint8_t *out, const uint8_t server_pub[32])
{
	derp_frame_header_put(out, DERP_FRAME_SERVER_KEY, DERP_MAGIC_LEN + DERP_KEY_LEN);
	memcpy(out + DERP_FRAME_HEADER_LEN, DERP_MAGIC, DERP_MAGIC_LEN);
	memcpy(out + DERP_FRAME_HEADER_LEN + DERP_MAGIC_LEN, server_pub, DERP_KEY_LEN);
	return DERP_FRAME_SERVER_KEY_LEN;
}

size_t derp_frame_keepalive(uint8_t *out)
{
	derp_frame_header_put(out, DERP_FRAME_KEEP_ALIVE, 0);
	return DERP_FRAME_KEEPALIVE_LEN;
}

size_t derp_frame_peer_gone(uint8_t *out, const uint8_t key[32], uint8_t reason)
{
	derp_frame_header_put(out, DERP_FRAME_PEER_GONE, DERP_KEY_LEN + 1);
	memcpy(out + DERP_FRAME_HEADER_LEN, key, DERP_KEY_LEN);
	out[DERP_FRAME_HEADER_LEN + DERP_KEY_LEN] = reason;
	return DERP_FRAME_PEER_GONE_LEN;
}

static size_t derp_frame_8(uint8_t *out, uint8_t type, const uint8_t data[8])
{
	derp_frame_header_put(out, type, 8);
	memcpy(out + DERP_FRAME_HEADER_LEN, data, 8);
	return DERP_FRAME_HEADER_LEN + 8;
}

size_t derp_frame_pong(uint8_t *out, const uint8_t data[8])
{
	return derp_frame_8(out, DERP_FRAME_PONG, data);
}

size_t derp_frame_ping(uint8_t *out, const uint8_t data[8])
{
	return derp_frame_8(out, DERP_FRAME_PING, data);
}

size_t derp_frame_restarting(uint8_t *out, uint32_t reconnect_in_ms, uint32_t try_for_ms)
{
	derp_frame_header_put(out, DERP_FRAME_RESTARTING, 8);
	put_be32(out + DERP_FRAME_HEADER_LEN, reconnect_in_ms);
	put_be32(out + DERP_FRAME_HEADER_LEN + 4, try_for_ms);
	return DERP_FRAME_RESTARTING_LEN;
}

size_t derp_frame_recv_packet_header(uint8_t out[DERP_FRAME_RECV_PACKET_HEADER_LEN],
				     const uint8_t src[32], uint32_t pkt_len)
{
	derp_frame_header_put(out, DERP_FRAME_RECV_PACKET, DERP_KEY_LEN + pkt_len);
	memcpy(out + DERP_FRAME_HEADER_LEN, src, DERP_KEY_LEN);
	return DERP_FRAME_RECV_PACKET_HEADER_LEN;
}

size_t derp_frame_peer_present(uint8_t *out, const uint8_t key[32], const uint8_t ip16[16],
			       uint16_t port, uint8_t flags)
{
	uint8_t *p = out + DERP_FRAME_HEADER_LEN;

	derp_frame_header_put(out, DERP_FRAME_PEER_PRESENT,
			      DERP_FRAME_PEER_PRESENT_LEN - DERP_FRAME_HEADER_LEN);
	memcpy(p, key, DERP_KEY_LEN);
	memcpy(p + DERP_KEY_LEN, ip16, 16);
	p[DERP_KEY_LEN + 16] = (uint8_t)(port >> 8);
	p[DERP_KEY_LEN + 17] = (uint8_t)port;
	p[DERP_KEY_LEN + 18] = flags;
	return DERP_FRAME_PEER_PRESENT_LEN;
}

size_t derp_frame_peer_present_app(uint8_t *out, const uint8_t key[32], const uint8_t ip16[16],
				   uint16_t port, uint8_t flags, const char *app, size_t app_len)
{
	size_t n;

	if (!app || app_len > DERP_MAX_APP_NAME_LEN)
		app_len = app ? DERP_MAX_APP_NAME_LEN : 0;
	n = derp_frame_peer_present(out, key, ip16, port, flags);
	out[n] = (uint8_t)app_len;
	if (app_len)
		memcpy(out + n + 1, app, app_len);
	n += 1 + app_len;
	derp_frame_header_put(out, DERP_FRAME_PEER_PRESENT, (uint32_t)(n - DERP_FRAME_HEADER_LEN));
	return n;
}

size_t derp_frame_forward_header(uint8_t out[DERP_FRAME_FORWARD_HEADER_LEN], const uint8_t src[32],
				 const uint8_t dst[32], uint32_t pkt_len)
{
	derp_frame_header_put(out, DERP_FRAME_FORWARD_PACKET, 2 * DERP_KEY_LEN + pkt_len);
	memcpy(out + DERP_FRAME_HEADER_LEN, src, DERP_KEY_LEN);
	memcpy(out + DERP_FRAME_HEADER_LEN + DERP_KEY_LEN, dst, DERP_KEY_LEN);
	return DERP_FRAME_FORWARD_HEADER_LEN;
}

int derp_peer_present_parse(const uint8_t *p, size_t len, struct derp_peer_present *out)
{
	memset(out, 0, sizeof(*out));
	if (len < DERP_KEY_LEN)
		return -EBADMSG;
	memcpy(out->key, p, DERP_KEY_LEN);
	p += DERP_KEY_LEN;
	len -= DERP_KEY_LEN;
	/* Each field only after the whole previous one (as the Go client). */
	if (len < 18)
		return 0;
	memcpy(out->ip16, p, 16);
	out->port = (uint16_t)(p[16] << 8 | p[17]);
	p += 18;
	len -= 18;
	if (len < 1)
		return 0;
	out->flags = p[0];
	p++;
	len--;
	if (len >= 1) {
		size_t n = p[0];

		if (n > len - 1)
			n = len - 1;
		if (n > DERP_MAX_APP_NAME_LEN)
			n = DERP_MAX_APP_NAME_LEN;
		memcpy(out->app, p + 1, n);
		out->app[n] = '\0';
		out->app_len = (uint8_t)n;
	}
	return 0;
}

size_t derp_mesh_client_info_json(char *out, size_t cap, const uint8_t mesh_key[32])
{
	char hex[65];
	int n;

	if (hex_encode(hex, sizeof(hex), mesh_key, 32) < 0)
		return 0;
	n = snprintf(out, cap, "{\"meshKey\":\"%s\",\"version\":%d,\"CanAckPings\":false}", hex,
		     DERP_PROTOCOL_VERSION);
	sodium_memzero(hex, sizeof(hex));
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t derp_frame_health(uint8_t *out, size_t cap, const char *problem)
{
	size_t n = problem ? strlen(problem) : 0;

	if (cap < DERP_FRAME_HEADER_LEN || n > cap - DERP_FRAME_HEADER_LEN || n > UINT32_MAX)
		return 0;
	derp_frame_header_put(out, DERP_FRAME_HEALTH, (uint32_t)n);
	if (n)
		memcpy(out + DERP_FRAME_HEADER_LEN, problem, n);
	return DERP_FRAME_HEADER_LEN + n;
}

/* ---- ClientInfo JSON ---- */

/*
 * Compare a JSON object key with a field name (lowercase ASCII) the way Go's
 * encoding/json folds names: ASCII case-insensitively, plus the two non-ASCII
 * runes whose simple case fold is ASCII (KELVIN SIGN folds to k, LATIN SMALL
 * LETTER LONG S to s). Anything else non-ASCII never matches an ASCII name.
 */
static bool json_key_matches(const char *key, size_t klen, const char *field)
{
	size_t i = 0;

	for (; *field; field++) {
		if (i >= klen)
			return false;
		unsigned char c = (unsigned char)key[i];

		if (c < 0x80) {
			if (c >= 'A' && c <= 'Z')
				c = (unsigned char)(c - 'A' + 'a');
			if (c != (unsigned char)*field)
				return false;
			i++;
		} else if (*field == 'k' && klen - i >= 3 && c == 0xe2 &&
			   (unsigned char)key[i + 1] == 0x84 && (unsigned char)key[i + 2] == 0xaa) {
			i += 3;
		} else if (*field == 's' && klen - i >= 2 && c == 0xc5 &&
			   (unsigned char)key[i + 1] == 0xbf) {
			i += 2;
		} else {
			return false;
		}
	}
	return i == klen;
}

/* JSON true/false into *out; null leaves it alone (Go semantics). */
static int json_get_bool(const json_t *v, bool *out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return -EBADMSG;
	*out = json_is_true(v);
	return 0;
}

/* Copy an AppName into a fixed buffer: cut at a UTF-8 sequence boundary
 * (jansson guarantees valid UTF-8) and neutralise control characters, since
 * this string ends up in logs. */
static void app_name_copy(char *dst, size_t cap, const char *s, size_t len)
{
	size_t n = len < cap - 1 ? len : cap - 1;

	/* Back up over continuation bytes so no sequence is split. */
	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[n] = '\0';
}

bool derp_app_name_valid(const char *name, size_t len)
{
	if (len > DERP_MAX_APP_NAME_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e)
			return false;
	return true;
}

int derp_client_info_parse(const uint8_t *json, size_t len, struct derp_client_info *ci)
{
	json_t *root = NULL, *v;
	json_error_t jerr;
	const char *key;
	size_t klen;
	int ret = -EBADMSG;

	memset(ci, 0, sizeof(*ci));
	/* JSON_ALLOW_NUL: Go accepts "\u0000" in strings, so must we. */
	root = json_loadb((const char *)json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (!root)
		goto out;
	if (json_is_null(root)) {
		/* json.Unmarshal("null", &ci) succeeds and sets nothing. */
		ret = 0;
		goto out;
	}
	if (!json_is_object(root))
		goto out;

	/* jansson iterates in insertion order, so with differently-cased
	 * duplicates the last one wins as in Go. (An exact duplicate replaces
	 * the value in its first position: {"version":1,"Version":2,
	 * "version":3} gives 2 here and 3 in Go. Harmless: no client sends
	 * duplicates, and either value is a value the client chose.) */
	json_object_keylen_foreach(root, key, klen, v)
	{
		if (json_key_matches(key, klen, "version")) {
			if (json_is_null(v))
				continue;
			/* Go decodes into int: a real (2.0, 1e3) is a type error. */
			if (!json_is_integer(v))
				goto out;
			json_int_t iv = json_integer_value(v);

			ci->version = iv > INT_MAX ? INT_MAX : iv < INT_MIN ? INT_MIN : (int)iv;
		} else if (json_key_matches(key, klen, "canackpings")) {
			if (json_get_bool(v, &ci->can_ack_pings) < 0)
				goto out;
		} else if (json_key_matches(key, klen, "isprober")) {
			if (json_get_bool(v, &ci->is_prober) < 0)
				goto out;
		} else if (json_key_matches(key, klen, "appname")) {
			if (json_is_null(v))
				continue;
			if (!json_is_string(v))
				goto out;
			app_name_copy(ci->app_name, sizeof(ci->app_name), json_string_value(v),
				      json_string_length(v));
			ci->app_name_invalid =
				!derp_app_name_valid(json_string_value(v), json_string_length(v));
		} else if (json_key_matches(key, klen, "meshkey")) {
			/* key.DERPMesh.UnmarshalJSON: anything but a string of
			 * exactly 64 hex digits (null and "" included) fails. */
			if (!json_is_string(v) ||
			    hex_decode(ci->mesh_key, sizeof(ci->mesh_key), json_string_value(v),
				       json_string_length(v)) < 0)
				goto out;
			ci->has_mesh_key = true;
		}
	}
	ret = 0;
out:
	json_decref(root);
	if (ret < 0)
		memset(ci, 0, sizeof(*ci));
	return ret;
}

size_t derp_server_info_json(char *out, size_t cap)
{
	static const char info[] = "{\"version\":2}";

	if (cap < sizeof(info))
		return 0;
	memcpy(out, info, sizeof(info));
	return sizeof(info) - 1;
}

bool derp_looks_like_disco(const uint8_t *pkt, size_t len)
{
	/* magic (6) + sender disco key (32) + nonce (24) */
	static const uint8_t magic[6] = { 'T', 'S', 0xf0, 0x9f, 0x92, 0xac };

	return len >= sizeof(magic) + 32 + 24 && memcmp(pkt, magic, sizeof(magic)) == 0;
}
