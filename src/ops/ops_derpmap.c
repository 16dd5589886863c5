/*
 * ops_derpmap.c - `derper derpmap`: the DERPMap region with this relay as
 * its one node, ready to paste into a tailnet policy file ("derpMap").
 *
 * The node carries the hostname, the detected IPv4/IPv6 (ops_net.c), the
 * DERP and STUN ports and, for a self-signed IP certificate, the CertName
 * pin that net/tls computes (tls_derpmap_node_json). The certificate is
 * opened in the TLS layer's read-only mode: nothing is generated here.
 * JSON is built with jansson (escaping done right). Main thread, one-shot.
 */
#include "ops/ops.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "net/tls.h"

/* CertName of the certificate files as they are now; NULL when none
 * applies (DNS hostname, CA-issued, no files yet). Caller frees. */
static char *cert_name(const struct config *cfg)
{
	static const uint8_t zero_pub[32];
	struct tls_opts to = { .hostname = cfg->hostname,
			       .certdir = cfg->certdir,
			       /* letsencrypt mode: missing files are not generated */
			       .certmode = CONFIG_CERTMODE_LETSENCRYPT,
			       .server_pub = zero_pub };
	struct tls_ctx *t;
	json_t *node;
	const char *js, *cn;
	char err[512], *out = NULL;

	if (!config_serve_tls(cfg) || !cfg->certdir)
		return NULL;
	t = tls_ctx_new(&to, err, sizeof(err));
	if (!t) {
		fprintf(stderr, "derpmap: certificate: %s\n", err);
		return NULL;
	}
	js = tls_derpmap_node_json(t);
	node = js && *js ? json_loads(js, 0, NULL) : NULL;
	cn = json_string_value(json_object_get(node, "CertName"));
	if (cn)
		out = strdup(cn);
	json_decref(node);
	tls_ctx_free(t);
	return out;
}

int ops_derpmap_main(const struct config *cfg, int argc, char **argv)
{
	long region = 900;
	const char *code = "derper", *name = NULL;
	struct ops_addrs a;
	json_t *root, *node, *reg;
	char rid[16], nodename[32], *cn, *text;
	int ret = 1;

	for (int i = 0; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(argv[i], "-region-id") == 0 && v) {
			region = strtol(v, NULL, 10);
			i++;
		} else if (strcmp(argv[i], "-region-code") == 0 && v) {
			code = v;
			i++;
		} else if (strcmp(argv[i], "-region-name") == 0 && v) {
			name = v;
			i++;
		} else {
			fprintf(stderr, "usage: derper [flags] derpmap [-region-id N (900..999)] "
					"[-region-code CODE] [-region-name NAME]\n");
			return 2;
		}
	}
	if (region < 900 || region > 999)
		fprintf(stderr, "derpmap: note: custom regions should use IDs 900..999\n");
	ops_detect_addrs(cfg, &a);
	cn = cert_name(cfg);
	snprintf(rid, sizeof(rid), "%ld", region);
	snprintf(nodename, sizeof(nodename), "%lda", region);

	node = json_object();
	json_object_set_new(node, "Name", json_string(nodename));
	json_object_set_new(node, "RegionID", json_integer(region));
	json_object_set_new(node, "HostName", json_string(cfg->hostname));
	if (a.v4[0])
		json_object_set_new(node, "IPv4", json_string(a.v4));
	if (a.v6[0])
		json_object_set_new(node, "IPv6", json_string(a.v6));
	json_object_set_new(node, "DERPPort", json_integer(cfg->listen_port));
	json_object_set_new(node, "STUNPort", json_integer(cfg->stun_enable ? cfg->stun_port : -1));
	if (cn)
		json_object_set_new(node, "CertName", json_string(cn));
	if (!config_serve_tls(cfg))
		json_object_set_new(node, "InsecureForTests", json_true());
	reg = json_object();
	json_object_set_new(reg, "RegionID", json_integer(region));
	json_object_set_new(reg, "RegionCode", json_string(code));
	json_object_set_new(reg, "RegionName", json_string(name ? name : cfg->hostname));
	json_object_set_new(reg, "Nodes", json_pack("[o]", node));
	root = json_pack("{s:{s:{s:o}}}", "derpMap", "Regions", rid, reg);
	text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	if (text) {
		printf("%s\n", text);
		ret = 0;
	}
	if (a.v4[0])
		fprintf(stderr, "derpmap: IPv4 %s from %s\n", a.v4, a.v4_from);
	if (a.v6[0])
		fprintf(stderr, "derpmap: IPv6 %s from %s\n", a.v6, a.v6_from);
	if (!config_serve_tls(cfg))
		fprintf(stderr, "derpmap: note: this relay serves plain HTTP; clients accept it "
				"only with InsecureForTests (tests, not production)\n");
	free(text);
	free(cn);
	json_decref(root);
	return ret;
}
