# The PostgreSQL store end to end, on a throwaway cluster the test runs
# itself; without libpq at configure time it shows as SKIP.
if HAVE_POSTGRESQL
TESTS += tests/store/postgresql.sh
else
TESTS += tests/store/postgresql-missing.sh
endif
EXTRA_DIST += tests/store/postgresql.sh
tests/store/postgresql-missing.sh: $(srcdir)/tests/missing.sh
	@mkdir -p tests/store
	sed 's|$${OE_MISSING:-a test dependency}|libpq-dev (the PostgreSQL store backend)|' $(srcdir)/tests/missing.sh >$@
	chmod +x $@
CLEANFILES += tests/store/postgresql-missing.sh
