# libFuzzer targets for every parser; built with clang and run for a
# bounded time by tests/fuzz/run-fuzz.sh, which scripts/check calls.
EXTRA_DIST += tests/fuzz/run-fuzz.sh tests/fuzz/fuzz_cfg.c tests/fuzz/fuzz_usersfile.c \
	tests/fuzz/fuzz_csr.c tests/fuzz/fuzz_proto.c tests/fuzz/fuzz_rules.c \
	tests/fuzz/corpus/fuzz_rules/notify.conf tests/fuzz/corpus/fuzz_rules/regex-repeats \
	tests/fuzz/corpus/fuzz_rules/regex-nullable-repeat \
	tests/fuzz/corpus/fuzz_cfg/example.conf tests/fuzz/corpus/fuzz_cfg/ca.conf \
	tests/fuzz/corpus/fuzz_usersfile/totp tests/fuzz/corpus/fuzz_usersfile/hotp \
	tests/fuzz/corpus/fuzz_csr/ec.pem tests/fuzz/corpus/fuzz_csr/ec.der tests/fuzz/corpus/fuzz_csr/version2.der tests/fuzz/corpus/fuzz_csr/rsa-bool-params.der \
	tests/fuzz/corpus/fuzz_csr/rsa-exponent1.der tests/fuzz/corpus/fuzz_csr/ec-infinity.der \
	tests/fuzz/corpus/fuzz_csr/attestation-ec.pem tests/fuzz/corpus/fuzz_csr/attestation-rsa.pem \
	tests/fuzz/anchors/attestation-root.pem \
	tests/fuzz/corpus/fuzz_csr/cert.pem tests/fuzz/corpus/fuzz_csr/leaf-serverauth.der tests/fuzz/corpus/fuzz_csr/rsa.der \
	tests/fuzz/corpus/fuzz_csr/ed25519.pem tests/fuzz/corpus/fuzz_csr/p384-ext.pem \
	tests/fuzz/corpus/fuzz_csr/explicit-ec.pem tests/fuzz/corpus/fuzz_csr/rsa-pss.pem \
	tests/fuzz/corpus/fuzz_csr/old-header.pem tests/fuzz/corpus/fuzz_csr/ec-compressed.pem \
	tests/fuzz/corpus/fuzz_proto/list tests/fuzz/corpus/fuzz_proto/request \
	tests/fuzz/corpus/fuzz_proto/csr tests/fuzz/corpus/fuzz_proto/otp \
	tests/fuzz/corpus/fuzz_proto/short \
	tests/fuzz/fuzz_ejbca.c tests/fuzz/fuzz_cmp.c \
	tests/fuzz/corpus/fuzz_ejbca/calist.json tests/fuzz/corpus/fuzz_ejbca/error.json \
	tests/fuzz/corpus/fuzz_ejbca/issued-double.json \
	tests/fuzz/corpus/fuzz_ejbca/issued.json \
	tests/fuzz/corpus/fuzz_ejbca/pending-short.json \
	tests/fuzz/corpus/fuzz_ejbca/pending.json tests/fuzz/corpus/fuzz_ejbca/revstatus.json \
	tests/fuzz/corpus/fuzz_ejbca/status.json tests/fuzz/corpus/fuzz_ejbca/token.json \
	tests/fuzz/corpus/fuzz_cmp/cp.der tests/fuzz/corpus/fuzz_cmp/pollrep.der \
	tests/fuzz/corpus/fuzz_cmp/pollreq.der tests/fuzz/corpus/fuzz_cmp/waiting.der \
	tests/fuzz/fuzz_session.c tests/fuzz/corpus/fuzz_session/fetch \
	tests/fuzz/corpus/fuzz_session/list-other tests/fuzz/corpus/fuzz_session/list-root \
	tests/fuzz/corpus/fuzz_session/otp-auth tests/fuzz/corpus/fuzz_session/request-csr \
	tests/fuzz/corpus/fuzz_session/request-for tests/fuzz/corpus/fuzz_session/request-generate \
	tests/fuzz/corpus/fuzz_session/upload
