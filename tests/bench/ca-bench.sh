#!/bin/bash
# Enrolment through the remote CA connectors against their loopback
# peers, each with its connection kept (keep_alive = yes: one libcurl
# handle, keep-alive, TLS session) and with a fresh connection per
# request (keep_alive = no), in one run:
#   cmp:        OpenSSL's own CMP server (openssl cmp -port), PBM, p10cr
#   ejbca-rest: tests/ca/ejbca_peer.py over TLS 1.3 with a client
#               certificate (mTLS), pkcs10enroll answered 201
# Every request goes through the library (cert_bench): CSR checks, the
# CA exchange, one durable store transaction with its token_init event.
#   tests/bench/ca-bench.sh BUILD_DIR [COUNT] [MAX_SECONDS]
set -eu
build=$(cd "${1:?build dir}" && pwd)
count=${2:-300}
secs=${3:-30}
src=$(cd "$(dirname "$0")/../.." && pwd)
drv="$build/tests/bench/cert_bench"
[ -x "$drv" ] || make -C "$build" tests/bench/cert_bench >/dev/null
work=$(mktemp -d "$src/build-bench.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(openssl version), $(curl --version | head -1 | cut -d' ' -f1-2), Python $(/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])')"

# The PKI: a CMP CA, TLS and admin CAs, the EJBCA peer's issuing CA.
/usr/bin/python3 - "$work" "$src/tests/ca" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import pki
d = sys.argv[1]
tls = pki.make(d, "tls-ca", "TLS CA", ca=True)
pki.make(d, "server", "localhost", issuer=tls, server=True, client=False)
clients = pki.make(d, "clients", "Admin CA", ca=True)
admin = pki.make(d, "admin", "otpenroll RA", issuer=clients)
pki.pkcs12(d, "admin", admin, "p12-pass")
pki.secret_file(d, "p12.pass", "p12-pass")
pki.make(d, "issuing", "ManagementCA", ca=True)
pki.make(d, "cmpca", "CMP CA", ca=True)
pki.secret_file(d, "cmp.secret", "bench-s3cret")
PY
# CMP: OpenSSL's server answers with one certificate, so every request
# is for its key; each asks for its user's subject (CN=u<i>, the [ca]
# template's), as a CSR passed on to a CA must.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/u.key" \
	-subj /CN=bench -out "$work/u.csr" 2>/dev/null
printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$work/u.ext"
openssl x509 -req -in "$work/u.csr" -CA "$work/cmpca.pem" -CAkey "$work/cmpca.key" \
	-CAcreateserial -days 30 -extfile "$work/u.ext" -out "$work/u.pem" 2>/dev/null
mkdir -p "$work/cmp-csr" "$work/ejbca-csr"
for i in $(seq 0 $((count - 1))); do
	openssl req -new -key "$work/u.key" -subj "/CN=u$i" -out "$work/cmp-csr/$i.csr"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
		-subj "/CN=u$i" -out "$work/ejbca-csr/$i.csr" 2>/dev/null
done

cmp_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
openssl cmp -config "" -port "$cmp_port" -srv_secret pass:bench-s3cret -srv_ref srv \
	-rsp_cert "$work/u.pem" >"$work/cmp-server.log" 2>&1 &
pids+=($!)
/usr/bin/python3 "$src/tests/ca/ejbca_peer.py" --port-file "$work/ejbca.port" --log "$work/ejbca.log" \
	--cert "$work/server.pem" --key "$work/server.key" --client-ca "$work/clients.pem" \
	--admin-cert "$work/admin.pem" --ca-cert "$work/issuing.pem" --ca-key "$work/issuing.key" \
	2>"$work/ejbca.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/ejbca.port" ] && break; sleep 0.1; done
sleep 0.5

conf() { # ca keep_alive round
	local d="$work/$1-$2-$3"
	mkdir -p "$d"
	cat >"$d/oe.conf" <<CONF
[store]
url = sqlite:$d/oe.db
backend_dir = $build/lib/store/.libs
key_file = $d/secret.key
[enroll]
default_ca = $1
connector_dir = $build/lib/ca/.libs
[ca cmp]
type = cmp
url = http://127.0.0.1:$cmp_port/pkix/
secret_file = $work/cmp.secret
reference = otpenroll
recipient = /CN=CMP CA/O=Test
command = p10cr
keep_alive = $2
[ca ejbca]
type = ejbca-rest
url = https://127.0.0.1:$(cat "$work/ejbca.port")/ejbca/ejbca-rest-api/v1
ca_file = $work/tls-ca.pem
client_pkcs12 = $work/admin.p12
client_pkcs12_password_file = $work/p12.pass
tls_min_version = 1.3
keep_alive = $2
CONF
	"$build/tools/otpenroll" -c "$d/oe.conf" init >/dev/null
	echo "$d/oe.conf"
}

printf '%-12s %-22s %6s %6s %8s %8s %8s\n' connector connection requests ok "req/s" "p50 ms" "p99 ms"
for round in 1 2; do
	for ca in cmp ejbca; do
		for ka in yes no; do
			c=$(conf "$ca" "$ka" "$round")
			read -r done ok rate p50 p99 < <("$drv" "$c" "$work/$ca-csr" "$count" "$secs" || true)
			label=$([ "$ka" = yes ] && echo "kept (keep-alive)" || echo "fresh per request")
			printf '%-12s %-22s %6s %6s %8s %8s %8s\n' "$ca" "$label" "$done" "$ok" "$rate" "$p50" "$p99"
		done
	done
done
conns=$(/usr/bin/python3 -c 'import json,sys; print(len({json.loads(l)["peer"] for l in open(sys.argv[1])}))' "$work/ejbca.log")
echo "ejbca peer: $(wc -l <"$work/ejbca.log") requests over $conns connections in all"
