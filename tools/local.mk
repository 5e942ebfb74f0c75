# otpenroll: the command line (admin commands on the store, user
# commands through otpenrolld).
bin_PROGRAMS += tools/otpenroll
tools_otpenroll_SOURCES = tools/otpenroll.c tools/cli.c tools/cli.h tools/cli_json.c tools/cli_json.h \
	tools/cmd_token.c tools/cmd_admin.c tools/cmd_capoll.c tools/cmd_cert.c tools/cmd_events.c tools/qr.c \
	tools/client.c tools/client.h tools/proto.c tools/proto.h lib/number.c
tools_otpenroll_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hooks
tools_otpenroll_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(QRENCODE_CFLAGS) $(CRYPTO_CFLAGS)
tools_otpenroll_LDADD = hooks/libotpenroll-hooks.la lib/libotpenroll.la $(JANSSON_LIBS) \
	$(QRENCODE_LIBS) $(CRYPTO_LIBS)
