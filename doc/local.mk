dist_man_MANS += doc/otpenroll.1 doc/pam_otpenroll.8 doc/otpenroll-events.5
EXTRA_DIST += doc/events.md doc/connectors.md
