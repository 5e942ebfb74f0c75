# cmocka unit tests; they link the convenience library, so internal
# functions are reachable and the shipped code is what is tested.
if !HAVE_CMOCKA
TESTS += tests/unit/cmocka-missing.sh
endif
if HAVE_CMOCKA
UNIT_TESTS = tests/unit/test_errors tests/unit/test_cfg tests/unit/test_seal \
	tests/unit/test_otp tests/unit/test_store tests/unit/test_token tests/unit/test_import \
	tests/unit/test_hooks tests/unit/test_remote \
	tests/unit/test_liboath tests/unit/test_connector tests/unit/test_writeq tests/unit/test_oom
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
UNIT_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(OATH_CFLAGS) $(LIB_DEP_CFLAGS) \
	$(OE_TEST_STOREDIR_FLAG)
UNIT_LDADD = lib/libotpenroll-core.la $(CMOCKA_LIBS) $(LIB_DEP_LIBS)
tests_unit_test_errors_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_errors_LDADD = $(UNIT_LDADD)
tests_unit_test_cfg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cfg_LDADD = $(UNIT_LDADD)
tests_unit_test_seal_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_seal_LDADD = $(UNIT_LDADD)
tests_unit_test_otp_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_otp_LDADD = $(UNIT_LDADD)
tests_unit_test_store_CFLAGS = $(UNIT_CFLAGS)
# The write queue it checks the store holds, from its source.
tests_unit_test_store_SOURCES = tests/unit/test_store.c lib/store/writeq.c
# Store backends that misbehave: one opens nothing, one is for a future ABI.
check_LTLIBRARIES += tests/unit/nullstore.la tests/unit/futurestore.la
NULLSTORE_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^oe_store_backend$$' -rpath /nowhere
tests_unit_nullstore_la_SOURCES = tests/unit/nullstore.c
tests_unit_nullstore_la_LDFLAGS = $(NULLSTORE_LDFLAGS)
tests_unit_futurestore_la_SOURCES = tests/unit/nullstore.c
tests_unit_futurestore_la_CPPFLAGS = $(AM_CPPFLAGS) -DNULLSTORE_ABI='(STORE_BACKEND_ABI + 1)'
tests_unit_futurestore_la_LDFLAGS = $(NULLSTORE_LDFLAGS)
tests_unit_test_store_LDADD = $(UNIT_LDADD)
# The write queue is part of the sqlite backend module, not of the
# library: built in here from its source.
tests_unit_test_writeq_SOURCES = tests/unit/test_writeq.c lib/store/writeq.c
tests_unit_test_writeq_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_writeq_LDADD = $(CMOCKA_LIBS)
EXTRA_DIST += tests/unit/files.h tests/unit/holder.h
# Connector plugins that misbehave, for test_connector: tests/unit/badconn.c.
check_LTLIBRARIES += tests/unit/nullca.la tests/unit/futureca.la tests/unit/liarca.la \
	tests/unit/bareca.la
BADCONN_MODULE = $(AM_LDFLAGS) -module -avoid-version -shared -no-undefined -rpath /nowhere
BADCONN_LDFLAGS = $(BADCONN_MODULE) -export-symbols-regex '^oe_connector$$'
tests_unit_nullca_la_SOURCES = tests/unit/badconn.c
tests_unit_nullca_la_CPPFLAGS = $(AM_CPPFLAGS) -DBADCONN=NULLCA
tests_unit_nullca_la_LDFLAGS = $(BADCONN_LDFLAGS)
tests_unit_futureca_la_SOURCES = tests/unit/badconn.c
tests_unit_futureca_la_CPPFLAGS = $(AM_CPPFLAGS) -DBADCONN=FUTURECA
tests_unit_futureca_la_LDFLAGS = $(BADCONN_LDFLAGS)
tests_unit_liarca_la_SOURCES = tests/unit/badconn.c
tests_unit_liarca_la_CPPFLAGS = $(AM_CPPFLAGS) -DBADCONN=LIARCA
tests_unit_liarca_la_LDFLAGS = $(BADCONN_LDFLAGS)
tests_unit_bareca_la_SOURCES = tests/unit/badconn.c
tests_unit_bareca_la_CPPFLAGS = $(AM_CPPFLAGS) -DBADCONN=BARECA
tests_unit_bareca_la_LDFLAGS = $(BADCONN_MODULE) -export-symbols-regex '^oe_not_a_connector$$'
tests_unit_test_connector_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_connector_LDADD = $(UNIT_LDADD)
tests_unit_test_token_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_token_LDADD = $(UNIT_LDADD)
tests_unit_test_import_CFLAGS = $(UNIT_CFLAGS)
# Its own malloc stands in for the C library's: see the file's head.
tests_unit_test_oom_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_oom_LDADD = $(UNIT_LDADD)
tests_unit_test_import_LDADD = $(UNIT_LDADD)
# The library's own calls into liboath are counted through --wrap.
tests_unit_test_liboath_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_liboath_LDADD = $(UNIT_LDADD)
tests_unit_test_liboath_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=oath_init,--wrap=oath_done
# The connectors' parsers, compiled in (the connectors are plugins).
tests_unit_test_remote_SOURCES = tests/unit/test_remote.c lib/ca/ejbca_json.c lib/ca/cmp_msg.c \
	lib/ca/remote/http.c
tests_unit_test_remote_CFLAGS = $(UNIT_CFLAGS) $(CURL_CFLAGS)
tests_unit_test_remote_LDADD = $(CMOCKA_LIBS) $(CURL_LIBS) $(SSL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS)
EXTRA_DIST += tests/unit/data/cmp-pollreq.der tests/unit/data/cmp-pollrep.der \
	tests/unit/data/cmp-p10cr.der tests/unit/data/cmp-cp.der
# The PostgreSQL backend: its text handling from its source, the module
# itself against a server when OE_TEST_PG_URL names one
# (tests/store/postgresql.sh runs it so).
if HAVE_POSTGRESQL
check_PROGRAMS += tests/unit/test_pgsql
TESTS += tests/unit/test_pgsql
tests_unit_test_pgsql_SOURCES = tests/unit/test_pgsql.c lib/store/postgres.c lib/store/pgenv.c
tests_unit_test_pgsql_CFLAGS = $(UNIT_CFLAGS) $(LIBPQ_CFLAGS)
tests_unit_test_pgsql_LDADD = $(UNIT_LDADD) $(LIBPQ_LIBS)
endif
tests_unit_test_hooks_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hooks
tests_unit_test_hooks_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_hooks_LDADD = hooks/libotpenroll-hooks.la $(UNIT_LDADD)
endif
