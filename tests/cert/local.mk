# Certificate tokens end to end, checked with the openssl command.
TESTS += tests/cert/cert.sh
EXTRA_DIST += tests/cert/cert.sh tests/cert/crafted_csr.py
