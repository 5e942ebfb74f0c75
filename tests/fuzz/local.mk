# libFuzzer targets for every parser; built with clang and run for a
# bounded time by tests/fuzz/run-fuzz.sh, which scripts/check calls.
EXTRA_DIST += tests/fuzz/run-fuzz.sh tests/fuzz/fuzz_cfg.c tests/fuzz/fuzz_usersfile.c \
	tests/fuzz/fuzz_csr.c tests/fuzz/fuzz_proto.c tests/fuzz/fuzz_rules.c \
	tests/fuzz/corpus/fuzz_rules/notify.conf \
	tests/fuzz/corpus/fuzz_cfg/example.conf tests/fuzz/corpus/fuzz_cfg/ca.conf \
	tests/fuzz/corpus/fuzz_usersfile/totp tests/fuzz/corpus/fuzz_usersfile/hotp \
	tests/fuzz/corpus/fuzz_csr/ec.pem tests/fuzz/corpus/fuzz_csr/ec.der \
	tests/fuzz/corpus/fuzz_csr/cert.pem \
	tests/fuzz/corpus/fuzz_proto/list tests/fuzz/corpus/fuzz_proto/request \
	tests/fuzz/corpus/fuzz_proto/csr tests/fuzz/corpus/fuzz_proto/otp \
	tests/fuzz/corpus/fuzz_proto/short
