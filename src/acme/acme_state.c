/*
 * acme_state.c - the ACME client's state file (<certdir>/acme-state.json)
 * and `derper [flags] cert status`, which reads it together with the
 * config, the account key and the certificate, without the daemon.
 *
 * Invariants: the file is written whole with fileio_write_atomic (0600);
 * readers see the old or the new one. It holds no secret: URLs, times,
 * the last error text. Unknown members are ignored, missing ones are 0.
 *
 * Threading: the writer is the ACME thread; the CLI runs in a one-shot
 * process's main thread.
 */
#include "acme/acme_cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "acme/acme_client.h"
#include "acme/acme_int.h"
#include "core/config.h"
#include "core/fileio.h"
#include "net/tls.h"

char *acme_state_path(const char *certdir)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s", certdir, ACME_STATE_FILE) < 0 ? NULL : p;
}

int acme_state_write(const char *path, const struct acme_state *s)
{
	json_t *o =
		json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:i, s:I, s:s, s:I, s:I, s:s, s:s}",
			  "directory", s->directory, "account", s->account, "challenge",
			  s->challenge, "last_attempt", (json_int_t)s->last_attempt, "last_success",
			  (json_int_t)s->last_success, "last_error", s->last_error, "failures",
			  s->failures, "next_renewal", (json_int_t)s->next_renewal, "next_reason",
			  s->next_reason, "ari_start", (json_int_t)s->ari_start, "ari_end",
			  (json_int_t)s->ari_end, "ari_id", s->ari_id, "replaced", s->replaced);
	char *text = o ? json_dumps(o, JSON_INDENT(1)) : NULL;
	int r = text ? fileio_write_atomic(path, text, strlen(text), 0600) : -ENOMEM;

	free(text);
	json_decref(o);
	return r;
}

static void acme_state_str(json_t *o, const char *k, char *out, size_t outlen)
{
	const char *v = json_string_value(json_object_get(o, k));

	snprintf(out, outlen, "%s", v ? v : "");
}

static time_t acme_state_int(json_t *o, const char *k)
{
	return (time_t)json_integer_value(json_object_get(o, k));
}

int acme_state_read(const char *path, struct acme_state *s)
{
	char *text = NULL;
	size_t len = 0;
	json_t *o;
	int r;

	memset(s, 0, sizeof(*s));
	r = fileio_read_all(path, ACME_MAX_FILE_BYTES, &text, &len);
	if (r < 0)
		return r;
	o = json_loadb(text, len, 0, NULL);
	free(text);
	if (!json_is_object(o)) {
		json_decref(o);
		return -EBADMSG;
	}
	acme_state_str(o, "directory", s->directory, sizeof(s->directory));
	acme_state_str(o, "account", s->account, sizeof(s->account));
	acme_state_str(o, "challenge", s->challenge, sizeof(s->challenge));
	acme_state_str(o, "last_error", s->last_error, sizeof(s->last_error));
	acme_state_str(o, "next_reason", s->next_reason, sizeof(s->next_reason));
	acme_state_str(o, "ari_id", s->ari_id, sizeof(s->ari_id));
	acme_state_str(o, "replaced", s->replaced, sizeof(s->replaced));
	s->last_attempt = acme_state_int(o, "last_attempt");
	s->last_success = acme_state_int(o, "last_success");
	s->failures = (int)acme_state_int(o, "failures");
	s->next_renewal = acme_state_int(o, "next_renewal");
	s->ari_start = acme_state_int(o, "ari_start");
	s->ari_end = acme_state_int(o, "ari_end");
	json_decref(o);
	return 0;
}

/* ---- derper cert status ---- */

static void acme_cli_names(X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gens ? sk_GENERAL_NAME_num(gens) : 0;

	printf("names:         ");
	for (int i = 0; i < n; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char ip[64] = "?";

		if (g->type == GEN_DNS) {
			printf("%s%.*s", i ? ", " : "", ASN1_STRING_length(g->d.dNSName),
			       (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
			int al = ASN1_STRING_length(g->d.iPAddress);

			if (al == 4)
				snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
			else if (al == 16)
				inet_ntop(AF_INET6, a, ip, sizeof(ip));
			printf("%s%s", i ? ", " : "", ip);
		}
	}
	printf("%s\n", n ? "" : "(none)");
	GENERAL_NAMES_free(gens);
}

int acme_cli_main(const struct config *cfg, int argc, char **argv)
{
	char *keyname = NULL, *crt = NULL, *acct = NULL, *spath = NULL, t1[32], t2[32];
	struct acme_state st;
	X509 *x = NULL;
	int ret = 1, r;

	if (argc < 1 || strcmp(argv[0], "status") != 0) {
		fprintf(stderr, "usage: derper [flags] cert status\n");
		return 2;
	}
	keyname = tls_keyname(cfg->hostname ? cfg->hostname : "");
	if (!keyname || asprintf(&crt, "%s/%s.crt", cfg->certdir, keyname) < 0 ||
	    asprintf(&acct, "%s/%s", cfg->certdir, ACME_ACCOUNT_KEY_FILE) < 0 ||
	    !(spath = acme_state_path(cfg->certdir))) {
		fprintf(stderr, "derper: out of memory\n");
		goto out;
	}
	printf("certmode:      %s\n", cfg->certmode == CONFIG_CERTMODE_MANUAL ? "manual"
				      : cfg->certmode == CONFIG_CERTMODE_GCP  ? "gcp"
									      : "letsencrypt");
	printf("hostname:      %s\n", cfg->hostname ? cfg->hostname : "");
	printf("certdir:       %s\n", cfg->certdir);
	r = acme_state_read(spath, &st);
	if (r < 0 && r != -ENOENT)
		printf("state file:    %s: %s\n", spath, strerror(-r));
	printf("directory:     %s\n",
	       st.directory[0]
		       ? st.directory
		       : acme_directory_url(cfg->acme_directory ? cfg->acme_directory : ""));
	printf("account:       %s (key %s%s)\n",
	       st.account[0] ? st.account : "(not registered yet)", acct,
	       access(acct, F_OK) == 0 ? "" : ", missing");
	if (st.challenge[0])
		printf("challenge:     %s\n", st.challenge);
	x = acme_cert_load(crt);
	if (!x) {
		printf("certificate:   none (%s)\n", crt);
	} else {
		char issuer[256] = "";

		X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof(issuer));
		printf("certificate:   %s\n", crt);
		acme_cli_names(x);
		printf("issuer:        %s\n", issuer);
		printf("valid:         %s .. %s\n",
		       acme_fmt_time(acme_asn1_time(X509_get0_notBefore(x)), t1, sizeof(t1)),
		       acme_fmt_time(acme_asn1_time(X509_get0_notAfter(x)), t2, sizeof(t2)));
	}
	if (r == 0) {
		printf("next renewal:  %s (%s)\n", acme_fmt_time(st.next_renewal, t1, sizeof(t1)),
		       st.next_reason[0] ? st.next_reason : "?");
		if (st.ari_end)
			printf("ARI window:    %s .. %s\n",
			       acme_fmt_time(st.ari_start, t1, sizeof(t1)),
			       acme_fmt_time(st.ari_end, t2, sizeof(t2)));
		printf("last attempt:  %s\n", acme_fmt_time(st.last_attempt, t1, sizeof(t1)));
		printf("last success:  %s%s%s\n", acme_fmt_time(st.last_success, t1, sizeof(t1)),
		       st.replaced[0] ? ", replaced " : "", st.replaced);
		printf("last error:    %s", st.last_error[0] ? st.last_error : "none");
		if (st.failures)
			printf(" (%d failed attempt%s in a row)", st.failures,
			       st.failures == 1 ? "" : "s");
		printf("\n");
	} else {
		printf("next renewal:  unknown (no %s yet: the daemon has not run the ACME client)\n",
		       spath);
	}
	ret = 0;
out:
	X509_free(x);
	free(keyname);
	free(crt);
	free(acct);
	free(spath);
	return ret;
}
