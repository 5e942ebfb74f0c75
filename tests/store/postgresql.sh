#!/bin/bash
# The PostgreSQL store end to end, on a throwaway cluster of its own
# (its socket in a temporary directory, no TCP; run as the postgres user
# when the test runs as root), reached with a password from a passfile:
# init creating the schema only when asked, HOTP and TOTP logins through
# PAM with oathtool's codes (replays refused), a pam_oath import that
# fails whole, certificates from the local CA checked with openssl
# (issued, pending then approved, revoked on the CRL, a generated key
# handed out once to six fetches at once), the outbox delivered by a
# rule, the audit log; 16 processes logging in with one code at once
# (tests/pam/test_race: exactly one succeeds), the backend's unit tests
# against the server (tests/unit/test_pgsql), no password in messages,
# the caller's PG* variables and HOME not steering the connection, and a
# login failing closed when the server is gone.
set -u
build=${top_builddir:?}
bin="$build/tools/otpenroll"

pgbin=
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/bin; do
	[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { pgbin=$d; break; }
done
[ -n "$pgbin" ] || { echo "SKIP: no PostgreSQL server binaries (Debian package postgresql)"; exit 77; }
for t in psql oathtool openssl pamtester python3; do
	command -v $t >/dev/null || { echo "FAIL: $t is missing (scripts/deps.sh installs it)"; exit 1; }
done

tmp=$(mktemp -d)
# Short and fixed: the socket's path must fit in sun_path.
pg=$(mktemp -d /tmp/oe-pg.XXXXXX)
# The cluster runs as postgres when we are root (initdb refuses root).
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || { echo "FAIL: no postgres user to run the cluster as"; exit 1; }
	chown postgres: "$pg"
	asdb() { (cd "$pg" && runuser -u postgres -- "$@"); }
else
	asdb() { (cd "$pg" && "$@"); }
fi
cleanup() {
	[ -f "$pg/data/postmaster.pid" ] && asdb "$pgbin/pg_ctl" -D "$pg/data" -m immediate -w stop >/dev/null 2>&1
	rm -rf "$tmp" "$pg"
}
trap cleanup EXIT

asdb "$pgbin/initdb" -D "$pg/data" -U postgres -A trust --no-locale -E UTF8 >"$tmp/initdb.log" 2>&1 ||
	{ cat "$tmp/initdb.log"; echo "FAIL: initdb"; exit 1; }
# The superuser without a password, everyone else with one.
printf 'local all postgres trust\nlocal all all scram-sha-256\n' >"$pg/data/pg_hba.conf"
asdb "$pgbin/pg_ctl" -D "$pg/data" -o "-k $pg -h '' -c fsync=off" -l "$pg/log" -w -t 60 start >/dev/null ||
	{ cat "$pg/log"; echo "FAIL: the cluster did not start"; exit 1; }
su_psql() { psql -X -q -v ON_ERROR_STOP=1 -h "$pg" -U postgres "$@"; }
pw=$(openssl rand -hex 12)
su_psql -d postgres -c "CREATE ROLE otpenroll LOGIN PASSWORD '$pw'" \
	-c "CREATE DATABASE oe OWNER otpenroll" -c "CREATE DATABASE race OWNER otpenroll" \
	-c "CREATE DATABASE unit OWNER otpenroll" || { echo "FAIL: roles and databases"; exit 1; }
printf '*:*:*:otpenroll:%s\n' "$pw" >"$tmp/pgpass"
chmod 600 "$tmp/pgpass"
at="host=$pg&passfile=$tmp/pgpass"
url="postgresql://otpenroll@/oe?$at"
# What the store holds, as the server says it.
q() { su_psql -d oe -At -c "$1"; }

conf="$tmp/oe.conf"
mkdir "$tmp/events.d" "$tmp/svc"
cat >"$conf" <<CONF
[store]
url = $url
key_file = $tmp/secret.key
backend_dir = $build/lib/store/.libs
[otp]
window = 1
[enroll]
default_ca = local
max_tokens_per_user = 10
[ca local]
type = local
dir = $tmp/ca
subject = CN={user},O=Example
[ca manual]
type = local
dir = $tmp/ca2
approval = manual
[events]
dir = $tmp/events.d
handler_dir = $build/hooks/handlers/.libs
CONF
# shellcheck source=tests/lib.sh
. "${top_srcdir:?}/tests/lib.sh"
# shellcheck source=tests/pam/wrapper-lock.sh
. "${top_srcdir:?}/tests/pam/wrapper-lock.sh"
echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$conf" >"$tmp/svc/login"
# pt USER: pamtester authenticates USER through pam_wrapper, the code on stdin.
pt() {
	LD_PRELOAD="${OE_ASAN_RUNTIME:+$OE_ASAN_RUNTIME }libpam_wrapper.so" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$tmp/svc" pamtester login "$1" authenticate
}
# login WHAT USER CODE WANT: WANT is "accepted" or "refused".
login() {
	local got=refused
	echo "$3" | pt "$2" >"$tmp/pt" 2>&1 && got=accepted
	[ "$got" = "$4" ] && ok "$1: $4" || { bad "$1: $got, wanted $4"; cat "$tmp/pt"; }
}

# ---- the schema, only when asked for ----
expect 1 "before init, a command is refused" oe token list
has "$tmp/err" "not initialised; run \`otpenroll init\` first" "and says to run init"
[ -z "$(q "SELECT to_regclass('meta')")" ] && ok "nothing was created" || bad "tables made without init"
expect 0 "init" oe init
expect 0 "init again" oe init
[ "$(q "SELECT value FROM meta WHERE name = 'schema_version'")" = 11 ] && ok "schema version 11" \
	|| bad "schema version: $(q "SELECT value FROM meta")"
[ "$(q "SELECT data_type FROM information_schema.columns WHERE table_name = 'tokens' AND column_name = 'secret'")" = bytea ] \
	&& ok "secrets in a bytea column" || bad "secret column type"
[ "$(q "SELECT data_type FROM information_schema.columns WHERE table_name = 'tokens' AND column_name = 'kept_cert'")" = text ] \
	&& ok "a kept certificate's column (migration 11)" || bad "kept_cert column"
[ "$(q "SELECT is_identity FROM information_schema.columns WHERE table_name = 'outbox' AND column_name = 'id'")" = YES ] \
	&& ok "outbox ids numbered by the server" || bad "outbox id column"
q "SELECT indexname FROM pg_indexes WHERE tablename = 'tokens'" | grep -qx tokens_due \
	&& ok "the poller's partial index (migration 9)" || bad "indexes: $(q "SELECT indexname FROM pg_indexes")"

# ---- OTP tokens and logins ----
key=3132333435363738393031323334353637383930
echo $key >"$tmp/hotp.hex"
key2=3132333435363738393031323334353637383931
echo $key2 >"$tmp/totp.hex"
chmod 600 "$tmp/hotp.hex" "$tmp/totp.hex"
expect 0 "add an HOTP token" oe --json token add-otp --user bob --type hotp --secret-file "$tmp/hotp.hex"
hotp=$(json 'd["serial"]' <"$tmp/out")
expect 0 "add a TOTP token" oe --json token add-otp --user carol --type totp --secret-file "$tmp/totp.hex"
totp=$(json 'd["serial"]' <"$tmp/out")
[ "$(q "SELECT length(secret) > 20 AND position('\\x3132333435'::bytea in secret) = 0 FROM tokens WHERE serial = '$hotp'")" = t ] \
	&& ok "the secret is stored sealed" || bad "stored secret"
expect 1 "the same secret twice for one user" oe token add-otp --user bob --type hotp --secret-file "$tmp/hotp.hex"
has "$tmp/err" "user bob already has OTP token $hotp with this secret" "says bob has a token with this secret"
login "HOTP code 0" bob "$(oathtool --hotp -c 0 $key)" accepted
login "HOTP code 0 replayed" bob "$(oathtool --hotp -c 0 $key)" refused
login "HOTP code 1" bob "$(oathtool --hotp -c 1 $key)" accepted
login "a wrong code" bob 000000 refused
[ "$(oe --json token show "$hotp" | json 'd["failcount"]')" = 1 ] && ok "the failure since counted" \
	|| bad "failcount: $(oe --json token show "$hotp")"
login "HOTP code 2" bob "$(oathtool --hotp -c 2 $key)" accepted
[ "$(oe --json token show "$hotp" | json 'd["failcount"]')" = 0 ] && ok "a success resets the count" \
	|| bad "failcount after success"
login "TOTP code now" carol "$(oathtool --totp $key2)" accepted
login "TOTP code replayed" carol "$(oathtool --totp $key2)" refused
login "the HOTP token's code for the TOTP user" carol "$(oathtool --hotp -c 3 $key)" refused
expect 0 "token list --json" oe --json token list
[ "$(json 'len(d)' <"$tmp/out")" = 2 ] && ok "two tokens" || bad "token list: $(cat "$tmp/out")"
next=$(oathtool --totp --now=@$(($(date +%s) + 30)) $key2)
expect 0 "disable" oe token disable "$totp"
login "a disabled token" carol "$next" refused
expect 0 "enable" oe token enable "$totp"
login "enabled again, the same code" carol "$next" accepted

# ---- a pam_oath import, whole or not at all ----
printf 'HOTP dan - %s 0\nHOTP/T30 erin - %s\n' 3132333435363738393031323334353637383932 \
	3132333435363738393031323334353637383933 >"$tmp/users.oath"
printf 'HOTP fay - %s\nHOTP fay - %s\n' 3132333435363738393031323334353637383934 \
	3132333435363738393031323334353637383934 >"$tmp/twice.oath"
chmod 600 "$tmp/users.oath" "$tmp/twice.oath"
expect 0 "import" oe token import "$tmp/users.oath"
expect 1 "an import repeating a line" oe token import "$tmp/twice.oath"
has "$tmp/err" "nothing was imported" "says nothing was imported"
[ "$(q "SELECT COUNT(*) FROM tokens WHERE owner = 'fay'")" = 0 ] && ok "and nothing was" || bad "fay's first line stayed"
[ "$(q "SELECT COUNT(*) FROM tokens")" = 4 ] && ok "four OTP tokens" || bad "token count $(q "SELECT COUNT(*) FROM tokens")"
login "an imported token" dan "$(oathtool --hotp -c 0 3132333435363738393031323334353637383932)" accepted

# ---- certificates through the local CA ----
expect 0 "ca init" oe ca init local --subject "CN=Example Users CA,O=Example"
expect 0 "ca init (manual)" oe ca init manual --subject "CN=Manual CA"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/alice.key" \
	-subj "/CN=alice" -out "$tmp/alice.csr" 2>/dev/null
expect 0 "cert request with a CSR" oe --json cert request --user alice --csr "$tmp/alice.csr" --out "$tmp/alice.pem"
alice=$(json 'd["serial"]' <"$tmp/out")
[ "$(json 'd["rollout_state"]' <"$tmp/out")" = enrolled ] && ok "enrolled at once" || bad "state: $(cat "$tmp/out")"
openssl verify -purpose sslclient -CAfile "$tmp/ca/ca.pem" "$tmp/alice.pem" >"$tmp/v" 2>&1 \
	&& ok "openssl verify -purpose sslclient" || { bad "verify"; cat "$tmp/v"; }
[ "$(q "SELECT COUNT(*) FROM local_ca_certs WHERE token = '$alice'")" = 1 ] && ok "the CA's record names the token" \
	|| bad "local_ca_certs"
expect 0 "a generated key" oe --json cert request --user gina --generate --out "$tmp/gina.p12"
pass=$(json 'd["pkcs12_password"]' <"$tmp/out")
openssl pkcs12 -in "$tmp/gina.p12" -passin "pass:$pass" -nokeys -clcerts -out "$tmp/gina.pem" 2>/dev/null &&
	openssl verify -CAfile "$tmp/ca/ca.pem" "$tmp/gina.pem" >/dev/null 2>&1 \
	&& ok "the PKCS#12's certificate verifies" || bad "gina's PKCS#12"
expect 3 "a manual CA leaves the request pending" oe --json cert request --user mona --generate --ca manual
mona=$(json 'd["serial"]' <"$tmp/out")
[ "$(q "SELECT secret IS NOT NULL FROM tokens WHERE serial = '$mona'")" = t ] && ok "the pending key is kept" \
	|| bad "no kept key"
expect 0 "ca approve" oe ca approve "$mona"
for i in 1 2 3 4 5 6; do
	oe --json cert fetch "$mona" --user mona --out "$tmp/mona$i.p12" >"$tmp/fetch$i.json" 2>&1 &
done
wait
n=$(grep -l pkcs12_password "$tmp"/fetch?.json | wc -l)
[ "$n" -eq 1 ] && ok "six fetches at once: exactly one gets the PKCS#12" || bad "$n of six fetches got it"
[ "$(q "SELECT secret IS NULL FROM tokens WHERE serial = '$mona'")" = t ] && ok "the key is gone after it" \
	|| bad "key kept after fetch"
expect 3 "another pending request" oe --json cert request --user nick --csr "$tmp/alice.csr" --ca manual
nick=$(json 'd["serial"]' <"$tmp/out")
expect 0 "ca deny" oe ca deny "$nick"
[ "$(oe --json token show "$nick" | json 'd["rollout_state"]')" = denied ] && ok "denied" || bad "deny"
expect 0 "revoke" oe token revoke "$alice" --reason keyCompromise
expect 1 "revoke twice" oe token revoke "$alice"
has "$tmp/err" "token $alice is revoked; only an issued certificate can be revoked" "says it is revoked already"
expect 0 "ca crl" oe ca crl local --out "$tmp/crl.pem"
openssl verify -crl_check -CRLfile "$tmp/crl.pem" -CAfile "$tmp/ca/ca.pem" "$tmp/alice.pem" >"$tmp/v" 2>&1 \
	&& bad "the revoked certificate verifies with the CRL" || has "$tmp/v" "certificate revoked" "the CRL revokes it"
openssl verify -crl_check -CRLfile "$tmp/crl.pem" -CAfile "$tmp/ca/ca.pem" "$tmp/gina.pem" >/dev/null 2>&1 \
	&& ok "another certificate still verifies with the CRL" || bad "gina's certificate with the CRL"

# ---- the outbox, delivered; the audit log ----
expect 0 "events outbox" oe --json events outbox
python3 - "$tmp/out" <<'PY' && ok "the outbox holds each kind of event" || bad "outbox: $(cat "$tmp/out")"
import json, sys
events = {e["event"] for e in json.load(open(sys.argv[1]))}
sys.exit(not {"token_init", "auth_success", "auth_failure", "token_rollout_state", "token_revoke"} <= events)
PY
kinds="token_init token_rollout_state token_revoke auth_success auth_failure"
queued=$(json "len([e for e in d if e['state'] == 'queued' and e['event'] in '$kinds'.split()])" <"$tmp/out")
cat >"$tmp/record" <<EOF
#!/bin/sh
printf '%s %s\n' "\$OE_EVENT" "\$OE_SERIAL" >>"$tmp/delivered"
EOF
chmod 755 "$tmp/record"
cat >"$tmp/events.d/all.conf" <<EOF
[rule record]
event = $(echo $kinds | sed 's/ /, /g')
handler = script
action = run
option.program = $tmp/record
EOF
expect 0 "events dispatch --once" oe events dispatch --once
[ "$(wc -l <"$tmp/delivered")" = "$queued" ] && ok "each of the $queued queued events delivered" \
	|| bad "delivered $(wc -l <"$tmp/delivered") of $queued"
grep -qx "token_revoke $alice" "$tmp/delivered" && ok "the revocation among them" || bad "no token_revoke"
expect 0 "events outbox after" oe --json events outbox
[ "$(json 'len([e for e in d if e["state"] != "delivered"])' <"$tmp/out")" = 0 ] && ok "all delivered" \
	|| bad "left: $(cat "$tmp/out")"
expect 0 "dispatch again" oe events dispatch --once
[ "$(wc -l <"$tmp/delivered")" = "$queued" ] && ok "nothing delivered twice" || bad "delivered again"
expect 0 "audit" oe --json audit
[ "$(json 'len([e for e in d if e["action"] == "auth" and e["user"] == "bob"])' <"$tmp/out")" = 5 ] \
	&& ok "bob's five logins audited" || bad "audit: $(cat "$tmp/out")"

# ---- the same code from 16 processes at once ----
if [ -x "$build/tests/pam/test_race" ]; then
	OE_RACE_STORE_URL="postgresql://otpenroll@/race?$at" "$build/tests/pam/test_race" >"$tmp/race" 2>&1 \
		&& ok "race: $(tail -1 "$tmp/race")" || { bad "race"; cat "$tmp/race"; }
else
	echo "skip race: tests/pam/test_race was not built (libpamtest0-dev)"
fi

# ---- the backend's own tests, against this server ----
if [ -x "$build/tests/unit/test_pgsql" ]; then
	OE_TEST_PG_URL="postgresql://otpenroll@/unit?$at" "$build/tests/unit/test_pgsql" >"$tmp/unit" 2>&1 \
		&& ! grep -q SKIPPED "$tmp/unit" && ok "test_pgsql against the server" || { bad "test_pgsql"; cat "$tmp/unit"; }
else
	echo "skip test_pgsql: not built (libcmocka-dev)"
fi

# ---- URLs: the other spelling; a wrong password, not shown ----
sed "s|^url = postgresql://|url = postgres://|" "$conf" >"$tmp/alias.conf"
expect 0 "a postgres:// URL" "$bin" -c "$tmp/alias.conf" token list
wrong=WrOnG$(openssl rand -hex 6)
sed "s|^url = .*|url = postgresql://otpenroll:$wrong@/oe?host=$pg|" "$conf" >"$tmp/wrong.conf"
expect 1 "a wrong password" "$bin" -c "$tmp/wrong.conf" token list
has "$tmp/err" "password authentication failed" "says the password was refused"
grep -q "$wrong" "$tmp/err" && bad "the password is in the message" || ok "without the password"
has "$tmp/err" "otpenroll:\*\*\*@" "the URL shown with the password hidden"
# A '?' in the password: libpq reads the userinfo up to the '@' all
# the same, and so must what hides it.
sed "s|^url = .*|url = postgresql://otpenroll:Wr?$wrong@/oe?host=$pg|" "$conf" >"$tmp/wrongq.conf"
expect 1 "a wrong password with a '?'" "$bin" -c "$tmp/wrongq.conf" token list
grep -q "$wrong" "$tmp/err" && bad "the '?' password is in the message" || ok "without the '?' password"

# ---- a server that takes the connection and says nothing: given up
# after connect_timeout (10 s unless the URL says) ----
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
c = [s.accept() for _ in range(2)]
time.sleep(120)' >"$tmp/silent.port" &
silent=$!
for _ in $(seq 50); do [ -s "$tmp/silent.port" ] && break; sleep 0.1; done
sed "s|^url = .*|url = postgresql://otpenroll@127.0.0.1:$(cat "$tmp/silent.port")/oe|" "$conf" >"$tmp/silent.conf"
expect 1 "a server that never answers" timeout 60 "$bin" -c "$tmp/silent.conf" token list
has "$tmp/err" "timeout expired" "given up by the connect timeout, not waited on"
kill "$silent" 2>/dev/null
wait "$silent" 2>/dev/null

# ---- the caller's environment does not steer the connection: the PAM
# module runs in su's and sudo's, whose caller could point PGHOSTADDR at
# a listener of theirs and be sent the password, or give a ~/.pgpass or
# ~/.postgresql/root.crt of theirs ----
python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept(); print("connected", flush=True); c.close()' >"$tmp/lure" &
lure=$!
for _ in $(seq 50); do [ -s "$tmp/lure" ] && break; sleep 0.1; done
lport=$(head -n 1 "$tmp/lure")
lured() {
	PGHOSTADDR=127.0.0.1 PGHOST=127.0.0.1 PGPORT=$lport PGSSLMODE=disable PGCONNECT_TIMEOUT=2 \
		PGSERVICEFILE=/nonexistent PGOPTIONS="-c search_path=nowhere" "$@"
}
expect 0 "a command with the caller's PGHOSTADDR, PGPORT, PGSSLMODE...: as the URL says" \
	lured "$bin" -c "$conf" token list
PGHOSTADDR=127.0.0.1 PGPORT=$lport PGSSLMODE=disable PGCONNECT_TIMEOUT=2 \
	login "a login with the caller's PGHOSTADDR and PGPORT" bob "$(oathtool --hotp -c 3 $key)" accepted
[ "$(grep -c connected "$tmp/lure")" = 0 ] && ok "the caller's listener was never reached" \
	|| bad "connections to the caller's listener: $(grep -c connected "$tmp/lure")"
kill "$lure" 2>/dev/null
wait "$lure" 2>/dev/null
mkdir "$tmp/home"
printf '*:*:*:otpenroll:%s\n' "$pw" >"$tmp/home/.pgpass"
chmod 600 "$tmp/home/.pgpass"
sed "s|^url = .*|url = postgresql://otpenroll@/oe?host=$pg|" "$conf" >"$tmp/nopass.conf"
if [ -e "$(getent passwd "$(id -u)" | cut -d: -f6)/.pgpass" ]; then
	echo "skip a caller's HOME: $(id -un) has a .pgpass of its own"
else
	expect 1 "a caller's HOME holding a .pgpass: not read" \
		env HOME="$tmp/home" "$bin" -c "$tmp/nopass.conf" token list
	has "$tmp/err" "no password supplied" "the effective user's home is, which has none"
	sed "s|^url = .*|url = postgresql://otpenroll@/oe?host=$pg\&passfile=$tmp/home/.pgpass|" "$conf" \
		>"$tmp/passfile.conf"
	expect 0 "the same file named by the URL's passfile" "$bin" -c "$tmp/passfile.conf" token list
fi

# ---- the server gone: fail closed ----
asdb "$pgbin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null
login "a login with the server stopped" bob "$(oathtool --hotp -c 4 $key)" refused
expect 1 "a command with the server stopped" oe token list
has "$tmp/err" "cannot connect" "says it cannot connect"
finish
