#!/bin/sh
# Stands in, in `make check`, for the tests configure could not build:
# they show as SKIP with what to install, not silently absent.
echo "SKIP: ${OE_MISSING:-a test dependency} was not found by configure; install it and configure again"
exit 77
