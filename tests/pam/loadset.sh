#!/bin/sh
# With otpenrolld answering (root's daemon, for a root login process),
# the login never opens the store, so SQLite is never loaded into it
# (lib/store/store.h): the dynamic loader's own record of the login
# process says what it loaded.  A login the store answers must show
# SQLite in the same record, or the check could not fail.  pamtester
# through pam_wrapper, as in pamtester.sh.
set -eu
# shellcheck source=tests/pam/login.sh
. "${top_srcdir:?}/tests/pam/login.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: the module asks only a daemon running as root, for a login process running as root"; exit 77; }
store_conf "$tmp/oe.conf" "$tmp" 1
hkey=3132333435363738393031323334353637383931
"$build/tests/pam/otp_setup" "$tmp/oe.conf" dave hotp "$hkey"
start_oed "$tmp/oe.conf"
# login CONF COUNTER: dave logs in with that HOTP code; the loader's
# record goes to $tmp/ld.*.
login() {
	rm -f "$tmp"/ld.*
	service "$1"
	oathtool --hotp -c "$2" "$hkey" | pt dave LD_DEBUG=files LD_DEBUG_OUTPUT="$tmp/ld" 2>"$tmp/err" \
		|| { cat "$tmp/err"; echo "FAIL: dave's code $2 refused"; exit 1; }
	grep -l "file=.*pam_otpenroll.so" "$tmp"/ld.* >/dev/null \
		|| { echo "FAIL: no loader record of the login"; exit 1; }
}
login "$tmp/oed.conf" 0
if grep -q "file=libsqlite3" "$tmp"/ld.*; then
	echo "FAIL: a login otpenrolld answered loaded SQLite"
	exit 1
fi
"$build/tools/otpenroll" -c "$tmp/oe.conf" --json audit >"$tmp/audit"
python3 -c 'import json, sys; sys.exit(0 if sum(1 for e in json.load(open(sys.argv[1])) if e["user"] == "dave" and e["action"] == "auth" and e["result"] == "success") == 1 else 1)' "$tmp/audit" \
	|| { cat "$tmp/audit"; echo "FAIL: otpenrolld did not record dave's login"; exit 1; }
echo "ok: a login otpenrolld answers does not load SQLite"
login "$tmp/oe.conf" 1
grep -q "file=libsqlite3" "$tmp"/ld.* || { echo "FAIL: the loader record shows no SQLite for a login the store answered"; exit 1; }
echo "ok: a login the store answers loads it (the check can fail)"
