# The event engine: rules, conditions, pre refusals, retries and dead
# entries, through `otpenroll events ...` with a recording handler.
check_LTLIBRARIES += tests/events/recorder.la tests/events/badabi.la
tests_events_recorder_la_SOURCES = tests/events/recorder.c
tests_events_recorder_la_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/hooks
tests_events_recorder_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-no-undefined -export-symbols-regex '^oe_handler$$' -rpath /nowhere
# The same handler built for a future ABI, which the engine must refuse.
tests_events_badabi_la_SOURCES = tests/events/recorder.c
tests_events_badabi_la_CPPFLAGS = $(tests_events_recorder_la_CPPFLAGS) \
	-DRECORDER_ABI='(OE_HANDLER_ABI + 1)' -DRECORDER_NAME='"badabi"'
tests_events_badabi_la_LDFLAGS = $(tests_events_recorder_la_LDFLAGS)
TESTS += tests/events/engine.sh
EXTRA_DIST += tests/events/engine.sh
