/*
 * cert_bench - certificates issued per second through the library's
 * local CA (CSR parse and self-signature check, key policy, signing, one
 * durable store transaction with its token_init event), with p50/p99.
 *
 *   cert_bench CONFIG CSR_DIR COUNT [MAX_SECONDS [WORKERS]]
 * CSR_DIR holds 0.csr .. COUNT-1.csr; request i is made for user u<i>.
 * WORKERS processes (default 1), each with its own context and store
 * connection as otpenrolld's sessions have, share the requests: worker w
 * takes i = w, w + WORKERS, ...; the rate is all they issued over the
 * wall time from their start to the last one's end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "otpenroll.h"

struct slot {
	double ms;  /* how long request i took */
	int state;  /* 0 not made, 1 issued, 2 failed */
};

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

static int
worker(const char *conf, const char *dir, int count, double max_s, int w, int workers,
       struct slot *slots)
{
	oe_ctx *ctx = oe_ctx_new();
	double t0;
	int failed = 0;

	if (oe_ctx_load_config(ctx, conf) != OE_OK || oe_ctx_open_store(ctx) != OE_OK) {
		fprintf(stderr, "%s\n", oe_ctx_errmsg(ctx));
		return 1;
	}
	t0 = now();
	for (int i = w; i < count && now() - t0 < max_s; i += workers) {
		char path[4096], user[32];
		unsigned char buf[8192];
		oe_cert_req r = { 0 };
		oe_cert *c = NULL;
		FILE *f;
		double s;

		snprintf(path, sizeof(path), "%s/%d.csr", dir, i);
		snprintf(user, sizeof(user), "u%d", i);
		if ((f = fopen(path, "rb")) == NULL)
			break;
		r.csr_len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		r.csr = buf;
		r.user = user;
		s = now();
		if (oe_cert_request(ctx, &r, &c) == OE_OK && strcmp(c->rollout_state, "enrolled") == 0) {
			slots[i].state = 1;
			if (i % 50 == 0) { /* keep a sample for openssl verify */
				snprintf(path, sizeof(path), "%s/%d.pem", dir, i);
				if ((f = fopen(path, "w")) != NULL) {
					fputs(c->cert_pem, f);
					fclose(f);
				}
			}
		} else {
			slots[i].state = 2;
			if (!failed++) /* the first failure says why */
				fprintf(stderr, "request %d: %s\n", i,
					c ? c->rollout_state : oe_ctx_errmsg(ctx));
		}
		slots[i].ms = (now() - s) * 1000.0;
		oe_cert_free(c);
	}
	oe_ctx_free(ctx);
	return failed != 0;
}

int
main(int argc, char **argv)
{
	int count, workers, done = 0, ok = 0, status = 0;
	double max_s, *lat, t0, t;
	struct slot *slots;

	if (argc < 4)
		return 2;
	count = atoi(argv[3]);
	max_s = argc > 4 ? atof(argv[4]) : 20;
	workers = argc > 5 ? atoi(argv[5]) : 1;
	if (count <= 0 || workers <= 0)
		return 2;
	slots = mmap(NULL, (size_t)count * sizeof(*slots), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	lat = calloc((size_t)count, sizeof(double));
	if (slots == MAP_FAILED || lat == NULL)
		return 1;
	t0 = now();
	for (int w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0)
			return 1;
		if (pid == 0)
			_exit(worker(argv[1], argv[2], count, max_s, w, workers, slots));
	}
	for (int w = 0; w < workers; w++) {
		int st;
		if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			status = 1;
	}
	t = now() - t0;
	for (int i = 0; i < count; i++) {
		if (slots[i].state == 0)
			continue;
		ok += slots[i].state == 1;
		lat[done++] = slots[i].ms;
	}
	if (done == 0)
		return 1;
	qsort(lat, (size_t)done, sizeof(double), cmp);
	printf("%d %d %.1f %.3f %.3f\n", done, ok, done / t, lat[done / 2], lat[(int)(done * 0.99)]);
	free(lat);
	return status;
}
