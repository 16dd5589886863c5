/*
 * nft.c - the geo-IP allowlist as an nftables table (see nft.h for the
 * ruleset).
 *
 * Owns: the netlink conversation with nf_tables (libmnl + libnftnl):
 * nft_apply, nft_remove, nft_status. The argument checks, the merging of
 * touching ranges, the rule list and nft_render live in nft_render.c; both
 * files walk the same helpers (nft_int.h), so what nft_render prints is what
 * nft_apply installs.
 *
 * Why over 800 lines: one netlink transaction builder and its reader of
 * ACKs and dumps; the set, chain and rule messages share the batch, the
 * sequence numbers and the error mapping, and split across files they would
 * need all of it exported.
 *
 * Invariants:
 * - nft_apply sends a transaction as ONE batch with ONE sendto. The normal
 *   batch updates the
 *   table in place: BEGIN, add table, add sets, add chain (all NLM_F_CREATE
 *   without EXCL: no-ops when they exist, and the chain's policy is set back
 *   to accept), flush the chain, flush both sets, add the rules, add the
 *   elements in chunks of NFT_ELEMS_PER_MSG, END. The kernel applies it as
 *   one transaction: packets see the old rules and elements or the new ones.
 * - Only when the kernel refuses to update an existing set or chain (other
 *   type, flags, hook or priority: an older derper, a hand edit) does a
 *   second batch replace the table: add table, delete table, add table, and
 *   the rest as above. That is nft's own idiom, but on Linux 6.18 about one
 *   replacement in ten lost a connection attempt from an allowed source
 *   (tests/integration/test_nft_netns.sh finds it), while in-place updates
 *   lost none in our runs (over a hundred updates under back-to-back
 *   connects); so replacing is the repair path, never the
 *   normal one.
 * - Every message but BEGIN/END carries NLM_F_ACK and every ACK is read, so
 *   the first kernel error is reported with the message that caused it. The
 *   kernel processes the whole batch, acks every message and then aborts the
 *   transaction when any failed: the old table stays as it was.
 * - Interval sets hold a start element per range (key = lo) and an end
 *   element (NFT_SET_ELEM_INTERVAL_END, key = hi + 1) unless hi is the
 *   highest address; that open range carries nft's "interval open" element
 *   user data so `nft list` prints it as nft itself would.
 * - Socket buffers are sized from the batch (SO_SNDBUFFORCE, falling back to
 *   SO_SNDBUF) so one sendto carries it whole and no ACK is dropped.
 *
 * Threading: blocking I/O on a socket private to each call; any thread that
 * may block (the geoip manager, the CLI), never a worker loop.
 *
 * Why one file of ~1,000 lines: it is one nf_tables transaction read top to
 * bottom (build the batch, send it once, read every ACK, query the sets),
 * and most of it is the libnftnl calls each message needs. The pure half
 * (argument checks, range merging, the printed ruleset) is already
 * nft_render.c; splitting the netlink half again would scatter the
 * invariants above across files that cannot be understood alone.
 */
#include "geoip/nft.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include "core/iprange.h"
#include "geoip/nft_int.h"

#define NFT_SET4_ID 1
#define NFT_SET6_ID 2

/* nft's datatype numbers, stored in the set so `nft list` prints addresses. */
#define NFT_TYPE_IPADDR	 7
#define NFT_TYPE_IP6ADDR 8

/* conntrack state bits as nft's `ct state` sees them: 1 << (ctinfo + 1). */
#define NFT_CT_ESTABLISHED_BIT (1u << 1)
#define NFT_CT_RELATED_BIT     (1u << 2)

/* Elements per NEWSETELEM message: an IPv6 end element takes 36 bytes, so
 * 1024 stay well under the 64 KiB limit of the element list attribute. */
#define NFT_ELEMS_PER_MSG 1024
/* Generous upper bounds used to size the batch buffer. */
#define NFT_MSG_MAX	 2048
#define NFT_ELEM_MAX	 64
#define NFT_ELEM_MSG_MAX (NFT_ELEMS_PER_MSG * NFT_ELEM_MAX + NFT_MSG_MAX)
/* Kernel memory one queued ACK costs against the receive buffer. */
#define NFT_ACK_COST  1024
#define NFT_RECV_BUF  65536
#define NFT_TIMEOUT_S 10

/* ---- batch building ----------------------------------------------------------- */

/* What each acked message was, to name it in an error. */
struct msg_info {
	uint16_t type;
	const char *what; /* static string: set name, "table", ... */
	size_t first, count;
};

struct batch {
	char *buf;
	struct mnl_nlmsg_batch *b;
	uint32_t seq0; /* BATCH_BEGIN; message i has seq0 + 1 + i */
	uint32_t seq;  /* next sequence number */
	struct msg_info *info;
	size_t n_info, cap_info;
	uint16_t bad_type; /* type of the first rejected message, or 0 */
};

static void batch_free(struct batch *bt)
{
	if (bt->b != NULL)
		mnl_nlmsg_batch_stop(bt->b);
	free(bt->buf);
	free(bt->info);
	memset(bt, 0, sizeof(*bt));
}

/* limit: bytes the messages may take; the buffer gets one more maximal
 * message behind it because mnl_nlmsg_batch_next detects overflow only after
 * the message was written. */
static int batch_init(struct batch *bt, size_t limit, size_t n_msgs)
{
	memset(bt, 0, sizeof(*bt));
	bt->buf = malloc(limit + NFT_ELEM_MSG_MAX);
	bt->info = calloc(n_msgs, sizeof(*bt->info));
	if (bt->buf == NULL || bt->info == NULL)
		goto fail;
	bt->cap_info = n_msgs;
	bt->b = mnl_nlmsg_batch_start(bt->buf, limit);
	if (bt->b == NULL)
		goto fail;
	bt->seq0 = (uint32_t)time(NULL);
	bt->seq = bt->seq0;
	return 0;
fail:
	batch_free(bt);
	return -ENOMEM;
}

static int batch_next(struct batch *bt)
{
	/* The buffer is sized from the input; running out is a bug here. */
	return mnl_nlmsg_batch_next(bt->b) ? 0 : -EMSGSIZE;
}

static int batch_begin(struct batch *bt)
{
	nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	return batch_next(bt);
}

static int batch_end(struct batch *bt)
{
	nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	return batch_next(bt);
}

/* Start an acked message in the batch; NULL when the info table is full. */
static struct nlmsghdr *batch_msg(struct batch *bt, uint16_t type, uint16_t flags, const char *what,
				  size_t first, size_t count)
{
	struct msg_info *mi;

	if (bt->n_info == bt->cap_info)
		return NULL;
	mi = &bt->info[bt->n_info++];
	mi->type = type;
	mi->what = what;
	mi->first = first;
	mi->count = count;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, NFPROTO_INET,
				     flags | NLM_F_ACK, bt->seq++);
}

static int put_table(struct batch *bt, const char *name, uint16_t type, uint16_t flags)
{
	struct nftnl_table *t = nftnl_table_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (t == NULL || nftnl_table_set_str(t, NFTNL_TABLE_NAME, name) < 0)
		goto out;
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, NFPROTO_INET);
	ret = -EMSGSIZE;
	nlh = batch_msg(bt, type, flags, "table", 0, 0);
	if (nlh == NULL)
		goto out;
	nftnl_table_nlmsg_build_payload(nlh, t);
	ret = batch_next(bt);
out:
	if (t != NULL)
		nftnl_table_free(t);
	return ret;
}

static int put_set(struct batch *bt, const char *table, const char *name, uint32_t id,
		   uint32_t key_type, uint32_t key_len, uint16_t excl)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (s == NULL || nftnl_set_set_str(s, NFTNL_SET_TABLE, table) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
		goto out;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_TYPE, key_type);
	nftnl_set_set_u32(s, NFTNL_SET_KEY_LEN, key_len);
	nftnl_set_set_u32(s, NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
	nftnl_set_set_u32(s, NFTNL_SET_ID, id);
	ret = -EMSGSIZE;
	nlh = batch_msg(bt, NFT_MSG_NEWSET, NLM_F_CREATE | excl, name, 0, 0);
	if (nlh == NULL)
		goto out;
	nftnl_set_nlmsg_build_payload(nlh, s);
	ret = batch_next(bt);
out:
	if (s != NULL)
		nftnl_set_free(s);
	return ret;
}

static int put_chain(struct batch *bt, const char *table, uint16_t excl)
{
	struct nftnl_chain *c = nftnl_chain_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (c == NULL || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, NFT_CHAIN) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0)
		goto out;
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, NFPROTO_INET);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, NF_INET_LOCAL_IN);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, NFT_PRIORITY);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
	ret = -EMSGSIZE;
	nlh = batch_msg(bt, NFT_MSG_NEWCHAIN, NLM_F_CREATE | excl, NFT_CHAIN, 0, 0);
	if (nlh == NULL)
		goto out;
	nftnl_chain_nlmsg_build_payload(nlh, c);
	ret = batch_next(bt);
out:
	if (c != NULL)
		nftnl_chain_free(c);
	return ret;
}

/* DELRULE naming only the chain: delete every rule in it (`flush chain`). */
static int put_flush_chain(struct batch *bt, const char *table)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (r == NULL || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, NFT_CHAIN) < 0)
		goto out;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	ret = -EMSGSIZE;
	nlh = batch_msg(bt, NFT_MSG_DELRULE, 0, NFT_CHAIN, 0, 0);
	if (nlh == NULL)
		goto out;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	ret = batch_next(bt);
out:
	if (r != NULL)
		nftnl_rule_free(r);
	return ret;
}

/* DELSETELEM without elements: delete every element (`flush set`). */
static int put_flush_set(struct batch *bt, const char *table, const char *name)
{
	struct nftnl_set *s = nftnl_set_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (s == NULL || nftnl_set_set_str(s, NFTNL_SET_TABLE, table) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, name) < 0)
		goto out;
	nftnl_set_set_u32(s, NFTNL_SET_FAMILY, NFPROTO_INET);
	ret = -EMSGSIZE;
	nlh = batch_msg(bt, NFT_MSG_DELSETELEM, 0, name, 0, 0);
	if (nlh == NULL)
		goto out;
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	ret = batch_next(bt);
out:
	if (s != NULL)
		nftnl_set_free(s);
	return ret;
}

/* Append a new expression of the given kind to r; NULL on allocation failure.
 * The rule owns the expression from here on. */
static struct nftnl_expr *expr_add(struct nftnl_rule *r, const char *name)
{
	struct nftnl_expr *e = nftnl_expr_alloc(name);

	if (e != NULL)
		nftnl_rule_add_expr(r, e);
	return e;
}

static int expr_meta(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = expr_add(r, "meta");

	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
	nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	return 0;
}

static int expr_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = expr_add(r, "cmp");

	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
	if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0)
		return -ENOMEM;
	return 0;
}

static int expr_payload(struct nftnl_rule *r, uint32_t base, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = expr_add(r, "payload");

	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
	nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	return 0;
}

static int expr_lookup(struct nftnl_rule *r, const char *set, uint32_t set_id)
{
	struct nftnl_expr *e = expr_add(r, "lookup");

	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
	if (nftnl_expr_set_str(e, NFTNL_EXPR_LOOKUP_SET, set) < 0)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_LOOKUP_SET_ID, set_id);
	return 0;
}

static int expr_verdict(struct nftnl_rule *r, uint32_t verdict)
{
	struct nftnl_expr *e = expr_add(r, "immediate");

	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
	nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, verdict);
	return 0;
}

/* ct state established,related: (state & mask) != 0, in host byte order as
 * nft encodes it. */
static int expr_ct_established(struct nftnl_rule *r)
{
	uint32_t mask = NFT_CT_ESTABLISHED_BIT | NFT_CT_RELATED_BIT, zero = 0;
	struct nftnl_expr *e = expr_add(r, "ct");

	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
	nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
	e = expr_add(r, "bitwise");
	if (e == NULL)
		return -ENOMEM;
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
	nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
	if (nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask)) < 0 ||
	    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero)) < 0)
		return -ENOMEM;
	return expr_cmp(r, NFT_CMP_NEQ, &zero, sizeof(zero));
}

/* The expressions nft itself generates for the same rule text, so that
 * `nft list` prints it back as written in nft_render. */
static int rule_exprs(struct nftnl_rule *r, const struct nft_rule_desc *d)
{
	uint16_t port_be = htons(d->port);
	uint8_t nfproto;
	int ret;

	if (d->kind == NFT_RULE_CT) {
		ret = expr_ct_established(r);
		return ret < 0 ? ret : expr_verdict(r, NF_ACCEPT);
	}
	if ((ret = expr_meta(r, NFT_META_L4PROTO)) < 0 ||
	    (ret = expr_cmp(r, NFT_CMP_EQ, &d->proto, sizeof(d->proto))) < 0 ||
	    (ret = expr_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(port_be))) < 0 ||
	    (ret = expr_cmp(r, NFT_CMP_EQ, &port_be, sizeof(port_be))) < 0)
		return ret;
	if (d->kind == NFT_RULE_DROP)
		return expr_verdict(r, NF_DROP);
	nfproto = d->kind == NFT_RULE_ALLOW4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
	if ((ret = expr_meta(r, NFT_META_NFPROTO)) < 0 ||
	    (ret = expr_cmp(r, NFT_CMP_EQ, &nfproto, sizeof(nfproto))) < 0)
		return ret;
	if (d->kind == NFT_RULE_ALLOW4)
		ret = expr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4); /* saddr */
	else
		ret = expr_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16);
	if (ret < 0)
		return ret;
	if (d->kind == NFT_RULE_ALLOW4)
		ret = expr_lookup(r, NFT_SET4, NFT_SET4_ID);
	else
		ret = expr_lookup(r, NFT_SET6, NFT_SET6_ID);
	return ret < 0 ? ret : expr_verdict(r, NF_ACCEPT);
}

static int put_rule(struct batch *bt, const char *table, const struct nft_rule_desc *d, size_t idx)
{
	struct nftnl_rule *r = nftnl_rule_alloc();
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (r == NULL || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table) < 0 ||
	    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, NFT_CHAIN) < 0)
		goto out;
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, NFPROTO_INET);
	ret = rule_exprs(r, d);
	if (ret < 0)
		goto out;
	ret = -EMSGSIZE;
	nlh = batch_msg(bt, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, "rule", idx, 1);
	if (nlh == NULL)
		goto out;
	nftnl_rule_nlmsg_build_payload(nlh, r);
	ret = batch_next(bt);
out:
	if (r != NULL)
		nftnl_rule_free(r);
	return ret;
}

/* Gathers elements into NEWSETELEM messages of NFT_ELEMS_PER_MSG. */
struct elem_writer {
	struct batch *bt;
	const char *table, *set;
	uint32_t set_id;
	struct nftnl_set *cur; /* elements not yet written, or NULL */
	size_t n_cur;	       /* elements in cur */
	size_t done;	       /* elements already written */
};

static int ew_flush(struct elem_writer *w)
{
	struct nlmsghdr *nlh;
	int ret = 0;

	if (w->cur == NULL)
		return 0;
	ret = -EMSGSIZE;
	nlh = batch_msg(w->bt, NFT_MSG_NEWSETELEM, NLM_F_CREATE, w->set, w->done, w->n_cur);
	if (nlh == NULL)
		goto out;
	nftnl_set_elems_nlmsg_build_payload(nlh, w->cur);
	ret = batch_next(w->bt);
	w->done += w->n_cur;
out:
	nftnl_set_free(w->cur);
	w->cur = NULL;
	w->n_cur = 0;
	return ret;
}

/* flags: NFT_SET_ELEM_INTERVAL_END or 0; open: the range runs to the top. */
static int ew_add(struct elem_writer *w, const void *key, uint32_t key_len, uint32_t flags,
		  bool open)
{
	struct nftnl_set_elem *e;

	if (w->cur == NULL) {
		w->cur = nftnl_set_alloc();
		if (w->cur == NULL || nftnl_set_set_str(w->cur, NFTNL_SET_TABLE, w->table) < 0 ||
		    nftnl_set_set_str(w->cur, NFTNL_SET_NAME, w->set) < 0)
			return -ENOMEM; /* ew_free releases cur */
		nftnl_set_set_u32(w->cur, NFTNL_SET_FAMILY, NFPROTO_INET);
		nftnl_set_set_u32(w->cur, NFTNL_SET_ID, w->set_id);
	}
	e = nftnl_set_elem_alloc();
	if (e == NULL)
		return -ENOMEM;
	if (nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, key, key_len) < 0) {
		nftnl_set_elem_free(e);
		return -ENOMEM;
	}
	if (flags != 0)
		nftnl_set_elem_set_u32(e, NFTNL_SET_ELEM_FLAGS, flags);
	if (open) {
		/* nft's user data TLV: type, length, u32 flags in host order. */
		uint32_t f = NFTNL_SET_ELEM_F_INTERVAL_OPEN;
		uint8_t ud[2 + sizeof(f)] = { NFTNL_UDATA_SET_ELEM_FLAGS, sizeof(f) };
		memcpy(ud + 2, &f, sizeof(f));
		if (nftnl_set_elem_set(e, NFTNL_SET_ELEM_USERDATA, ud, sizeof(ud)) < 0) {
			nftnl_set_elem_free(e);
			return -ENOMEM;
		}
	}
	nftnl_set_elem_add(w->cur, e);
	if (++w->n_cur == NFT_ELEMS_PER_MSG)
		return ew_flush(w);
	return 0;
}

static void ew_free(struct elem_writer *w)
{
	if (w->cur != NULL)
		nftnl_set_free(w->cur);
	w->cur = NULL;
}

static int put_elems4(struct batch *bt, const char *table, const struct iprange_set *allow)
{
	struct elem_writer w = { .bt = bt, .table = table, .set = NFT_SET4, .set_id = NFT_SET4_ID };
	uint32_t lo, hi, key;
	int ret = 0;

	for (size_t i = 0; i < allow->n4;) {
		i = nft_span4_next(allow->v4, allow->n4, i, &lo, &hi);
		key = htonl(lo);
		ret = ew_add(&w, &key, sizeof(key), 0, hi == UINT32_MAX);
		if (ret == 0 && hi != UINT32_MAX) {
			key = htonl(hi + 1);
			ret = ew_add(&w, &key, sizeof(key), NFT_SET_ELEM_INTERVAL_END, false);
		}
		if (ret < 0)
			goto out;
	}
	ret = ew_flush(&w);
out:
	ew_free(&w);
	return ret;
}

static int put_elems6(struct batch *bt, const char *table, const struct iprange_set *allow)
{
	struct elem_writer w = { .bt = bt, .table = table, .set = NFT_SET6, .set_id = NFT_SET6_ID };
	uint8_t lo[16], hi[16], end[16];
	int ret = 0;

	for (size_t i = 0; i < allow->n6;) {
		bool open;
		i = nft_span6_next(allow->v6, allow->n6, i, lo, hi);
		open = nft_addr6_is_max(hi);
		ret = ew_add(&w, lo, 16, 0, open);
		if (ret == 0 && !open) {
			nft_addr6_inc(hi, end);
			ret = ew_add(&w, end, 16, NFT_SET_ELEM_INTERVAL_END, false);
		}
		if (ret < 0)
			goto out;
	}
	ret = ew_flush(&w);
out:
	ew_free(&w);
	return ret;
}

/* ---- netlink I/O -------------------------------------------------------------- */

static void set_bufsize(int fd, int force_opt, int opt, size_t want)
{
	int v = want > INT_MAX / 2 ? INT_MAX / 2 : (int)want;

	/* FORCE needs CAP_NET_ADMIN, which nf_tables needs anyway; without it
	 * the plain option is capped by net.core.[rw]mem_max. */
	if (setsockopt(fd, SOL_SOCKET, force_opt, &v, sizeof(v)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof(v));
}

static int nl_open(struct mnl_socket **out, size_t sndbuf, size_t rcvbuf, char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = NFT_TIMEOUT_S };
	struct mnl_socket *nl;
	int one = 1, fd, ret;

	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL) {
		ret = -errno;
		nft_set_err(err, errlen, "nft: netlink socket: %s", strerror(errno));
		return ret;
	}
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		nft_set_err(err, errlen, "nft: netlink bind: %s", strerror(errno));
		mnl_socket_close(nl);
		return ret;
	}
	fd = mnl_socket_get_fd(nl);
	set_bufsize(fd, SO_SNDBUFFORCE, SO_SNDBUF, sndbuf);
	set_bufsize(fd, SO_RCVBUFFORCE, SO_RCVBUF, rcvbuf);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* ACKs without the echoed request, but with the kernel's reason text. */
	(void)mnl_socket_setsockopt(nl, NETLINK_CAP_ACK, &one, sizeof(one));
	(void)mnl_socket_setsockopt(nl, NETLINK_EXT_ACK, &one, sizeof(one));
	*out = nl;
	return 0;
}

static const char *msg_type_name(uint16_t type)
{
	switch (type) {
	case NFT_MSG_NEWTABLE:
		return "NFT_MSG_NEWTABLE";
	case NFT_MSG_DELTABLE:
		return "NFT_MSG_DELTABLE";
	case NFT_MSG_NEWSET:
		return "NFT_MSG_NEWSET";
	case NFT_MSG_NEWCHAIN:
		return "NFT_MSG_NEWCHAIN";
	case NFT_MSG_NEWRULE:
		return "NFT_MSG_NEWRULE";
	case NFT_MSG_DELRULE:
		return "NFT_MSG_DELRULE";
	case NFT_MSG_DELSETELEM:
		return "NFT_MSG_DELSETELEM";
	case NFT_MSG_NEWSETELEM:
		return "NFT_MSG_NEWSETELEM";
	default:
		return "nf_tables message";
	}
}

/* The kernel's extended-ack text, if any, into out (empty otherwise). */
static void extack_text(const struct nlmsghdr *nlh, char *out, size_t outlen)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	size_t off = sizeof(*e);

	out[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return;
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	}
	if (off > mnl_nlmsg_get_payload_len(nlh))
		return;
	mnl_attr_for_each(attr, nlh, off)
	{
		if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
		    mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
			snprintf(out, outlen, ": %s", mnl_attr_get_str(attr));
			return;
		}
	}
}

/* Send the batch with one sendto and read one ACK per acked message. Returns
 * 0 or the first error; the kernel has rolled back on any error. */
static int batch_talk(struct mnl_socket *nl, struct batch *bt, const char *table, char *err,
		      size_t errlen)
{
	size_t len = mnl_nlmsg_batch_size(bt->b), acked = 0, bad = 0;
	char *rbuf = malloc(NFT_RECV_BUF);
	uint8_t *seen = calloc(bt->n_info ? bt->n_info : 1, 1);
	char ext[160];
	bool batch_failed = false;
	ssize_t n;
	int ret = 0;

	if (rbuf == NULL || seen == NULL) {
		ret = -ENOMEM;
		nft_set_err(err, errlen, "nft: out of memory");
		goto out;
	}
	n = mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), len);
	if (n < 0 || (size_t)n != len) {
		ret = n < 0 ? -errno : -EMSGSIZE;
		nft_set_err(err, errlen, "nft: sending the batch (%zu bytes, %zu messages): %s",
			    len, bt->n_info, strerror(-ret));
		goto out;
	}
	/* nfnetlink handles the batch inside sendto, so every ACK is queued by
	 * now; after a batch-level error (no more ACKs follow) just drain. */
	while (acked < bt->n_info) {
		int flags = batch_failed ? MSG_DONTWAIT : 0, left;
		const struct nlmsghdr *nlh;

		n = recv(mnl_socket_get_fd(nl), rbuf, NFT_RECV_BUF, flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (batch_failed && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (ret == 0) {
				ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
				nft_set_err(err, errlen,
					    "nft: reading ACKs (%zu of %zu received): %s; "
					    "table %s may or may not be updated",
					    acked, bt->n_info, strerror(-ret), table);
			}
			goto out;
		}
		left = (int)n;
		for (nlh = (const struct nlmsghdr *)rbuf; mnl_nlmsg_ok(nlh, left);
		     nlh = mnl_nlmsg_next(nlh, &left)) {
			const struct nlmsgerr *e;
			size_t idx;

			if (nlh->nlmsg_type != NLMSG_ERROR ||
			    nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
				continue;
			e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_seq == bt->seq0) {
				/* The batch as a whole: permission, commit. */
				if (e->error != 0 && ret == 0) {
					ret = e->error;
					extack_text(nlh, ext, sizeof(ext));
					nft_set_err(err, errlen,
						    "nft: kernel rejected the batch for table %s: "
						    "%s%s",
						    table, strerror(-ret), ext);
				}
				batch_failed = batch_failed || e->error != 0;
				continue;
			}
			idx = nlh->nlmsg_seq - bt->seq0 - 1;
			if (idx >= bt->n_info || seen[idx])
				continue;
			seen[idx] = 1;
			acked++;
			if (e->error != 0 && ret == 0) {
				const struct msg_info *mi = &bt->info[idx];
				ret = e->error;
				bad = idx;
				bt->bad_type = mi->type;
				extack_text(nlh, ext, sizeof(ext));
				if (mi->type == NFT_MSG_NEWSETELEM)
					nft_set_err(err, errlen,
						    "nft: kernel rejected %s (set %s, elements "
						    "%zu..%zu) for table %s: %s%s; nothing changed",
						    msg_type_name(mi->type), mi->what, mi->first,
						    mi->first + mi->count - 1, table,
						    strerror(-ret), ext);
				else
					nft_set_err(err, errlen,
						    "nft: kernel rejected %s (%s, message %zu) for "
						    "table %s: %s%s; nothing changed",
						    msg_type_name(mi->type), mi->what, bad + 1,
						    table, strerror(-ret), ext);
			}
		}
	}
out:
	free(rbuf);
	free(seen);
	return ret;
}

/* ---- public: apply, remove ---------------------------------------------------- */

/* The two ways to write the table (see the opening comment). */
enum apply_mode {
	APPLY_IN_PLACE, /* keep table, sets, chain; flush and refill them */
	APPLY_REPLACE,	/* delete the table and create it anew */
};

static int build_apply(struct batch *bt, enum apply_mode mode, const struct nft_spec *spec,
		       const struct iprange_set *allow, size_t n_el4, size_t n_el6)
{
	const char *t = spec->table;
	uint16_t excl = mode == APPLY_REPLACE ? NLM_F_EXCL : 0;
	size_t n_rules = nft_rule_count(spec), n_msgs, limit;
	int ret;

	n_msgs = 8 + n_rules + (n_el4 + NFT_ELEMS_PER_MSG - 1) / NFT_ELEMS_PER_MSG +
		 (n_el6 + NFT_ELEMS_PER_MSG - 1) / NFT_ELEMS_PER_MSG;
	limit = (n_msgs + 2) * NFT_MSG_MAX + (n_el4 + n_el6) * NFT_ELEM_MAX;
	ret = batch_init(bt, limit, n_msgs);
	if (ret < 0)
		return ret;
	if ((ret = batch_begin(bt)) < 0 ||
	    (ret = put_table(bt, t, NFT_MSG_NEWTABLE, NLM_F_CREATE)) < 0)
		return ret;
	if (mode == APPLY_REPLACE &&
	    ((ret = put_table(bt, t, NFT_MSG_DELTABLE, 0)) < 0 ||
	     (ret = put_table(bt, t, NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL)) < 0))
		return ret;
	if ((ret = put_set(bt, t, NFT_SET4, NFT_SET4_ID, NFT_TYPE_IPADDR, 4, excl)) < 0 ||
	    (ret = put_set(bt, t, NFT_SET6, NFT_SET6_ID, NFT_TYPE_IP6ADDR, 16, excl)) < 0 ||
	    (ret = put_chain(bt, t, excl)) < 0)
		return ret;
	if (mode == APPLY_IN_PLACE &&
	    ((ret = put_flush_chain(bt, t)) < 0 || (ret = put_flush_set(bt, t, NFT_SET4)) < 0 ||
	     (ret = put_flush_set(bt, t, NFT_SET6)) < 0))
		return ret;
	for (size_t i = 0; i < n_rules; i++) {
		struct nft_rule_desc d = nft_rule_at(spec, i);
		if ((ret = put_rule(bt, t, &d, i)) < 0)
			return ret;
	}
	if ((ret = put_elems4(bt, t, allow)) < 0 || (ret = put_elems6(bt, t, allow)) < 0)
		return ret;
	return batch_end(bt);
}

/* Build and send one batch; 0 or -errno with err set. *bad_type is the type
 * of the message the kernel rejected (0 if none or the batch as a whole). */
static int run_apply(enum apply_mode mode, const struct nft_spec *spec,
		     const struct iprange_set *allow, uint16_t *bad_type, char *err, size_t errlen)
{
	struct batch bt = { 0 };
	struct mnl_socket *nl = NULL;
	size_t n_el4, n_el6;
	int ret;

	*bad_type = 0;
	nft_count_elems(allow, &n_el4, &n_el6);
	ret = build_apply(&bt, mode, spec, allow, n_el4, n_el6);
	if (ret < 0) {
		nft_set_err(err, errlen, "nft: building the batch for table %s: %s", spec->table,
			    strerror(-ret));
		goto out;
	}
	ret = nl_open(&nl, mnl_nlmsg_batch_size(bt.b) + 65536,
		      bt.n_info * NFT_ACK_COST + 256 * 1024, err, errlen);
	if (ret < 0)
		goto out;
	ret = batch_talk(nl, &bt, spec->table, err, errlen);
	*bad_type = bt.bad_type;
out:
	if (nl != NULL)
		mnl_socket_close(nl);
	batch_free(&bt);
	return ret;
}

int nft_apply(const struct nft_spec *spec, const struct iprange_set *allow, char *err,
	      size_t errlen)
{
	uint16_t bad_type;
	int ret;

	nft_set_err(err, errlen, "%s", "");
	ret = nft_check_args(spec, allow, err, errlen);
	if (ret < 0)
		return ret;
	ret = run_apply(APPLY_IN_PLACE, spec, allow, &bad_type, err, errlen);
	/* An existing set or chain that cannot be updated to our definition
	 * (other key type or flags, other hook or priority: an older version,
	 * a hand edit) only goes away with the whole table. */
	if (ret < 0 && (bad_type == NFT_MSG_NEWSET || bad_type == NFT_MSG_NEWCHAIN)) {
		nft_set_err(err, errlen, "%s", "");
		ret = run_apply(APPLY_REPLACE, spec, allow, &bad_type, err, errlen);
	}
	return ret;
}

int nft_remove(const char *table, char *err, size_t errlen)
{
	struct batch bt = { 0 };
	struct mnl_socket *nl = NULL;
	int ret;

	nft_set_err(err, errlen, "%s", "");
	ret = nft_check_table(table, err, errlen);
	if (ret < 0)
		return ret;
	ret = batch_init(&bt, 4 * NFT_MSG_MAX, 1);
	if (ret < 0) {
		nft_set_err(err, errlen, "nft: out of memory");
		return ret;
	}
	if ((ret = batch_begin(&bt)) < 0 ||
	    (ret = put_table(&bt, table, NFT_MSG_DELTABLE, 0)) < 0 || (ret = batch_end(&bt)) < 0) {
		nft_set_err(err, errlen, "nft: building the batch: %s", strerror(-ret));
		goto out;
	}
	ret = nl_open(&nl, 65536, 65536, err, errlen);
	if (ret < 0)
		goto out;
	ret = batch_talk(nl, &bt, table, err, errlen);
	if (ret == -ENOENT) {
		ret = 0; /* already gone */
		nft_set_err(err, errlen, "%s", "");
	}
out:
	if (nl != NULL)
		mnl_socket_close(nl);
	batch_free(&bt);
	return ret;
}

/* ---- public: status ----------------------------------------------------------- */

struct count_ctx {
	size_t n;
	int err;
};

static int count_one(struct nftnl_set_elem *e, void *data)
{
	struct count_ctx *c = data;

	if (!nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_FLAGS) ||
	    !(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_FLAGS) & NFT_SET_ELEM_INTERVAL_END))
		c->n++;
	return 0;
}

static int count_cb(const struct nlmsghdr *nlh, void *data)
{
	struct count_ctx *c = data;
	struct nftnl_set *s = nftnl_set_alloc();

	if (s == NULL) {
		c->err = -ENOMEM;
		errno = ENOMEM;
		return MNL_CB_ERROR;
	}
	if (nftnl_set_elems_nlmsg_parse(nlh, s) < 0) {
		nftnl_set_free(s);
		c->err = -EBADMSG;
		errno = EBADMSG;
		return MNL_CB_ERROR;
	}
	nftnl_set_elem_foreach(s, count_one, c);
	nftnl_set_free(s);
	return MNL_CB_OK;
}

/* Send one request and run cb over the replies until the ACK or DONE.
 * Returns 0 or -errno (the kernel's error, e.g. -ENOENT). */
static int nl_query(struct mnl_socket *nl, const struct nlmsghdr *req, mnl_cb_t cb, void *data)
{
	char *rbuf = malloc(NFT_RECV_BUF);
	uint32_t portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int ret;

	if (rbuf == NULL)
		return -ENOMEM;
	if (mnl_socket_sendto(nl, req, req->nlmsg_len) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		n = mnl_socket_recvfrom(nl, rbuf, NFT_RECV_BUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		ret = mnl_cb_run(rbuf, (size_t)n, req->nlmsg_seq, portid, cb, data);
		if (ret < 0) {
			ret = errno ? -errno : -EIO;
			goto out;
		}
		if (ret == MNL_CB_STOP) {
			ret = 0;
			goto out;
		}
	}
out:
	free(rbuf);
	return ret;
}

static int count_set(struct mnl_socket *nl, const char *table, const char *set, uint32_t seq,
		     size_t *n)
{
	char buf[NFT_MSG_MAX];
	struct nftnl_set *s = nftnl_set_alloc();
	struct count_ctx c = { 0 };
	struct nlmsghdr *nlh;
	int ret = -ENOMEM;

	if (s == NULL || nftnl_set_set_str(s, NFTNL_SET_TABLE, table) < 0 ||
	    nftnl_set_set_str(s, NFTNL_SET_NAME, set) < 0)
		goto out;
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP, seq);
	nftnl_set_elems_nlmsg_build_payload(nlh, s);
	ret = nl_query(nl, nlh, count_cb, &c);
	if (c.err < 0)
		ret = c.err;
	if (ret == -ENOENT) /* a table without the set: nothing installed */
		ret = 0;
	*n = c.n;
out:
	if (s != NULL)
		nftnl_set_free(s);
	return ret;
}

int nft_status(const char *table, struct nft_status *st, char *err, size_t errlen)
{
	char buf[NFT_MSG_MAX];
	struct mnl_socket *nl = NULL;
	struct nftnl_table *t = NULL;
	struct nlmsghdr *nlh;
	uint32_t seq = (uint32_t)time(NULL);
	int ret;

	nft_set_err(err, errlen, "%s", "");
	if (st == NULL) {
		nft_set_err(err, errlen, "nft: missing status");
		return -EINVAL;
	}
	memset(st, 0, sizeof(*st));
	ret = nft_check_table(table, err, errlen);
	if (ret < 0)
		return ret;
	ret = nl_open(&nl, 65536, 1024 * 1024, err, errlen);
	if (ret < 0)
		return ret;
	t = nftnl_table_alloc();
	if (t == NULL || nftnl_table_set_str(t, NFTNL_TABLE_NAME, table) < 0) {
		ret = -ENOMEM;
		nft_set_err(err, errlen, "nft: out of memory");
		goto out;
	}
	nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
	nftnl_table_nlmsg_build_payload(nlh, t);
	ret = nl_query(nl, nlh, NULL, NULL);
	if (ret == -ENOENT) {
		ret = 0;
		goto out;
	}
	if (ret < 0) {
		nft_set_err(err, errlen, "nft: reading table %s: %s", table, strerror(-ret));
		goto out;
	}
	st->present = true;
	ret = count_set(nl, table, NFT_SET4, seq + 1, &st->n4);
	if (ret == 0)
		ret = count_set(nl, table, NFT_SET6, seq + 2, &st->n6);
	if (ret < 0)
		nft_set_err(err, errlen, "nft: reading the sets of table %s: %s", table,
			    strerror(-ret));
out:
	if (t != NULL)
		nftnl_table_free(t);
	if (nl != NULL)
		mnl_socket_close(nl);
	return ret;
}
