#!/bin/sh
# Build every libFuzzer target with clang (ASan + UBSan) and run each for
# a bounded time on its seed corpus; a crash fails.
# Usage: run-fuzz.sh [SECONDS per target]  (top_srcdir, top_builddir from
# the environment; top_builddir must hold a configured build's config.h)
set -eu
src=${top_srcdir:?}
build=${top_builddir:?}
secs=${1:-20}
command -v clang >/dev/null || { echo "SKIP: clang missing"; exit 77; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags="-g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -I$build -I$src/lib -I$src/tools -I$src/hooks"
deps="$(pkg-config --cflags --libs liboath sqlite3 libcrypto inih jansson) -ldl"
# The connector plugins proper (cmp.c, ejbca.c) are modules of their own;
# their parsers (cmp_msg.c, ejbca_json.c) are fuzzed with the library.
lib=$(cd "$src" && ls lib/*.c lib/store/*.c lib/ca/*.c hooks/*.c | grep -v -e '^lib/ca/cmp\.c$' -e '^lib/ca/ejbca\.c$' -e '^lib/store/postgres\.c$')
mkdir "$out/obj"
for f in $lib; do
	clang $flags -fsanitize=fuzzer-no-link $(pkg-config --cflags liboath sqlite3 libcrypto inih jansson) \
		-DSYSCONFDIR='"/etc"' -c "$src/$f" -o "$out/obj/$(echo "$f" | tr / _).o"
done
status=0
for target in fuzz_cfg fuzz_usersfile fuzz_csr fuzz_proto fuzz_rules fuzz_ejbca fuzz_cmp fuzz_session; do
	extra=
	[ "$target" = fuzz_proto ] && extra="$src/tools/proto.c"
	[ "$target" = fuzz_session ] && extra="$src/tools/proto.c $src/tools/daemon_auth.c $src/tools/cli_json.c"
	clang $flags -fsanitize=fuzzer "$src/tests/fuzz/$target.c" $extra "$out"/obj/*.o $deps \
		-o "$out/$target"
	mkdir -p "$out/corpus-$target"
	cp "$src/tests/fuzz/corpus/$target"/* "$out/corpus-$target/"
	# Artifacts (crash-*, oom-*) go to the build tree, never the sources.
	if OE_FUZZ_ANCHORS="$src/tests/fuzz/anchors" OE_FUZZ_STOREDIR="$build/lib/store/.libs" "$out/$target" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$build/fuzz-$target-" \
		"$out/corpus-$target" >"$out/$target.log" 2>&1; then
		echo "ok   $target: $(grep -E '^Done' "$out/$target.log" | tail -1)"
	else
		echo "FAIL $target"
		tail -40 "$out/$target.log"
		status=1
	fi
done
exit $status
