# libotpenroll: built once as an uninstalled convenience library that the
# unit tests link, then wrapped into the shared library that exports only
# the oe_ API (lib/libotpenroll.map).
include_HEADERS = lib/otpenroll.h
pkgconfig_DATA = lib/otpenroll.pc
pkgconfigdir = $(libdir)/pkgconfig
EXTRA_DIST += lib/libotpenroll.map lib/otpenroll.pc.in

LIB_DEP_CFLAGS = $(OATH_CFLAGS) $(SQLITE_CFLAGS) $(CRYPTO_CFLAGS) \
	$(INIH_CFLAGS) $(JANSSON_CFLAGS)
LIB_DEP_LIBS = $(OATH_LIBS) $(SQLITE_LIBS) $(CRYPTO_LIBS) \
	$(INIH_LIBS) $(JANSSON_LIBS)

noinst_LTLIBRARIES += lib/libotpenroll-core.la
connectorsdir = $(pkglibdir)/connectors
lib_libotpenroll_core_la_CPPFLAGS = $(AM_CPPFLAGS) -DCONNECTORDIR='"$(connectorsdir)"'
lib_libotpenroll_core_la_CFLAGS = $(AM_CFLAGS) $(LIB_DEP_CFLAGS)
lib_libotpenroll_core_la_LIBADD = $(LIB_DEP_LIBS) -ldl
lib_libotpenroll_core_la_SOURCES = \
	lib/otpenroll.h lib/internal.h \
	lib/error.c \
	lib/ctx.c \
	lib/cfg.c lib/cfg.h \
	lib/keyfile.c lib/keyfile.h \
	lib/seal.c lib/seal.h \
	lib/util.c lib/util.h \
	lib/store/store.c lib/store/store.h \
	lib/store/sqlite.c \
	lib/store/schema.c \
	lib/otp.c lib/otp.h \
	lib/auth.c \
	lib/token.c lib/token.h \
	lib/import.c lib/import.h \
	lib/audit.c lib/audit.h \
	lib/event.c lib/event.h \
	lib/users.c \
	lib/outbox.c \
	lib/csr.c lib/csr.h \
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
