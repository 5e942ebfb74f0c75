#!/bin/bash
# The systemd unit as systemd itself reads it (`systemd-analyze verify`:
# every directive and value, that ExecStart is an executable, that the
# man pages under Documentation= exist), and the daemon's half of
# Type=notify: READY=1 only once its socket accepts, STOPPING=1 on
# SIGTERM, on a path socket and on an abstract one as systemd uses.
set -eu
build=${top_builddir:?}
src=${top_srcdir:?}
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
tmp=$(mktemp -d)
oed=
sink=
cleanup() {
	for p in $oed $sink; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

if command -v systemd-analyze >/dev/null && command -v man >/dev/null; then
	mkdir -p "$tmp/man/man1" "$tmp/man/man8"
	cp "$src/doc/otpenroll.1" "$tmp/man/man1/"
	cp "$src/doc/otpenrolld.8" "$tmp/man/man8/"
	# The unit as built for installing, its daemon the one just built:
	# systemd checks that ExecStart names an executable file.
	sed "s|^ExecStart=[^ ]*|ExecStart=$build/tools/otpenrolld|" \
		"$build/etc/systemd/otpenrolld.service" >"$tmp/otpenrolld.service"
	MANPATH=$tmp/man systemd-analyze verify "$tmp/otpenrolld.service" >"$tmp/verify" 2>&1 ||
		{ cat "$tmp/verify"; fail "systemd-analyze verify refuses the unit"; }
	[ -s "$tmp/verify" ] && { cat "$tmp/verify"; fail "systemd-analyze verify warns about the unit"; }
	echo "ok   systemd-analyze verify: the unit is clean"
	# The same check sees a mistake, so the line above can fail.
	mkdir "$tmp/bad"
	sed 's/^KillMode=mixed/KillMode=gently/' "$tmp/otpenrolld.service" >"$tmp/bad/otpenrolld.service"
	MANPATH=$tmp/man systemd-analyze verify "$tmp/bad/otpenrolld.service" >"$tmp/verify" 2>&1 || true
	grep -q "gently" "$tmp/verify" || { cat "$tmp/verify"; fail "a bad KillMode went unnoticed"; }
	echo "ok   systemd-analyze verify: a bad value is reported"
else
	echo "skip systemd-analyze verify: systemd-analyze or man missing"
fi

# A store for the daemon.
cat >"$tmp/oe.conf" <<CONF
[store]
url = sqlite:$tmp/oe.db
backend_dir = $build/lib/store/.libs
key_file = $tmp/secret.key
[daemon]
socket = $tmp/oed.sock
CONF
"$build/tools/otpenroll" -c "$tmp/oe.conf" init >/dev/null

# notify_run ADDRESS: otpenrolld with NOTIFY_SOCKET=ADDRESS, a datagram
# sink at that address writing what it receives to $tmp/notified.
notify_run() {
	local addr=$1 line
	rm -f "$tmp/notified" "$tmp/oed.sock"
	python3 - "$addr" "$tmp/notified" <<'PY' &
import socket, sys
addr, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + addr[1:] if addr.startswith("@") else addr)
s.settimeout(30)  # a daemon that never says STOPPING=1 fails the test, not hangs it
open(out + ".bound", "w").close()
with open(out, "w") as f:
    while True:
        try:
            m = s.recv(4096).decode()
        except socket.timeout:
            break
        # What the socket looked like when the message arrived.
        sock = out.rsplit("/", 1)[0] + "/oed.sock"
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(sock)
            c.close()
            state = "accepting"
        except OSError:
            state = "not accepting"
        f.write("%s %s\n" % (m.replace("\n", " ").strip(), state))
        f.flush()
        if "STOPPING=1" in m:
            break
PY
	sink=$!
	for _ in $(seq 100); do [ -e "$tmp/notified.bound" ] && break; sleep 0.05; done
	[ -e "$tmp/notified.bound" ] || fail "the notify sink did not start"
	rm -f "$tmp/notified.bound"
	NOTIFY_SOCKET=$addr "$build/tools/otpenrolld" -c "$tmp/oe.conf" 2>"$tmp/oed.err" &
	oed=$!
	for _ in $(seq 100); do grep -q READY=1 "$tmp/notified" 2>/dev/null && break; sleep 0.05; done
	line=$(grep READY=1 "$tmp/notified" || true)
	[ "$line" = "READY=1 accepting" ] || { cat "$tmp/oed.err"; fail "$addr: READY=1 before the socket accepts, or never: '$line'"; }
	echo "ok   $addr: READY=1 once the socket accepts"
	kill -TERM "$oed"
	wait "$oed" || fail "$addr: otpenrolld exited $? on SIGTERM"
	oed=
	wait "$sink" || true
	sink=
	grep -q "^STOPPING=1" "$tmp/notified" || { cat "$tmp/notified"; fail "$addr: no STOPPING=1"; }
	echo "ok   $addr: STOPPING=1 on SIGTERM, exit 0"
}
notify_run "$tmp/notify"
notify_run "@otpenroll-test-$$"

# Not a path nor an abstract name: ignored, the daemon serves anyway.
rm -f "$tmp/oed.sock"
NOTIFY_SOCKET=relative/notify "$build/tools/otpenrolld" -c "$tmp/oe.conf" 2>"$tmp/oed.err" &
oed=$!
for _ in $(seq 100); do [ -S "$tmp/oed.sock" ] && break; sleep 0.05; done
[ -S "$tmp/oed.sock" ] || { cat "$tmp/oed.err"; fail "a relative NOTIFY_SOCKET stopped the daemon"; }
echo "ok   a relative NOTIFY_SOCKET is ignored"
