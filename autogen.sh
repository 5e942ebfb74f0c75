#!/bin/sh
# Regenerate the build system: ./autogen.sh && ./configure && make
set -e
cd "$(dirname "$0")"
# configure.ac's AX_ macros come from autoconf-archive; without it
# autoreconf would leave a configure that fails with a shell syntax error.
if ! [ -f "$(aclocal --print-ac-dir 2>/dev/null)/ax_check_compile_flag.m4" ]; then
	echo "autogen.sh: autoconf-archive is missing: install the Debian package autoconf-archive" >&2
	exit 1
fi
autoreconf --force --install --verbose
