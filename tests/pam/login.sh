# shellcheck shell=sh
# Sourced by the pamtester tests (pamtester.sh, loadset.sh, fulldisk.sh)
# after `set -eu`: their tools or a SKIP, a temporary directory removed
# at exit (and otpenrolld stopped), a store's configuration, the PAM
# service "login" running the built module, pamtester through
# pam_wrapper, and otpenrolld on a socket.
build=${top_builddir:?}
for t in pamtester oathtool python3; do
	command -v $t >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
# shellcheck source=tests/pam/wrapper-lock.sh
. "${top_srcdir:?}/tests/pam/wrapper-lock.sh"
tmp=$(mktemp -d)
mkdir "$tmp/svc"
oed=
# A command of the test's own to run at exit, before $tmp goes.
on_exit=:
cleanup() {
	if [ -n "$oed" ]; then kill "$oed" 2>/dev/null || true; wait "$oed" 2>/dev/null || true; fi
	eval "$on_exit"
	rm -rf "$tmp"
}
trap cleanup EXIT

# store_conf FILE DIR WINDOW: a configuration of the store in DIR (its
# key in $tmp) accepting WINDOW codes ahead.
store_conf() {
	cat >"$1" <<CONF
[store]
url = sqlite:$2/oe.db
backend_dir = $build/lib/store/.libs
key_file = $tmp/secret.key
[otp]
window = $3
CONF
}

# service CONF: the service "login" is the built module with CONF.
service() {
	echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$1" >"$tmp/svc/login"
}

# pt USER [VAR=VALUE...]: pamtester authenticates USER in "login"
# through pam_wrapper, the code on stdin, VARs in its environment.
pt() {
	user=$1
	shift
	env "$@" LD_PRELOAD="${OE_ASAN_RUNTIME:+$OE_ASAN_RUNTIME }libpam_wrapper.so" PAM_WRAPPER=1 \
		PAM_WRAPPER_SERVICE_DIR="$tmp/svc" pamtester login "$user" authenticate
}

# start_oed CONF: otpenrolld serving CONF's store on $tmp/oed.sock; its
# configuration is $tmp/oed.conf, its stderr $tmp/oed.err, its pid $oed.
start_oed() {
	printf '[daemon]\nsocket = %s/oed.sock\n' "$tmp" | cat "$1" - >"$tmp/oed.conf"
	"$build/tools/otpenrolld" -c "$tmp/oed.conf" 2>"$tmp/oed.err" &
	oed=$!
	for _ in $(seq 100); do [ -S "$tmp/oed.sock" ] && return 0; sleep 0.05; done
	cat "$tmp/oed.err"
	echo "FAIL: otpenrolld did not start"
	exit 1
}
