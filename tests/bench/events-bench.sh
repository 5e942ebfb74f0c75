#!/bin/bash
# Notifications against postfix's smtp-sink on loopback (a fast C server,
# so the client's cost shows), in one run:
#  1. state change -> mail accepted, with otpenrolld running;
#  2. 1,000 queued notifications: otpenroll's dispatcher (one SMTP
#     session per pass, PIPELINING) against one connection per mail
#     (Python's smtplib, the way privacyIDEA sends);
#  3. `cert request` through the daemon while the SMTP server is up,
#     down (connection refused) and hanging (accepts, never answers).
#   tests/bench/events-bench.sh BUILD_DIR [MAILS] [LATENCY_SAMPLES] [REQUESTS]
set -eu
build=$(cd "${1:?build dir}" && pwd)
src=$(cd "$(dirname "$0")/../.." && pwd)
command -v smtp-sink >/dev/null || { echo "smtp-sink missing: apt-get install postfix"; exit 1; }
work=$(mktemp -d "$src/build-bench.XXXXXX")
chmod 755 "$work"
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$work"' EXIT
echo "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(smtp-sink 2>&1 | head -0)postfix $(dpkg-query -W -f='${Version}' postfix 2>/dev/null)"
PYTHONPATH="$src/tests/bench" python3 "$src/tests/bench/events_bench.py" "$build" "$work" \
	"${2:-1000}" "${3:-50}" "${4:-200}"
