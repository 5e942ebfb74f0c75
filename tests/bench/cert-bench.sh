#!/bin/bash
# Certificates issued by the in-process local CA against `openssl ca`
# run once per request with an index.txt of 10,000 entries (the way a
# local CA that shells out to openssl signs), same CSRs, same run.
# Each is measured with one requester at a time, then with WORKERS at
# once (default: one per core).  Ours are processes with a store
# connection each, as otpenrolld's sessions are; `openssl ca` is "a
# single user command: no locking is done" (its manual), so its
# requesters take turns under flock(1), as any safe wrapper must.
#   tests/bench/cert-bench.sh BUILD_DIR [COUNT] [MAX_SECONDS] [WORKERS]
set -eu
build=$(cd "${1:?build dir}" && pwd)
count=${2:-500}
secs=${3:-20}
workers=${4:-$(nproc)}
src=$(cd "$(dirname "$0")/../.." && pwd)
drv="$build/tests/bench/cert_bench"
[ -x "$drv" ] || make -C "$build" tests/bench/cert_bench >/dev/null
work=$(mktemp -d "$src/build-bench.XXXXXX")
trap '[ -n "${holder:-}" ] && kill "$holder" 2>/dev/null; rm -rf "$work"' EXIT
echo "filesystem: $(df -T "$work" | awk 'NR==2 {print $2}'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(openssl version)"
printf '%-22s %6s %6s %9s %8s %8s\n' signer certs ok "certs/s" "p50 ms" "p99 ms"
for kt in ec rsa; do
	d="$work/$kt"
	mkdir -p "$d/csr"
	if [ $kt = ec ]; then spec="ec -pkeyopt ec_paramgen_curve:P-256"; ku=digitalSignature; cakey="ec -pkeyopt ec_paramgen_curve:P-256"; kname=ec256
	else spec="rsa:2048"; ku="digitalSignature,keyEncipherment"; cakey="rsa:3072"; kname=rsa3072; fi
	# The CSRs, made before anything is timed.
	for i in $(seq 0 $((count - 1))); do
		# shellcheck disable=SC2086
		openssl req -new -newkey $spec -nodes -keyout /dev/null -subj "/CN=u$i" \
			-out "$d/csr/$i.csr" 2>/dev/null
	done
	# Ours.
	cat >"$d/oe.conf" <<CONF
[store]
url = sqlite:$d/oe.db
backend_dir = $build/lib/store/.libs
key_file = $d/secret.key
[enroll]
max_tokens_per_user = 5
[ca local]
type = local
dir = $d/ca
subject = CN={user}
CONF
	"$build/tools/otpenroll" -c "$d/oe.conf" init >/dev/null
	"$build/tools/otpenroll" -c "$d/oe.conf" ca init local --subject "CN=Bench CA" --key-type $kname >/dev/null
	# A store in service has a connection open all along (otpenrolld's
	# listener), so its WAL file lives on between uses and commits
	# overwrite blocks it already has; one held here, and an untimed
	# first pass, measure that state rather than a new WAL growing.
	python3 -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1]); c.execute("SELECT 1 FROM tokens LIMIT 1").fetchall(); time.sleep(3600)' \
		"$d/oe.db" &
	holder=$!
	"$drv" "$d/oe.conf" "$d/csr" "$count" "$secs" >/dev/null
	read -r done ok rate p50 p99 < <("$drv" "$d/oe.conf" "$d/csr" "$count" "$secs" || true)
	printf '%-22s %6s %6s %9s %8s %8s\n' "otpenroll local ($kt)" "$done" "$ok" "$rate" "$p50" "$p99"
	ours=$rate
	read -r done ok rate p50 p99 < <("$drv" "$d/oe.conf" "$d/csr" "$count" "$secs" "$workers" || true)
	printf '%-22s %6s %6s %9s %8s %8s\n' "  $workers at once" "$done" "$ok" "$rate" "$p50" "$p99"
	ours_n=$rate
	kill "$holder"
	wait "$holder" 2>/dev/null || true
	bad=0
	for pem in "$d"/csr/*.pem; do
		openssl verify -purpose sslclient -CAfile "$d/ca/ca.pem" "$pem" >/dev/null 2>&1 || bad=$((bad + 1))
	done
	echo "                       sample of $(ls "$d"/csr/*.pem | wc -l) verified with openssl, $bad failed"
	# openssl ca, once per request, index.txt of 10,000 entries.
	o="$d/openssl"
	mkdir -p "$o/newcerts"
	# shellcheck disable=SC2086
	openssl req -x509 -new -newkey $cakey -nodes -keyout "$o/ca.key" -subj "/CN=Bench CA" -days 30 \
		-out "$o/ca.pem" 2>/dev/null
	python3 - "$o/index.txt" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(10000):
        f.write("V\t271231235959Z\t\t%040X\tunknown\t/CN=old%d\n" % (i + 1, i))
PY
	printf '%040X\n' 10001 >"$o/serial"
	echo "unique_subject = no" >"$o/index.txt.attr"
	cat >"$o/ca.cnf" <<CNF
[ca]
default_ca = bench
[bench]
dir = $o
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
certificate = \$dir/ca.pem
private_key = \$dir/ca.key
default_md = sha256
default_days = 365
policy = anything
x509_extensions = client
unique_subject = no
[anything]
commonName = supplied
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,$ku
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF
	PYTHONPATH="$src/tests/bench" python3 - "$o" "$d/csr" "$count" "$secs" "$workers" <<'PY'
import subprocess, sys, threading, time
from timed import in_threads, row
o, csrs, count, secs, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
for n in (1, workers):
    lat, ok, t0, lock = [], [0], time.monotonic(), threading.Lock()
    def run(w):
        for i in range(w, count, n):
            if time.monotonic() - t0 > secs:
                break
            cmd = ["openssl", "ca", "-config", o + "/ca.cnf", "-batch", "-notext",
                   "-in", "%s/%d.csr" % (csrs, i), "-out", "%s/%d.pem" % (o, i)]
            s = time.monotonic()
            r = subprocess.run((["flock", o + "/lock"] if n > 1 else []) + cmd, capture_output=True)
            with lock:
                lat.append((time.monotonic() - s) * 1000)
                ok[0] += r.returncode == 0
    t = in_threads(n, run)
    row("openssl ca (" + o.split("/")[-2] + ")" if n == 1 else "  %d at once, flock" % n,
        lat, ok[0], t)
    open("%s/rate%d" % (o, n), "w").write("%.3f" % (len(lat) / t))
PY
	python3 -c "print('%-22s ratio otpenroll/openssl ca: %.1fx one at a time, %.1fx $workers at once' % ('', $ours / $(cat "$o/rate1"), $ours_n / $(cat "$o/rate$workers")))"
done

# The daemon round trip for one CSR request: connect, send, the daemon's
# child opens the store, issues, replies (root caller: no OTP prompt).
d="$work/daemon"
mkdir -p "$d/csr"
for i in $(seq 0 199); do
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
		-subj "/CN=d$i" -out "$d/csr/$i.csr" 2>/dev/null
done
cat >"$d/oe.conf" <<CONF
[store]
url = sqlite:$d/oe.db
backend_dir = $build/lib/store/.libs
key_file = $d/secret.key
[enroll]
max_tokens_per_user = 1000
[ca local]
type = local
dir = $d/ca
[daemon]
socket = $d/otpenroll.sock
CONF
"$build/tools/otpenroll" -c "$d/oe.conf" init >/dev/null
"$build/tools/otpenroll" -c "$d/oe.conf" ca init local --subject "CN=Bench CA" >/dev/null
"$build/tools/otpenrolld" -c "$d/oe.conf" 2>/dev/null &
daemon=$!
for _ in $(seq 100); do [ -S "$d/otpenroll.sock" ] && break; sleep 0.05; done
# Then with WORKERS clients at once, each request its own connection:
# what the daemon delivers when its sessions run side by side.
PYTHONPATH="$src/tests/bench" python3 - "$d" "$workers" <<'PY'
import base64, sys, threading, time
from daemon_client import call
from timed import in_threads, row
d, workers = sys.argv[1], int(sys.argv[2])
csrs = [base64.b64encode(open("%s/csr/%d.csr" % (d, i), "rb").read()).decode() for i in range(200)]
for n in (1, workers):
    lat, ok, lock = [], [0], threading.Lock()
    def client(w):
        for i in range(w, 200, n):
            t = time.monotonic()
            r = call(d + "/otpenroll.sock", {"v": 1, "op": "cert_request", "csr_b64": csrs[i]})
            with lock:
                lat.append((time.monotonic() - t) * 1000)
                ok[0] += r.get("status") == "ok" and r["cert"]["rollout_state"] == "enrolled"
    t = in_threads(n, client)
    row("otpenrolld round trip" if n == 1 else "  %d clients at once" % n, lat, ok[0], t)
PY
kill "$daemon"
wait "$daemon" 2>/dev/null || true
