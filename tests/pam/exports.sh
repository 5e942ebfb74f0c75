#!/bin/sh
# Only the pam_sm_* entry points leave the module, only oe_* the library.
set -eu
build=${top_builddir:?}
mod=$build/pam_module/.libs/pam_otpenroll.so
lib=$build/lib/.libs/libotpenroll.so
bad=$(nm -D --defined-only "$mod" | awk '{print $3}' | grep -v '^pam_sm_' || true)
[ -z "$bad" ] || { echo "FAIL: the module exports $bad"; exit 1; }
echo "ok: module exports only $(nm -D --defined-only "$mod" | awk '{print $3}' | tr '\n' ' ')"
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v -e '^oe_' -e '^OTPENROLL_' || true)
[ -z "$bad" ] || { echo "FAIL: the library exports $bad"; exit 1; }
echo "ok: library exports $(nm -D --defined-only "$lib" | grep -c ' oe_') oe_ symbols and nothing else"
