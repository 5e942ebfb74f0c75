#!/bin/sh
# Build and run the protocol fuzz target for a bounded time.
# Usage: run-fuzz-proto.sh [SECONDS]   (top_srcdir/top_builddir from the environment)
set -eu
src=${top_srcdir:?}
build=${top_builddir:?}
secs=${1:-20}
command -v clang >/dev/null || { echo "SKIP: clang missing"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
clang -g -O1 -fsanitize=fuzzer,address,undefined -I"$build" -I"$src/lib" -I"$src/tools" \
	"$src/tests/daemon/fuzz_proto.c" "$src/tools/proto.c" \
	$(pkg-config --cflags --libs jansson libcrypto) -o "$out/fuzz_proto"
mkdir -p "$out/corpus"
cp "$src"/tests/daemon/corpus/fuzz_proto/* "$out/corpus/"
"$out/fuzz_proto" -max_total_time="$secs" -max_len=65536 -timeout=10 \
	"$out/corpus" >"$out/log" 2>&1 || { tail -40 "$out/log"; exit 1; }
tail -1 "$out/log"
