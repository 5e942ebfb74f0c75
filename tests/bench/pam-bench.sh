#!/bin/bash
# pam_otpenroll against pam_oath, same machine, same run, same users:
# authentications per second and latency at 1, 1,000 and 100,000 users,
# and how many of 16 racing logins with one code each module accepts.
#   tests/bench/pam-bench.sh BUILD_DIR [MAX_SECONDS]
set -eu
build=$(cd "${1:?build dir}" && pwd)
secs=${2:-20}
src=$(cd "$(dirname "$0")/../.." && pwd)
drv="$build/tests/bench/pam_bench"
# shellcheck source=scripts/deps.sh
. "$src/scripts/deps.sh"
moddir=$(oe_pam_moddir "$build") || exit 1
oath=$moddir/pam_oath.so
[ -x "$drv" ] || make -C "$build" tests/bench/pam_bench >/dev/null
[ -f "$oath" ] || { echo "pam_oath missing: apt-get install libpam-oath"; exit 1; }
# A real disk, so durable commits cost what they cost.
work=$(mktemp -d "$src/build-bench.XXXXXX")
daemon=
trap '[ -n "$daemon" ] && kill "$daemon" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/svc"
tck=$(getconf CLK_TCK)
# daemon_cpu PID: CPU ticks (user + system) of PID and of its children.
daemon_cpu() {
	# cat, not awk, opens the files: a process may end meanwhile.
	cat /proc/[0-9]*/stat 2>/dev/null |
		awk -v p="$1" '$1 == p { l += $14 + $15 } $4 == p { c += $14 + $15 } END { print l + 0, c + 0 }'
}
pw() { LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/svc" "$@"; }
echo "filesystem: $(df -T "$work" | awk 'NR==2 {print $2}'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
printf '%-14s %7s %6s %6s %10s %8s %8s %8s\n' module users auths ok "auths/s" "p50 ms" "p99 ms" "max ms"
for n in ${OE_BENCH_USERS:-1 1000 100000}; do
	d="$work/$n"
	mkdir "$d"
	"$drv" usersfile "$n" >"$d/users.oath"
	chmod 600 "$d/users.oath"
	# pam_otpenroll alone, and with otpenrolld answering for it: two
	# stores from the same file, since each run spends codes.
	for m in oe oed; do
		printf '[store]\nurl = sqlite:%s/%s.db\nkey_file = %s/secret.key\nbackend_dir = %s\n[otp]\nwindow = 3\nmax_fail = 1000\n' \
			"$d" $m "$d" "$build/lib/store/.libs" >"$d/$m.conf"
		[ $m = oed ] && printf '[daemon]\nsocket = %s/oed.sock\n' "$d" >>"$d/$m.conf"
		"$build/tools/otpenroll" -c "$d/$m.conf" init >/dev/null
		"$build/tools/otpenroll" -c "$d/$m.conf" token import "$d/users.oath" >/dev/null 2>&1
		echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$d/$m.conf" >"$work/svc/$m$n"
	done
	"$build/tools/otpenrolld" -c "$d/oed.conf" >/dev/null 2>&1 &
	daemon=$!
	for _ in $(seq 100); do [ -S "$d/oed.sock" ] && break; sleep 0.05; done
	echo "auth required $oath usersfile=$d/users.oath window=3" >"$work/svc/oath$n"
	for m in oe oed oath; do
		[ $m = oed ] && cpu0=$(daemon_cpu "$daemon")
		read -r done ok rate p50 p99 max < <(pw "$drv" auth "$m$n" "$n" 2000 "$secs" 2>/dev/null || true)
		[ $m = oed ] && cpu1=$(daemon_cpu "$daemon")
		name=pam_otpenroll
		[ $m = oed ] && name=+otpenrolld
		[ $m = oath ] && name=pam_oath
		printf '%-14s %7s %6s %6s %10s %8s %8s %8s\n' $name "$n" "$done" "$ok" "$rate" "$p50" "$p99" "$max"
		eval "rate_${m}_$n=$rate"
	done
	# What the daemon spent on those logins: its listener answers them;
	# its children (outbox dispatcher, CA poller) should cost little.
	read -r l0 c0 <<<"$cpu0"
	read -r l1 c1 <<<"$cpu1"
	printf '%-14s %7s otpenrolld CPU during its run: listener %.2f s, dispatcher and poller %.2f s\n' \
		'' "$n" "$(echo "($l1 - $l0) / $tck" | bc -l)" "$(echo "($c1 - $c0) / $tck" | bc -l)"
	kill "$daemon"
	wait "$daemon" 2>/dev/null || true
	daemon=
	python3 -c "print('%-14s %7s ratio to pam_oath: pam_otpenroll %.1fx, with otpenrolld %.1fx' % ('', '$n', $(eval echo \$rate_oe_$n) / $(eval echo \$rate_oath_$n), $(eval echo \$rate_oed_$n) / $(eval echo \$rate_oath_$n)))"
done
# A fresh user for the race: the runs above moved every counter.
mkdir "$work/race"
"$drv" usersfile 1 >"$work/race/users.oath"
chmod 600 "$work/race/users.oath"
cp "$work/race/users.oath" "$work/race/oath.users"
printf '[store]\nurl = sqlite:%s/oe.db\nkey_file = %s/secret.key\nbackend_dir = %s\n[otp]\nwindow = 3\nmax_fail = 1000\n' "$work/race" "$work/race" "$build/lib/store/.libs" >"$work/race/oe.conf"
"$build/tools/otpenroll" -c "$work/race/oe.conf" init >/dev/null
"$build/tools/otpenroll" -c "$work/race/oe.conf" token import "$work/race/users.oath" >/dev/null 2>&1
echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$work/race/oe.conf" >"$work/svc/oerace"
sed "s|oe.db|oed.db|" "$work/race/oe.conf" >"$work/race/oed.conf"
printf '[daemon]\nsocket = %s/oed.sock\n' "$work/race" >>"$work/race/oed.conf"
"$build/tools/otpenroll" -c "$work/race/oed.conf" init >/dev/null
"$build/tools/otpenroll" -c "$work/race/oed.conf" token import "$work/race/users.oath" >/dev/null 2>&1
echo "auth required $build/pam_module/.libs/pam_otpenroll.so config=$work/race/oed.conf" >"$work/svc/oedrace"
"$build/tools/otpenrolld" -c "$work/race/oed.conf" >/dev/null 2>&1 &
daemon=$!
for _ in $(seq 100); do [ -S "$work/race/oed.sock" ] && break; sleep 0.05; done
echo "auth required $oath usersfile=$work/race/oath.users window=3" >"$work/svc/oathrace"
echo
echo "16 logins racing with one valid code, 20 rounds (rounds with exactly one success, total successes, most in a round):"
for m in oe oed oath; do
	read -r rounds one total most < <(pw "$drv" race "${m}race" 20 16 2>/dev/null)
	name=pam_otpenroll
	[ $m = oed ] && name=+otpenrolld
	[ $m = oath ] && name=pam_oath
	printf '%-14s %s/%s rounds exactly one; %s successes in all; at most %s in one round\n' \
		$name "$one" "$rounds" "$total" "$most"
done
kill "$daemon"
wait "$daemon" 2>/dev/null || true
daemon=
