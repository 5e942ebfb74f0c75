# Tests: each kind in its own directory with its own local.mk.
# Test programs link lib/libotpenroll-core.la (the exact shipped code,
# internal functions included); the PAM module links the shared library.
AM_TESTS_ENVIRONMENT = \
	top_srcdir='$(abs_top_srcdir)'; export top_srcdir; \
	top_builddir='$(abs_top_builddir)'; export top_builddir;

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
