# shellcheck shell=sh
# Sourced by the tests that run pam_wrapper from the shell: they take
# turns with the machine's other pam_wrapper tests (tests/pam/wrapper.h
# says why), holding the lock on descriptor 9 until they end.  Waiting
# is bounded, so that a holder that never lets go costs ten minutes.
if [ -z "${OE_PAMWRAP_LOCKED:-}" ]; then
	exec 9>>/tmp/oe-pam-wrapper.lock
	flock -w 600 9 || echo "/tmp/oe-pam-wrapper.lock still held after 600 s; going on without it" >&2
	OE_PAMWRAP_LOCKED=1
	export OE_PAMWRAP_LOCKED
fi
