# otpenrolld end to end over its socket (needs root: runs clients as a
# real non-root user, created when missing).
check_PROGRAMS += tests/daemon/daemon_setup
tests_daemon_daemon_setup_SOURCES = tests/daemon/daemon_setup.c
tests_daemon_daemon_setup_LDADD = lib/libotpenroll.la
TESTS += tests/daemon/daemon_test.py
# The systemd unit (systemd-analyze verify) and the daemon's sd_notify.
TESTS += tests/daemon/unit.sh
EXTRA_DIST += tests/daemon/unit.sh
PY_LOG_COMPILER = /usr/bin/python3
EXTRA_DIST += tests/daemon/daemon_test.py
