# otpenrolld: the self-service daemon (tools/otpenrolld.c, daemon_*.c) and
# the socket protocol shared with the command line (proto.c, client.c),
# whose --json token shape its cert_list replies share (cli_json.c).
sbin_PROGRAMS += tools/otpenrolld
tools_otpenrolld_SOURCES = tools/otpenrolld.c tools/daemon.h \
	tools/daemon_session.c tools/daemon_pam.c tools/daemon_auth.c tools/daemon_dispatch.c tools/daemon_poller.c tools/daemon_worker.c \
	tools/proto.c tools/proto.h tools/cli_json.c tools/cli_json.h
tools_otpenrolld_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hooks
tools_otpenrolld_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
tools_otpenrolld_LDADD = hooks/libotpenroll-hooks.la lib/libotpenroll.la $(JANSSON_LIBS) $(CRYPTO_LIBS) $(PAM_LIBS)
dist_man_MANS += doc/otpenrolld.8
EXTRA_DIST += doc/protocol.md
