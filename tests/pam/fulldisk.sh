#!/bin/sh
# A full disk under the store: logins fail closed (PAM_AUTHINFO_UNAVAIL),
# the message says why, nothing is spent or damaged, and once there is
# room again the very code that was refused is accepted.  Once with the
# module on its own, once with otpenrolld answering.  The store lives on
# a small tmpfs of its own, so this needs root (and a kernel that lets
# it mount one).
set -eu
build=${top_builddir:?}
for t in pamtester oathtool python3; do
	command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
[ "$(id -u)" = 0 ] || { echo "SKIP: mounting a small filesystem needs root"; exit 77; }
tmp=$(mktemp -d)
mnt=$tmp/mnt
mkdir "$mnt" "$tmp/svc"
mount -t tmpfs -o size=2m,mode=0700 tmpfs "$mnt" 2>"$tmp/mount.err" || {
	cat "$tmp/mount.err"
	rm -rf "$tmp"
	echo "SKIP: cannot mount a tmpfs here"
	exit 77
}
oed=
cleanup() {
	[ -n "$oed" ] && kill "$oed" 2>/dev/null && wait "$oed" 2>/dev/null
	umount "$mnt" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
key=3132333435363738393031323334353637383930
cat >"$tmp/oe.conf" <<CONF
[store]
url = sqlite:$mnt/oe.db
backend_dir = $build/lib/store/.libs
key_file = $tmp/secret.key
[otp]
window = 0
CONF
cat "$tmp/oe.conf" - >"$tmp/oed.conf" <<CONF
[daemon]
socket = $tmp/oed.sock
CONF
"$build/tests/pam/otp_setup" "$tmp/oe.conf" carol hotp "$key" >/dev/null
# login CONF COUNTER: pamtester's exit status; its output in $tmp/out.
login() {
	echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$1" >"$tmp/svc/login"
	oathtool --hotp -c "$2" "$key" |
		LD_PRELOAD="${OE_ASAN_RUNTIME:+$OE_ASAN_RUNTIME }libpam_wrapper.so" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$tmp/svc" pamtester login carol authenticate >"$tmp/out" 2>&1
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
"$build/tools/otpenrolld" -c "$tmp/oed.conf" 2>"$tmp/oed.err" &
oed=$!
for _ in $(seq 100); do [ -S "$tmp/oed.sock" ] && break; sleep 0.05; done
[ -S "$tmp/oed.sock" ] || { cat "$tmp/oed.err"; echo "FAIL: otpenrolld did not start"; exit 1; }
check "$tmp/oed.conf" 2 "otpenrolld"
kill -0 "$oed" || { cat "$tmp/oed.err"; echo "FAIL: otpenrolld died"; exit 1; }
# The daemon's open connection fails at the commit: SQLITE_FULL, in words.
grep -q "database or disk is full" "$tmp/oed.err" || { cat "$tmp/oed.err"; echo "FAIL: otpenrolld does not say the disk is full"; exit 1; }
ok "otpenrolld kept serving and said the disk is full"
