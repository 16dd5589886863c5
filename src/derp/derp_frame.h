/*
 * derp_frame.h - DERP v2 frame encoding/decoding (Tailscale derp/derp.go).
 *
 * Pure functions over caller-owned buffers: no I/O, no allocation (except
 * derp_client_info_parse, which uses jansson internally and frees before
 * returning). Any thread.
 *
 * A frame is 1 byte type + big-endian uint32 payload length + payload.
 */
#ifndef DERPER_DERP_FRAME_H
#define DERPER_DERP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum derp_frame_type {
	DERP_FRAME_SERVER_KEY = 0x01,
	DERP_FRAME_CLIENT_INFO = 0x02,
	DERP_FRAME_SERVER_INFO = 0x03,
	DERP_FRAME_SEND_PACKET = 0x04,
	DERP_FRAME_RECV_PACKET = 0x05,
	DERP_FRAME_KEEP_ALIVE = 0x06,
	DERP_FRAME_NOTE_PREFERRED = 0x07,
	DERP_FRAME_PEER_GONE = 0x08,
	DERP_FRAME_PEER_PRESENT = 0x09,
	DERP_FRAME_FORWARD_PACKET = 0x0a,
	DERP_FRAME_WATCH_CONNS = 0x10,
	DERP_FRAME_CLOSE_PEER = 0x11,
	DERP_FRAME_PING = 0x12,
	DERP_FRAME_PONG = 0x13,
	DERP_FRAME_HEALTH = 0x14,
	DERP_FRAME_RESTARTING = 0x15,
};

#define DERP_FRAME_HEADER_LEN 5
#ifndef DERP_KEY_LEN /* also defined, identically, by derp_key.h */
#define DERP_KEY_LEN 32
#endif
#define DERP_NONCE_LEN	     24
#define DERP_MAX_PACKET_SIZE 65536
/* Largest ClientInfo frame payload the server accepts (key + nonce + box).
 * A real one is key 32 + nonce 24 + MAC 16 + JSON of a few hundred bytes
 * (version, meshKey, CanAckPings, IsProber, AppName <= 32): 8 KiB leaves
 * ten times the room, and an unauthenticated peer can hold no more. */
#define DERP_MAX_INFO_LEN     (8 * 1024)
#define DERP_MAGIC	      "DERP\xf0\x9f\x94\x91"
#define DERP_MAGIC_LEN	      8
#define DERP_PROTOCOL_VERSION 2

/* PeerGone reasons (the byte after the key). */
#define DERP_PEER_GONE_DISCONNECTED 0
#define DERP_PEER_GONE_NOT_HERE	    1

/* PeerPresent flags. */
#define DERP_PEER_PRESENT_IS_REGULAR   0x01
#define DERP_PEER_PRESENT_IS_MESH_PEER 0x02
#define DERP_PEER_PRESENT_IS_PROBER    0x04
#define DERP_PEER_PRESENT_NOT_IDEAL    0x08

/* Total sizes (header included) written by the fixed-size builders. */
#define DERP_FRAME_SERVER_KEY_LEN	  (DERP_FRAME_HEADER_LEN + DERP_MAGIC_LEN + DERP_KEY_LEN) /* 45 */
#define DERP_FRAME_KEEPALIVE_LEN	  DERP_FRAME_HEADER_LEN			     /* 5 */
#define DERP_FRAME_PEER_GONE_LEN	  (DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + 1) /* 38 */
#define DERP_FRAME_PING_LEN		  (DERP_FRAME_HEADER_LEN + 8)		     /* 13 */
#define DERP_FRAME_PONG_LEN		  (DERP_FRAME_HEADER_LEN + 8)		     /* 13 */
#define DERP_FRAME_RESTARTING_LEN	  (DERP_FRAME_HEADER_LEN + 8)		     /* 13 */
#define DERP_FRAME_RECV_PACKET_HEADER_LEN (DERP_FRAME_HEADER_LEN + DERP_KEY_LEN)     /* 37 */
#define DERP_FRAME_PEER_PRESENT_LEN	  (DERP_FRAME_HEADER_LEN + DERP_KEY_LEN + 16 + 2 + 1) /* 56 */
/* ForwardPacket header + source and destination keys (the packet follows). */
#define DERP_FRAME_FORWARD_HEADER_LEN (DERP_FRAME_HEADER_LEN + 2 * DERP_KEY_LEN) /* 69 */
/* Longest AppName a server accepts (derp.MaxAppNameLen), and so the longest
 * a PeerPresent carries. */
#define DERP_MAX_APP_NAME_LEN 32
/* PeerPresent as v1.104 sends it: + 1 length byte + up to 32 AppName bytes. */
#define DERP_FRAME_PEER_PRESENT_APP_MAX                                                            \
	(DERP_FRAME_PEER_PRESENT_LEN + 1 + DERP_MAX_APP_NAME_LEN) /* 89 */

/* Parse a frame header from buf[0..len). Returns DERP_FRAME_HEADER_LEN and
 * fills type/plen, or -EAGAIN when len < 5. No validation of type or length:
 * the caller bounds plen for its state. */
int derp_frame_header_parse(const uint8_t *buf, size_t len, uint8_t *type, uint32_t *plen);

/* Write a 5-byte frame header. */
void derp_frame_header_put(uint8_t out[DERP_FRAME_HEADER_LEN], uint8_t type, uint32_t plen);

/* Builders: each writes a whole frame into out (which must hold the size
 * named by the matching _LEN macro) and returns the bytes written. */

/* ServerKey: magic + server public key. */
size_t derp_frame_server_key(uint8_t *out, const uint8_t server_pub[32]);
/* KeepAlive: empty payload. */
size_t derp_frame_keepalive(uint8_t *out);
/* PeerGone: key + reason (DERP_PEER_GONE_*). */
size_t derp_frame_peer_gone(uint8_t *out, const uint8_t key[32], uint8_t reason);
/* Pong / Ping: 8 bytes of data. */
size_t derp_frame_pong(uint8_t *out, const uint8_t data[8]);
size_t derp_frame_ping(uint8_t *out, const uint8_t data[8]);
/* Restarting: BE uint32 reconnect-in ms, BE uint32 try-for ms. */
size_t derp_frame_restarting(uint8_t *out, uint32_t reconnect_in_ms, uint32_t try_for_ms);
/* RecvPacket header + source key; the caller appends pkt_len payload bytes
 * (the frame length field covers 32 + pkt_len). */
size_t derp_frame_recv_packet_header(uint8_t out[DERP_FRAME_RECV_PACKET_HEADER_LEN],
				     const uint8_t src[32], uint32_t pkt_len);
/* PeerPresent: key + 16-byte IP (IPv4-mapped for v4) + BE port + flags: a
 * 51-byte payload (reference notes say "41": their sum is off by ten; Go
 * v1.102 sends 51; v1.104 appends an AppName length byte + name, which
 * older clients ignore). */
size_t derp_frame_peer_present(uint8_t *out, const uint8_t key[32], const uint8_t ip16[16],
			       uint16_t port, uint8_t flags);
/* PeerPresent as v1.104 sends it to mesh watchers: the 51 bytes above, then
 * a length byte and the AppName (app_len 0: no name; cut to
 * DERP_MAX_APP_NAME_LEN). out holds DERP_FRAME_PEER_PRESENT_APP_MAX bytes.
 * Returns the bytes written. */
size_t derp_frame_peer_present_app(uint8_t *out, const uint8_t key[32], const uint8_t ip16[16],
				   uint16_t port, uint8_t flags, const char *app, size_t app_len);
/* ForwardPacket header + src + dst; the caller appends pkt_len bytes. */
size_t derp_frame_forward_header(uint8_t out[DERP_FRAME_FORWARD_HEADER_LEN], const uint8_t src[32],
				 const uint8_t dst[32], uint32_t pkt_len);

/* A PeerPresent payload as a mesh client reads it. Older servers send
 * shorter frames: only the key is required; missing fields stay zero. */
struct derp_peer_present {
	uint8_t key[32];
	uint8_t ip16[16];
	uint16_t port;
	uint8_t flags;
	uint8_t app_len;
	char app[DERP_MAX_APP_NAME_LEN + 1]; /* NUL-terminated, cut to 32 bytes */
};

/* Parse a PeerPresent payload p[0..len). 0, or -EBADMSG when len < 32. */
int derp_peer_present_parse(const uint8_t *p, size_t len, struct derp_peer_present *out);

/* Write the ClientInfo JSON of a mesh client ({"meshKey":"<64 hex>",
 * "version":2,"CanAckPings":false}, as the Go mesh client sends) and a NUL
 * into out. Returns its length without the NUL, or 0 if cap is too small. */
size_t derp_mesh_client_info_json(char *out, size_t cap, const uint8_t mesh_key[32]);

/* Health: problem text (NUL-terminated; "" = healthy, NULL treated as "").
 * Returns the bytes written, or 0 when 5 + strlen(problem) > cap. */
size_t derp_frame_health(uint8_t *out, size_t cap, const char *problem);

/* The decrypted ClientInfo JSON, as the server needs it. */
struct derp_client_info {
	int version; /* 0 when absent; saturated to INT_MIN/INT_MAX */
	bool can_ack_pings;
	bool is_prober;
	bool has_mesh_key; /* "meshKey" was present (and valid) */
	uint8_t mesh_key[32];
	/* AppName, NUL-terminated, cut at a UTF-8 boundary to fit; control
	 * characters (incl. NUL) replaced by '?' so it is safe to log. */
	char app_name[64];
	/* The AppName as sent fails derp_app_name_valid (the server refuses
	 * the client; app_name above is then only for the log line). */
	bool app_name_invalid;
};

/* True if name[0..len) is an acceptable ClientInfo AppName, as
 * derp.ValidAppName: at most DERP_MAX_APP_NAME_LEN bytes, each printable
 * ASCII (0x20..0x7e); the empty name is valid. Pure; any thread. */
bool derp_app_name_valid(const char *name, size_t len);

/* Parse ClientInfo JSON from json[0..len) (no NUL needed) into *ci, with
 * Go encoding/json semantics: keys matched case-insensitively (including
 * Go's Unicode folds K/s for U+212A/U+017F), unknown keys ignored, null
 * leaves a field unset, a wrong type is an error, a top-level null is an
 * empty ClientInfo, and "meshKey" must be exactly 64 hex digits (an empty
 * or null meshKey is an error, as with key.DERPMesh). Returns 0 or
 * -EBADMSG (*ci is zeroed first either way). Allocates internally (jansson). */
int derp_client_info_parse(const uint8_t *json, size_t len, struct derp_client_info *ci);

/* Write the ServerInfo JSON {"version":2} and a NUL into out. Returns its
 * length without the NUL, or 0 if cap is too small. */
size_t derp_server_info_json(char *out, size_t cap);

/* True if pkt looks like a disco message (disco.LooksLikeDiscoWrapper):
 * at least 62 bytes, starting with "TS" U+1F4AC (54 53 f0 9f 92 ac). */
bool derp_looks_like_disco(const uint8_t *pkt, size_t len);

#endif
