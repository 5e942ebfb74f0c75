#!/bin/bash
# The otpenroll command as an admin uses it: output, --json fields and
# exit codes of every foundation command, config errors, pam_oath import.
set -u
build=${top_builddir:?}
bin="$build/tools/otpenroll"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
conf="$tmp/oe.conf"
cat >"$conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
key_file = $tmp/secret.key
backend_dir = $build/lib/store/.libs
[otp]
window = 1
CONF
# shellcheck source=tests/lib.sh
. "${top_srcdir:?}/tests/lib.sh"

expect 0 "init" oe init
grep -q "new key written" "$tmp/out" && ok "init says a key was written" || bad "init output"
[ "$(stat -c %a "$tmp/secret.key")" = 600 ] && ok "key file is 0600" || bad "key mode"
expect 0 "init again" oe init
grep -q "new key" "$tmp/out" && bad "second init wrote a key" || ok "second init keeps the key"

expect 0 "add-otp totp --json" oe --json token add-otp --user alice --type totp
serial=$(json 'd["serial"]' <"$tmp/out")
uri=$(json 'd["uri"]' <"$tmp/out")
case "$uri" in
otpauth://totp/otpenroll:alice\?secret=*\&digits=6\&period=30) ok "URI shape: $uri" ;;
*) bad "URI shape: $uri" ;;
esac
grep -q '▀\|▄\|█' "$tmp/out" && bad "QR code printed without a terminal" || ok "no QR code without a terminal"
if command -v script >/dev/null; then
	script -qc "$bin -c $conf token add-otp --user qr --type hotp" /dev/null >"$tmp/tty" 2>&1
	grep -q '▀\|▄' "$tmp/tty" && ok "QR code on a terminal" || bad "no QR code on a terminal"
fi
key=3132333435363738393031323334353637383930
echo $key >"$tmp/k.hex"
chmod 600 "$tmp/k.hex"
expect 0 "add-otp hotp from a secret file" oe --json token add-otp --user bob --type hotp \
	--digits 8 --secret-file "$tmp/k.hex"
bob=$(json 'd["serial"]' <"$tmp/out")
grep -q 'secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ' "$tmp/out" && ok "secret from the file" || bad "secret file"
chmod 644 "$tmp/k.hex"
expect 1 "a world-readable secret file is refused" oe token add-otp --user bob --type hotp --secret-file "$tmp/k.hex"
grep -q "chmod 600" "$tmp/err" && ok "the refusal says what to do" || bad "refusal: $(cat "$tmp/err")"
chmod 600 "$tmp/k.hex"
ln -s "$tmp/k.hex" "$tmp/k.link"
expect 1 "a secret file named through a symbolic link is refused" \
	oe token add-otp --user bob --type hotp --secret-file "$tmp/k.link"
grep -q "symbolic link" "$tmp/err" && ok "the refusal names the link" || bad "link refusal: $(cat "$tmp/err")"
expect 0 "--secret-hex works and warns" oe token add-otp --user carl --type totp --secret-hex $key
grep -q "process list" "$tmp/err" && ok "warning about --secret-hex" || bad "no --secret-hex warning"
expect 0 "add-otp --help" oe token add-otp --help
grep -q '^Usage: otpenroll token add-otp .*\[--secret-file F | --secret-hex H\]' "$tmp/out" \
	&& ok "add-otp usage shows --secret-hex" || bad "add-otp usage: $(head -1 "$tmp/out")"
expect 2 "bad --digits" oe token add-otp --user x --type totp --digits 7
grep -q '^Usage: otpenroll token add-otp .*--secret-hex H' "$tmp/err" \
	&& ok "the usage after an error shows --secret-hex" || bad "usage after an error: $(cat "$tmp/err")"
expect 2 "missing --type" oe token add-otp --user x
has "$tmp/err" "--user and --type are required" "says --type is required"
expect 2 "bad type" oe token add-otp --user x --type sms
has "$tmp/err" "--type must be totp or hotp" "says the type must be totp or hotp"
expect 1 "invalid user name" oe token add-otp --user "a b" --type totp
has "$tmp/err" 'invalid user name "a b"' "says the user name is invalid"

expect 0 "token list" oe token list
head -1 "$tmp/out" | grep -q '^SERIAL *TYPE *USER *ACTIVE *STATE *FAILS *LOCKED' && ok "list header" || bad "list header"
expect 0 "token list --json" oe --json token list
[ "$(json 'len(d)' <"$tmp/out")" = 4 ] && ok "four tokens listed" || bad "token count"
json 'sorted(d[0].keys())' <"$tmp/out" | grep -q "'active'.*'failcount'.*'locked'.*'rollout_state'.*'serial'.*'type'.*'user'" \
	&& ok "token JSON has the contract's fields" || bad "token JSON fields"
expect 0 "token list --user" oe --json token list --user alice
[ "$(json 'len(d)' <"$tmp/out")" = 1 ] && ok "one token for alice" || bad "--user filter"
expect 0 "token show" oe token show "$serial"
grep -q "^type: *totp" "$tmp/out" && ok "show text" || bad "show text"
expect 0 "disable" oe token disable "$serial"
[ "$(oe --json token show "$serial" | json 'd["active"]')" = False ] && ok "disabled" || bad "disable"
expect 0 "enable" oe token enable "$serial"
# A token locked after failures (as the library leaves it): unlock
# clears the lock and the count, and says so in the audit log.
sqlite3 -cmd ".timeout 5000" "$tmp/oe.db" \
	"UPDATE tokens SET failcount = 5, locked_until = strftime('%s', 'now') + 600 WHERE serial = '$bob'"
[ "$(oe --json token show "$bob" | json 'd["locked"], d["failcount"]')" = "True 5" ] \
	&& ok "shown as locked" || bad "locked token shown as: $(oe --json token show "$bob")"
expect 0 "unlock" oe token unlock "$bob"
[ "$(oe --json token show "$bob" | json 'd["locked"], d["failcount"]')" = "False 0" ] \
	&& ok "unlocked, failures forgotten" || bad "after unlock: $(oe --json token show "$bob")"
oe --json audit | json '[e for e in d if e["serial"] == "'"$bob"'" and e["action"] == "token_unlock"]' | grep -q token_unlock \
	&& ok "unlock audited" || bad "no audit row for the unlock"
expect 1 "unknown serial" oe token show NOSUCH
grep -q "no token with serial NOSUCH" "$tmp/err" && ok "unknown serial message" || bad "unknown serial message"
expect 0 "delete" oe token delete "$bob"
expect 1 "deleted is gone" oe token show "$bob"
has "$tmp/err" "no token with serial $bob" "says there is no such token"
expect 0 "revoke an OTP token" oe token revoke "$serial"
[ "$(oe --json token show "$serial" | json 'd["rollout_state"]')" = revoked ] && ok "revoked" || bad "revoke"
expect 1 "revoke twice" oe token revoke "$serial"
has "$tmp/err" "token $serial is already revoked" "says it is revoked already"

# Numbers are whole and in range, or refused naming the option: none
# is cut down to one that fits (4294967326 is 30 modulo 2^32).
for bad in "--period 4294967326" "--period 0" "--period +30" "--digits 4294967304" "--digits 6x" \
	"--counter -1" "--counter 18446744073709551616" "--counter 9223372036854775807" "--counter ="; do
	# shellcheck disable=SC2086
	expect 2 "add-otp $bad" oe token add-otp --user numbers --type hotp ${bad%% *} "${bad#* }"
	grep -q -- "${bad%% *} must be" "$tmp/err" && ok "the message names ${bad%% *}" \
		|| bad "$bad: $(cat "$tmp/err")"
done
[ "$(oe --json token list --user numbers | json 'len(d)')" = 0 ] && ok "no token for the bad numbers" \
	|| bad "tokens made from bad numbers: $(oe --json token list --user numbers)"
expect 0 "add-otp with numbers in range" oe --json token add-otp --user numbers --type totp --period 3600 --digits 8
expect 0 "add-otp hotp --counter" oe --json token add-otp --user numbers --type hotp --counter 4611686018427387903
[ "$(oe --json token list --user numbers | json 'sorted((t["type"], t["digits"], t.get("period"), t["counter"]) for t in d)')" \
	= "[('hotp', 6, None, 4611686018427387903), ('totp', 8, 3600, 0)]" ] && ok "kept as given" \
	|| bad "numbers: $(oe --json token list --user numbers)"

expect 2 "unknown command" oe frobnicate
has "$tmp/err" 'unknown command "frobnicate"' "names the unknown command"
expect 2 "unknown token command" oe token frobnicate
has "$tmp/err" 'otpenroll token: unknown command "frobnicate"' "names the unknown token command"
has "$tmp/err" "Try .otpenroll token --help" "points at the group's help"
expect 2 "unknown option" oe token list --bogus
has "$tmp/err" "^otpenroll token list: unrecognized option '--bogus'" "names the command and the unknown option"
expect 2 "no command" oe
[ "$(head -n 1 "$tmp/err")" = "Usage: otpenroll [-c FILE] [--json] COMMAND [ARGS...]" ] &&
	ok "prints the usage, with no other message before it" || bad "no command: $(cat "$tmp/err")"
expect 0 "--version" oe --version
for c in "" "init" "audit" "user set" "events outbox" "events retry" "token" "token add-otp" "token import" "token list" "token show" \
	"token enable" "token disable" "token delete" "token unlock" "token revoke" "ca init" \
	"ca approve" "ca deny" "ca crl" "ca check" "cert request" "cert fetch" "cert list" \
	"cert upload"; do
	# shellcheck disable=SC2086
	"$bin" $c --help >"$tmp/out" 2>&1 && grep -q "Usage: otpenroll" "$tmp/out" \
		&& ok "--help: otpenroll $c" || bad "--help: otpenroll $c"
done

# Configuration errors: exit 2, file, line and key named.
printf '[store]\nurl = sqlite:%s/oe.db\nkeyfile = x\n' "$tmp" >"$tmp/bad.conf"
expect 2 "unknown key" "$bin" -c "$tmp/bad.conf" token list
grep -q "bad.conf line 3: \[store\] unknown key \"keyfile\"" "$tmp/err" && ok "names file, line, key" || bad "config message: $(cat "$tmp/err")"
expect 2 "missing config" "$bin" -c "$tmp/none.conf" token list
has "$tmp/err" "$tmp/none.conf: No such file or directory" "names the missing file"
# A user command reads the socket's name from the configuration: one
# that does not load is a configuration error, and no daemon is asked.
expect 2 "a user command with a bad config" env -u OTPENROLL_SOCKET "$bin" -c "$tmp/bad.conf" cert list
grep -q 'unknown key "keyfile"' "$tmp/err" && ! grep -q otpenrolld "$tmp/err" \
	&& ok "says why, without trying a socket" || bad "user command, bad config: $(cat "$tmp/err")"
# A store backend directory without the backend: a configuration error
# naming the file it looked for and the key that moves it.
sed "s|^backend_dir = .*|backend_dir = $tmp/nowhere|" "$conf" >"$tmp/nobackend.conf"
expect 2 "no store backend" "$bin" -c "$tmp/nobackend.conf" token list
grep -q "\[store\] sqlite backend: $tmp/nowhere/sqlite.so: No such file" "$tmp/err" && grep -q "backend_dir" "$tmp/err" \
	&& ok "names the backend file and backend_dir" || bad "backend message: $(cat "$tmp/err")"
OTPENROLL_CONFIG=$conf expect 0 "OTPENROLL_CONFIG" "$bin" token list
expect 2 "a directory as the config" "$bin" -c "$tmp" token list
grep -q "$tmp: not a regular file" "$tmp/err" && ok "says it is not a file" || bad "directory config message: $(cat "$tmp/err")"
mkfifo "$tmp/fifo.conf"
expect 2 "a FIFO as the config: refused, not waited on" timeout 30 "$bin" -c "$tmp/fifo.conf" token list
grep -q "fifo.conf: not a regular file" "$tmp/err" && ok "says it is not a file" || bad "FIFO config message: $(cat "$tmp/err")"
# A config its reader may not open.  Root reads anything, so the command
# runs as nobody then, on a file it can reach but not read.
mkdir -m 755 "$tmp/ro"
cp "$conf" "$tmp/ro/oe.conf"
chmod 600 "$tmp/ro/oe.conf"
if [ "$(id -u)" = 0 ]; then
	chmod 755 "$tmp"
	asother=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
else
	chmod 000 "$tmp/ro/oe.conf"
	asother=()
fi
expect 2 "an unreadable config" "${asother[@]}" "$bin" -c "$tmp/ro/oe.conf" token list
grep -q "$tmp/ro/oe.conf: Permission denied" "$tmp/err" && ok "names the file and the reason" \
	|| bad "unreadable config message: $(cat "$tmp/err")"
chmod 700 "$tmp"

# The key file gone after init: refused, and the message says which
# line of which config named it.
kstore="$tmp/nokey"
mkdir -m 700 "$kstore"
printf '[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n' "$kstore" "$kstore" "$build/lib/store/.libs" >"$kstore/oe.conf"
expect 0 "a store whose key will go" "$bin" -c "$kstore/oe.conf" init
mv "$kstore/secret.key" "$kstore/secret.key.bak"
expect 1 "a missing key file" "$bin" -c "$kstore/oe.conf" token list
grep -q "secret.key: No such file.*key_file is set in $kstore/oe.conf line 3" "$tmp/err" \
	&& ok "names the key file and the config line" || bad "missing key message: $(cat "$tmp/err")"
expect 1 "init does not make a new key for a keyed store" "$bin" -c "$kstore/oe.conf" init
grep -q "restore the key file" "$tmp/err" && ok "init says to restore it" || bad "init message: $(cat "$tmp/err")"

# A store damaged on disk: a clear error and exit 1 from the commands
# that read the damaged pages, never a crash.
cstore="$tmp/damaged"
mkdir -m 700 "$cstore"
printf '[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n' "$cstore" "$cstore" "$build/lib/store/.libs" >"$cstore/oe.conf"
python3 - "$cstore/users" <<'PY'
import sys, os
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        f.write("HOTP user%05d - %s %d\n" % (i, os.urandom(20).hex(), i % 7))
PY
expect 0 "a store to damage" "$bin" -c "$cstore/oe.conf" init
expect 0 "with 3000 tokens" "$bin" -c "$cstore/oe.conf" token import "$cstore/users"
pages=$(( $(stat -c %s "$cstore/oe.db") / 4096 ))
yes 'garbage, not a page of a database ' | head -c $((16 * 4096)) |
	dd of="$cstore/oe.db" bs=4096 seek=$((pages / 2)) count=16 conv=notrunc status=none
for c in "token list" "audit" "events outbox"; do
	# shellcheck disable=SC2086
	expect 1 "damaged store: $c" "$bin" -c "$cstore/oe.conf" $c
	grep -q "store $cstore/oe.db: database disk image is malformed" "$tmp/err" \
		&& ok "damaged store: $c says so" || bad "damaged store: $c: $(cat "$tmp/err")"
done
for c in "token list --user user01500" "token show NOSUCH" "token add-otp --user zed --type totp" \
	"token import $cstore/users" "events dispatch --once" "user set zed --email z@example.org"; do
	# shellcheck disable=SC2086
	"$bin" -c "$cstore/oe.conf" $c >"$tmp/out" 2>"$tmp/err"
	got=$?
	[ $got -lt 128 ] && ok "damaged store: $c ends without a crash (exit $got)" \
		|| bad "damaged store: $c: exit $got"
done

# pam_oath usersfile import.
cat >"$tmp/users" <<U
# migrated from pam_oath
HOTP dave - $key 3 969429
HOTP/T30 erin - $key
HOTP/E/8 fred - $key 10
U
expect 0 "import" oe --json token import "$tmp/users"
[ "$(json 'd["imported"]' <"$tmp/out")" = 3 ] && ok "three imported" || bad "import count"
[ "$(oe --json token list --user dave | json 'd[0]["counter"]')" = 4 ] && ok "HOTP counter carried over (+1 past the last code)" || bad "dave's counter"
[ "$(oe --json token list --user fred | json 'd[0]["digits"]')" = 8 ] && ok "8 digits" || bad "fred's digits"
expect 1 "importing the same file again is refused" oe token import "$tmp/users"
grep -q "users line 2: user dave already has OTP token .* with this secret.*imported before" "$tmp/err" \
	&& ok "re-import names the line and why" || bad "re-import message: $(cat "$tmp/err")"
[ "$(oe --json token list --user dave | json 'len(d)')" = 1 ] && ok "nothing doubled" || bad "re-import doubled dave"
printf 'HOTP gina - %s\nHOTP hank pin %s\n' $key $key >"$tmp/pin"
expect 1 "a PIN line refuses the whole import" oe token import "$tmp/pin"
grep -q "line 2" "$tmp/err" && ok "the line is named" || bad "PIN line message"
[ "$(oe --json token list --user gina | json 'len(d)')" = 0 ] && ok "gina absent" || bad "partial import"
# A TOTP last code whose time does not parse could not be placed, so
# the code pam_oath accepted last would be accepted again.
printf 'HOTP/T30 jane - %s\nHOTP/T30 kurt - %s 0 123456 garbage\n' $key $key >"$tmp/stamp"
expect 1 "a last code with a TIME that does not parse" oe token import "$tmp/stamp"
grep -q "stamp line 2: .*TIME" "$tmp/err" && ok "the file and line are named" || bad "TIME message: $(cat "$tmp/err")"
[ "$(oe --json token list --user jane | json 'len(d)')" = 0 ] && ok "jane absent" || bad "partial import"
printf 'HOTP ivan - nothex\n' >"$tmp/hex"
expect 1 "malformed line" oe token import "$tmp/hex"
grep -q "hex line 1: secret" "$tmp/err" && ok "bad secret named" || bad "bad secret message: $(cat "$tmp/err")"

# 100,000 lines in one transaction.
python3 - "$tmp/big" <<'PY'
import sys, os
with open(sys.argv[1], "w") as f:
    for i in range(100000):
        f.write("HOTP user%06d - %s %d\n" % (i, os.urandom(20).hex(), i % 50))
PY
start=$(date +%s.%N)
expect 0 "import 100,000 lines" oe token import "$tmp/big"
echo "     ($(cat "$tmp/out"); wall $(python3 -c "print(round($(date +%s.%N)-$start,2))") s)"
[ "$(oe --json token list | json 'len(d)')" -ge 100003 ] && ok "all 100,000 there" || bad "big import count"

# Users' addresses and the outbox.
expect 0 "user set --email" oe user set alice --email alice@example.org
expect 2 "an address without a domain" oe user set alice --email alice@localhost
has "$tmp/err" '"alice@localhost" is not a mail address (local@domain, with a dot in the domain)' "says it is not a mail address, and what one is"
expect 2 "an address with a header in it" oe user set alice --email "$(printf 'a@b.c\r\nBcc: x@y.z')"
has "$tmp/err" '"a@b\.c??Bcc: x@y\.z" is not a mail address' "says it is not a mail address, control characters shown as ?"
# What the mail handler would refuse at delivery is refused here, by the
# same check (lib/mailaddr.c): mail for that user would go dead.
expect 2 "an underscore in the domain" oe user set alice --email alice@mail_relay.example.org
has "$tmp/err" '"alice@mail_relay.example.org" is not a mail address' "says it is not a mail address"
long=$(printf 'a%.0s' $(seq 65))
expect 2 "a local part over 64 characters" oe user set alice --email "$long@example.org"
has "$tmp/err" "\"$long@example.org\" is not a mail address" "says it is not a mail address"
expect 0 "a local part of 64 characters" oe user set alice --email "${long:1}@example.org"
expect 0 "user set --email again" oe user set alice --email alice@example.org
expect 2 "user set without --email" oe user set alice
has "$tmp/err" "user set: a USER and --email are required" "says --email is required"
expect 0 "events outbox" oe --json events outbox --state queued
python3 -c "import json,sys; d=json.load(open('$tmp/out')); sys.exit(not (d and d[0]['event'] == 'token_init' and d[0]['payload']['user'] and len(d[0]['delivery_id']) == 32))" \
	&& ok "outbox entries carry event, payload snapshot and delivery id" || bad "outbox JSON"
expect 0 "events outbox (text)" oe events outbox
head -1 "$tmp/out" | grep -q '^ID *EVENT *STATE *ATTEMPTS' && ok "outbox header" || bad "outbox header"
expect 2 "a bad --state" oe events outbox --state lost
has "$tmp/err" "--state must be queued, retrying, delivered or dead" "names the states"
expect 1 "retry of a queued event is refused" oe events retry 1
grep -q "no retrying or dead outbox entry 1" "$tmp/err" && ok "retry message" || bad "retry message"
sqlite3 "$tmp/oe.db" "UPDATE outbox SET state = 'dead', attempts = 10, last_error = 'smtp down' WHERE id = 2"
expect 0 "events outbox --state dead" oe --json events outbox --state dead
[ "$(json 'd[0]["last_error"]' <"$tmp/out")" = "smtp down" ] && ok "dead entry with its last error" || bad "dead listing"
expect 0 "retry a dead event" oe events retry 2
[ "$(sqlite3 "$tmp/oe.db" "SELECT state || attempts FROM outbox WHERE id = 2")" = queued0 ] && ok "queued again, attempts reset" || bad "retry state"
expect 2 "retry needs a number" oe events retry two
has "$tmp/err" "events retry: ID must be a positive number" "says the ID must be a number"
expect 2 "retry needs a number that fits" oe events retry 99999999999999999999
has "$tmp/err" "events retry: ID 99999999999999999999 is out of range" "says the ID is out of range"
has "$tmp/err" "^Usage: otpenroll events retry ID" "a usage error of retry's ID"
expect 2 "retry needs a positive number" oe events retry 0
has "$tmp/err" "events retry: ID must be a positive number" "says the ID must be positive"

# The audit log.
expect 0 "audit" oe audit
grep -q "token_add" "$tmp/out" && ok "audit has token_add" || bad "audit content"
expect 0 "audit --since in the future" oe --json audit --since 2099-01-01
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "--since filters" || bad "--since"
expect 0 "audit --since 1h" oe --json audit --since 1h
expect 2 "audit --since nonsense" oe audit --since yesterday-ish
has "$tmp/err" 'audit: --since: "yesterday-ish" is not a time' "says it is not a time"
expect 2 "audit --since an age too long to count" oe audit --since 999999999999999999d
has "$tmp/err" 'audit: --since: "999999999999999999d" is out of range' "names --since and the value: out of range"
expect 2 "audit --since a time too large to read" oe audit --since 99999999999999999999
has "$tmp/err" 'audit: --since: "99999999999999999999" is out of range' "names --since and the value: out of range"

# A daemon's error reply is a failure whatever exit it names: an exit
# outside the contract's codes is 1.
python3 - "$tmp/fake.sock" <<'PY' &
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(8)
for code in (0, 7, -1, "2", 2, 3):
    c, _ = s.accept()
    f = c.makefile("rb")
    f.read(struct.unpack(">I", f.read(4))[0])
    body = json.dumps({"v": 1, "status": "error", "exit": code, "error": "refused by the fake"}).encode()
    c.sendall(struct.pack(">I", len(body)) + body)
    c.close()
PY
fake=$!
for _ in $(seq 100); do [ -S "$tmp/fake.sock" ] && break; sleep 0.05; done
for want in "1 0" "1 7" "1 -1" '1 "2"' "2 2" "3 3"; do
	OTPENROLL_SOCKET=$tmp/fake.sock expect "${want%% *}" "an error reply with exit ${want#* }" "$bin" cert list
	grep -q "refused by the fake" "$tmp/err" && ok "its message shown" || bad "error reply: $(cat "$tmp/err")"
done
wait $fake

finish
