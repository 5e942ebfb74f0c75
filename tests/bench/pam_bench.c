/*
 * pam_bench - PAM authentications per second and latency percentiles for
 * a PAM service, run under pam_wrapper.  Users user000000.. have HOTP
 * secrets derived from their index (see secret_of); every iteration
 * answers the prompt with the user's next valid code, computed with
 * liboath, cycling over the users.
 *
 *   pam_bench auth SERVICE NUSERS MAX_AUTHS MAX_SECONDS
 *       (with OE_BENCH_LATENCIES=FILE: each login's number and ms, in order,
 *       to see where the slow ones fall)
 *   pam_bench race SERVICE ROUNDS RACERS
 *   pam_bench usersfile NUSERS        (prints a pam_oath usersfile)
 */
#include <liboath/oath.h>
#include <security/pam_appl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../pam/answer.h"

static char answer[16]; /* conv_answer points here */

static void
secret_of(unsigned i, unsigned char out[20])
{
	for (int b = 0; b < 20; b++)
		out[b] = (unsigned char)(0x5a ^ (b * 31) ^ (i >> ((b % 4) * 8)));
}

static void
code_of(unsigned user, uint64_t counter, char out[16])
{
	unsigned char s[20];

	secret_of(user, s);
	oath_hotp_generate((const char *)s, 20, counter, 6, 0, OATH_HOTP_DYNAMIC_TRUNCATION, out);
}

static int
login(const char *service, unsigned user)
{
	struct pam_conv c = { answer_conv, NULL };
	pam_handle_t *pamh = NULL;
	char name[32];
	int rc;

	snprintf(name, sizeof(name), "user%06u", user);
	if (pam_start(service, name, &c, &pamh) != PAM_SUCCESS)
		return -1;
	rc = pam_authenticate(pamh, 0);
	pam_end(pamh, rc);
	return rc;
}

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
bench(const char *service, unsigned nusers, unsigned max, double max_s)
{
	const char *dump = getenv("OE_BENCH_LATENCIES");
	double *lat = calloc(max, sizeof(double)), t0 = now(), t;
	uint64_t *counter = calloc(nusers, sizeof(uint64_t));
	unsigned done = 0, ok = 0;

	if (lat == NULL || counter == NULL)
		return 1;
	/* Spread the logins over the users with a stride, so a large file
	 * or table is not walked in order. */
	for (unsigned i = 0; i < max && now() - t0 < max_s; i++) {
		unsigned user = (unsigned)(((uint64_t)i * 7919u) % nusers);
		double s;
		code_of(user, counter[user]++, answer);
		s = now();
		if (login(service, user) == PAM_SUCCESS)
			ok++;
		lat[done++] = (now() - s) * 1000.0;
	}
	t = now() - t0;
	if (dump != NULL) {
		FILE *f = fopen(dump, "w");
		if (f == NULL) {
			perror(dump);
			return 1;
		}
		for (unsigned i = 0; i < done; i++)
			fprintf(f, "%u %.3f\n", i, lat[i]);
		fclose(f);
	}
	qsort(lat, done, sizeof(double), cmp);
	printf("%u %u %.1f %.3f %.3f %.3f\n", done, ok, done / t, lat[done / 2],
	       lat[(size_t)(done * 0.99)], lat[done - 1]);
	free(lat);
	free(counter);
	return ok == done ? 0 : 2;
}

static int
race(const char *service, unsigned rounds, unsigned racers)
{
	unsigned exactly_one = 0, total_wins = 0, most = 0;

	for (unsigned r = 0; r < rounds; r++) {
		int gate[2], wins = 0;
		pid_t pid[64];
		char b;

		code_of(0, r, answer);
		if (pipe(gate) != 0)
			return 1;
		for (unsigned i = 0; i < racers; i++)
			if ((pid[i] = fork()) == 0) {
				close(gate[1]);
				if (read(gate[0], &b, 1) != 0)
					_exit(2);
				_exit(login(service, 0) == PAM_SUCCESS ? 0 : 1);
			}
		close(gate[0]);
		close(gate[1]);
		for (unsigned i = 0; i < racers; i++) {
			int st;
			waitpid(pid[i], &st, 0);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				wins++;
		}
		exactly_one += wins == 1;
		total_wins += (unsigned)wins;
		if ((unsigned)wins > most)
			most = (unsigned)wins;
	}
	printf("%u %u %u %u\n", rounds, exactly_one, total_wins, most);
	return 0;
}

int
main(int argc, char **argv)
{
	conv_answer = answer;
	oath_init();
	if (argc == 3 && strcmp(argv[1], "usersfile") == 0) {
		unsigned n = (unsigned)atoi(argv[2]);
		for (unsigned i = 0; i < n; i++) {
			unsigned char s[20];
			secret_of(i, s);
			printf("HOTP user%06u - ", i);
			for (int b = 0; b < 20; b++)
				printf("%02x", s[b]);
			printf("\n");
		}
		return 0;
	}
	if (argc == 6 && strcmp(argv[1], "auth") == 0)
		return bench(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]), atof(argv[5]));
	if (argc == 5 && strcmp(argv[1], "race") == 0)
		return race(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]));
	fprintf(stderr, "usage: see the comment at the top of pam_bench.c\n");
	return 2;
}
