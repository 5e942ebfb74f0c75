# Benchmarks: built with `make check` (so they keep compiling) but run by
# hand, see BENCHMARKS.md.  They measure; they assert nothing about time.
check_PROGRAMS += tests/bench/pam_bench
tests_bench_pam_bench_CFLAGS = $(AM_CFLAGS) $(OATH_CFLAGS)
tests_bench_pam_bench_LDADD = $(OATH_LIBS) $(PAM_LIBS)
check_PROGRAMS += tests/bench/cert_bench
tests_bench_cert_bench_LDADD = lib/libotpenroll.la
EXTRA_DIST += tests/bench/pam-bench.sh tests/bench/cert-bench.sh tests/bench/events-bench.sh \
	tests/bench/ca-bench.sh \
	tests/bench/events_bench.py tests/bench/daemon_client.py tests/bench/timed.py
