#!/bin/bash
# The webhook handler against a loopback HTTP(S) server
# (tests/events/http_server.py): the JSON body and headers, one
# connection for the jobs of a pass, retries with one delivery id, final
# failures, pre rules that allow or refuse, TLS with a test CA made here,
# and the rules check() refuses.
set -u
build=${top_builddir:?}
src=${top_srcdir:?}
bin="$build/tools/otpenroll"
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
# Loopback only: no proxy from the caller's environment.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY
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
handler_dir = $build/hooks/handlers/.libs
max_attempts = 3
retry_min = 1
retry_max = 1
CONF
# shellcheck source=tests/lib.sh
. "$src/tests/lib.sh"
rule() { cat >"$rules/$1.conf"; }

# serve NAME [ARGS...]: start a server logging to $tmp/NAME.log; its port in $port.
serve() {
	local name=$1
	shift
	python3 "$src/tests/events/http_server.py" --port-file "$tmp/$name.port" \
		--log "$tmp/$name.log" "$@" &
	pids+=($!)
	for _ in $(seq 100); do
		[ -s "$tmp/$name.port" ] && break
		sleep 0.1
	done
	port=$(cat "$tmp/$name.port")
	touch "$tmp/$name.log"
}
# req LOG N EXPR: EXPR over the Nth request of a server's log, as d.
req() { sed -n "$2p" "$tmp/$1.log" | json "$3"; }
# body LOG N EXPR: EXPR over the Nth request's JSON body, as d.
body() { sed -n "$2p" "$tmp/$1.log" | json 'd["body"]' | json "$3"; }

serve http --fail-first 1 --slow 5
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
expect 0 "init" oe init

# ---- check(): what a rule may not say ----
bad_rule() { # WHAT PATTERN  (rule text on stdin)
	rule bad
	expect 2 "refused: $1" oe events list
	has "$tmp/err" "bad.conf line [0-9]*: .*$2" "says: $2"
	rm -f "$rules/bad.conf"
}
hook() { printf '[rule x]\nevent = token_init\nhandler = webhook\naction = post\n'; printf '%s\n' "$@"; }
hook "option.timeout = 5" | bad_rule "no url" "option.url is required"
hook "option.url = ftp://127.0.0.1/x" | bad_rule "an ftp URL" "option.url: ftp is not http or https"
hook "option.url = file:///etc/passwd" | bad_rule "a file URL" "option.url: file is not http or https"
hook "option.url = 127.0.0.1/x" | bad_rule "no scheme" "option.url: .*is not a URL"
hook "option.url = http://127.0.0.1/" "option.headers = Bad Name: x" |
	bad_rule "a header name with a space" 'option.headers: "Bad Name" is not a header name'
hook "option.url = http://127.0.0.1/" "option.headers = X-A: 1; nocolon" |
	bad_rule "an item without a colon" 'option.headers: "nocolon" is not "Name: value"'
hook "option.url = http://127.0.0.1/" "option.headers = Content-Type: text/plain" |
	bad_rule "a header the handler sets" "option.headers: Content-Type is set by the handler"
hook "option.url = http://127.0.0.1/" "option.headers = X-Otpenroll-Delivery: 1" |
	bad_rule "the delivery header" "X-Otpenroll-Delivery is set by the handler"
hook "option.url = http://127.0.0.1/" "option.timeout = 0" | bad_rule "timeout 0" "option.timeout"
hook "option.url = http://127.0.0.1/" "option.timeout = 10s" | bad_rule "timeout 10s" "option.timeout"
hook "option.url = https://127.0.0.1/" "option.ca_file = $tmp/nosuch.pem" |
	bad_rule "a missing ca_file" "option.ca_file: $tmp/nosuch.pem: No such file"
# The handler's message names the line of the key it is about.
hook "option.timeout = 5" "option.url = ftp://127.0.0.1/x" >"$rules/bad.conf"
expect 2 "refused: a bad URL below another option" oe events list
has "$tmp/err" "bad.conf line 6: \[rule x\] option.url: ftp is not http or https" "names option.url's line"
rm -f "$rules/bad.conf"

# ---- the rules ----
rule hooks <<R
[rule hook-ok]
event = token_init, token_delete
handler = webhook
action = post
condition.user = alice
option.url = http://127.0.0.1:$port/ok
option.headers = X-User: {user}; Authorization: Bearer s3cret
  X-Type: {tokentype}
option.timeout = 5

[rule hook-flaky]
event = token_init
handler = webhook
action = post
condition.user = bob
option.url = http://127.0.0.1:$port/flaky

[rule hook-bad]
event = token_init
handler = webhook
action = post
condition.user = carl
option.url = http://127.0.0.1:$port/bad

[rule hook-slow]
event = token_init
handler = webhook
action = post
condition.user = slow
option.url = http://127.0.0.1:$port/slow
option.timeout = 1

[rule hook-closed]
event = token_init
handler = webhook
action = post
condition.user = nobody
option.url = http://hook:pw0rd@127.0.0.1:$closed/hook

[rule gate-deny]
event = token_init
position = pre
handler = webhook
action = post
condition.user = dave
option.url = http://127.0.0.1:$port/deny

[rule gate-allow]
event = token_init
position = pre
handler = webhook
action = post
condition.user = erin
option.url = http://127.0.0.1:$port/ok
R
expect 0 "the webhook rules load" oe events list

# ---- a dry run shows the request and sends nothing ----
expect 0 "events test: alice" oe events test --event token_init --set user=alice \
	--set tokentype=totp --set serial=OATH0001
has "$tmp/out" "^POST http://127.0.0.1:$port/ok$" "preview: method and URL"
has "$tmp/out" "^Content-Type: application/json$" "preview: Content-Type"
has "$tmp/out" "^X-Otpenroll-Delivery: 0000000000000000DRYRUN" "preview: the delivery header"
has "$tmp/out" "^X-Otpenroll-Event: token_init$" "preview: the event header"
has "$tmp/out" "^X-User: alice$" "preview: a templated header"
has "$tmp/out" "^Authorization: Bearer s3cret$" "preview: a header after ';'"
has "$tmp/out" "^X-Type: totp$" "preview: a header on a continuation line"
grep '^{' "$tmp/out" | json '(d["user"], d["serial"], d["rule"], d["event"])' |
	grep -qx "('alice', 'OATH0001', 'hook-ok', 'token_init')" &&
	ok "preview: the exact JSON body" || bad "preview body: $(cat "$tmp/out")"
[ ! -s "$tmp/http.log" ] && ok "a dry run sends nothing" || bad "the dry run sent a request"

# ---- 2xx: delivered, with the headers and the body ----
expect 0 "alice's token" oe --json token add-otp --user alice --type totp
alice=$(json 'd["serial"]' <"$tmp/out")
expect 0 "dispatch: delivered" oe --json events dispatch --once
[ "$(json 'd["delivered"]' <"$tmp/out")" = 1 ] && ok "one event delivered" || bad "$(cat "$tmp/out")"
expect 0 "outbox" oe --json events outbox
did=$(json 'd[0]["delivery_id"]' <"$tmp/out")
[ "$(json 'd[0]["state"]' <"$tmp/out")" = delivered ] && ok "the entry is delivered" || bad "state"
[ "$(wc -l <"$tmp/http.log")" = 1 ] && ok "one request" || bad "requests: $(cat "$tmp/http.log")"
[ "$(req http 1 'd["method"] + " " + d["path"]')" = "POST /ok" ] && ok "POST /ok" || bad "method/path"
[ "$(req http 1 'd["headers"]["content-type"]')" = application/json ] && ok "Content-Type" ||
	bad "content type"
[ "$(req http 1 'd["headers"]["x-otpenroll-delivery"]')" = "$did.hook-ok" ] &&
	ok "X-Otpenroll-Delivery is the job's delivery id" || bad "delivery header vs $did"
[ "$(req http 1 'd["headers"]["x-otpenroll-event"]')" = token_init ] && ok "X-Otpenroll-Event" ||
	bad "event header"
[ "$(req http 1 'd["headers"]["x-user"] + "|" + d["headers"]["authorization"]')" = \
	"alice|Bearer s3cret" ] && ok "extra headers, rendered" || bad "extra headers"
[ "$(body http 1 'd["rule"]')" = hook-ok ] && ok "body: rule" || bad "body rule"
[ "$(body http 1 'd["delivery_id"]')" = "$did.hook-ok" ] && ok "body: delivery_id" || bad "body id"
[ "$(body http 1 'd["event"] + " " + d["user"] + " " + d["serial"] + " " + d["tokentype"]')" = \
	"token_init alice $alice totp" ] && ok "body: the event's snapshot" || bad "body fields"
[ "$(body http 1 'type(d["time"]).__name__')" = int ] && ok "body: time as in the snapshot" ||
	bad "body time"

# ---- the jobs of one pass share a connection ----
oe token add-otp --user alice --type hotp >/dev/null
oe token delete "$alice" >/dev/null
expect 0 "dispatch two events" oe --json events dispatch --once
[ "$(json 'd["delivered"]' <"$tmp/out")" = 2 ] && ok "two delivered" || bad "$(cat "$tmp/out")"
[ "$(wc -l <"$tmp/http.log")" = 3 ] && [ "$(req http 2 'd["peer"]')" = "$(req http 3 'd["peer"]')" ] &&
	ok "one connection (keep-alive) for both" || bad "connections: $(cut -c1-60 "$tmp/http.log")"
[ "$(req http 3 'd["headers"]["x-otpenroll-event"]')" = token_delete ] && ok "the delete event" ||
	bad "second event"

# ---- 5xx: retrying, then delivered with the same delivery id ----
: >"$tmp/http.log"
oe token add-otp --user bob --type totp >/dev/null
expect 1 "dispatch: HTTP 500" oe --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 1 ] && ok "retrying" || bad "$(cat "$tmp/out")"
expect 0 "outbox: retrying" oe --json events outbox --state retrying
id=$(json 'd[0]["id"]' <"$tmp/out")
json 'd[0]["last_error"]' <"$tmp/out" |
	grep -qx "rule hook-flaky: webhook http://127.0.0.1:$port/flaky: HTTP 500: try again later" &&
	ok "last error: URL and status" || bad "last error: $(cat "$tmp/out")"
expect 0 "events retry" oe events retry "$id"
expect 0 "dispatch: delivered now" oe events dispatch --once
[ "$(wc -l <"$tmp/http.log")" = 2 ] && ok "two attempts" || bad "attempts: $(wc -l <"$tmp/http.log")"
first=$(req http 1 'd["headers"]["x-otpenroll-delivery"]')
[ -n "$first" ] && [ "$first" = "$(req http 2 'd["headers"]["x-otpenroll-delivery"]')" ] &&
	[ "$first" = "$(body http 2 'd["delivery_id"]')" ] &&
	ok "the same X-Otpenroll-Delivery on the retry ($first)" || bad "delivery ids differ"

# ---- other 4xx: dead at once ----
: >"$tmp/http.log"
oe token add-otp --user carl --type totp >/dev/null
expect 1 "dispatch: HTTP 400" oe --json events dispatch --once
[ "$(json 'd["dead"]' <"$tmp/out")" = 1 ] && ok "dead at once" || bad "$(cat "$tmp/out")"
expect 0 "outbox: dead" oe --json events outbox --state dead
[ "$(json 'd[0]["attempts"]' <"$tmp/out")" = 1 ] && ok "after one attempt" || bad "attempts"
json 'd[0]["last_error"]' <"$tmp/out" | grep -q "/bad: HTTP 400: malformed event" &&
	ok "last error: HTTP 400 and the answer" || bad "last error: $(cat "$tmp/out")"

# ---- transport failures are retried ----
oe token add-otp --user nobody --type totp >/dev/null
oe token add-otp --user slow --type totp >/dev/null
expect 1 "dispatch: refused connection and timeout" oe --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 2 ] && ok "both retrying" || bad "$(cat "$tmp/out")"
expect 0 "outbox" oe --json events outbox --state retrying
grep -q "127.0.0.1:$closed/hook: .*[Cc]onnect" "$tmp/out" && ok "a refused connection says so" ||
	bad "connect error: $(cat "$tmp/out")"
grep -q "/slow: .*[Tt]imeout\|/slow: .*timed out" "$tmp/out" && ok "a timeout says so" ||
	bad "timeout error: $(cat "$tmp/out")"
# An endpoint that cannot be reached is tried once a pass: its other
# jobs wait for the retry instead of each waiting out the failure.
oe token add-otp --user nobody --type hotp >/dev/null
oe token add-otp --user nobody --type totp >/dev/null
sleep 1.2 # the earlier entries are due again too
expect 1 "dispatch: three events for the closed endpoint" oe --json events dispatch --once
expect 0 "outbox" oe --json events outbox --state retrying
[ "$(json 'sum("127.0.0.1:'"$closed"'/hook: " in e["last_error"] for e in d)' <"$tmp/out")" = 1 ] &&
	[ "$(json 'sum("127.0.0.1:'"$closed"': not tried, unreachable earlier in this pass" in e["last_error"] for e in d)' <"$tmp/out")" = 2 ] &&
	ok "tried once, the two others not tried in the same pass" || bad "closed endpoint: $(cat "$tmp/out")"
grep -q pw0rd "$tmp/out" && bad "the URL's password is in an error" || ok "no password in the errors"

# A reply that is late on a connection kept from an earlier job is not
# an unreachable endpoint: the next job to the same server is tried.
rule reuse <<R
[rule reuse-a]
event = token_init
handler = webhook
action = post
condition.user = reuse
option.url = http://127.0.0.1:$port/ok

[rule reuse-b]
event = token_init
handler = webhook
action = post
condition.user = reuse
option.url = http://127.0.0.1:$port/slow
option.timeout = 1

[rule reuse-c]
event = token_init
handler = webhook
action = post
condition.user = reuse
option.url = http://127.0.0.1:$port/ok
option.timeout = 1
R
oe events dispatch --once >/dev/null # what is due before
: >"$tmp/http.log"
oe token add-otp --user reuse --type totp >/dev/null
expect 1 "dispatch: one of three rules times out" oe --json events dispatch --once
[ "$(grep -c '"path": "/ok"' "$tmp/http.log")" = 2 ] &&
	ok "the rule after the late reply was still tried" || bad "requests: $(cat "$tmp/http.log")"
expect 0 "outbox" oe --json events outbox --state retrying
json '[e["last_error"] for e in d if e["payload"]["user"] == "reuse"][0]' <"$tmp/out" |
	grep -q "^rule reuse-b: " && ok "only the late rule is owed" || bad "reuse: $(cat "$tmp/out")"
rm -f "$rules/reuse.conf"

# ---- pre: 2xx allows, anything else refuses with the answer ----
expect 1 "a pre webhook answering 403 refuses dave's token" oe token add-otp --user dave --type totp
has "$tmp/err" "refused by rule gate-deny: not on weekends$" "the answer's first line is the reason"
expect 0 "dave's tokens" oe --json token list --user dave
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "no token was made" || bad "a token was left"
expect 0 "a pre webhook answering 200 allows erin's" oe token add-otp --user erin --type totp
grep -q '"path": "/deny"' "$tmp/http.log" && grep -q '"x-otpenroll-event": "token_init"' "$tmp/http.log" &&
	ok "the pre requests were sent" || bad "pre requests"

# ---- https with a test CA ----
if command -v openssl >/dev/null; then
	(
		cd "$tmp" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=Webhook Test CA" -keyout ca.key -out ca.pem
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
			-subj "/CN=127.0.0.1" -keyout srv.key -out srv.csr
		printf 'subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' >ext.cnf
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile ext.cnf -out srv.pem
	) >"$tmp/openssl.out" 2>&1 || { bad "test CA"; cat "$tmp/openssl.out"; }
	serve https --cert "$tmp/srv.pem" --key "$tmp/srv.key"
	rule tls <<R
[rule tls-trusted]
event = token_init
handler = webhook
action = post
condition.user = frank
option.url = https://127.0.0.1:$port/ok
option.ca_file = $tmp/ca.pem

[rule tls-untrusted]
event = token_init
handler = webhook
action = post
condition.user = gina
option.url = https://127.0.0.1:$port/ok
R
	oe token add-otp --user frank --type totp >/dev/null
	oe token add-otp --user gina --type totp >/dev/null
	expect 1 "dispatch over https" oe --json events dispatch --once
	expect 0 "outbox" oe --json events outbox
	state_of() { json "[e['state'] for e in d if (e['payload'] or {}).get('user') == '$1'][0]" <"$tmp/out"; }
	[ "$(state_of frank)" = delivered ] && [ "$(state_of gina)" = retrying ] &&
		ok "with ca_file delivered; without it (system trust) not" || bad "https: $(cat "$tmp/out")"
	[ "$(wc -l <"$tmp/https.log")" = 1 ] && [ "$(req https 1 'd["body"]')" != "" ] &&
		body https 1 'd["user"]' | grep -qx frank && ok "frank's event arrived over TLS" ||
		bad "https log: $(cat "$tmp/https.log")"
	oe --json events outbox --state retrying >"$tmp/out"
	grep -q "tls-untrusted: webhook https://127.0.0.1:$port/ok: .*[Cc]ertificate" "$tmp/out" &&
		ok "an untrusted server certificate is an error" || bad "untrusted: $(cat "$tmp/out")"
else
	echo "SKIP https: no openssl command"
fi

# ---- option.url is a template: tag values percent-encoded ----
rm -f "$rules"/*.conf
port=$(cat "$tmp/http.port") # the plain HTTP server's
rule tmpl <<R
[rule hook-tmpl]
event = token_init
handler = webhook
action = post
option.url = http://127.0.0.1:$port/t/{serial}?user={user}&event={event}
R
expect 0 "a user whose name means something in a URL" oe --json token add-otp --user 'h&k?x#é%' --type totp
tserial=$(json 'd["serial"]' <"$tmp/out")
oe events dispatch --once >/dev/null 2>&1
want="POST /t/$tserial?user=h%26k%3Fx%23%C3%A9%25&event=token_init"
[ "$(grep "\"path\": \"/t/$tserial" "$tmp/http.log" | json 'd["method"] + " " + d["path"]')" = "$want" ] &&
	ok "the URL rendered, each value percent-encoded" || bad "path: $(grep /t/ "$tmp/http.log")"
printf '[rule x]\nevent = token_init\nhandler = webhook\naction = post\noption.url = http://{user}.example.com/\n' >"$rules/bad.conf"
expect 2 "a tag in the URL's host is refused" oe events list
has "$tmp/err" 'bad.conf line 5: \[rule x\] option.url: a tag before the path' "says where tags may go"
rm -f "$rules/bad.conf"
finish
