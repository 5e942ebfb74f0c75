#!/bin/bash
# The script handler: programs run with fork+execve, never a shell.  A
# user name full of shell metacharacters reaches the program byte for
# byte in argv and OE_* and runs nothing; the environment is clean; stdin
# is /dev/null, output goes to the log, no other descriptor is
# inherited; a failing program is retried with one delivery id; pre
# programs refuse with their first line of output or on their timeout,
# and what they started is killed with them.
set -u
build=${top_builddir:?}
src=${top_srcdir:?}
bin="$build/tools/otpenroll"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
conf="$tmp/oe.conf"
rules="$tmp/events.d"
mkdir "$rules" "$tmp/bin" "$tmp/rec" "$tmp/cwd"
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

# ---- the programs ----
# record: its exact argv and environment (as the kernel has them), its
# descriptors, and two lines of output.
cat >"$tmp/bin/record" <<EOF
#!/usr/bin/python3
import os, sys
fds = sorted(int(x) for x in os.listdir("/proc/self/fd"))
for name in ("cmdline", "environ"):
    with open("/proc/self/" + name, "rb") as i, open("$tmp/rec/" + name, "wb") as o:
        o.write(i.read())
with open("$tmp/rec/info", "w") as f:
    f.write("fds=%s\n" % ",".join(map(str, fds)))
    for fd in (0, 1, 2):
        f.write("fd%d=%s\n" % (fd, os.readlink("/proc/self/fd/%d" % fd)))
    f.write("cwd=%s\n" % os.getcwd())
    f.write("own group=%s\n" % (os.getpgid(0) == os.getpid()))
print("recorded %d arguments" % (len(sys.argv) - 1))
print("a second line, on stderr", file=sys.stderr)
EOF
cat >"$tmp/bin/flaky" <<EOF
#!/bin/sh
printf '%s\n' "\$OE_DELIVERY_ID" >>"$tmp/flaky.ids"
[ -e "$tmp/flaky.done" ] && exit 0
: >"$tmp/flaky.done"
echo "boom: first try"
exit 3
EOF
cat >"$tmp/bin/weekend" <<EOF
#!/bin/sh
echo "not on weekends"
echo "(a second line)"
exit 1
EOF
cat >"$tmp/bin/sleeper" <<EOF
#!/bin/sh
sleep 60 &
echo \$! >"$tmp/sleeper.pid"
wait
EOF
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/noexec"
chmod 755 "$tmp/bin/record" "$tmp/bin/flaky" "$tmp/bin/weekend" "$tmp/bin/sleeper"
chmod 644 "$tmp/bin/noexec"

expect 0 "init" oe init

# ---- check(): what a rule may not say ----
bad_rule() { # WHAT PATTERN  (rule text on stdin)
	rule bad
	expect 2 "refused: $1" oe events list
	has "$tmp/err" "bad.conf line [0-9]*: .*$2" "says: $2"
	rm -f "$rules/bad.conf"
}
run() { printf '[rule x]\nevent = token_init\nhandler = script\naction = run\n'; printf '%s\n' "$@"; }
run "option.args = x" | bad_rule "no program" "option.program is required"
run "option.program = bin/record" | bad_rule "a relative path" "option.program: bin/record is not an absolute path"
run "option.program = $tmp/bin/noexec" | bad_rule "a file that is not executable" \
	"option.program: $tmp/bin/noexec is not an executable file"
run "option.program = $tmp/bin" | bad_rule "a directory" "is not an executable file"
run "option.program = $tmp/bin/nosuch" | bad_rule "a missing program" "$tmp/bin/nosuch: No such file"
run "option.program = $tmp/bin/record" "option.timeout = -1" | bad_rule "a bad timeout" "option.timeout"

rule scripts <<R
[rule rec]
event = token_init
handler = script
action = run
condition.tokentype = hotp
option.program = $tmp/bin/record
option.args = --user {user} --subject {subject}
  literal {serial}x{tokentype}

[rule flaky]
event = token_init
handler = script
action = run
condition.user = flo
option.program = $tmp/bin/flaky

[rule slowpost]
event = token_init
handler = script
action = run
condition.user = slowpo
option.program = $tmp/bin/sleeper
option.timeout = 1

[rule weekend]
event = token_init
position = pre
handler = script
action = run
condition.user = weekend
option.program = $tmp/bin/weekend

[rule sleepy]
event = token_init
position = pre
handler = script
action = run
condition.user = sleepy
option.program = $tmp/bin/sleeper
option.timeout = 1
R
expect 0 "the script rules load" oe events list

# ---- the dry run shows argv and environment, values as they are ----
subject='CN=$(touch pwn0); x `touch pwn1` "q" '"'s'"' \ z|&>y'
expect 0 "events test with a subject full of shell syntax" oe events test --event token_init \
	--set user=alice --set tokentype=hotp --set serial=OATH42 --set "subject=$subject"
esc=${subject//\\/\\\\} # the preview writes a backslash as \\
grep -qxF "argv[0] $tmp/bin/record" "$tmp/out" && ok "preview: argv[0] is the program" || bad "argv[0]"
grep -qxF "argv[2] alice" "$tmp/out" && ok "preview: argv[2]" || bad "argv[2]: $(cat "$tmp/out")"
grep -qxF "argv[4] $esc" "$tmp/out" && ok "preview: the subject is one argument, as it is" ||
	bad "argv[4]: $(cat "$tmp/out")"
grep -qxF "argv[6] OATH42xhotp" "$tmp/out" && ok "preview: a word on a continuation line" ||
	bad "argv[6]"
grep -qxF "env OE_SUBJECT=$esc" "$tmp/out" && ok "preview: OE_SUBJECT, as it is" || bad "OE_SUBJECT"
grep -qxF "env PATH=/usr/bin:/bin" "$tmp/out" && ok "preview: PATH" || bad "PATH"
grep -qxF "env OE_RULE=rec" "$tmp/out" && ok "preview: OE_RULE" || bad "OE_RULE"
[ ! -e "$tmp/rec/cmdline" ] && ok "a dry run runs nothing" || bad "the dry run ran the program"

# ---- a real event: a user name full of shell syntax reaches the program as data ----
evil='a;touch${IFS}pwn2|$(touch${IFS}pwn3)`touch${IFS}pwn4`&<>*"'"'"'!'
expect 0 "a token for a user named $evil" oe --json token add-otp --user "$evil" --type hotp
serial=$(json 'd["serial"]' <"$tmp/out")
expect 0 "outbox" oe --json events outbox
did=$(json 'd[0]["delivery_id"]' <"$tmp/out")
# A descriptor the dispatcher leaks must not reach the program; nor must
# the caller's environment.
(cd "$tmp/cwd" && CALLER_SECRET=1 "$bin" -c "$conf" events dispatch --once \
	>"$tmp/out" 2>"$tmp/err" 7>"$tmp/leak")
[ $? = 0 ] && ok "dispatch (exit 0)" || { bad "dispatch"; cat "$tmp/out" "$tmp/err"; }
printf '%s\0' /usr/bin/python3 "$tmp/bin/record" --user "$evil" --subject "" literal \
	"${serial}xhotp" | cmp -s - "$tmp/rec/cmdline" &&
	ok "argv byte for byte: the user name is one argument, {subject} an empty one" ||
	bad "argv: $(tr '\0' ' ' <"$tmp/rec/cmdline")"
grep -qzxF "OE_USER=$evil" "$tmp/rec/environ" && ok "OE_USER byte for byte" ||
	bad "OE_USER: $(tr '\0' '\n' <"$tmp/rec/environ")"
for kv in OE_EVENT=token_init "OE_SERIAL=$serial" OE_TOKENTYPE=hotp OE_ROLLOUT_STATE=enrolled \
	OE_RULE=rec "OE_DELIVERY_ID=$did.rec" PATH=/usr/bin:/bin; do
	grep -qzxF "$kv" "$tmp/rec/environ" && ok "env: $kv" || bad "env: $kv"
done
grep -qzx 'OE_TIME=[0-9-]*T[0-9:]*Z' "$tmp/rec/environ" && ok "env: OE_TIME" || bad "OE_TIME"
names=$(tr '\0' '\n' <"$tmp/rec/environ" | cut -d= -f1 | LC_ALL=C sort | tr '\n' ' ')
[ "$names" = "OE_DELIVERY_ID OE_EVENT OE_ROLLOUT_STATE OE_RULE OE_SERIAL OE_TIME OE_TOKENTYPE OE_USER PATH " ] &&
	ok "nothing else in the environment (no CALLER_SECRET, no empty OE_*)" || bad "environment: $names"
has "$tmp/rec/info" "^fd0=/dev/null$" "stdin is /dev/null"
fd1=$(sed -n 's/^fd1=//p' "$tmp/rec/info")
case $fd1 in
pipe:*) [ "$fd1" = "$(sed -n 's/^fd2=//p' "$tmp/rec/info")" ] ;;
*) false ;;
esac && ok "stdout and stderr: one pipe" || { bad "stdout and stderr: not one pipe"; cat "$tmp/rec/info"; }
has "$tmp/rec/info" "^fds=0,1,2,3$" "no other descriptor (3 is the program's own listing)"
has "$tmp/rec/info" "^own group=True$" "the program leads its own process group"
has "$tmp/err" "script rec: recorded 6 arguments" "stdout is logged"
has "$tmp/err" "script rec: a second line, on stderr" "stderr is logged, line by line"
pwned=$(find "$tmp" -name 'pwn*'; find / -maxdepth 1 -name 'pwn*')
[ -z "$pwned" ] && ok "nothing ran: no pwn* file" || bad "a shell ran: $pwned"

# ---- post: a failure is retried, with the same delivery id ----
oe token add-otp --user flo --type totp >/dev/null
expect 1 "dispatch: the program exits 3" oe --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 1 ] && ok "retrying" || bad "$(cat "$tmp/out")"
expect 0 "outbox" oe --json events outbox --state retrying
id=$(json 'd[0]["id"]' <"$tmp/out")
[ "$(json 'd[0]["last_error"]' <"$tmp/out")" = "rule flaky: exit 3: boom: first try" ] &&
	ok "last error: exit status and first line" || bad "last error: $(cat "$tmp/out")"
expect 0 "events retry" oe events retry "$id"
expect 0 "dispatch: now it exits 0" oe events dispatch --once
[ "$(wc -l <"$tmp/flaky.ids")" = 2 ] && [ "$(sort -u "$tmp/flaky.ids" | wc -l)" = 1 ] &&
	grep -q '\.flaky$' "$tmp/flaky.ids" && ok "two runs, one OE_DELIVERY_ID" ||
	bad "ids: $(cat "$tmp/flaky.ids")"

# gone PIDFILE: the process whose pid the file holds is gone (or a zombie).
gone() {
	local pid
	pid=$(cat "$1" 2>/dev/null) || return 1
	for _ in $(seq 50); do
		[ -e "/proc/$pid" ] || return 0
		[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
		sleep 0.1
	done
	return 1
}
oe token add-otp --user slowpo --type totp >/dev/null
expect 1 "dispatch: the program outlives its timeout" oe --json events dispatch --once
expect 0 "outbox" oe --json events outbox --state retrying
json '[e["last_error"] for e in d]' <"$tmp/out" | grep -q "rule slowpost: timed out after 1 s" &&
	ok "retrying: timed out after 1 s" || bad "timeout: $(cat "$tmp/out")"
gone "$tmp/sleeper.pid" && ok "what it started was killed with it" || bad "the sleeper survived"
rm -f "$tmp/sleeper.pid"

# ---- a delivery longer than the lease: the claim is renewed, so a
# second dispatcher does not deliver it again meanwhile ----
cat >"$tmp/bin/slow" <<EOF
#!/bin/sh
printf '%s\n' "\$OE_DELIVERY_ID" >>"$tmp/slow.ids"
sleep 5
EOF
chmod 755 "$tmp/bin/slow"
rule lease <<R
[rule slowone]
event = token_init
handler = script
action = run
condition.user = leasey
option.program = $tmp/bin/slow
option.timeout = 20
R
sed 's/^\[events\]$/[events]\nlease_seconds = 2/' "$conf" >"$tmp/lease.conf"
oe events dispatch --once >/dev/null # what is due before
oe token add-otp --user leasey --type totp >/dev/null
"$build/tools/otpenroll" -c "$tmp/lease.conf" events dispatch --once >"$tmp/d1" 2>&1 &
first=$!
sleep 3 # past the 2 s lease of the first pass
"$build/tools/otpenroll" -c "$tmp/lease.conf" events dispatch --once >"$tmp/d2" 2>&1
wait "$first"
[ "$(wc -l <"$tmp/slow.ids")" = 1 ] &&
	ok "a delivery past its lease is not taken by a second dispatcher" ||
	bad "delivered $(wc -l <"$tmp/slow.ids") times: $(cat "$tmp/slow.ids")"
rm -f "$rules/lease.conf"

# ---- pre: a refusal with the program's reason; a timeout refuses ----
expect 1 "a pre script exiting 1 refuses" oe token add-otp --user weekend --type totp
has "$tmp/err" "refused by rule weekend: not on weekends$" "its first line is the reason"
expect 0 "weekend's tokens" oe --json token list --user weekend
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "no token was made" || bad "a token was left"
expect 1 "a pre script past its timeout refuses" oe token add-otp --user sleepy --type totp
has "$tmp/err" "refused by rule sleepy: timed out after 1 s" "the reason says so"
gone "$tmp/sleeper.pid" && ok "its child was killed too" || bad "the sleeper survived"
expect 0 "sleepy's tokens" oe --json token list --user sleepy
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "no token was made" || bad "a token was left"
expect 0 "other users are not refused" oe token add-otp --user monday --type totp
finish
