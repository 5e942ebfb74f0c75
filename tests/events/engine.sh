#!/bin/bash
# The event engine through `otpenroll events ...` and real token
# operations, with the recording handler (tests/events/recorder.c):
# rule validation with file:line messages, conditions, order, pre rules
# that refuse, retries with one delivery id, dead entries, partial
# delivery, concurrent dispatchers, and an ABI mismatch.
set -u
build=${top_builddir:?}
bin="$build/tools/otpenroll"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
conf="$tmp/oe.conf"
rules="$tmp/events.d"
mkdir "$rules"
cat >"$conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
backend_dir = $build/lib/store/.libs
key_file = $tmp/secret.key
[events]
dir = $rules
handler_dir = $build/tests/events/.libs
max_attempts = 3
retry_min = 1
retry_max = 1
lease_seconds = 30
CONF
# shellcheck source=tests/lib.sh
. "${top_srcdir:?}/tests/lib.sh"
rec="$tmp/rec.txt"
rule() { cat >"$rules/$1.conf"; }

expect 0 "init" oe init
expect 0 "no rules: events list" oe events list
has "$tmp/out" "no rules" "an empty rules directory lists no rules"

# ---- validation: each bad rule names file, line and key ----
bad_rule() { # WHAT LINE PATTERN  (rule text on stdin)
	rule bad
	expect 2 "rejected: $1" oe events list
	has "$tmp/err" "bad.conf line $2: .*$3" "message names line $2 and says: $3"
	rm -f "$rules/bad.conf"
}
printf '[rule x]\nevent = token_int\nhandler = recorder\naction = record\noption.file = f\n' |
	bad_rule "unknown event" 2 'unknown event "token_int"'
printf '[rule x]\nevent = token_init\nhandler = nosuch\naction = record\n' |
	bad_rule "unknown handler" 3 'handler: .*nosuch.so'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = shout\n' |
	bad_rule "unknown action" 4 'has no action "shout"'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.colour = red\n' |
	bad_rule "unknown condition" 6 'condition.colour: unknown condition'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\noption.volume = 11\n' |
	bad_rule "unknown option" 6 'has no option "volume"'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\noption.line = {usr}\n' |
	bad_rule "unknown template tag" 6 'unknown tag {usr}'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.user = ~(\n' |
	bad_rule "bad regex" 6 'condition.user: "("'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.rollout_state = pendng\n' |
	bad_rule "misspelt state" 6 '"pendng" is not one of'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.failcount = 3\n' |
	bad_rule "failcount without an operator" 6 'failcount takes >N, <N or =N'
printf '[rule x]\nevent = auth_success\nposition = pre\nhandler = recorder\naction = record\noption.file = f\n' |
	bad_rule "pre on an auth event" 3 'auth_success has no pre position'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\nflavour = x\n' |
	bad_rule "unknown key" 6 'unknown key "flavour"'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\n' |
	bad_rule "the handler's own check" 1 'option.file is required'
printf '[rule x]\nevent = token_init\nevent = token_delete\n' |
	bad_rule "a key twice" 3 'event set twice'
printf '[other]\nevent = token_init\n' | bad_rule "not a rule section" 2 'rule sections are'
printf '[rule x]\nevent = token_init\nhandler = badabi\naction = record\noption.file = f\n' |
	bad_rule "a handler built for another ABI" 3 'built for handler ABI 2, this otpenroll speaks 1'
printf '[rule x]\noption.line = %0250d\n' 0 | bad_rule "an over-long line" 2 'longer than 190'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\noption.line = a\n  condition.user = alice\n' |
	bad_rule "an indented key" 7 'indented line is read as more of a value; begin "condition.user"'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\noption.line = a\n  condition.user: alice\n' |
	bad_rule "an indented key: value, which inih reads as a key too" 7 \
	'indented line is read as more of a value; begin "condition.user"'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.user = alice|\n  bob\n' |
	bad_rule "a condition continued on an indented line" 7 \
	'\[rule x\] condition.user takes one line; this indented line would continue it'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.rollout_state = pending|\n  enrolled\n' |
	bad_rule "a fixed-vocabulary condition continued" 7 'condition.rollout_state takes one line'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\ncondition.rollout_state = pending|\n  enrolled\n' >"$rules/bad.conf"
expect 2 "a continued condition: refused" oe events list
[ "$(wc -l <"$tmp/err")" -eq 1 ] && ok "in a one-line message" || { bad "a one-line message"; cat "$tmp/err"; }
rm -f "$rules/bad.conf"
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\nposition = pre\n  x\noption.file = f\n' |
	bad_rule "a one-word key continued" 6 'position takes one line'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\n\n[rule x]\ncondition.user = alice\n' |
	bad_rule "a rule's header repeated right after it" 7 '\[rule x\] appears twice (first on line 1)'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\n[rule y]\nevent = token_init\n[rule x]\nactive = no\n' |
	bad_rule "a rule's header repeated later" 8 '\[rule x\] appears twice (first on line 1)'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\n  [rule y]\n' |
	bad_rule "an indented section" 6 'indented line is read as more of a value'
printf '[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\n[rule y]\n; event = token_init\n' |
	bad_rule "a rule with every key commented out" 6 'the section has no keys'
printf '[rule y]\n; event = token_init\n\n[rule x]\nevent = token_init\nhandler = recorder\naction = record\noption.file = f\n' |
	bad_rule "a keyless rule before another" 1 'the section has no keys'
printf '[rule x]\nevent = token_init\n' >"$rules/bad.conf"
expect 2 "a broken rule stops root's token commands too" oe token add-otp --user z --type totp
has "$tmp/err" "bad.conf line 1: \[rule x\] needs handler" "names the rule file, line and what is missing"
rm -f "$rules/bad.conf"
rule dup <<R
[rule same]
event = token_init
handler = recorder
action = record
option.file = $rec
R
cp "$rules/dup.conf" "$rules/dup2.conf"
expect 2 "the same rule name in two files" oe events list
has "$tmp/err" "dup2.conf line 1: \[rule same\] already defined in .*dup.conf line 1" "both places named"
rm -f "$rules"/dup*.conf
chmod 666 "$rules" 2>/dev/null
rule perm <<R
[rule p]
event = token_init
handler = recorder
action = record
option.file = $rec
R
chmod 666 "$rules/perm.conf"
expect 2 "a world-writable rule file is refused" oe events list
has "$tmp/err" "writable by nobody else" "says why"
rm -f "$rules/perm.conf"
chmod 755 "$rules"
# A handler that is a symbolic link is not loaded, nor one in a directory
# others may write (they could swap it between the check and dlopen).
mkdir -m 700 "$tmp/loose"
cp "$build/tests/events/.libs/recorder.so" "$tmp/loose/"
sed "s|^handler_dir = .*|handler_dir = $tmp/loose|" "$conf" >"$tmp/loose.conf"
rule loose <<R
[rule l]
event = token_init
handler = recorder
action = record
option.file = $rec
R
expect 0 "a handler from a private directory" "$bin" -c "$tmp/loose.conf" events list
mv "$tmp/loose/recorder.so" "$tmp/loose/real.so"
ln -s real.so "$tmp/loose/recorder.so"
expect 2 "a handler that is a symbolic link is refused" "$bin" -c "$tmp/loose.conf" events list
has "$tmp/err" "loose/recorder.so is not a regular file (a symbolic link)" "says why"
rm "$tmp/loose/recorder.so"
mv "$tmp/loose/real.so" "$tmp/loose/recorder.so"
chmod 777 "$tmp/loose"
expect 2 "a handler in a directory others may write is refused" "$bin" -c "$tmp/loose.conf" events list
has "$tmp/err" "the directory $tmp/loose must be owned by root and writable by nobody else" "says why"
rm -f "$rules/loose.conf"

# ---- conditions, order, active, continuation lines ----
rule main <<R
[rule b-second]
event = token_init, token_delete
handler = recorder
action = record
order = 20
option.file = $rec
option.line = {event} {user} {tokentype}

[rule a-first]
event = token_init
handler = recorder
action = record
order = 10
condition.tokentype = totp|hotp
condition.user = !mallory
option.file = $rec
option.line = {event} {user}
  continued

[rule regex]
event = token_init
handler = recorder
action = record
order = 30
condition.user = ~^adm[0-9]+$
option.file = $rec

[rule off]
event = token_init
handler = recorder
action = record
active = no
option.file = $rec

[rule locks]
event = auth_failure, token_locked
handler = recorder
action = record
condition.failcount = >1
option.file = $rec
option.line = {event} {user} {failcount}
R
expect 0 "events list" oe --json events list
[ "$(json '",".join(r["name"] for r in d)' <"$tmp/out")" = "locks,off,a-first,b-second,regex" ] &&
	ok "rules in order, then name" || bad "rule order: $(cat "$tmp/out")"
expect 0 "events test: a totp token for alice" oe --json events test --event token_init \
	--set user=alice --set tokentype=totp
[ "$(json '" ".join(r["rule"] for r in d)' <"$tmp/out")" = "a-first b-second" ] &&
	ok "dry run matches a-first and b-second" || bad "dry run: $(cat "$tmp/out")"
[ ! -e "$rec" ] && ok "a dry run sends nothing" || bad "dry run recorded something"
expect 0 "events test: mallory, negated" oe --json events test --event token_init \
	--set user=mallory --set tokentype=totp
[ "$(json '" ".join(r["rule"] for r in d)' <"$tmp/out")" = "b-second" ] &&
	ok "!mallory excludes mallory" || bad "negation: $(cat "$tmp/out")"
expect 0 "events test: regex" oe --json events test --event token_init --set user=adm42
json '" ".join(r["rule"] for r in d)' <"$tmp/out" | grep -q regex && ok "~ regex matches adm42" ||
	bad "regex: $(cat "$tmp/out")"
expect 0 "events test: failcount" oe --json events test --event auth_failure --set user=a \
	--set failcount=2
[ "$(json 'len(d)' <"$tmp/out")" = 1 ] && ok "failcount >1 matches 2" || bad "failcount"
expect 0 "events test: failcount 1" oe --json events test --event auth_failure --set failcount=1
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "failcount >1 does not match 1" || bad "failcount 1"
expect 2 "events test: unknown field" oe events test --event token_init --set colour=red
has "$tmp/err" '"colour" is not an event field' "says colour is not an event field"
expect 2 "events test: unknown event" oe events test --event token_exploded
has "$tmp/err" 'unknown event "token_exploded"' "says the event is unknown"

expect 0 "a totp token" oe --json token add-otp --user alice --type totp
alice=$(json 'd["serial"]' <"$tmp/out")
expect 0 "dispatch --once" oe events dispatch --once
has "$tmp/out" "1 event(s): 1 delivered" "one event delivered"
[ "$(sed -n 1p "$rec" | cut -d' ' -f1,3-)" = "a-first token_init alice continued" ] &&
	ok "a-first ran first, continuation line joined (a header flavour keeps it on one line)" ||
	bad "first line: $(cat "$rec")"
[ "$(sed -n 2p "$rec" | cut -d' ' -f1,3-)" = "b-second token_init alice totp" ] &&
	ok "b-second ran second" || bad "second line: $(cat "$rec")"
[ "$(wc -l <"$rec")" = 2 ] && ok "inactive and unmatched rules did not run" || bad "extra lines"
expect 0 "dispatch again: nothing due" oe events dispatch --once
has "$tmp/out" "0 event(s)" "nothing delivered twice"

# ---- pre rules refuse before anything happens ----
rule pre <<R
[rule no-bob]
event = token_init
position = pre
handler = recorder
action = record
condition.user = bob
option.file = $tmp/pre.txt
option.refuse = no tokens for {user} today
R
expect 1 "a pre rule refuses bob's token" oe token add-otp --user bob --type totp
has "$tmp/err" "refused by rule no-bob: no tokens for bob today" "the reason reaches the admin"
expect 0 "bob's tokens" oe --json token list --user bob
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "no token was made" || bad "a token was left"
expect 0 "outbox" oe --json events outbox
[ "$(json 'len(d)' <"$tmp/out")" = 1 ] && ok "no event for the refused operation" || bad "outbox"
expect 0 "carol is not refused" oe token add-otp --user carol --type totp
rm -f "$rules/pre.conf" "$rec"

# ---- retries keep the delivery id; max_attempts; events retry; dead ----
gate="$tmp/smtp-down"
rule main <<R
[rule flaky]
event = token_init, token_delete
handler = recorder
action = record
option.file = $rec
option.fail_while = $gate
R
oe events dispatch --once >/dev/null # carol's event, delivered
rm -f "$rec"
touch "$gate"
expect 0 "a token while deliveries fail" oe --json token add-otp --user dave --type hotp
expect 1 "dispatch: the handler fails" oe --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 1 ] && ok "the entry is retrying" || bad "not retrying"
expect 0 "outbox shows the error" oe --json events outbox --state retrying
id=$(json 'd[0]["id"]' <"$tmp/out")
[ "$(json 'd[0]["last_error"]' <"$tmp/out")" = "rule flaky: $gate exists" ] &&
	ok "last error names the rule" || bad "last error: $(cat "$tmp/out")"
did=$(json 'd[0]["delivery_id"]' <"$tmp/out")
[ "$(json 'd[0]["next_attempt"] > d[0]["created"]' <"$tmp/out")" = True ] &&
	ok "backoff: the next attempt is later" || bad "next attempt: $(cat "$tmp/out")"
sleep 2
rm -f "$gate"
expect 0 "after the backoff, delivered" oe events dispatch --once
[ "$(cut -d' ' -f2 "$rec")" = "$did.flaky" ] && ok "delivery id: the event's, the same on retry" ||
	bad "delivery id $(cat "$rec") vs $did"
touch "$gate"
oe token delete "$alice" >/dev/null
for i in 1 2 3; do oe events dispatch --once >/dev/null; sleep 1.2; done
expect 0 "dead after max_attempts" oe --json events outbox --state dead
[ "$(json 'len(d)' <"$tmp/out")" = 1 ] && [ "$(json 'd[0]["attempts"]' <"$tmp/out")" = 3 ] &&
	ok "dead after 3 attempts" || bad "dead: $(cat "$tmp/out")"
dead=$(json 'd[0]["id"]' <"$tmp/out")
rm -f "$gate" "$rec"
expect 0 "events retry revives it" oe events retry "$dead"
expect 0 "and it is delivered" oe events dispatch --once
grep -q " token_delete " "$rec" && ok "the revived event was delivered" || bad "revived: $(cat "$rec")"
rm -f "$rec"

# ---- permanent failure: dead at once; partial delivery is not repeated ----
rule main <<R
[rule ok]
event = token_init
handler = recorder
action = record
option.file = $rec

[rule flaky]
event = token_init
handler = recorder
action = record
option.file = $rec
option.fail_while = $gate

[rule refused]
event = token_init
handler = recorder
action = record
condition.user = erin
option.file = $rec
option.fail_while = $gate
option.permanent = yes
R
touch "$gate"
oe token add-otp --user frank --type totp >/dev/null
oe events dispatch --once >/dev/null
sleep 1.2
rm -f "$gate"
oe events dispatch --once >/dev/null
[ "$(grep -c '^ok ' "$rec")" = 1 ] && [ "$(grep -c '^flaky ' "$rec")" = 1 ] &&
	ok "a retry sends only what is still owed" || bad "partial: $(cat "$rec")"
# A rule that fails for good is not tried again, and takes nothing from
# the other rules of its event: flaky still gets its retries, and the
# entry is dead only once nothing else is owed.
touch "$gate"
rm -f "$rec"
oe token add-otp --user erin --type totp >/dev/null
expect 1 "a permanent failure beside a passing one" oe --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 1 ] && [ "$(json 'd["dead"]' <"$tmp/out")" = 0 ] &&
	ok "retrying for the rule still owed" || bad "permanent: $(cat "$tmp/out")"
sleep 1.2
rm -f "$gate"
expect 1 "then the rule owed is delivered" oe --json events dispatch --once
[ "$(json 'd["dead"]' <"$tmp/out")" = 1 ] && ok "dead: one rule failed for good" ||
	bad "after retry: $(cat "$tmp/out")"
[ "$(grep -c '^flaky ' "$rec")" = 1 ] && [ "$(grep -c '^refused ' "$rec")" = 0 ] &&
	ok "the transient rule delivered on its retry, the permanent one not tried again" ||
	bad "deliveries: $(cat "$rec")"
expect 0 "the dead entry" oe --json events outbox --state dead
erin_dead=$(json '[e["id"] for e in d if "refused" in (e["last_error"] or "")][0]' <"$tmp/out")
[ -n "$erin_dead" ] && ok "its error names the rule that failed for good" || bad "dead: $(cat "$tmp/out")"
expect 0 "events retry owes the failed rule again" oe events retry "$erin_dead"
expect 0 "and delivers only it" oe events dispatch --once
[ "$(grep -c '^refused ' "$rec")" = 1 ] && [ "$(grep -c '^flaky ' "$rec")" = 1 ] &&
	[ "$(grep -c '^ok ' "$rec")" = 1 ] &&
	ok "after events retry only the rule that had failed is delivered" || bad "revived: $(cat "$rec")"
rm -f "$gate" "$rec"

# ---- two dispatchers at once never deliver one event twice ----
rule main <<R
[rule ok]
event = token_init
handler = recorder
action = record
option.file = $rec
R
for i in $(seq 1 40); do oe token add-otp --user "u$i" --type totp >/dev/null; done
oe events dispatch --once >"$tmp/d1" 2>&1 &
oe events dispatch --once >"$tmp/d2" 2>&1 &
oe events dispatch --once >"$tmp/d3" 2>&1
wait
[ "$(wc -l <"$rec")" = 40 ] && [ "$(cut -d' ' -f2 "$rec" | sort -u | wc -l)" = 40 ] &&
	ok "40 events, 40 deliveries across three dispatchers" ||
	bad "concurrent dispatch: $(wc -l <"$rec") lines"

# ---- otpenrolld dispatches by itself, and restarts a dead dispatcher ----
rm -f "$rec"
printf '[daemon]\nsocket = %s\n' "$tmp/sock" >>"$conf"
daemon="$build/tools/otpenrolld"
"$daemon" -c "$conf" 2>"$tmp/daemon.log" &
dpid=$!
wait_for() { # SECONDS COMMAND...: until COMMAND succeeds
	local n=$(($1 * 10))
	shift
	while [ $n -gt 0 ]; do "$@" && return 0; sleep 0.1; n=$((n - 1)); done
	return 1
}
wait_for 10 test -S "$tmp/sock" || bad "the daemon did not start: $(cat "$tmp/daemon.log")"
oe token add-otp --user gina --type totp >/dev/null
wait_for 10 grep -q " token_init gina " "$rec" 2>/dev/null &&
	ok "the daemon delivered a new event by itself" || bad "not delivered by the daemon"
disp=$(pgrep -P "$dpid" | head -1)
[ -n "$disp" ] && kill -9 "$disp"
oe token add-otp --user hank --type totp >/dev/null
wait_for 15 grep -q " token_init hank " "$rec" 2>/dev/null &&
	ok "after its dispatcher was killed, the daemon started another" ||
	bad "no delivery after the dispatcher died: $(cat "$tmp/daemon.log")"
kill -TERM "$dpid"
wait_for 10 sh -c "! kill -0 $dpid 2>/dev/null" && ok "SIGTERM stops the daemon and its dispatcher" ||
	bad "the daemon did not stop"
wait "$dpid" 2>/dev/null
pgrep -f "otpenrolld -c $conf" >/dev/null && bad "a dispatcher outlived the daemon" ||
	ok "no process left behind"
finish
