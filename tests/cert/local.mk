# tests/cert
