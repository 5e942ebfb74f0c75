# tests/pam
