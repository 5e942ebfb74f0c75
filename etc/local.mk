# Example configuration, installed as documentation: the admin copies
# what applies to /etc/otpenroll/ and /etc/pam.d/.
examplesdir = $(docdir)/examples
dist_examples_DATA = etc/otpenroll.conf etc/pam.d/otpenroll \
	etc/pam.d/sshd-otpenroll.example etc/events.d/notify.conf

# The daemon's unit, with the install paths filled in.
systemdunit_DATA = etc/systemd/otpenrolld.service
etc/systemd/otpenrolld.service: $(top_srcdir)/etc/systemd/otpenrolld.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) etc/systemd && \
	sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
		$(top_srcdir)/etc/systemd/otpenrolld.service.in > $@
CLEANFILES += etc/systemd/otpenrolld.service
EXTRA_DIST += etc/systemd/otpenrolld.service.in
