#!/bin/sh
# Only the pam_sm_* entry points leave the module, only oe_* the library.
set -eu
build=${top_builddir:?}
mod=$build/pam_module/.libs/pam_otpenroll.so
lib=$build/lib/.libs/libotpenroll.so
# nm's failure would vanish in the pipes below: the files first.
for so in "$mod" "$lib" "$build/lib/ca/.libs/cmp.so" "$build/lib/ca/.libs/ejbca-rest.so" \
	"$build/lib/store/.libs/sqlite.so"; do
	nm -D --defined-only "$so" >/dev/null || { echo "FAIL: cannot read the symbols of $so"; exit 1; }
done
bad=$(nm -D --defined-only "$mod" | awk '{print $3}' | grep -v '^pam_sm_' || true)
[ -z "$bad" ] || { echo "FAIL: the module exports $bad"; exit 1; }
echo "ok: module exports only $(nm -D --defined-only "$mod" | awk '{print $3}' | tr '\n' ' ')"
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v -e '^oe_' -e '^OTPENROLL_' || true)
[ -z "$bad" ] || { echo "FAIL: the library exports $bad"; exit 1; }
echo "ok: library exports $(nm -D --defined-only "$lib" | grep -c ' oe_') oe_ symbols and nothing else"
# A connector plugin exports its one entry point, and its libraries'
# dependencies stay out of the library the PAM module loads.
for plugin in cmp ejbca-rest; do
	so=$build/lib/ca/.libs/$plugin.so
	bad=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^oe_connector$' || true)
	[ -z "$bad" ] || { echo "FAIL: connector $plugin exports $bad"; exit 1; }
done
echo "ok: connectors export only oe_connector"
if ldd "$lib" | grep -q libcurl; then
	echo "FAIL: libotpenroll links libcurl, which every PAM login would load"
	exit 1
fi
echo "ok: libotpenroll does not load libcurl"
bad=$(nm -D --defined-only "$build/lib/store/.libs/sqlite.so" | awk '{print $3}' | grep -v '^oe_store_backend$' || true)
[ -z "$bad" ] || { echo "FAIL: the sqlite store backend exports $bad"; exit 1; }
echo "ok: the sqlite store backend exports only oe_store_backend"
if ldd "$lib" | grep -q libsqlite3; then
	echo "FAIL: libotpenroll links SQLite, which every PAM login would load"
	exit 1
fi
echo "ok: libotpenroll does not load SQLite (its store backend does)"
