# pam_otpenroll.so: a thin module over the shared library; only the
# pam_sm_* entry points are exported (pam_module/pam_otpenroll.sym).
pammod_LTLIBRARIES = pam_module/pam_otpenroll.la
pam_module_pam_otpenroll_la_SOURCES = pam_module/pam_otpenroll.c tools/proto.c tools/proto.h
pam_module_pam_otpenroll_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/tools
pam_module_pam_otpenroll_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(CRYPTO_CFLAGS)
pam_module_pam_otpenroll_la_LIBADD = lib/libotpenroll.la $(PAM_LIBS) $(JANSSON_LIBS) $(CRYPTO_LIBS)
pam_module_pam_otpenroll_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-no-undefined -export-symbols $(top_srcdir)/pam_module/pam_otpenroll.sym
EXTRA_DIST += pam_module/pam_otpenroll.sym

# PAM loads the .so; the libtool archive has no use there.
# pammoddir is a data directory to automake: its files go in install-data.
install-data-hook: install-pam-module-hook
install-pam-module-hook:
	rm -f $(DESTDIR)$(pammoddir)/pam_otpenroll.la
uninstall-hook: uninstall-pam-module-hook
uninstall-pam-module-hook:
	rm -f $(DESTDIR)$(pammoddir)/pam_otpenroll.so
.PHONY: install-pam-module-hook uninstall-pam-module-hook

# make distcheck runs this on the installed tree: modules loaded by name
# from a directory are there as .so files alone.
installcheck-local:
	@for d in "$(DESTDIR)$(pammoddir)" "$(DESTDIR)$(handlersdir)" "$(DESTDIR)$(connectorsdir)"; do \
		if ls "$$d"/*.la >/dev/null 2>&1; then echo "libtool archives installed in $$d"; exit 1; fi; \
	done; \
	test -f "$(DESTDIR)$(pammoddir)/pam_otpenroll.so" && \
	test -f "$(DESTDIR)$(connectorsdir)/cmp.so" && test -f "$(DESTDIR)$(connectorsdir)/ejbca-rest.so"
