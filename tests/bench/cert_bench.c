/*
 * cert_bench - certificates issued per second through the library's
 * local CA (CSR parse and self-signature check, key policy, signing, one
 * durable store transaction with its token_init event), with p50/p99.
 *
 *   cert_bench CONFIG CSR_DIR COUNT [MAX_SECONDS]
 * CSR_DIR holds 0.csr .. COUNT-1.csr; request i is made for user u<i>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otpenroll.h"

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	oe_ctx *ctx;
	int count, done = 0, ok = 0;
	double max_s, *lat, t0, t;

	if (argc < 4)
		return 2;
	count = atoi(argv[3]);
	max_s = argc > 4 ? atof(argv[4]) : 20;
	lat = calloc((size_t)count, sizeof(double));
	ctx = oe_ctx_new();
	if (oe_ctx_load_config(ctx, argv[1]) != OE_OK || oe_ctx_open_store(ctx) != OE_OK) {
		fprintf(stderr, "%s\n", oe_ctx_errmsg(ctx));
		return 1;
	}
	t0 = now();
	for (int i = 0; i < count && now() - t0 < max_s; i++) {
		char path[4096], user[32];
		unsigned char buf[8192];
		oe_cert_req r = { 0 };
		oe_cert *c = NULL;
		FILE *f;
		double s;

		snprintf(path, sizeof(path), "%s/%d.csr", argv[2], i);
		snprintf(user, sizeof(user), "u%d", i);
		if ((f = fopen(path, "rb")) == NULL)
			break;
		r.csr_len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		r.csr = buf;
		r.user = user;
		s = now();
		if (oe_cert_request(ctx, &r, &c) == OE_OK && strcmp(c->rollout_state, "enrolled") == 0) {
			ok++;
			if (i % 50 == 0) { /* keep a sample for openssl verify */
				snprintf(path, sizeof(path), "%s/%d.pem", argv[2], i);
				if ((f = fopen(path, "w")) != NULL) {
					fputs(c->cert_pem, f);
					fclose(f);
				}
			}
		} else if (ok == done) { /* the first failure says why */
			fprintf(stderr, "request %d: %s\n", i,
				c ? c->rollout_state : oe_ctx_errmsg(ctx));
		}
		lat[done++] = (now() - s) * 1000.0;
		oe_cert_free(c);
	}
	t = now() - t0;
	qsort(lat, (size_t)done, sizeof(double), cmp);
	printf("%d %d %.1f %.3f %.3f\n", done, ok, done / t, lat[done / 2], lat[(int)(done * 0.99)]);
	oe_ctx_free(ctx);
	free(lat);
	return ok == done ? 0 : 1;
}
