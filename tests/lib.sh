# shellcheck shell=bash
# Helpers shared by the shell tests: sourced after $tmp, $bin and $conf
# are set.  Each check prints "ok" or "FAIL"; the script ends with
# `finish`, which prints the count and sets the exit status.
fails=0
# A check at the end of a pipeline (rule text piped into a helper) runs
# in this shell, so that its failures are counted.
shopt -s lastpipe
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
# otpenroll with the test's configuration.
oe() { "$bin" -c "$conf" "$@"; }
# expect EXIT DESCRIPTION COMMAND...: run it, output in $tmp/out, $tmp/err.
expect() {
	local want=$1 what=$2 got
	shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"
	got=$?
	if [ "$got" -eq "$want" ]; then ok "$what (exit $got)"; else
		bad "$what: exit $got, wanted $want"; cat "$tmp/out" "$tmp/err"; fi
}
# has FILE PATTERN DESCRIPTION
has() { grep -q -- "$2" "$1" && ok "$3" || { bad "$3"; cat "$1"; }; }
# json EXPR: evaluate EXPR over the JSON document on stdin, as d.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
finish() {
	echo "$fails failed"
	[ "$fails" -eq 0 ]
}
