# Example configuration, installed as documentation: the admin copies
# what applies to /etc/otpenroll/ and /etc/pam.d/.
examplesdir = $(docdir)/examples
dist_examples_DATA = etc/otpenroll.conf etc/pam.d/otpenroll \
	etc/pam.d/sshd-otpenroll.example
