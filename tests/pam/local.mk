# pam_otpenroll through the real PAM library (pam_wrapper + libpamtest).
if !HAVE_PAMTEST
TESTS += tests/pam/pamtest-missing.sh
endif
if HAVE_PAMTEST
check_PROGRAMS += tests/pam/test_pam tests/pam/test_race
TESTS += tests/pam/test_pam tests/pam/test_race
tests_pam_test_pam_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PAMTEST_CFLAGS) $(OE_TEST_STOREDIR_FLAG)
tests_pam_test_pam_LDADD = lib/libotpenroll.la $(CMOCKA_LIBS) $(PAMTEST_LIBS) $(PAM_LIBS)
tests_pam_test_race_CFLAGS = $(AM_CFLAGS) $(PAMTEST_CFLAGS) $(OE_TEST_STOREDIR_FLAG)
tests_pam_test_race_LDADD = lib/libotpenroll.la $(PAM_LIBS)
# Its own malloc stands in for the C library's (tests/oom.h).
check_PROGRAMS += tests/pam/test_pam_oom
TESTS += tests/pam/test_pam_oom
tests_pam_test_pam_oom_CFLAGS = $(AM_CFLAGS) $(OATH_CFLAGS) $(PAMTEST_CFLAGS) $(OE_TEST_STOREDIR_FLAG)
tests_pam_test_pam_oom_LDADD = lib/libotpenroll.la $(OATH_LIBS) $(PAM_LIBS)
endif
TESTS += tests/pam/pamtester.sh tests/pam/exports.sh tests/pam/hardening.sh tests/pam/fulldisk.sh tests/pam/loadset.sh
EXTRA_DIST += tests/pam/pamtester.sh tests/pam/exports.sh tests/pam/hardening.sh tests/pam/fulldisk.sh tests/pam/loadset.sh \
	tests/pam/login.sh tests/pam/wrapper-lock.sh tests/pam/answer.h tests/pam/wrapper.h
check_PROGRAMS += tests/pam/otp_setup
tests_pam_otp_setup_LDADD = lib/libotpenroll.la
