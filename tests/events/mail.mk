# The usernotification handler end to end against loopback aiosmtpd
# servers: mails, STARTTLS and AUTH, outages, dead entries, a killed
# dispatcher, header injection.
TESTS += tests/events/mail.py
EXTRA_DIST += tests/events/mail.py tests/events/smtp_server.py
