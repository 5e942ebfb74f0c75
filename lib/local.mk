# libotpenroll: built once as an uninstalled convenience library that the
# unit tests link, then wrapped into the shared library that exports only
# the oe_ API (lib/libotpenroll.map).
include_HEADERS = lib/otpenroll.h
pkgconfig_DATA = lib/otpenroll.pc
pkgconfigdir = $(libdir)/pkgconfig
EXTRA_DIST += lib/libotpenroll.map lib/otpenroll.pc.in

# SQLite is not among them: the sqlite store backend below is a module
# of its own (lib/store/store.h says why).
LIB_DEP_CFLAGS = $(OATH_CFLAGS) $(CRYPTO_CFLAGS) $(JANSSON_CFLAGS)
LIB_DEP_LIBS = $(OATH_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS)

noinst_LTLIBRARIES += lib/libotpenroll-core.la
connectorsdir = $(pkglibdir)/connectors
storesdir = $(pkglibdir)/stores
lib_libotpenroll_core_la_CPPFLAGS = $(AM_CPPFLAGS) -DCONNECTORDIR='"$(connectorsdir)"' \
	-DSTOREDIR='"$(storesdir)"'
lib_libotpenroll_core_la_CFLAGS = $(AM_CFLAGS) $(LIB_DEP_CFLAGS)
lib_libotpenroll_core_la_LIBADD = $(LIB_DEP_LIBS) -ldl
lib_libotpenroll_core_la_SOURCES = \
	lib/otpenroll.h lib/internal.h \
	lib/error.c \
	lib/ctx.c \
	lib/cfg.c lib/cfg.h \
	lib/keyfile.c lib/keyfile.h \
	lib/seal.c lib/seal.h \
	lib/util.c lib/util.h lib/number.c \
	lib/utf8.c lib/utf8.h \
	lib/mailaddr.c lib/mailaddr.h \
	lib/readfile.c \
	lib/dlsafe.c lib/dlsafe.h \
	lib/store/store.c lib/store/store.h \
	lib/store/url_redact.c lib/store/url_redact.h \
	lib/store/schema.c \
	lib/otp.c lib/otp.h \
	lib/auth.c \
	lib/token.c lib/token.h \
	lib/import.c lib/import.h \
	lib/audit.c lib/audit.h \
	lib/event.c lib/event.h \
	lib/users.c \
	lib/outbox.c \
	lib/csr.c lib/csr.h lib/csrparse.c \
	lib/p12.c lib/p12.h \
	lib/cert.c lib/certtok.h \
	lib/poll.c \
	lib/ca/ca.c lib/ca/ca.h \
	lib/ca/connector.h lib/ca/plugin.c \
	lib/ca/dn.c \
	lib/ca/local.c \
	lib/ca/x509check.c lib/ca/x509check.h

lib_LTLIBRARIES += lib/libotpenroll.la
lib_libotpenroll_la_SOURCES =
lib_libotpenroll_la_LIBADD = lib/libotpenroll-core.la
lib_libotpenroll_la_LDFLAGS = $(AM_LDFLAGS) -version-info $(LIBOTPENROLL_LT_VERSION) \
	-Wl,--version-script=$(top_srcdir)/lib/libotpenroll.map -no-undefined
EXTRA_lib_libotpenroll_la_DEPENDENCIES = $(top_srcdir)/lib/libotpenroll.map

# CA connector plugins, loaded with dlopen from $(connectorsdir) the first
# time a [ca] of their type is used (lib/ca/connector.h says why they are
# not part of the library); each exports only `oe_connector`.
connectors_LTLIBRARIES = lib/ca/cmp.la lib/ca/ejbca-rest.la
CONNECTOR_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^oe_connector$$' -rpath $(connectorsdir)
CONNECTOR_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) $(JANSSON_CFLAGS)
CONNECTOR_LIBS = $(CURL_LIBS) $(SSL_LIBS) $(CRYPTO_LIBS) $(JANSSON_LIBS)
# Compiled into each plugin (they are separate modules); not exported.
CONNECTOR_COMMON = lib/ca/connector.h lib/ca/remote/http.c lib/ca/remote/http.h \
	lib/ca/remote/cred.c lib/ca/remote/cred.h

lib_ca_cmp_la_SOURCES = lib/ca/cmp.c lib/ca/cmp_msg.c lib/ca/cmp_msg.h $(CONNECTOR_COMMON)
lib_ca_cmp_la_CFLAGS = $(CONNECTOR_CFLAGS)
lib_ca_cmp_la_LIBADD = $(CONNECTOR_LIBS)
lib_ca_cmp_la_LDFLAGS = $(CONNECTOR_LDFLAGS)

lib_ca_ejbca_rest_la_SOURCES = lib/ca/ejbca.c lib/ca/ejbca_json.c lib/ca/ejbca_json.h \
	$(CONNECTOR_COMMON)
lib_ca_ejbca_rest_la_CFLAGS = $(CONNECTOR_CFLAGS)
lib_ca_ejbca_rest_la_LIBADD = $(CONNECTOR_LIBS)
lib_ca_ejbca_rest_la_LDFLAGS = $(CONNECTOR_LDFLAGS)

# Store backends, loaded the same way from $(storesdir) by URL scheme;
# each exports only `oe_store_backend`.
stores_LTLIBRARIES = lib/store/sqlite.la
lib_store_sqlite_la_SOURCES = lib/store/sqlite.c lib/store/store.h \
	lib/store/writeq.c lib/store/writeq.h
lib_store_sqlite_la_CFLAGS = $(AM_CFLAGS) $(SQLITE_CFLAGS)
lib_store_sqlite_la_LIBADD = $(SQLITE_LIBS)
STORE_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^oe_store_backend$$' -rpath $(storesdir)
lib_store_sqlite_la_LDFLAGS = $(STORE_LDFLAGS)
# PostgreSQL, when configure found libpq: postgresql.so, for
# postgresql:// (and postgres://) URLs.
if HAVE_POSTGRESQL
stores_LTLIBRARIES += lib/store/postgresql.la
endif
lib_store_postgresql_la_SOURCES = lib/store/postgres.c lib/store/postgres.h lib/store/store.h \
	lib/store/pgenv.c lib/store/pgenv.h \
	lib/store/url_redact.c lib/store/url_redact.h
lib_store_postgresql_la_CFLAGS = $(AM_CFLAGS) $(LIBPQ_CFLAGS)
lib_store_postgresql_la_LIBADD = $(LIBPQ_LIBS)
lib_store_postgresql_la_LDFLAGS = $(STORE_LDFLAGS)

# The loaders refuse a plugin that others may write, or whose directory
# they may (lib/dlsafe.h); under a umask of 002 libtool leaves both so in
# the build tree.  Run after building and before each test (the test
# plugins are built for `make check` only).
PLUGINS_NOT_WRITABLE = for d in lib/store/.libs lib/ca/.libs hooks/handlers/.libs \
	tests/events/.libs tests/unit/.libs; do \
	[ ! -d "$(abs_top_builddir)/$$d" ] || chmod go-w "$(abs_top_builddir)/$$d" \
		$$(ls -d "$(abs_top_builddir)/$$d"/*.so 2>/dev/null); done;
all-local:
	@$(PLUGINS_NOT_WRITABLE)

# Loaded by name from a directory: the .la files are of no use there.
install-data-hook: install-connectors-hook
install-connectors-hook:
	rm -f $(DESTDIR)$(connectorsdir)/*.la $(DESTDIR)$(storesdir)/*.la
uninstall-hook: uninstall-connectors-hook
uninstall-connectors-hook:
	rm -f $(DESTDIR)$(connectorsdir)/cmp.so $(DESTDIR)$(connectorsdir)/ejbca-rest.so \
		$(DESTDIR)$(storesdir)/sqlite.so $(DESTDIR)$(storesdir)/postgresql.so
.PHONY: install-connectors-hook uninstall-connectors-hook
