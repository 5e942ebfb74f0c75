#!/bin/sh
# pamtester (a real PAM application) against the built module through
# pam_wrapper: an oathtool TOTP code is accepted once, then refused.
set -eu
# shellcheck source=tests/pam/login.sh
. "${top_srcdir:?}/tests/pam/login.sh"
key=3132333435363738393031323334353637383930
store_conf "$tmp/oe.conf" "$tmp" 1
"$build/tests/pam/otp_setup" "$tmp/oe.conf" carol totp "$key"
service "$tmp/oe.conf"
code=$(oathtool --totp "$key")
echo "$code" | pt carol 2>"$tmp/err" || { cat "$tmp/err"; echo "FAIL: right code refused"; exit 1; }
echo "ok: right code accepted"
if echo "$code" | pt carol 2>"$tmp/err"; then
	echo "FAIL: replayed code accepted"
	exit 1
fi
grep -q "Authentication failure" "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "ok: replayed code refused"
if echo 000000 | pt carol 2>/dev/null; then
	echo "FAIL: wrong code accepted"
	exit 1
fi
echo "ok: wrong code refused"

# An 8-digit TOTP with a 60 s step and HMAC-SHA256 (RFC 6238), enrolled
# with the command line, codes from oathtool.
key256=3132333435363738393031323334353637383930313233343536373839303132
printf '%s\n' "$key256" >"$tmp/k256"
chmod 600 "$tmp/k256"
"$build/tools/otpenroll" -c "$tmp/oe.conf" token add-otp --user carol --type totp --digits 8 \
	--period 60 --algorithm SHA256 --secret-file "$tmp/k256" >"$tmp/add" 2>&1 \
	|| { cat "$tmp/add"; echo "FAIL: add-otp SHA256"; exit 1; }
grep -q "algorithm=SHA256&digits=8&period=60" "$tmp/add" || { cat "$tmp/add"; echo "FAIL: URI"; exit 1; }
echo "ok: the otpauth URI says SHA256, 8 digits, 60 s"
# The SHA1 code of the same key and step first: refused for what it
# is, not as a replay of a step already used.
sha1=$(oathtool --totp -d 8 -s 60 "$key256")
if echo "$sha1" | pt carol 2>/dev/null; then
	echo "FAIL: a SHA1 code accepted for a SHA256 token"
	exit 1
fi
echo "ok: the SHA1 code of the same key is refused"
code=$(oathtool --totp=sha256 -d 8 -s 60 "$key256")
echo "$code" | pt carol 2>"$tmp/err" || { cat "$tmp/err"; echo "FAIL: SHA256 code refused"; exit 1; }
echo "ok: an oathtool SHA256 8-digit 60 s code is accepted"
if echo "$code" | pt carol 2>/dev/null; then
	echo "FAIL: replayed SHA256 code accepted"
	exit 1
fi
echo "ok: and refused when replayed"
