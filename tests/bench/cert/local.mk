# tests/bench/cert
