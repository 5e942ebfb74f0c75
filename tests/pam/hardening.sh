#!/bin/sh
# The hardening configure turned on is in what was built: full RELRO
# (relro and now), a non-executable stack, the stack protector, and
# FORTIFY's checked calls when configure could use them.
# OE_HARDEN_CFLAGS: what configure chose (empty with --disable-hardening).
set -eu
build=${top_builddir:?}
flags=${OE_HARDEN_CFLAGS-}
case $flags in
*-fstack-protector*) ;;
*) echo "SKIP: built without hardening"; exit 77 ;;
esac
command -v readelf >/dev/null || { echo "SKIP: readelf missing (binutils)"; exit 77; }
status=0
for so in pam_module/.libs/pam_otpenroll.so lib/.libs/libotpenroll.so tools/.libs/otpenroll \
	tools/.libs/otpenrolld lib/ca/.libs/cmp.so lib/ca/.libs/ejbca-rest.so; do
	f=$build/$so
	[ -f "$f" ] || f=$build/$(echo "$so" | sed 's|\.libs/||')
	dyn=$(readelf -dW "$f") || { echo "FAIL: cannot read $f"; exit 1; }
	seg=$(readelf -lW "$f")
	syms=$(readelf --dyn-syms -W "$f")
	what=
	echo "$seg" | grep -q GNU_RELRO || what="$what no-RELRO"
	echo "$dyn" | grep -Eq 'BIND_NOW|FLAGS_1.*NOW' || what="$what no-BIND_NOW"
	echo "$seg" | grep GNU_STACK | grep -q RWE && what="$what executable-stack"
	echo "$syms" | grep -q __stack_chk_fail || what="$what no-stack-protector"
	case $flags in
	*_FORTIFY_SOURCE*) # a checked call of glibc's, not the stack protector's
		echo "$syms" | grep -v __stack_chk | grep -Eq '__[a-z0-9_]+_chk(@| |$)' ||
			what="$what no-FORTIFY" ;;
	esac
	if [ -n "$what" ]; then
		echo "FAIL: $so:$what"
		status=1
	else
		echo "ok: $so"
	fi
done
exit $status
