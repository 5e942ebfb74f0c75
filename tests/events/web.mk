# The webhook, script and log handlers end to end: a loopback HTTP(S)
# server, programs run without a shell, syslog lines on a private /dev/log.
TESTS += tests/events/webhook.sh tests/events/script.sh tests/events/log.sh
EXTRA_DIST += tests/events/webhook.sh tests/events/http_server.py tests/events/script.sh \
	tests/events/log.sh
