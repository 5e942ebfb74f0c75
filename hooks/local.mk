# The event-handler subsystem: the rules engine (an uninstalled
# convenience library the command line, the daemon and the tests link)
# and the handler plugins, loaded with dlopen from $(handlersdir).
otpenrollincludedir = $(includedir)/otpenroll
otpenrollinclude_HEADERS = hooks/handler.h

noinst_LTLIBRARIES += hooks/libotpenroll-hooks.la
hooks_libotpenroll_hooks_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hooks \
	-DHANDLERDIR='"$(handlersdir)"'
hooks_libotpenroll_hooks_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(INIH_CFLAGS)
hooks_libotpenroll_hooks_la_LIBADD = lib/libotpenroll.la $(JANSSON_LIBS) $(INIH_LIBS) -ldl
hooks_libotpenroll_hooks_la_SOURCES = hooks/handler.h hooks/hooks.h hooks/engine.h \
	hooks/rules.c hooks/conditions.c hooks/template.c hooks/loader.c \
	hooks/host.c hooks/hooks.c hooks/dispatch.c hooks/pre.c \
	lib/dlsafe.c lib/dlsafe.h

# Handlers: one module each, exporting only `oe_handler`.
handlersdir = $(pkglibdir)/handlers
handlers_LTLIBRARIES = hooks/handlers/usernotification.la hooks/handlers/webhook.la \
	hooks/handlers/script.la hooks/handlers/log.la
HANDLER_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared -no-undefined \
	-export-symbols-regex '^oe_handler$$' -rpath $(handlersdir)
HANDLER_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hooks
# Compiled into each handler (they are separate modules); not exported.
HANDLER_COMMON = hooks/handlers/hbuf.c hooks/handlers/hbuf.h hooks/handlers/hopt.c \
	hooks/handlers/hopt.h

# The usernotification handler's files (hooks/handlers/un.h lists them).
hooks_handlers_usernotification_la_SOURCES = hooks/handlers/usernotification.c \
	hooks/handlers/un.h hooks/handlers/un_text.c hooks/handlers/un_conf.c \
	hooks/handlers/un_mail.c hooks/handlers/un_smtp.c lib/utf8.c lib/utf8.h \
	lib/mailaddr.c lib/mailaddr.h \
	hooks/handlers/tlsrelay.c hooks/handlers/tlsrelay.h $(HANDLER_COMMON)
hooks_handlers_usernotification_la_CPPFLAGS = $(HANDLER_CPPFLAGS)
hooks_handlers_usernotification_la_CFLAGS = $(AM_CFLAGS) $(ESMTP_CFLAGS) $(CRYPTO_CFLAGS)
hooks_handlers_usernotification_la_LIBADD = $(ESMTP_LIBS) $(CRYPTO_LIBS) $(SSL_LIBS) -lpthread
hooks_handlers_usernotification_la_LDFLAGS = $(HANDLER_LDFLAGS)

hooks_handlers_webhook_la_SOURCES = hooks/handlers/webhook.c $(HANDLER_COMMON)
hooks_handlers_webhook_la_CPPFLAGS = $(HANDLER_CPPFLAGS)
hooks_handlers_webhook_la_CFLAGS = $(AM_CFLAGS) $(CURL_CFLAGS)
hooks_handlers_webhook_la_LIBADD = $(CURL_LIBS)
hooks_handlers_webhook_la_LDFLAGS = $(HANDLER_LDFLAGS)

hooks_handlers_script_la_SOURCES = hooks/handlers/script.c $(HANDLER_COMMON)
hooks_handlers_script_la_CPPFLAGS = $(HANDLER_CPPFLAGS)
hooks_handlers_script_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
hooks_handlers_script_la_LIBADD = $(JANSSON_LIBS)
hooks_handlers_script_la_LDFLAGS = $(HANDLER_LDFLAGS)

hooks_handlers_log_la_SOURCES = hooks/handlers/log.c
hooks_handlers_log_la_CPPFLAGS = $(HANDLER_CPPFLAGS)
hooks_handlers_log_la_LDFLAGS = $(HANDLER_LDFLAGS)

# Handlers are loaded by name from a directory: the .la files are of no
# use there.
install-data-hook: install-handlers-hook
install-handlers-hook:
	rm -f $(DESTDIR)$(handlersdir)/*.la
uninstall-hook: uninstall-handlers-hook
uninstall-handlers-hook:
	rm -f $(DESTDIR)$(handlersdir)/usernotification.so $(DESTDIR)$(handlersdir)/webhook.so \
		$(DESTDIR)$(handlersdir)/script.so $(DESTDIR)$(handlersdir)/log.so
.PHONY: install-handlers-hook uninstall-handlers-hook
