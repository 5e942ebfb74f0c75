#!/bin/sh
# pamtester (a real PAM application) against the built module through
# pam_wrapper: an oathtool TOTP code is accepted once, then refused.
set -eu
build=${top_builddir:?}
for t in pamtester oathtool; do
	command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
key=3132333435363738393031323334353637383930
cat >"$tmp/oe.conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
key_file = $tmp/secret.key
[otp]
window = 1
CONF
"$build/tests/pam/otp_setup" "$tmp/oe.conf" carol totp "$key"
mkdir "$tmp/svc"
echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$tmp/oe.conf" >"$tmp/svc/login"
pt() {
	LD_PRELOAD="${OE_ASAN_RUNTIME:+$OE_ASAN_RUNTIME }libpam_wrapper.so" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$tmp/svc" pamtester login carol authenticate
}
code=$(oathtool --totp "$key")
echo "$code" | pt 2>"$tmp/err" || { cat "$tmp/err"; echo "FAIL: right code refused"; exit 1; }
echo "ok: right code accepted"
if echo "$code" | pt 2>"$tmp/err"; then
	echo "FAIL: replayed code accepted"
	exit 1
fi
grep -q "Authentication failure" "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "ok: replayed code refused"
if echo 000000 | pt 2>/dev/null; then
	echo "FAIL: wrong code accepted"
	exit 1
fi
echo "ok: wrong code refused"
