#!/bin/bash
# The usernotification handler against a real SMTP server on loopback
# (aiosmtpd, tests/events/smtp_server.py): the pending and the ready
# mail of a certificate request, STARTTLS with a test CA and AUTH, an
# outage (every mail exactly once afterwards), dead after max_attempts,
# one session for many mails, a dispatcher killed mid-delivery, and
# header injection through a certificate subject.
set -u
build=${top_builddir:?}
src=${top_srcdir:?}
bin="$build/tools/otpenroll"
tmp=$(mktemp -d)
servers=()
cleanup() {
	for p in "${servers[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=tests/lib.sh
. "$src/tests/lib.sh"
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || { echo "SKIP: python3-aiosmtpd missing"; exit 77; }

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# smtpd NAME PORT [server options]: start a server storing into $tmp/NAME
smtpd() {
	local name=$1 p=$2
	shift 2
	rm -rf "${tmp:?}/$name"
	/usr/bin/python3 "$src/tests/events/smtp_server.py" --port "$p" --dir "$tmp/$name" "$@" \
		2>>"$tmp/$name.log" &
	servers+=($!)
	last_server=$!
	for _ in $(seq 100); do [ -e "$tmp/$name/ready" ] && return 0; sleep 0.05; done
	echo "server $name did not start"; cat "$tmp/$name.log"
	return 1
}
mails() { ls "$tmp/$1"/*.eml 2>/dev/null | wc -l; }
# header FILE NAME: the value of a header
header() { sed -n "s/^$2: //Ip" "$1" | head -1 | tr -d '\r'; }

# ---- a CA, a server certificate for 127.0.0.1, one from another CA ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/ca.key" \
	-subj "/CN=Test Mail CA" -days 2 -out "$tmp/ca.pem" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/other.key" \
	-subj "/CN=Other CA" -days 2 -out "$tmp/other.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/srv.key" \
	-subj "/CN=mail test" -out "$tmp/srv.csr" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' >"$tmp/srv.ext"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
	-days 2 -extfile "$tmp/srv.ext" -out "$tmp/srv.pem" 2>/dev/null

plain=$(port)
tlsport=$(port)
conf="$tmp/oe.conf"
rules="$tmp/events.d"
mkdir -p "$rules"
umask 077
echo "s3cret pass" >"$tmp/smtp.pass"
umask 022
cat >"$conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
key_file = $tmp/secret.key
[users]
email = {user}@example.com
[enroll]
max_tokens_per_user = 100
[ca local]
type = local
dir = $tmp/ca
approval = manual
subject = CN={user},O=Mail Test
[smtp default]
host = 127.0.0.1
port = $plain
tls = none
from = otpenroll@example.com
timeout = 5
[smtp secure]
host = 127.0.0.1
port = $tlsport
tls = starttls
ca_file = $tmp/ca.pem
username = otpenroll
password_file = $tmp/smtp.pass
from = noreply@example.org
timeout = 5
[events]
dir = $rules
handler_dir = $build/hooks/handlers/.libs
max_attempts = 4
retry_min = 1
retry_max = 1
lease_seconds = 2
CONF
cp "$src/etc/events.d/notify.conf" "$rules/"
expect 0 "init" oe init
expect 0 "ca init" oe ca init local --subject "CN=Mail Test CA"
expect 0 "the example rules load" oe events list
has "$tmp/out" "notify-pending" "notify-pending is listed"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
	-subj "/CN=ignored" -out "$tmp/u.csr" 2>/dev/null

# ---- rule errors of this handler ----
printf '[rule x]\nevent = token_init\nhandler = usernotification\naction = sendmail\noption.to = tokenowner\noption.smtp = nosuch\noption.subject = s\noption.body = b\n' >"$rules/bad.conf"
expect 2 "a rule naming a missing [smtp] section" oe events list
has "$tmp/err" "bad.conf line 1: \[rule x\] option.smtp: the configuration has no \[smtp nosuch\]" "names the section"
printf '[rule x]\nevent = token_init\nhandler = usernotification\naction = sendmail\noption.to = email:not-an-address\noption.subject = s\noption.body = b\n' >"$rules/bad.conf"
expect 2 "a bad address" oe events list
has "$tmp/err" '"not-an-address" is not a mail address' "names the address"
printf '[rule x]\nevent = token_init\nhandler = usernotification\naction = sendmail\noption.to = tokenowner\noption.subject = s\n' >"$rules/bad.conf"
expect 2 "no body" oe events list
rm -f "$rules/bad.conf"

# ---- the story: pending mail, approval, ready mail ----
smtpd plain "$plain" || exit 1
plain_pid=$last_server
expect 3 "a request goes pending" oe --json cert request --user alice --csr "$tmp/u.csr"
serial=$(json 'd["serial"]' <"$tmp/out")
expect 0 "events test shows the mail without sending it" oe events test --event token_init \
	--set user=alice --set tokentype=certificate --set rollout_state=pending --set serial="$serial" --set ca=local
has "$tmp/out" "Subject: Certificate request $serial is pending" "the preview has the subject"
[ "$(mails plain)" = 0 ] && ok "the dry run sent nothing" || bad "the dry run sent a mail"
expect 0 "dispatch" oe events dispatch --once
m="$tmp/plain/0.eml"
[ "$(header "$m" To)" = "alice@example.com" ] && ok "To: the owner's address from [users] email" || bad "To: $(header "$m" To)"
[ "$(header "$m" Subject)" = "Certificate request $serial is pending" ] && ok "Subject" || bad "Subject: $(header "$m" Subject)"
grep -q "awaits approval at CA local" "$m" && ok "body" || bad "body: $(cat "$m")"
header "$m" Message-ID | grep -q "^<[0-9A-F]*\.notify-pending@example.com>$" && ok "Message-ID" ||
	bad "Message-ID: $(header "$m" Message-ID)"
[ -n "$(header "$m" Date)" ] && header "$m" Content-Type | grep -q "charset=UTF-8" && ok "Date and UTF-8 MIME headers" || bad "MIME headers"
expect 0 "user set: a corrected address" oe user set alice --email alice@corp.example.com
expect 0 "approve" oe ca approve "$serial"
expect 0 "dispatch" oe events dispatch --once
m="$tmp/plain/1.eml"
[ "$(header "$m" Subject)" = "Your certificate $serial is ready" ] && ok "the ready mail" || bad "ready: $(cat "$m")"
[ "$(header "$m" To)" = "alice@corp.example.com" ] && ok "sent to the address set now" || bad "To: $(header "$m" To)"
grep -q "valid until 20" "$m" && ok "the ready mail tells when it expires" || bad "not_after: $(cat "$m")"

# ---- a certificate subject with CR LF adds no header ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null -days 3 \
	-subj $'/CN=evil\r\nBcc: victim@example.com' -out "$tmp/evil.pem" 2>/dev/null
cat >"$rules/upload.conf" <<R
[rule uploaded]
event = token_init
handler = usernotification
action = sendmail
condition.rollout_state = enrolled
condition.tokentype = certificate
option.to = email:audit@example.com
option.subject = Uploaded {subject}
option.body = {subject}
R
expect 0 "upload a certificate whose subject holds CR LF" oe cert upload --user mallory "$tmp/evil.pem"
expect 0 "dispatch" oe events dispatch --once
m="$tmp/plain/2.eml"
grep -qi "^Bcc:" "$m" && bad "a header was injected: $(cat "$m")" || ok "no Bcc header"
[ "$(grep -c "victim" "$m")" -ge 1 ] && [ "$(header "$m" X-Envelope-To)" = "audit@example.com" ] &&
	ok "the text stays data, the envelope has the one recipient" || bad "envelope: $(cat "$m")"
rm -f "$rules/upload.conf"

# ---- many mails, one SMTP session ----
before=$(wc -l <"$tmp/plain/connections")
for i in $(seq 1 20); do oe cert request --user "bulk$i" --csr "$tmp/u.csr" >/dev/null 2>&1; done
expect 0 "dispatch 20 mails" oe events dispatch --once
[ "$(mails plain)" = 23 ] && ok "20 mails arrived" || bad "mails: $(mails plain)"
[ $(($(wc -l <"$tmp/plain/connections") - before)) = 1 ] && ok "over one SMTP connection" ||
	bad "connections: $(($(wc -l <"$tmp/plain/connections") - before))"

# ---- an outage: retrying, then every mail exactly once ----
kill "$plain_pid"; wait "$plain_pid" 2>/dev/null
for i in $(seq 1 5); do oe cert request --user "down$i" --csr "$tmp/u.csr" >/dev/null 2>&1; done
expect 1 "dispatch while the server is down" oe --json events dispatch --once
[ "$(json 'd["retrying"]' <"$tmp/out")" = 5 ] && ok "5 retrying" || bad "$(cat "$tmp/out")"
oe --json events outbox --state retrying >"$tmp/out"
json 'd[0]["last_error"]' <"$tmp/out" | grep -q "smtp default 127.0.0.1:$plain" &&
	ok "the error names the server" || bad "error: $(cat "$tmp/out")"
smtpd plain2 "$plain" || exit 1
sleep 1.2
expect 0 "dispatch after the outage" oe events dispatch --once
[ "$(mails plain2)" = 5 ] && ok "5 mails after the outage" || bad "mails: $(mails plain2)"
[ "$(cat "$tmp"/plain2/*.eml | grep -i '^Message-ID:' | sort -u | wc -l)" = 5 ] && ok "5 distinct Message-IDs, none twice" || bad "duplicates"
expect 0 "dispatch again" oe --json events dispatch --once
[ "$(json 'd["events"]' <"$tmp/out")" = 0 ] && [ "$(mails plain2)" = 5 ] && ok "nothing sent twice" || bad "resent"

# ---- a permanent refusal is dead at once; a server down to the end is dead after max_attempts ----
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
smtpd reject "$plain" --reject || exit 1
oe cert request --user rejected --csr "$tmp/u.csr" >/dev/null 2>&1
expect 1 "dispatch: 550 for the recipient" oe --json events dispatch --once
[ "$(json 'd["dead"]' <"$tmp/out")" = 1 ] && ok "a 5xx answer is final" || bad "$(cat "$tmp/out")"
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
oe cert request --user lost --csr "$tmp/u.csr" >/dev/null 2>&1
for i in 1 2 3 4; do oe events dispatch --once >/dev/null 2>&1; sleep 1.1; done
oe --json events outbox --state dead >"$tmp/out"
[ "$(json 'len([e for e in d if e["payload"]["user"] == "lost"])' <"$tmp/out")" = 1 ] &&
	ok "dead after max_attempts, listed by events outbox" || bad "dead: $(cat "$tmp/out")"

# ---- STARTTLS with a test CA, and AUTH ----
cat >"$rules/secure.conf" <<R
[rule secure]
event = token_init
handler = usernotification
action = sendmail
condition.tokentype = totp
option.to = tokenowner
option.smtp = secure
option.subject = Ünïcode token {serial}
option.body = Your token {serial}.
R
smtpd tls "$tlsport" --tls "$tmp/srv.pem" "$tmp/srv.key" --auth "otpenroll:s3cret pass" || exit 1
oe token add-otp --user tina --type totp >/dev/null
OTPENROLL_SMTP_TRACE=1 expect 0 "dispatch over STARTTLS with AUTH" oe events dispatch --once
m="$tmp/tls/0.eml"
[ "$(header "$m" X-TLS)" = yes ] && ok "sent over TLS" || bad "TLS: $(cat "$m" 2>/dev/null; cat "$tmp/tls.log")"
header "$m" Subject | grep -q "^=?UTF-8?B?" && ok "a non-ASCII subject is RFC 2047 encoded" || bad "subject: $(header "$m" Subject)"
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
smtpd tls2 "$tlsport" --tls "$tmp/srv.pem" "$tmp/srv.key" --auth "otpenroll:another" || exit 1
oe token add-otp --user tom --type totp >/dev/null
expect 1 "a wrong password" oe events dispatch --once
[ "$(mails tls2)" = 0 ] && ok "nothing sent without AUTH" || bad "sent without AUTH"
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/srv2.key" \
	-subj "/CN=mail test" -out "$tmp/srv2.csr" 2>/dev/null
openssl x509 -req -in "$tmp/srv2.csr" -CA "$tmp/other.pem" -CAkey "$tmp/other.key" -CAcreateserial \
	-days 2 -extfile "$tmp/srv.ext" -out "$tmp/srv2.pem" 2>/dev/null
smtpd tls3 "$tlsport" --tls "$tmp/srv2.pem" "$tmp/srv2.key" --auth "otpenroll:s3cret pass" || exit 1
sleep 1.1
expect 1 "a server certificate from another CA" oe events dispatch --once
[ "$(mails tls3)" = 0 ] && ok "nothing sent to an untrusted server" || bad "sent to an untrusted server"
oe --json events outbox --state retrying >"$tmp/out"
json '" ".join(e["last_error"] for e in d)' <"$tmp/out" | grep -q "TLS: server certificate" &&
	ok "the error says TLS and why" || bad "TLS error: $(cat "$tmp/out")"
grep -rq "s3cret" "$tmp"/*.log "$tmp/out" 2>/dev/null && bad "the password was logged" || ok "no password in any log"
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.9, DNS:mail.example.com\n' >"$tmp/srv3.ext"
openssl x509 -req -in "$tmp/srv2.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
	-days 2 -extfile "$tmp/srv3.ext" -out "$tmp/srv3.pem" 2>/dev/null
smtpd tls4 "$tlsport" --tls "$tmp/srv3.pem" "$tmp/srv2.key" --auth "otpenroll:s3cret pass" || exit 1
sleep 1.1
expect 1 "a trusted certificate for another address" oe events dispatch --once
[ "$(mails tls4)" = 0 ] && ok "nothing sent to a server whose certificate names another host" ||
	bad "sent despite the host name"
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
printf '[smtp bad]\nhost = 127.0.0.1\ntls = tls\nfrom = a@example.com\n' >>"$conf"
printf '[rule x]\nevent = token_init\nhandler = usernotification\naction = sendmail\noption.to = tokenowner\noption.smtp = bad\noption.subject = s\noption.body = b\n' >"$rules/bad.conf"
expect 2 "tls = tls is refused when the rule loads" oe events list
has "$tmp/err" "implicit TLS" "says why"
rm -f "$rules/bad.conf" "$rules/secure.conf"
oe --json events outbox --state retrying >"$tmp/out"
for id in $(json '" ".join(str(e["id"]) for e in d)' <"$tmp/out"); do oe events retry "$id" >/dev/null; done

# ---- a dispatcher killed mid-delivery: delivered again, same Message-ID ----
smtpd slow "$plain" --data-delay 2 || exit 1
oe cert request --user kill --csr "$tmp/u.csr" >/dev/null 2>&1
oe events dispatch --once >/dev/null 2>&1 &
disp=$!
for _ in $(seq 100); do [ -s "$tmp/slow/connections" ] && break; sleep 0.05; done
sleep 0.5
kill -9 "$disp"; wait "$disp" 2>/dev/null
sleep 3 # the server finishes its DATA; the dispatcher's lease (2 s) runs out
oe events dispatch --once >/dev/null 2>&1
grep -l "^X-Envelope-To: kill@" "$tmp"/slow/*.eml >"$tmp/kill.list" 2>/dev/null
n=$(wc -l <"$tmp/kill.list")
[ "$n" -ge 1 ] && ok "delivered after the dispatcher was killed ($n copies)" || bad "not delivered"
[ "$(xargs grep -hi '^Message-ID:' <"$tmp/kill.list" | sort -u | wc -l)" = 1 ] &&
	ok "every copy has the same Message-ID" || bad "Message-IDs differ"
oe --json events outbox >"$tmp/out"
[ "$(json '[e["state"] for e in d if e["payload"].get("user") == "kill"][0]' <"$tmp/out")" = delivered ] &&
	ok "the entry is delivered" || bad "state: $(cat "$tmp/out")"

# ---- the story through otpenrolld: its dispatcher sends both mails ----
kill "${servers[-1]}"; wait "${servers[-1]}" 2>/dev/null
smtpd daemon "$plain" || exit 1
printf '[daemon]\nsocket = %s\n' "$tmp/sock" >>"$conf"
"$build/tools/otpenrolld" -c "$conf" 2>"$tmp/daemon.log" &
servers+=($!)
for _ in $(seq 100); do [ -S "$tmp/sock" ] && break; sleep 0.05; done
PYTHONPATH="$src/tests/bench" /usr/bin/python3 - "$tmp/sock" "$tmp/u.csr" >"$tmp/out" <<'PY'
import base64, sys
from daemon_client import call
csr = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
r = call(sys.argv[1], {"v": 1, "op": "cert_request", "user": "dora", "csr_b64": csr})
print(r["cert"]["serial"], r["cert"]["rollout_state"])
PY
read -r serial state <"$tmp/out"
[ "$state" = pending ] && ok "a request through the daemon is pending" || bad "daemon request: $(cat "$tmp/out")"
wait_mail() { for _ in $(seq 100); do [ "$(mails daemon)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_mail 1 && [ "$(header "$tmp/daemon/0.eml" Subject)" = "Certificate request $serial is pending" ] &&
	ok "the daemon mailed the pending request by itself" || bad "no pending mail from the daemon"
oe ca approve "$serial" >/dev/null
wait_mail 2 && [ "$(header "$tmp/daemon/1.eml" Subject)" = "Your certificate $serial is ready" ] &&
	ok "and the ready mail after the approval" || bad "no ready mail from the daemon"
finish
