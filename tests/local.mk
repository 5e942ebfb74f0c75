# Tests: each kind in its own directory with its own local.mk.
# Test programs link lib/libotpenroll-core.la (the exact shipped code,
# internal functions included); the PAM module links the shared library.
# Tests write configurations, rules and keys that must not be writable
# by others, whatever the umask of whoever runs them.
AM_TESTS_ENVIRONMENT = \
	umask 022; $(PLUGINS_NOT_WRITABLE) \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir; \
	OE_PAM_MODDIR='$(PAM_SYSTEM_MODDIR)'; export OE_PAM_MODDIR; \
	OE_HARDEN_CFLAGS='$(HARDEN_CFLAGS)'; export OE_HARDEN_CFLAGS;

# The store backends are modules; tests load them from the build tree.
OE_TEST_STOREDIR_FLAG = -DOE_TEST_STOREDIR='"$(abs_top_builddir)/lib/store/.libs"' \
	-DOE_TEST_CONNECTORDIR='"$(abs_top_builddir)/lib/ca/.libs"' \
	-DOE_TEST_UNITDIR='"$(abs_top_builddir)/tests/unit/.libs"'

EXTRA_DIST += tests/missing.sh tests/harness.py tests/oom.h
# What configure could not find shows as SKIP (tests/missing.sh).
tests/unit/cmocka-missing.sh: $(srcdir)/tests/missing.sh
	@mkdir -p tests/unit
	sed 's|$${OE_MISSING:-a test dependency}|libcmocka-dev (the unit tests)|' $(srcdir)/tests/missing.sh >$@
	chmod +x $@
tests/pam/pamtest-missing.sh: $(srcdir)/tests/missing.sh
	@mkdir -p tests/pam
	sed 's|$${OE_MISSING:-a test dependency}|libpamtest0-dev (the PAM tests)|' $(srcdir)/tests/missing.sh >$@
	chmod +x $@
CLEANFILES += tests/unit/cmocka-missing.sh tests/pam/pamtest-missing.sh

include tests/unit/local.mk
include tests/pam/local.mk
include tests/cli/local.mk
include tests/fuzz/local.mk
include tests/bench/local.mk
include tests/cert/local.mk
include tests/daemon/local.mk
include tests/events/local.mk
include tests/events/web.mk
include tests/events/mail.mk
include tests/ca/local.mk
include tests/store/local.mk
