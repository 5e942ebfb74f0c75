# The remote CA connectors end to end: cmp against OpenSSL's own CMP
# server, ejbca-rest against a loopback peer that follows EJBCA's REST
# API v1 (tests/ca/ejbca_peer.py); the PKI both use is made by pki.py.
TESTS += tests/ca/cmp_test.py tests/ca/ejbca_test.py
EXTRA_DIST += tests/ca/cmp_test.py tests/ca/ejbca_test.py tests/ca/ejbca_peer.py tests/ca/pki.py
