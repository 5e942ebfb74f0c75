#!/bin/sh
# A full disk under the store: logins fail closed (PAM_AUTHINFO_UNAVAIL),
# the message says why, nothing is spent or damaged, and once there is
# room again the very code that was refused is accepted.  Once with the
# module on its own, once with otpenrolld answering.  The store lives on
# a small tmpfs of its own, so this needs root (and a kernel that lets
# it mount one).
set -eu
# shellcheck source=tests/pam/login.sh
. "${top_srcdir:?}/tests/pam/login.sh"
[ "$(id -u)" = 0 ] || { echo "SKIP: mounting a small filesystem needs root"; exit 77; }
mnt=$tmp/mnt
mkdir "$mnt"
mount -t tmpfs -o size=2m,mode=0700 tmpfs "$mnt" 2>"$tmp/mount.err" \
	|| { cat "$tmp/mount.err"; echo "SKIP: cannot mount a tmpfs here"; exit 77; }
on_exit='umount "$mnt" 2>/dev/null || true'
key=3132333435363738393031323334353637383930
store_conf "$tmp/oe.conf" "$mnt" 0
"$build/tests/pam/otp_setup" "$tmp/oe.conf" carol hotp "$key" >/dev/null
# login CONF COUNTER: pamtester's exit status; its output in $tmp/out.
login() {
	service "$1"
	oathtool --hotp -c "$2" "$key" | pt carol >"$tmp/out" 2>&1
}
fill() { dd if=/dev/zero of="$mnt/fill" bs=4096 2>/dev/null || true; }
# The token as the store has it: counter and fail count.
state() {
	python3 - "$mnt/oe.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
print("%d %d" % db.execute("SELECT counter, failcount FROM tokens WHERE owner = 'carol'").fetchone())
PY
}
ok() { echo "ok: $*"; }
bad() { cat "$tmp/out"; echo "FAIL: $*"; exit 1; }

# check CONF COUNTER WHO: the login with that code fails closed on a
# full disk, and succeeds once the space is back.
check() {
	login "$1" "$2" || bad "$3: a login with room to spare"
	fill
	if login "$1" $(($2 + 1)); then bad "$3: a login succeeded on a full disk"; fi
	grep -q "cannot retrieve authentication info" "$tmp/out" \
		|| bad "$3: a full disk is not PAM_AUTHINFO_UNAVAIL"
	ok "$3: on a full disk the login fails closed"
	rm -f "$mnt/fill"
	[ "$(state)" = "$(($2 + 1)) 0" ] || bad "$3: the store changed: $(state)"
	ok "$3: nothing spent, the store intact"
	login "$1" $(($2 + 1)) || bad "$3: the refused code, once there is room again"
	[ "$(state)" = "$(($2 + 2)) 0" ] || bad "$3: after it: $(state)"
	ok "$3: with room again the same code is accepted"
}
check "$tmp/oe.conf" 0 "alone"
fill
login "$tmp/oe.conf" 2 || true
# Opening the store on a full disk fails in SQLite's I/O layer ("disk
# I/O error"): what the system said comes with it.
grep -q "disk I/O error (No space left on device)" "$tmp/out" || bad "alone: the log does not say the disk is full"
ok "alone: the log says the disk is full"
rm -f "$mnt/fill"
start_oed "$tmp/oe.conf"
check "$tmp/oed.conf" 2 "otpenrolld"
kill -0 "$oed" || { cat "$tmp/oed.err"; echo "FAIL: otpenrolld died"; exit 1; }
# The daemon's open connection fails at the commit: SQLITE_FULL, in words.
grep -q "database or disk is full" "$tmp/oed.err" || { cat "$tmp/oed.err"; echo "FAIL: otpenrolld does not say the disk is full"; exit 1; }
ok "otpenrolld kept serving and said the disk is full"
