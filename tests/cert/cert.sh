#!/bin/bash
# Certificate tokens end to end on the command line (root, --user), each
# result checked with the openssl command: what the local CA issues, CSR
# and key policy, attestation chains, server-generated PKCS#12, manual
# approval, revocation and CRLs, uploads, events in the outbox.
set -u
build=${top_builddir:?}
bin="$build/tools/otpenroll"
for t in openssl sqlite3 python3; do
	command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/anchors"
conf="$tmp/oe.conf"
write_conf() { # attestation mode [another [enroll] line]
	cat >"$conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
backend_dir = $build/lib/store/.libs
key_file = $tmp/secret.key
[enroll]
default_ca = local
key_types = ec256, ec384, rsa2048, rsa3072
max_tokens_per_user = 3
attestation = $1
attestation_ca_dir = $tmp/anchors
${2:-}
[ca local]
type = local
dir = $tmp/ca
subject = CN={user},O=Example
validity_days = 30
[ca rsa]
type = local
dir = $tmp/ca-rsa
subject = /O=Example/CN={user}
validity_days = 36500
[ca manual]
type = local
dir = $tmp/ca2
approval = manual
CONF
}
write_conf ignore
# shellcheck source=tests/lib.sh
. "${top_srcdir:?}/tests/lib.sh"
tokens() { sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE type = 'certificate'"; }
# True when token SERIAL exists and holds no sealed key (an empty or
# unknown serial is not a token without a key).
key_gone() {
	[ -n "$1" ] && [ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE serial = '$1' AND secret IS NULL")" = 1 ]
}
csr() { # name keyspec subject [der]
	openssl req -new -newkey "$2" -nodes -keyout "$tmp/$1.key" -subj "$3" -out "$tmp/$1.csr" 2>/dev/null
	[ "${4:-}" = der ] && openssl req -in "$tmp/$1.csr" -outform DER -out "$tmp/$1.csr"
	return 0
}
openssl ecparam -name prime256v1 -out "$tmp/p256.pem"
ec=ec:$tmp/p256.pem

expect 0 "init" oe init
expect 0 "ca init (EC, RFC 4514 DN)" oe ca init local --subject "CN=Example Users CA,O=Example"
expect 0 "ca init (RSA, slash DN)" oe ca init rsa --subject "/O=Example/CN=Example RSA CA" --key-type rsa3072
openssl x509 -in "$tmp/ca-rsa/ca.pem" -noout -text | grep -q "Public-Key: (3072 bit)" \
	&& ok "--key-type rsa3072 makes an RSA-3072 CA" || bad "RSA CA key size"
expect 0 "ca init (manual approval CA)" oe ca init manual --subject "CN=Manual CA"
expect 1 "a second ca init is refused" oe ca init local --subject "CN=Again"
has "$tmp/err" "already has a CA in $tmp/ca" "says the CA is there already"
expect 2 "ca init without --subject" oe ca init local
has "$tmp/err" "NAME and --subject are required" "says --subject is required"
openssl x509 -in "$tmp/ca/ca.pem" -noout -text >"$tmp/ca.txt"
has "$tmp/ca.txt" "Basic Constraints: critical" "CA basicConstraints critical"
has "$tmp/ca.txt" "CA:TRUE" "CA:TRUE"
has "$tmp/ca.txt" "Certificate Sign, CRL Sign" "CA key usage keyCertSign, cRLSign"
[ "$(openssl x509 -in "$tmp/ca/ca.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=Example Users CA,O=Example" ] \
	&& ok "RFC 4514 DN kept its meaning" || bad "DN: $(openssl x509 -in "$tmp/ca/ca.pem" -noout -subject -nameopt RFC2253)"
[ "$(openssl x509 -in "$tmp/ca-rsa/ca.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=Example RSA CA,O=Example" ] \
	&& ok "slash DN in encoding order" || bad "slash DN"
[ "$(stat -c %a "$tmp/ca/ca.key")" = 600 ] && ok "ca.key is 0600" || bad "ca.key mode"
openssl pkey -in "$tmp/ca/ca.key" -passin pass: -noout 2>/dev/null && bad "ca.key opens without the store key" \
	|| ok "ca.key is encrypted"
expect 0 "ca check" oe ca check local
# A CA whose files were never made, and one whose key others may read
# or that is reached through a symbolic link: refused, saying why.
cp "$conf" "$tmp/files.conf"
printf '[ca none]\ntype = local\ndir = %s/nowhere\n' "$tmp" >>"$tmp/files.conf"
expect 1 "a CA never initialised" "$bin" -c "$tmp/files.conf" ca check none
has "$tmp/err" "nowhere/ca.pem: No such file.*run \`otpenroll ca init\`" "says to run ca init"
chmod 644 "$tmp/ca/ca.key"
expect 1 "a CA key others may read" "$bin" -c "$tmp/files.conf" ca check local
has "$tmp/err" "ca/ca.key is accessible by group or others; chmod 600 it" "says to chmod 600 the key"
# A request the local CA could not sign fails whole: there is no one to
# ask again later, so no token (nor event) is left to count against the
# user's quota.
csr cfail "$ec" "/CN=cfail"
expect 1 "a request while the CA key is unsafe" oe --json cert request --user cfail --csr "$tmp/cfail.csr"
has "$tmp/err" "ca.key is accessible by group or others; chmod 600 it" "says why the CA could not sign"
[ "$(sqlite3 "$tmp/oe.db" "SELECT count(*) FROM tokens WHERE owner = 'cfail'")" = 0 ] \
	&& [ "$(sqlite3 "$tmp/oe.db" "SELECT count(*) FROM outbox WHERE payload LIKE '%\"cfail\"%'")" = 0 ] \
	&& ok "no token or event left behind" \
	|| bad "failed local request left: $(sqlite3 "$tmp/oe.db" "SELECT serial, rollout_state FROM tokens WHERE owner = 'cfail'")"
expect 2 "ca poll with two names" oe ca poll local rsa
has "$tmp/err" "ca poll: at most one CA NAME expected" "says at most one name"
expect 2 "ca poll with an unknown option" oe ca poll -x
has "$tmp/err" "ca poll: unknown option -x" "says -x is unknown"
expect 2 "ca sync without a name" oe ca sync
has "$tmp/err" "ca sync: one CA NAME expected" "says a name is expected"
expect 2 "ca poll of a CA that is not configured" oe ca poll nosuch
has "$tmp/err" "no \[ca nosuch\] section" "says there is no such CA"
expect 2 "ca sync of a CA that is not configured" oe ca sync nosuch
has "$tmp/err" "no \[ca nosuch\] section" "says there is no such CA"
expect 0 "ca poll of one CA" oe --json ca poll local
expect 0 "ca poll leaves it" oe --json ca poll
[ "$(json 'len(d)' <"$tmp/out")" = 0 ] && ok "nothing to ask an in-process CA" || bad "ca poll: $(cat "$tmp/out")"
chmod 600 "$tmp/ca/ca.key"
mv "$tmp/ca/ca.key" "$tmp/ca.key.real"
ln -s "$tmp/ca.key.real" "$tmp/ca/ca.key"
expect 1 "a CA key through a symbolic link" "$bin" -c "$tmp/files.conf" ca check local
has "$tmp/err" "ca/ca.key: Too many levels of symbolic links" "names the link"
rm "$tmp/ca/ca.key"
mv "$tmp/ca.key.real" "$tmp/ca/ca.key"
expect 0 "the key back: ca check" oe ca check local

# A user's CSR, EC in PEM: issued at once, subject from policy.
csr alice "$ec" "/CN=root/O=Evil"
expect 0 "request with an EC CSR" oe --json cert request --user alice --csr "$tmp/alice.csr" --out "$tmp/alice.pem"
[ "$(json 'd["rollout_state"]' <"$tmp/out")" = enrolled ] && ok "enrolled" || bad "state"
alice=$(json 'd["serial"]' <"$tmp/out")
openssl verify -purpose sslclient -CAfile "$tmp/ca/ca.pem" "$tmp/alice.pem" >"$tmp/v" 2>&1 \
	&& ok "openssl verify -purpose sslclient" || { bad "verify"; cat "$tmp/v"; }
openssl x509 -in "$tmp/alice.pem" -noout -text >"$tmp/alice.txt"
has "$tmp/alice.txt" "CA:FALSE" "CA:FALSE"
grep -A1 "Basic Constraints" "$tmp/alice.txt" | grep -q critical && ok "basicConstraints critical" || bad "BC critical"
grep -A1 "Key Usage: critical" "$tmp/alice.txt" | grep -qx " *Digital Signature" && ok "EC: digitalSignature only" || bad "EC key usage"
has "$tmp/alice.txt" "TLS Web Client Authentication" "EKU clientAuth"
has "$tmp/alice.txt" "Subject Key Identifier" "SKI"
has "$tmp/alice.txt" "Authority Key Identifier" "AKI"
[ "$(openssl x509 -in "$tmp/alice.pem" -noout -pubkey)" = "$(openssl pkey -in "$tmp/alice.key" -pubout)" ] \
	&& ok "the certificate carries the request's key" || bad "public key differs from the CSR's"
[ "$(openssl x509 -in "$tmp/alice.pem" -noout -subject -nameopt RFC2253)" = "subject=CN=alice,O=Example" ] \
	&& ok "subject from the template, not the CSR" || bad "subject"
serial=$(openssl x509 -in "$tmp/alice.pem" -noout -serial | cut -d= -f2)
[ ${#serial} -le 40 ] && [ ${#serial} -ge 30 ] && ok "random serial of ${#serial} hex digits" || bad "serial $serial"
days=$(( ($(date -d "$(openssl x509 -in "$tmp/alice.pem" -noout -enddate | cut -d= -f2)" +%s) - $(date +%s)) / 86400 ))
[ "$days" -ge 29 ] && [ "$days" -le 30 ] && ok "validity_days respected" || bad "validity $days"

# RSA in DER: keyEncipherment too.
csr bob rsa:2048 "/CN=bob" der
expect 0 "request with an RSA DER CSR" oe cert request --user bob --csr "$tmp/bob.csr" --ca rsa --out "$tmp/bob.pem"
openssl x509 -in "$tmp/bob.pem" -noout -text | grep -A1 "Key Usage: critical" | grep -q "Digital Signature, Key Encipherment" \
	&& ok "RSA: digitalSignature + keyEncipherment" || bad "RSA key usage"
openssl verify -purpose sslclient -CAfile "$tmp/ca-rsa/ca.pem" "$tmp/bob.pem" >/dev/null 2>&1 && ok "RSA cert verifies" || bad "RSA verify"
# validity_days = 36500 on a CA of ten years: the certificate ends with it.
[ "$(openssl x509 -in "$tmp/bob.pem" -noout -enddate)" = "$(openssl x509 -in "$tmp/ca-rsa/ca.pem" -noout -enddate)" ] \
	&& ok "validity ends at the CA's own end" \
	|| bad "validity beyond the CA: $(openssl x509 -in "$tmp/bob.pem" -noout -enddate)"
# Ten years and a day on, the CA has expired: it signs nothing.
if command -v faketime >/dev/null; then
	csr late "$ec" "/CN=late"
	before=$(tokens)
	expect 2 "a request to an expired CA" faketime -f '+3651d' "$bin" -c "$conf" cert request --user late --csr "$tmp/late.csr" --ca rsa
	has "$tmp/err" "has expired; make a new CA" "says the CA has expired"
	[ "$(tokens)" = "$before" ] && ok "nothing recorded for it" || bad "a token was left for the expired CA"
else
	bad "faketime missing (apt-get install faketime)"
fi
[ "$(openssl x509 -in "$tmp/bob.pem" -noout -pubkey)" = "$(openssl pkey -in "$tmp/bob.key" -pubout)" ] \
	&& ok "RSA: the certificate carries the request's key" || bad "RSA public key differs"

# The other key types key_types may allow: P-384 and Ed25519.
write_conf_keys() { sed -i "s/^key_types = .*/key_types = $1/" "$conf"; }
write_conf_keys "ec256, ec384, ed25519, rsa2048, rsa3072"
csr p384 ec:<(openssl ecparam -name secp384r1) "/CN=p384"
expect 0 "a P-384 request" oe cert request --user p384 --csr "$tmp/p384.csr" --out "$tmp/p384.pem"
openssl verify -purpose sslclient -CAfile "$tmp/ca/ca.pem" "$tmp/p384.pem" >/dev/null 2>&1 && ok "P-384 certificate verifies" || bad "P-384 verify"
openssl req -new -newkey ed25519 -nodes -keyout "$tmp/ed.key" -subj /CN=ed -out "$tmp/ed.csr" 2>/dev/null
expect 0 "an Ed25519 request" oe cert request --user ed --csr "$tmp/ed.csr" --out "$tmp/ed.pem"
openssl verify -purpose sslclient -CAfile "$tmp/ca/ca.pem" "$tmp/ed.pem" >/dev/null 2>&1 && ok "Ed25519 certificate verifies" || bad "Ed25519 verify"
openssl x509 -in "$tmp/ed.pem" -noout -text | grep -q "ED25519" && ok "with the Ed25519 key" || bad "Ed25519 key"
# Requests in the other forms requesters send: a compressed EC point
# (made with OpenSSL's API: the openssl command writes none), the
# pre-RFC 2986 "NEW CERTIFICATE REQUEST" PEM label, the request after
# another PEM block (its key).  Each certificate carries the request's
# SubjectPublicKeyInfo byte for byte.
spki_same() { # csr cert what
	cmp -s <(openssl req -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER) \
		<(openssl x509 -in "$2" -pubkey -noout | openssl pkey -pubin -outform DER) \
		&& ok "$3: the certificate has the request's key" || bad "$3: key differs"
}
expect 0 "a request with a compressed P-256 point" oe cert request --user comp \
	--csr "$top_srcdir/tests/fuzz/corpus/fuzz_csr/ec-compressed.pem" --out "$tmp/comp.pem"
# The point's first octet: 02 or 03 compressed, 04 not.
point() { openssl "$1" -in "$2" -noout -text | grep -A1 'pub:' | tail -1 | tr -d ' ' | cut -c1-2; }
case $(point req "$top_srcdir/tests/fuzz/corpus/fuzz_csr/ec-compressed.pem") in
02 | 03) ok "the request's point is compressed" ;;
*) bad "the request's point is not compressed" ;;
esac
case $(point x509 "$tmp/comp.pem") in
02 | 03) ok "compressed point kept as it came" ;;
*) bad "compressed point re-encoded" ;;
esac
openssl verify -purpose sslclient -CAfile "$tmp/ca/ca.pem" "$tmp/comp.pem" >/dev/null 2>&1 \
	&& ok "compressed-point certificate verifies" || bad "compressed-point verify"
csr oldlabel "$ec" "/CN=o"
sed -i 's/CERTIFICATE REQUEST/NEW CERTIFICATE REQUEST/' "$tmp/oldlabel.csr"
expect 0 "a NEW CERTIFICATE REQUEST block" oe cert request --user oldlabel --csr "$tmp/oldlabel.csr" --out "$tmp/oldlabel.pem"
csr second "$ec" "/CN=s"
cat "$tmp/second.key" "$tmp/second.csr" >"$tmp/second.both"
expect 0 "a request after its key in one file" oe cert request --user second --csr "$tmp/second.both" --out "$tmp/second.pem"
spki_same "$tmp/second.csr" "$tmp/second.pem" "after another block"
spki_same "$tmp/p384.csr" "$tmp/p384.pem" "P-384"
spki_same "$tmp/ed.csr" "$tmp/ed.pem" "Ed25519"
write_conf_keys "ec256, ec384, rsa2048, rsa3072"
expect 1 "Ed25519 outside key_types" oe cert request --user ed2 --csr "$tmp/ed.csr"
has "$tmp/err" "key_types" "policy named for Ed25519"

# Refusals leave no token behind.
before=$(tokens)
csr t "$ec" "/CN=t" der
python3 - "$tmp/t.csr" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read()); d[-5] ^= 0x01
open(sys.argv[1], "wb").write(d)
PY
expect 1 "tampered CSR signature" oe cert request --user carol --csr "$tmp/t.csr"
has "$tmp/err" "signature does not verify" "tamper message"
# A request of a version RFC 2986 does not define, signed as it is (so
# only the version is wrong): OpenSSL takes it, we do not.
crafted="${top_srcdir:?}/tests/cert/crafted_csr.py"
csr v "$ec" "/CN=v" der
python3 "$crafted" v2 "$tmp/v.csr" "$tmp/v.key" "$tmp/v2.csr"
openssl req -inform DER -in "$tmp/v2.csr" -verify -noout 2>/dev/null &&
	ok "a version 2 request verifies with OpenSSL" || bad "the version 2 request is not as meant"
expect 1 "a version 2 request" oe cert request --user carol --csr "$tmp/v2.csr"
has "$tmp/err" "unknown version" "version message"
# Keys whose self-signature proves nothing, or that are not the shape of
# key they claim: each verifies with OpenSSL, each is refused here.
csr r "rsa:2048" "/CN=r" der
csr e "$ec" "/CN=e" der
python3 "$crafted" rsa-bool "$tmp/r.csr" "$tmp/r.key" "$tmp/rsa-bool.csr"
python3 "$crafted" rsa-e1 "$tmp/r.csr" "$tmp/r.key" "$tmp/rsa-e1.csr"
python3 "$crafted" ec-infinity "$tmp/e.csr" "$tmp/e.key" "$tmp/ec-inf.csr"
for k in rsa-bool rsa-e1 ec-inf; do
	openssl req -inform DER -in "$tmp/$k.csr" -verify -noout 2>/dev/null &&
		ok "$k: the request verifies with OpenSSL" || bad "$k: the request is not as meant"
done
expect 1 "RSA key with BOOLEAN parameters" oe cert request --user carol --csr "$tmp/rsa-bool.csr"
has "$tmp/err" "no usable public key" "RSA with parameters: no usable key"
expect 1 "RSA key with exponent 1" oe cert request --user carol --csr "$tmp/rsa-e1.csr"
has "$tmp/err" "RSA key is unsound" "exponent 1: unsound"
expect 1 "the EC point at infinity" oe cert request --user carol --csr "$tmp/ec-inf.csr"
has "$tmp/err" "point at infinity" "infinity: named"
csr weak rsa:1024 "/CN=w"
expect 1 "RSA-1024" oe cert request --user carol --csr "$tmp/weak.csr"
has "$tmp/err" "1024 bits is too weak" "weak key message"
csr k1 ec:<(openssl ecparam -name secp256k1) "/CN=k1"
expect 1 "secp256k1" oe cert request --user carol --csr "$tmp/k1.csr"
has "$tmp/err" "key type .* is not accepted" "secp256k1: says the curve is not accepted"
csr big rsa:4096 "/CN=big"
expect 1 "rsa4096 outside key_types" oe cert request --user carol --csr "$tmp/big.csr"
has "$tmp/err" "key_types" "policy named"
# Keys OpenSSL itself decodes (no shortcut for them): refused by policy.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:explicit \
	-out "$tmp/explicit.key" 2>/dev/null
openssl req -new -key "$tmp/explicit.key" -subj /CN=x -out "$tmp/explicit.csr"
expect 1 "P-256 with explicit curve parameters" oe cert request --user carol --csr "$tmp/explicit.csr"
has "$tmp/err" "explicit curve parameters is not accepted" "explicit parameters: not accepted"
openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out "$tmp/pss.key" 2>/dev/null
openssl req -new -key "$tmp/pss.key" -subj /CN=p -out "$tmp/pss.csr"
expect 1 "an RSA-PSS key" oe cert request --user carol --csr "$tmp/pss.csr"
has "$tmp/err" "RSASSA-PSS is not accepted" "RSA-PSS: not accepted"
# A P-256 point off the curve: no key to verify the request with.
csr offcurve "$ec" "/CN=oc" der
python3 - "$tmp/offcurve.csr" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = d.index(bytes([0x03, 0x42, 0x00, 0x04])) + 4 + 63  # a byte of the point's y
d[i] ^= 0x01
open(sys.argv[1], "wb").write(d)
PY
expect 1 "a point off the curve" oe cert request --user carol --csr "$tmp/offcurve.csr"
has "$tmp/err" "no usable public key" "off the curve: no usable key"
echo "not a csr" >"$tmp/junk.csr"
expect 1 "garbage" oe cert request --user carol --csr "$tmp/junk.csr"
has "$tmp/err" "not a PKCS#10 request" "says it is not a PKCS#10 request"
expect 2 "neither --csr nor --generate" oe cert request --user carol
[ "$(tokens)" = "$before" ] && ok "no token left behind by refusals" || bad "tokens left: $(tokens) vs $before"

# Attestation: anchor -> intermediate -> attestation leaf for the CSR's key.
mkca() { # name signer-or-self
	openssl req -new -newkey "$ec" -nodes -keyout "$tmp/$1.key" -subj "/CN=$1" -out "$tmp/$1.req" 2>/dev/null
	printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\n' >"$tmp/ca.ext"
	if [ "$2" = self ]; then
		openssl x509 -req -in "$tmp/$1.req" -signkey "$tmp/$1.key" -days 30 -extfile "$tmp/ca.ext" -out "$tmp/$1.pem" 2>/dev/null
	else
		openssl x509 -req -in "$tmp/$1.req" -CA "$tmp/$2.pem" -CAkey "$tmp/$2.key" -CAcreateserial \
			-days 30 -extfile "$tmp/ca.ext" -out "$tmp/$1.pem" 2>/dev/null
	fi
}
attest() { # csr-name signer out [expired]
	if [ "${4:-}" = expired ]; then
		python3 - "$tmp/$1.csr" "$tmp/$2.pem" "$tmp/$2.key" "$tmp/$3" <<'PY'
import sys, datetime
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
csr = x509.load_pem_x509_csr(open(sys.argv[1], "rb").read())
ca = x509.load_pem_x509_certificate(open(sys.argv[2], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[3], "rb").read(), None)
t = datetime.datetime(2020, 1, 1)
c = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(ca.subject)
     .public_key(csr.public_key()).serial_number(x509.random_serial_number())
     .not_valid_before(t).not_valid_after(t + datetime.timedelta(days=1))
     .sign(key, hashes.SHA256()))
open(sys.argv[4], "wb").write(c.public_bytes(serialization.Encoding.PEM))
PY
	else
		openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$2.pem" -CAkey "$tmp/$2.key" -CAcreateserial \
			-days 30 -out "$tmp/$3" 2>/dev/null
	fi
	cat "$tmp/inter.pem" >>"$tmp/$3"
}
mkca anchor self
mkca inter anchor
mkca rogue self
cp "$tmp/anchor.pem" "$tmp/anchors/"
write_conf verify
for kind in ec rsa; do
	spec=$ec
	[ $kind = rsa ] && spec=rsa:2048
	csr "att$kind" "$spec" "/CN=a"
	csr "other$kind" "$spec" "/CN=o"
	attest "att$kind" inter "good$kind.pem"
	expect 0 "$kind: attestation chaining to the anchor" oe cert request --user "att$kind" --csr "$tmp/att$kind.csr" --attestation "$tmp/good$kind.pem"
	before=$(tokens)
	attest "att$kind" rogue "rogue$kind.pem"
	expect 1 "$kind: attestation from an unknown anchor" oe cert request --user "att$kind" --csr "$tmp/att$kind.csr" --attestation "$tmp/rogue$kind.pem"
	has "$tmp/err" "attestation" "$kind: the refusal is about the attestation"
	attest "att$kind" inter "old$kind.pem" expired
	expect 1 "$kind: expired attestation" oe cert request --user "att$kind" --csr "$tmp/att$kind.csr" --attestation "$tmp/old$kind.pem"
	has "$tmp/err" "expired" "$kind: says expired"
	attest "other$kind" inter "mismatch$kind.pem"
	expect 1 "$kind: attestation for another key" oe cert request --user "att$kind" --csr "$tmp/att$kind.csr" --attestation "$tmp/mismatch$kind.pem"
	has "$tmp/err" "another key" "$kind: says another key"
	[ "$(tokens)" = "$before" ] && ok "$kind: no token left by the refused attestations" || bad "$kind: tokens left"
done
expect 0 "verify mode: no attestation is fine" oe cert request --user nobody1 --csr "$tmp/alice.csr"
write_conf require
expect 1 "require mode: no attestation refused" oe cert request --user nobody2 --csr "$tmp/alice.csr"
has "$tmp/err" "required" "says required"
write_conf ignore

# A key generated on the server.
for kt in ec256 rsa2048 rsa3072; do
	expect 0 "generate $kt" oe --json cert request --user "gen$kt" --generate --key-type $kt --out "$tmp/$kt.p12"
	pass=$(json 'd["pkcs12_password"]' <"$tmp/out")
	gserial=$(json 'd["serial"]' <"$tmp/out")
	[ "$(stat -c %a "$tmp/$kt.p12")" = 600 ] && ok "$kt: PKCS#12 file is 0600" || bad "p12 mode"
	openssl pkcs12 -in "$tmp/$kt.p12" -passin "pass:$pass" -nodes -out "$tmp/$kt.all" 2>/dev/null \
		&& ok "$kt: PKCS#12 opens with the shown password" || bad "$kt: PKCS#12 does not open"
	openssl pkcs12 -in "$tmp/$kt.p12" -passin "pass:$pass" -info -noout >"$tmp/$kt.info" 2>&1
	[ "$(grep -c "PBES2, PBKDF2, AES-256-CBC" "$tmp/$kt.info")" = 2 ] \
		&& ok "$kt: key and certificate bags under PBKDF2 and AES-256" \
		|| bad "$kt: p12 encryption: $(cat "$tmp/$kt.info")"
	grep -q "^MAC: sha256" "$tmp/$kt.info" && ok "$kt: SHA-256 MAC" || bad "$kt: p12 MAC: $(grep MAC "$tmp/$kt.info")"
	a=$(openssl x509 -in "$tmp/$kt.all" -noout -pubkey)
	b=$(openssl pkey -in "$tmp/$kt.all" -pubout)
	[ -n "$a" ] && [ "$a" = "$b" ] && ok "$kt: key matches certificate" || bad "$kt: key mismatch"
	key_gone "$gserial" && ok "$kt: no key kept" || bad "$kt: key kept (or no token '$gserial')"
done
expect 2 "--key-type without --generate" oe cert request --user x --csr "$tmp/alice.csr" --key-type ec256
has "$tmp/err" "--key-type goes with --generate" "says --key-type goes with --generate"
# Where the PKCS#12 cannot go, nothing is asked for: no key is made and lost.
before=$(tokens)
expect 1 "--out in a missing directory is refused first" oe cert request --user genlost --generate --out "$tmp/no/such/dir/x.p12"
has "$tmp/err" "no/such/dir" "the message names the file"
[ "$(tokens)" = "$before" ] && ok "no token was made for it" || bad "a token was made though --out cannot be written"

# Manual approval: pending (exit 3), approve, fetch; deny.
expect 3 "a manual CA leaves the request pending" oe --json cert request --user mona --csr "$tmp/alice.csr" --ca manual
m1=$(json 'd["serial"]' <"$tmp/out")
[ "$(json 'd["rollout_state"]' <"$tmp/out")" = pending ] && ok "pending" || bad "not pending"
expect 0 "ca approve" oe ca approve "$m1"
expect 0 "cert fetch" oe cert fetch "$m1" --user mona --out "$tmp/m1.pem"
openssl verify -CAfile "$tmp/ca2/ca.pem" "$tmp/m1.pem" >/dev/null 2>&1 && ok "approved cert verifies" || bad "approved verify"
expect 1 "approve twice" oe ca approve "$m1"
has "$tmp/err" "token $m1 is enrolled, not pending" "says it is enrolled, not pending"
expect 1 "fetching another user's token" oe cert fetch "$m1" --user alice
expect 3 "second request pending" oe --json cert request --user mona --csr "$tmp/alice.csr" --ca manual
m2=$(json 'd["serial"]' <"$tmp/out")
expect 0 "ca deny" oe ca deny "$m2"
[ "$(oe --json token show "$m2" | json 'd["rollout_state"]')" = denied ] && ok "denied" || bad "deny state"
expect 1 "approve after deny" oe ca approve "$m2"
has "$tmp/err" "token $m2 is denied, not pending" "says it is denied, not pending"
# A stored request altered in the store (a signature bit) is not signed
# on approval: it is parsed and verified again, and the token waits on.
expect 3 "a pending request to alter in the store" oe --json cert request --user altered --csr "$tmp/alice.csr" --ca manual
m4=$(json 'd["serial"]' <"$tmp/out")
python3 - "$tmp/oe.db" "$m4" <<'PY'
import base64, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
pem = db.execute("SELECT request FROM tokens WHERE serial = ?", (sys.argv[2],)).fetchone()[0]
body = "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))
der = bytearray(base64.b64decode(body)); der[-5] ^= 0x01
b64 = base64.b64encode(bytes(der)).decode()
new = "-----BEGIN CERTIFICATE REQUEST-----\n" + "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64)) \
      + "\n-----END CERTIFICATE REQUEST-----\n"
db.execute("UPDATE tokens SET request = ? WHERE serial = ?", (new, sys.argv[2])); db.commit()
PY
expect 1 "approve of an altered stored request" oe ca approve "$m4"
has "$tmp/err" "stored request does not parse" "approve names the stored request"
[ "$(oe --json token show "$m4" | json 'd["rollout_state"]')" = pending ] && ok "still pending" || bad "altered request: state changed"
expect 3 "generated key, pending" oe --json cert request --user nina --generate --ca manual
m3=$(json 'd["serial"]' <"$tmp/out")
sqlite3 "$tmp/oe.db" "SELECT hex(secret) FROM tokens WHERE serial = '$m3'" | grep -q . \
	&& ok "the pending key is kept" || bad "no kept key"
# Sealed: neither a key OpenSSL can read nor one in the clear.
sqlite3 "$tmp/oe.db" "SELECT writefile('$tmp/m3.secret', secret) FROM tokens WHERE serial = '$m3'" >/dev/null
if ! [ -s "$tmp/m3.secret" ]; then
	bad "the kept key could not be read from the store"
elif openssl pkey -inform DER -in "$tmp/m3.secret" -noout 2>/dev/null ||
	openssl pkey -in "$tmp/m3.secret" -noout 2>/dev/null || grep -aq "PRIVATE KEY" "$tmp/m3.secret"; then
	bad "the kept key is readable as it is stored"
else
	ok "the kept key is sealed, not a readable key"
fi
expect 0 "approve it" oe ca approve "$m3"
expect 0 "fetch gives the PKCS#12" oe --json cert fetch "$m3" --user nina --out "$tmp/m3.p12"
pass=$(json 'd["pkcs12_password"]' <"$tmp/out")
openssl pkcs12 -in "$tmp/m3.p12" -passin "pass:$pass" -nodes -noout 2>/dev/null && ok "it opens" || bad "m3 p12"
openssl pkcs12 -in "$tmp/m3.p12" -passin "pass:$pass" -cacerts -nokeys 2>/dev/null | grep -q "subject=CN *= *Manual CA" \
	&& ok "with the issuing CA in its chain" || bad "no CA certificate in the PKCS#12"
expect 0 "fetch again" oe --json cert fetch "$m3" --user nina
python3 -c "import json,sys; d=json.load(open('$tmp/out')); sys.exit('pkcs12_password' in d)" \
	&& ok "the PKCS#12 is handed out once" || bad "PKCS#12 twice"
key_gone "$m3" && ok "key erased after fetch" || bad "key kept (or no token '$m3')"
# --out never writes into a file that is there: fetched again into the
# same file, the certificate does not take the place of the PKCS#12,
# the key's only copy.  --force replaces a file (with a new one).
expect 1 "fetch again into the PKCS#12's file" oe --json cert fetch "$m3" --user nina --out "$tmp/m3.p12"
has "$tmp/err" "m3.p12 exists; --force replaces it" "the refusal names the file and --force"
openssl pkcs12 -in "$tmp/m3.p12" -passin "pass:$pass" -nodes -noout 2>/dev/null \
	&& ok "the PKCS#12 is still there" || bad "the PKCS#12 was written over"
cp "$tmp/m3.p12" "$tmp/m3.pem"
expect 0 "fetch again with --force" oe cert fetch "$m3" --user nina --out "$tmp/m3.pem" --force
openssl x509 -in "$tmp/m3.pem" -noout 2>/dev/null && [ "$(stat -c %a "$tmp/m3.pem")" = 644 ] \
	&& ok "--force: the certificate replaced the file (0644)" || bad "--force: $(stat -c %a "$tmp/m3.pem")"
# The new name is made durable: after the rename, the directory that
# holds it is synced (what a crash would otherwise lose is the PKCS#12
# whose key the store has let go).  Seen in the system calls.
mkdir "$tmp/outdir"
strace -f -qq -e trace=rename,renameat,renameat2,openat,fsync -o "$tmp/strace.out" \
	"$bin" -c "$conf" cert fetch "$m3" --user nina --out "$tmp/outdir/m3.pem" >/dev/null 2>&1
python3 - "$tmp/strace.out" "$tmp/outdir" <<'PY' && ok "--out syncs the directory after the rename" \
	|| bad "--out: no directory sync after the rename: $(grep -E 'rename|outdir' "$tmp/strace.out" | tail -5)"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
renamed = next((i for i, l in enumerate(lines) if re.search(r'rename.*, "[^"]*/outdir/m3\.pem"\)\s*= 0', l)), None)
if renamed is None:
    sys.exit(1)
fds = set()
for l in lines[renamed + 1:]:
    m = re.search(r'openat\(AT_FDCWD, "%s", [^)]*O_DIRECTORY[^)]*\)\s*= (\d+)' % re.escape(sys.argv[2]), l)
    if m:
        fds.add(m.group(1))
    m = re.search(r"fsync\((\d+)\)\s*= 0", l)
    if m and m.group(1) in fds:
        sys.exit(0)
sys.exit(1)
PY
ln -s "$tmp/elsewhere.p12" "$tmp/link.p12"
for force in "" --force; do
	expect 1 "--out through a symbolic link ${force:-without --force}" \
		oe cert fetch "$m3" --user nina --out "$tmp/link.p12" $force
	has "$tmp/err" "link.p12 is a symbolic link" "${force:-without --force}: says it is a link"
done
[ -e "$tmp/elsewhere.p12" ] && bad "written through the link" || ok "nothing written through the link"
rm "$tmp/link.p12"
# A request left pending leaves no file behind, nor does --out.
expect 3 "a pending request with --out" oe --json cert request --user nina --generate --ca manual --out "$tmp/pending.p12"
[ -e "$tmp/pending.p12" ] && bad "a file was left for a pending request" || ok "no file for a pending request"
if [ "$(id -u)" = 0 ]; then
	# Root naming a file of another user's that anyone may write: not
	# written into; with --force replaced by a file of root's own.
	: >"$tmp/theirs.p12"
	chown nobody "$tmp/theirs.p12"
	chmod 666 "$tmp/theirs.p12"
	before=$(tokens)
	expect 1 "--out naming another user's file" oe --json cert request --user gen2 --generate --out "$tmp/theirs.p12"
	[ ! -s "$tmp/theirs.p12" ] && [ "$(tokens)" = "$before" ] && ok "nothing written into it, nothing asked for" \
		|| bad "another user's file: $(stat -c '%U %a %s' "$tmp/theirs.p12"), tokens $(tokens) vs $before"
	expect 0 "--force" oe --json cert request --user gen2 --generate --out "$tmp/theirs.p12" --force
	pass=$(json 'd["pkcs12_password"]' <"$tmp/out")
	[ "$(stat -c '%U %a' "$tmp/theirs.p12")" = "root 600" ] \
		&& openssl pkcs12 -in "$tmp/theirs.p12" -passin "pass:$pass" -nodes -noout 2>/dev/null \
		&& ok "replaced by root's own 0600 PKCS#12" || bad "--force: $(stat -c '%U %a' "$tmp/theirs.p12")"
fi
ls -A "$tmp" | grep -q '^\.' && bad "files left behind: $(ls -A "$tmp" | grep '^\.')" || ok "no temporary files left"
# A PKCS#12 that cannot be saved (here: SERIAL.p12, its default name, is
# there already) is shown instead; with --json, inside the JSON object.
expect 3 "generated key, pending, to rescue" oe --json cert request --user rescue --generate --ca manual
m7=$(json 'd["serial"]' <"$tmp/out")
expect 0 "approve it" oe ca approve "$m7"
mkdir "$tmp/cwd"
: >"$tmp/cwd/$m7.p12"
expect 1 "fetch into a name that is taken, --json" env -C "$tmp/cwd" "$bin" -c "$conf" --json cert fetch "$m7" --user rescue
python3 - "$tmp/out" "$tmp/rescued.p12" <<'PY' && ok "the rescued PKCS#12 comes inside the JSON object" || bad "rescue: $(head -c 300 "$tmp/out")"
import base64, json, sys
d = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(base64.b64decode(d["pkcs12_b64"], validate=True))
open(sys.argv[2] + ".pass", "w").write(d["pkcs12_password"])
PY
openssl pkcs12 -in "$tmp/rescued.p12" -passin "file:$tmp/rescued.p12.pass" -nodes -noout 2>/dev/null \
	&& ok "and opens with its password" || bad "the rescued PKCS#12 does not open"
has "$tmp/err" "could not be saved" "the message says why it is shown"
# Six fetches at once (as six forked daemon clients would): the key leaves once.
expect 3 "generated key, pending, for a race" oe --json cert request --user race --generate --ca manual
m5=$(json 'd["serial"]' <"$tmp/out")
expect 0 "approve the raced one" oe ca approve "$m5"
for i in 1 2 3 4 5 6; do
	oe --json cert fetch "$m5" --user race --out "$tmp/race$i.out.p12" >"$tmp/race$i.json" 2>&1 &
done
wait
n=$(grep -l pkcs12_password "$tmp"/race?.json | wc -l)
[ "$n" -eq 1 ] && ok "six fetches at once: exactly one gets the PKCS#12" || bad "$n of six fetches got a PKCS#12"
# Revoked before it was fetched: the sealed key goes with the revocation.
expect 3 "generated key, pending again" oe --json cert request --user rita --generate --ca manual
m4=$(json 'd["serial"]' <"$tmp/out")
expect 0 "approve, not fetched" oe ca approve "$m4"
expect 0 "revoke the unfetched one" oe token revoke "$m4"
key_gone "$m4" && ok "revocation erases the sealed key" \
	|| bad "sealed key kept after revocation (or no token '$m4')"
expect 0 "fetch after revocation" oe --json cert fetch "$m4" --user rita
python3 -c "import json,sys; d=json.load(open('$tmp/out')); sys.exit('pkcs12_password' in d or d['rollout_state'] != 'revoked')" \
	&& ok "fetch gives no key for a revoked token" || bad "PKCS#12 after revocation"

# An event that cannot be written takes its change with it: request,
# approval and denial each commit together with their event or not at all.
expect 3 "a pending request before the outbox fails" oe --json cert request --user outage --csr "$tmp/alice.csr" --ca manual
m6=$(json 'd["serial"]' <"$tmp/out")
sqlite3 "$tmp/oe.db" "CREATE TRIGGER no_outbox BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
before=$(tokens)
issued=$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM local_ca_certs")
expect 1 "a request while events cannot be written" oe cert request --user outage2 --csr "$tmp/alice.csr"
has "$tmp/err" "injected failure" "the request fails on the outbox"
[ "$(tokens)" = "$before" ] && ok "no token without its token_init" || bad "a token without its event"
expect 1 "ca approve while events cannot be written" oe ca approve "$m6"
has "$tmp/err" "injected failure" "the approval fails on the outbox"
expect 1 "ca deny while events cannot be written" oe ca deny "$m6"
has "$tmp/err" "injected failure" "the denial fails on the outbox"
[ "$(oe --json token show "$m6" | json 'd["rollout_state"]')" = pending ] && ok "still pending" || bad "changed without its event"
[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM local_ca_certs")" = "$issued" ] \
	&& ok "the CA recorded nothing either" || bad "the CA issued without the token's change"
sqlite3 "$tmp/oe.db" "DROP TRIGGER no_outbox"
expect 0 "approve once events can be written" oe ca approve "$m6"

# Events in the outbox, from the same transactions.
sqlite3 "$tmp/oe.db" "SELECT payload FROM outbox WHERE event = 'token_init'" | grep "\"serial\":\"$m1\"" \
	| python3 -c 'import json,sys; d=[json.loads(l) for l in sys.stdin]; sys.exit(not (len(d) == 1 and d[0]["rollout_state"] == "pending"))' \
	&& ok "token_init of the manual request, pending, in the outbox" || bad "token_init event of $m1"
sqlite3 "$tmp/oe.db" "SELECT payload FROM outbox WHERE event = 'token_rollout_state'" | grep "$m1" | grep -q '"old_rollout_state":"pending".*"rollout_state":"enrolled"' \
	&& ok "token_rollout_state pending -> enrolled" || bad "rollout_state event"
sqlite3 "$tmp/oe.db" "SELECT payload FROM outbox WHERE event = 'token_rollout_state'" | grep "$m2" | grep -q '"rollout_state":"denied"' \
	&& ok "token_rollout_state -> denied" || bad "denied event"

# Revocation and CRLs.
expect 0 "revoke with keyCompromise" oe token revoke "$alice" --reason keyCompromise
expect 1 "revoke again" oe token revoke "$alice"
bobserial=$(oe --json token list --user bob | json 'd[0]["serial"]')
expect 2 "unknown reason" oe token revoke "$bobserial" --reason grumpy
has "$tmp/err" "reason grumpy is not an RFC 5280 reason" "says the reason is not RFC 5280's"
expect 2 "removeFromCRL does not revoke" oe token revoke "$bobserial" --reason removeFromCRL
has "$tmp/err" "delta CRL" "says it belongs in a delta CRL"
[ "$(oe --json token show "$bobserial" | json 'd["rollout_state"]')" = enrolled ] \
	&& ok "still enrolled after the refused reasons" || bad "revoked with a refused reason"
expect 0 "ca crl" oe ca crl local --out "$tmp/crl.pem"
openssl crl -in "$tmp/crl.pem" -noout -text >"$tmp/crl.txt"
has "$tmp/crl.txt" "$serial" "the CRL lists the revoked serial"
has "$tmp/crl.txt" "Key Compromise" "with its reason"
openssl crl -in "$tmp/crl.pem" -CAfile "$tmp/ca/ca.pem" -noout 2>&1 | grep -q "verify OK" && ok "CRL signature verifies" || bad "CRL verify"
# OpenSSL prints the number in hex, later 3.0 releases with "0x" before it.
crlnumber() { openssl crl "$@" -noout -crlnumber | sed -n 's/^crlNumber=\(0x\)\{0,1\}\([0-9A-Fa-f]\{1,15\}\)$/\2/p'; }
n1=$(crlnumber -in "$tmp/crl.pem")
expect 0 "ca crl --der" oe ca crl local --der --out "$tmp/crl.der"
n2=$(crlnumber -inform DER -in "$tmp/crl.der")
if [ -n "$n1" ] && [ -n "$n2" ] && [ $((16#$n2)) -gt $((16#$n1)) ]; then
	ok "CRL number grows ($n1 -> $n2)"
else
	bad "CRL number did not grow: '$n1' -> '$n2'"
fi
# --json: one object, the PEM in it or the file named.
expect 0 "ca crl --json" oe --json ca crl local
json 'd["crl_pem"]' <"$tmp/out" >"$tmp/crl-json.pem" 2>/dev/null
[ "$(json 'd["ca"], d["format"]' <"$tmp/out" 2>/dev/null)" = "local pem" ] &&
	openssl crl -in "$tmp/crl-json.pem" -noout 2>/dev/null && ok "the PEM inside a JSON object" \
	|| bad "ca crl --json: $(head -c 300 "$tmp/out")"
expect 0 "ca crl --json --der --out" oe --json ca crl local --der --out "$tmp/crl-json.der"
[ "$(json 'd["ca"], d["format"], d["file"]' <"$tmp/out" 2>/dev/null)" = "local der $tmp/crl-json.der" ] &&
	openssl crl -inform DER -in "$tmp/crl-json.der" -noout 2>/dev/null && ok "the file named in a JSON object" \
	|| bad "ca crl --json --out: $(head -c 300 "$tmp/out")"
expect 2 "ca crl --json --der without --out" oe --json ca crl local --der
sqlite3 "$tmp/oe.db" "SELECT event FROM outbox WHERE payload LIKE '%$alice%'" | grep -q token_revoke && ok "token_revoke event" || bad "revoke event"
openssl verify -crl_check -CRLfile "$tmp/crl.pem" -CAfile "$tmp/ca/ca.pem" "$tmp/alice.pem" >/dev/null 2>&1 \
	&& bad "revoked cert still verifies with the CRL" || ok "revoked cert fails verification with the CRL"
# A revocation the store cannot record leaves the CA's record as it was,
# and the token can be revoked once the store works again.
sqlite3 "$tmp/oe.db" "CREATE TRIGGER fail_revoke BEFORE UPDATE OF rollout_state ON tokens
	WHEN NEW.rollout_state = 'revoked' BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
expect 1 "revocation failing in the store" oe token revoke "$bobserial"
bobcert=$(oe --json token show "$bobserial" | json 'd["cert_serial"]')
[ "$(sqlite3 "$tmp/oe.db" "SELECT revoked FROM local_ca_certs WHERE serial = '$bobcert'")" = 0 ] \
	&& ok "the CA did not record it revoked" || bad "the CA recorded a revocation that failed"
sqlite3 "$tmp/oe.db" "DROP TRIGGER fail_revoke"
expect 0 "revoke once the store works again" oe token revoke "$bobserial"
[ "$(sqlite3 "$tmp/oe.db" "SELECT revoked > 0 FROM local_ca_certs WHERE serial = '$bobcert'")" = 1 ] \
	&& ok "now the CA has it revoked" || bad "CA record after revocation"
# Each CA's CRL lists its own revocations only.
expect 0 "ca crl of the RSA CA" oe ca crl rsa --out "$tmp/crl2.pem"
openssl crl -in "$tmp/crl2.pem" -noout -text >"$tmp/crl2.txt"
has "$tmp/crl2.txt" "$bobcert" "the RSA CA's CRL lists bob's certificate"
grep -q "$serial" "$tmp/crl2.txt" && bad "the RSA CA's CRL lists another CA's revocation" \
	|| ok "and not the other CA's"
openssl crl -in "$tmp/crl2.pem" -CAfile "$tmp/ca-rsa/ca.pem" -noout 2>&1 | grep -q "verify OK" \
	&& ok "signed by the RSA CA" || bad "RSA CRL verify"
expect 0 "ca crl of the first CA again" oe ca crl local --out "$tmp/crl3.pem"
[ "$(openssl crl -in "$tmp/crl3.pem" -noout -text | grep -c 'Serial Number:')" -eq 1 ] \
	&& ok "the first CA's CRL still lists its one revocation" || bad "first CRL entries"
# ca sync for the local CA: what its own records say.  A record revoked
# behind the token's back (restored from a backup, say) is revoked here.
charlie=$(oe --json cert request --user charlie --csr "$tmp/alice.csr" | json 'd["serial"]')
ccert=$(oe --json token show "$charlie" | json 'd["cert_serial"]')
expect 0 "ca sync local, nothing to do" oe --json ca sync local
python3 -c "import json,sys; d=json.load(open('$tmp/out')); sys.exit(not all(e['outcome'] == 'valid' for e in d) or not d)" \
	&& ok "every certificate valid" || bad "sync outcomes"
sqlite3 "$tmp/oe.db" "UPDATE local_ca_certs SET revoked = 1700000000, reason = 3 WHERE serial = '$ccert'"
expect 0 "ca sync local after the CA's record changed" oe --json ca sync local
[ "$(oe --json token show "$charlie" | json 'd["rollout_state"]')" = revoked ] \
	&& ok "the token follows its CA's record: revoked" || bad "sync did not revoke"
sqlite3 "$tmp/oe.db" "SELECT payload FROM outbox WHERE event = 'token_revoke'" | grep -q "$charlie" \
	&& ok "with its token_revoke event" || bad "no token_revoke from sync"
# A deleted certificate token's event carries its CA and subject.
expect 0 "delete a denied certificate token" oe token delete "$m2"
sqlite3 "$tmp/oe.db" "SELECT payload FROM outbox WHERE event = 'token_delete'" | grep "$m2" \
	| grep -q '"ca":"manual".*"subject":"' && ok "token_delete carries ca and subject" || bad "token_delete payload"

# Uploads.
# A certificate is public: another user's is not recorded as ursula's.
expect 1 "upload a certificate issued here to another user" oe cert upload "$tmp/bob.pem" --user ursula
has "$tmp/err" "certificate [0-9A-F]* is another user's token; it is not recorded for ursula too" \
	"says it is another user's, without naming them"
grep -q bob "$tmp/err" && bad "the message names the owner" || ok "the owner is not named"
[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'ursula'")" = 0 ] &&
	ok "and nothing is recorded for ursula" || bad "another user's certificate recorded for ursula"
openssl req -x509 -new -newkey rsa:1024 -nodes -keyout /dev/null -subj /CN=w -days 2 -out "$tmp/weak.pem" 2>/dev/null
expect 1 "upload a weak certificate" oe cert upload "$tmp/weak.pem" --user ursula
has "$tmp/err" "RSA key of 1024 bits is too weak" "says the key is too weak"
openssl req -x509 -new -newkey rsa:4096 -nodes -keyout /dev/null -subj /CN=big -days 2 -out "$tmp/big.pem" 2>/dev/null
expect 1 "upload a certificate whose key is outside key_types" oe cert upload "$tmp/big.pem" --user ursula
has "$tmp/err" "rsa4096 is not allowed here" "says the key type is not allowed"
# A self-signed P-256 certificate FILE, CN NAME, valid for a day from
# FROM days from now (OpenSSL 3.0's req starts a certificate now).
selfsigned() {
	python3 - "$1" "$2" "$3" <<'PY'
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
k = ec.generate_private_key(ec.SECP256R1())
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, sys.argv[2])])
t = datetime.datetime.utcnow() + datetime.timedelta(days=int(sys.argv[3]))
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(x509.random_serial_number()).not_valid_before(t)
     .not_valid_after(t + datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
open(sys.argv[1], "wb").write(c.public_bytes(serialization.Encoding.PEM))
PY
}
selfsigned "$tmp/old.pem" old -2000
expect 1 "upload an expired certificate" oe cert upload "$tmp/old.pem" --user ursula
has "$tmp/err" "expired" "says expired"
selfsigned "$tmp/young.pem" young 2
expect 1 "upload a certificate not valid yet" oe cert upload "$tmp/young.pem" --user ursula
has "$tmp/err" "not valid yet" "says not valid yet"
# Only an end entity's certificate that may authenticate a TLS client:
# what `openssl verify -purpose sslclient` asks of a leaf, and not a
# CA's.  req -x509 makes a CA certificate unless told otherwise.
leaf() { # FILE CN [-addext EXTENSION]...
	f=$1 cn=$2
	shift 2
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
		-subj "/CN=$cn" -days 2 -out "$f" "$@" 2>/dev/null
}
ee="basicConstraints=critical,CA:FALSE"
n_ursula=$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'ursula'")
# A basicConstraints extension whose contents do not decode.
python3 - "$tmp/badbc-up.pem" <<'PY'
import sys, datetime
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtensionOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
k = ec.generate_private_key(ec.SECP256R1())
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad-bc")])
t = datetime.datetime.utcnow() - datetime.timedelta(minutes=5)
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(x509.random_serial_number()).not_valid_before(t)
     .not_valid_after(t + datetime.timedelta(days=1))
     .add_extension(x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, b"\x04\x00"),
                    critical=True)
     .sign(k, hashes.SHA256()))
open(sys.argv[1], "wb").write(c.public_bytes(serialization.Encoding.PEM))
PY
expect 1 "upload a certificate whose basicConstraints does not decode" \
	oe cert upload "$tmp/badbc-up.pem" --user ursula
has "$tmp/err" "malformed or repeated extensions" "says its extensions are malformed"
leaf "$tmp/ca-up.pem" ca
expect 1 "upload a CA certificate" oe cert upload "$tmp/ca-up.pem" --user ursula
has "$tmp/err" "is a CA certificate (basicConstraints CA:TRUE)" "says it is a CA's"
leaf "$tmp/sign-up.pem" signer -addext $ee -addext keyUsage=critical,digitalSignature,keyCertSign
expect 1 "upload a certificate with keyCertSign" oe cert upload "$tmp/sign-up.pem" --user ursula
has "$tmp/err" "may sign certificates (Key Usage keyCertSign)" "says it may sign certificates"
leaf "$tmp/enc-up.pem" enc -addext $ee -addext keyUsage=critical,dataEncipherment
expect 1 "upload a certificate whose Key Usage cannot sign" oe cert upload "$tmp/enc-up.pem" --user ursula
has "$tmp/err" "neither digitalSignature nor keyAgreement" "names the Key Usage it lacks"
leaf "$tmp/srv-up.pem" srv -addext $ee -addext extendedKeyUsage=serverAuth
expect 1 "upload a server certificate" oe cert upload "$tmp/srv-up.pem" --user ursula
has "$tmp/err" "Extended Key Usage does not include clientAuth" "says clientAuth is missing"
[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'ursula'")" = "$n_ursula" ] &&
	ok "refused uploads leave no token" || bad "a refused upload left a token"
leaf "$tmp/plain-up.pem" plain -addext $ee
openssl verify -purpose sslclient -partial_chain -CAfile "$tmp/plain-up.pem" "$tmp/plain-up.pem" >/dev/null 2>&1 \
	&& ok "openssl takes a leaf without usage extensions for a client" || bad "openssl refused the plain leaf"
expect 0 "upload a leaf without usage extensions" oe --json cert upload "$tmp/plain-up.pem" --user ursula
[ "$(json 'd["rollout_state"]' <"$tmp/out")" = enrolled ] && ok "uploaded is enrolled" || bad "upload state"
n_ursula=$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'ursula'")
expect 1 "upload the same certificate again" oe cert upload "$tmp/plain-up.pem" --user ursula
has "$tmp/err" "ursula already has this certificate" "says it is there already"
[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'ursula'")" = "$n_ursula" ] &&
	ok "a refused second upload leaves no token" || bad "a refused second upload left a token"
expect 1 "upload ursula's certificate for another user" oe cert upload "$tmp/plain-up.pem" --user walt
has "$tmp/err" "is another user's token; it is not recorded for walt too" "says it is another user's"

# With [enroll] upload_ca_dir, an upload must chain to one of its trust
# anchors (intermediates may follow it in the file) and fit a TLS
# client; only the certificate itself is recorded.
mkdir "$tmp/upload-anchors"
cp "$tmp/anchor.pem" "$tmp/upload-anchors/"
write_conf ignore "upload_ca_dir = $tmp/upload-anchors"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
	>"$tmp/leaf.ext"
printf 'basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tmp/srv.ext"
issued() { # name signer extfile: a certificate for a new key, signed by signer
	csr "$1" "$ec" "/CN=$1"
	openssl x509 -req -in "$tmp/$1.csr" -CA "$tmp/$2.pem" -CAkey "$tmp/$2.key" -CAcreateserial \
		-days 30 -extfile "$3" -out "$tmp/$1.pem" 2>/dev/null
}
issued up-chain inter "$tmp/leaf.ext"
cat "$tmp/up-chain.pem" "$tmp/inter.pem" >"$tmp/up-chain.bundle"
expect 0 "upload_ca_dir: a certificate with its intermediate, chaining to the anchor" \
	oe --json cert upload "$tmp/up-chain.bundle" --user vera
json 'd["cert_pem"]' <"$tmp/out" 2>/dev/null >"$tmp/up-recorded.pem"
[ "$(grep -c 'BEGIN CERTIFICATE' "$tmp/up-recorded.pem")" = 1 ] &&
	[ "$(openssl x509 -in "$tmp/up-recorded.pem" -noout -fingerprint -sha256 2>/dev/null)" = \
	  "$(openssl x509 -in "$tmp/up-chain.pem" -noout -fingerprint -sha256)" ] \
	&& ok "the certificate alone is recorded, not the intermediate" \
	|| bad "recorded: $(head -c 200 "$tmp/up-recorded.pem")"
n_vera=$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'vera'")
issued up-alone inter "$tmp/leaf.ext"
expect 1 "upload_ca_dir: without the intermediate it needs" oe cert upload "$tmp/up-alone.pem" --user vera
has "$tmp/err" "uploaded certificate rejected: unable to get local issuer certificate (trust anchors: .enroll. upload_ca_dir)" \
	"says it does not chain, and to which anchors"
issued up-rogue rogue "$tmp/leaf.ext"
expect 1 "upload_ca_dir: from another CA" oe cert upload "$tmp/up-rogue.pem" --user vera
has "$tmp/err" "uploaded certificate rejected: " "says it is rejected"
issued up-srv inter "$tmp/srv.ext"
cat "$tmp/up-srv.pem" "$tmp/inter.pem" >"$tmp/up-srv.bundle"
expect 1 "upload_ca_dir: a server certificate under the anchor" oe cert upload "$tmp/up-srv.bundle" --user vera
has "$tmp/err" "rejected: unsuitable certificate purpose" "says the purpose is wrong"
expect 1 "upload_ca_dir: a self-signed certificate" oe cert upload "$tmp/plain-up.pem" --user vera
has "$tmp/err" "self-signed certificate" "says it is self-signed"
[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'vera'")" = "$n_vera" ] &&
	ok "upload_ca_dir: the refused uploads left no token" || bad "upload_ca_dir: a refused upload left a token"
write_conf ignore "upload_ca_dir = $tmp/no-such-dir"
expect 2 "upload_ca_dir that cannot be read" oe cert upload "$tmp/up-chain.bundle" --user walt
has "$tmp/err" ".enroll. upload_ca_dir $tmp/no-such-dir cannot be read" "names the key and the directory"
write_conf ignore "upload_ca_dir ="
leaf "$tmp/walt-up.pem" walt -addext $ee
expect 0 "upload_ca_dir left empty: no anchors asked, as when it is not set" \
	oe cert upload "$tmp/walt-up.pem" --user walt
write_conf ignore

# At most max_tokens_per_user (3) open certificate tokens per user.
for i in 1 2; do oe cert request --user quota --csr "$tmp/alice.csr" >/dev/null 2>&1; done
oe cert request --user quota --csr "$tmp/alice.csr" >/dev/null 2>&1
expect 1 "a fourth token is refused" oe cert request --user quota --csr "$tmp/alice.csr"
has "$tmp/err" "max_tokens_per_user" "limit named"
expect 0 "cert list --user" oe --json cert list --user quota
[ "$(json 'len(d)' <"$tmp/out")" = 3 ] && ok "three listed" || bad "cert list count"
# Ten requests at once for a user with none: the limit still holds.
# Each is signed before the limit is counted again under the write
# lock; what was signed for a refused one is recorded nowhere.
before=$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM local_ca_certs")
for i in $(seq 10); do
	oe cert request --user racer --csr "$tmp/alice.csr" >/dev/null 2>"$tmp/race$i.err" &
done
wait
n=$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM tokens WHERE owner = 'racer'")
[ "$n" = 3 ] && ok "10 parallel requests: 3 tokens" || bad "10 parallel requests left $n tokens"
[ "$(cat "$tmp"/race*.err | grep -c max_tokens_per_user)" = 7 ] && ok "7 refused by the limit" \
	|| { bad "refusals"; cat "$tmp"/race*.err; }
[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM local_ca_certs")" = $((before + 3)) ] &&
	[ "$(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM local_ca_certs WHERE token IN
		(SELECT serial FROM tokens WHERE owner = 'racer')")" = 3 ] &&
	ok "the CA records the 3 certificates issued, nothing for the refused" ||
	bad "local CA records after the race: $(sqlite3 "$tmp/oe.db" "SELECT COUNT(*) FROM local_ca_certs") (before $before)"

finish
