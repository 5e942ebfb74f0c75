#!/bin/bash
# The log handler: the rules check() refuses, the preview, and (as root,
# in a private mount namespace whose /dev/log is a socket this test
# listens on) the syslog lines themselves: priority and facility, ident,
# the rendered message; no syslog socket means a retry; a pre rule logs
# and always allows.
set -u
build=${top_builddir:?}
src=${top_srcdir:?}
bin="$build/tools/otpenroll"
tmp=$(mktemp -d)
listener=
cleanup() {
	[ -n "$listener" ] && kill "$listener" 2>/dev/null && wait "$listener" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
conf="$tmp/oe.conf"
rules="$tmp/events.d"
mkdir "$rules" "$tmp/realdev"
cat >"$conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
backend_dir = $build/lib/store/.libs
key_file = $tmp/secret.key
[events]
dir = $rules
handler_dir = $build/hooks/handlers/.libs
max_attempts = 3
retry_min = 1
retry_max = 1
CONF
# shellcheck source=tests/lib.sh
. "$src/tests/lib.sh"
rule() { cat >"$rules/$1.conf"; }

expect 0 "init" oe init

# ---- check(): what a rule may not say ----
bad_rule() { # WHAT PATTERN  (rule text on stdin)
	rule bad
	expect 2 "refused: $1" oe events list
	has "$tmp/err" "bad.conf line [0-9]*: .*$2" "says: $2"
	rm -f "$rules/bad.conf"
}
lg() { printf '[rule x]\nevent = token_init\nhandler = log\naction = syslog\n'; printf '%s\n' "$@"; }
lg "option.priority = info" | bad_rule "no message" "option.message is required"
lg "option.message = m" "option.priority = emerg" | bad_rule "priority emerg" "option.priority: emerg is not"
lg "option.message = m" "option.facility = kern" | bad_rule "facility kern" "option.facility: kern is not"
lg "option.message = m" "option.ident = a b" | bad_rule "an ident with a space" "option.ident: "
lg "option.message = m" "option.ident = a:b" | bad_rule "an ident with a colon" "option.ident: "

rule logs <<R
[rule audit]
event = token_init, token_delete
handler = log
action = syslog
condition.user = alice
option.message = {event} {serial} for {user} ({tokentype})
option.priority = notice
option.facility = local3
option.ident = oe-test

[rule plain]
event = token_init
handler = log
action = syslog
condition.user = bob
option.message = token for {user}

[rule before]
event = token_init
position = pre
handler = log
action = syslog
condition.user = carl|dan
option.message = about to enroll {user}
option.priority = warning
option.facility = daemon
R
expect 0 "the log rules load" oe events list

# ---- the dry run ----
expect 0 "events test" oe events test --event token_init --set user=alice --set tokentype=totp \
	--set serial=OATH1
has "$tmp/out" "^syslog local3.notice oe-test: token_init OATH1 for alice (totp)$" \
	"preview: facility.priority, ident and the line"
expect 0 "events test: the defaults" oe events test --event token_init --set user=bob
has "$tmp/out" "^syslog authpriv.info otpenroll: token for bob$" "preview: authpriv.info, otpenroll"

# ---- the lines themselves, on a private /dev/log ----
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
	echo "SKIP syslog lines: needs root and unshare -m (a private /dev/log)"
	finish
	exit
fi
# ns SOCKET|- COMMAND...: run COMMAND in a mount namespace whose /dev is
# the real one but for /dev/log, which is SOCKET (or missing, with -).
ns() {
	unshare -m bash -c '
		set -e
		real=$1 sock=$2
		shift 2
		mount --make-rprivate /
		mount --bind /dev "$real"
		mount -t tmpfs -o mode=755 none /dev
		for f in "$real"/*; do [ "${f##*/}" = log ] || ln -s "$f" /dev/; done
		[ "$sock" = - ] || ln -s "$sock" /dev/log
		exec "$@"' ns "$tmp/realdev" "$@"
}
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "ab", buffering=0) as f:
    while True:
        f.write(s.recv(65536).replace(b"\n", b"\\n") + b"\n")
' "$tmp/devlog" "$tmp/syslog.txt" &
listener=$!
for _ in $(seq 100); do
	[ -S "$tmp/devlog" ] && break
	sleep 0.1
done
touch "$tmp/syslog.txt"
# wait_lines N: until the listener has written N lines (or a while has passed).
wait_lines() {
	for _ in $(seq 50); do
		[ "$(wc -l <"$tmp/syslog.txt")" -ge "$1" ] && return
		sleep 0.1
	done
}

expect 0 "alice's token" oe --json token add-otp --user alice --type totp
alice=$(json 'd["serial"]' <"$tmp/out")
expect 1 "dispatch with no /dev/log" ns - "$bin" -c "$conf" --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 1 ] && ok "no syslog socket: retrying" || bad "$(cat "$tmp/out")"
expect 0 "outbox" oe --json events outbox --state retrying
id=$(json 'd[0]["id"]' <"$tmp/out")
[ "$(json 'd[0]["last_error"]' <"$tmp/out")" = "rule audit: syslog: /dev/log: No such file or directory" ] &&
	ok "last error: the socket is missing" || bad "last error: $(cat "$tmp/out")"
expect 0 "events retry" oe events retry "$id"
oe token add-otp --user bob --type totp >/dev/null
expect 0 "dispatch with /dev/log" ns "$tmp/devlog" "$bin" -c "$conf" --json events dispatch --once
[ "$(json 'd["delivered"]' <"$tmp/out")" = 2 ] && ok "both delivered" || bad "$(cat "$tmp/out")"
wait_lines 2
stamp='[A-Z][a-z][a-z] [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9]'
# local3 = 19, notice = 5: 19 * 8 + 5 = 157
grep -qx "<157>$stamp oe-test\[[0-9]*\]: token_init $alice for alice (totp)" "$tmp/syslog.txt" &&
	ok "the line: <local3.notice> time oe-test[pid]: the rendered message" ||
	bad "syslog: $(cat "$tmp/syslog.txt")"
# authpriv = 10, info = 6: 86
grep -qx "<86>$stamp otpenroll\[[0-9]*\]: token for bob" "$tmp/syslog.txt" &&
	ok "the defaults: <authpriv.info> otpenroll" || bad "syslog: $(cat "$tmp/syslog.txt")"
[ "$(wc -l <"$tmp/syslog.txt")" = 2 ] && ok "one line per job" || bad "lines: $(cat "$tmp/syslog.txt")"

# ---- pre: logs and allows, with or without a syslog socket ----
expect 0 "a pre log rule allows carl's token" ns "$tmp/devlog" "$bin" -c "$conf" token add-otp \
	--user carl --type totp
wait_lines 3
# daemon = 3, warning = 4: 28
grep -qx "<28>$stamp otpenroll\[[0-9]*\]: about to enroll carl" "$tmp/syslog.txt" &&
	ok "the pre line: <daemon.warning>" || bad "syslog: $(cat "$tmp/syslog.txt")"
expect 0 "no syslog socket: still allowed" ns - "$bin" -c "$conf" token add-otp --user dan --type totp
has "$tmp/err" "rule before: syslog: /dev/log: No such file" "and the handler says why nothing was logged"
finish
