# The command line as an admin uses it.
TESTS += tests/cli/cli.sh
EXTRA_DIST += tests/cli/cli.sh tests/lib.sh
