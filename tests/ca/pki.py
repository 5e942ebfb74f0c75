"""Test PKI for the remote CA tests: CAs, server and client certificates,
keys and PKCS#12 files, written as PEM files into a directory."""
import datetime
import os
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test")])


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class Cert:
    def __init__(self, d, name, cert, key):
        self.cert, self.key = cert, key
        self.pem = os.path.join(d, name + ".pem")
        self.key_pem = os.path.join(d, name + ".key")
        with open(self.pem, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(self.key_pem, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(self.key_pem, 0o600)

    @property
    def serial_hex(self):
        return format(self.cert.serial_number, "X")


def make(d, name, cn, issuer=None, ca=False, server=False, client=True, ku=True,
         days=30, seconds=None):
    """A certificate; self-signed when issuer is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(cn)
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer.cert.subject if issuer else subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(_now() - datetime.timedelta(minutes=5))
         .not_valid_after(_now() + (datetime.timedelta(seconds=seconds) if seconds
                                    else datetime.timedelta(days=days))))
    b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    if issuer:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), False)
    if ca:
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                          crl_sign=True, content_commitment=False,
                                          key_encipherment=False, data_encipherment=False,
                                          key_agreement=False, encipher_only=False,
                                          decipher_only=False), True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        if ku:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                              crl_sign=False, content_commitment=False,
                                              key_encipherment=False, data_encipherment=False,
                                              key_agreement=False, encipher_only=False,
                                              decipher_only=False), True)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"),
                 x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        if usages:
            b = b.add_extension(x509.ExtendedKeyUsage(usages), False)
    cert = b.sign(issuer.key if issuer else key, hashes.SHA256())
    return Cert(d, name, cert, key)


def pkcs12(d, name, c, password, legacy=False, chain=None):
    """c as a PKCS#12 file written by the openssl command (as an admin
    would make one); legacy: RC2/3DES under SHA-1, as OpenSSL 1.1 did."""
    out = os.path.join(d, name + ".p12")
    cmd = ["openssl", "pkcs12", "-export", "-in", c.pem, "-inkey", c.key_pem, "-out", out,
           "-passout", "pass:" + password]
    if chain:
        cmd += ["-certfile", chain.pem]
    if legacy:
        cmd.append("-legacy")
    subprocess.run(cmd, check=True, capture_output=True)
    os.chmod(out, 0o600)
    return out


def secret_file(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text + "\n")
    os.chmod(p, 0o600)
    return p


def csr(d, name, cn, subj=None, ext=None):
    """A P-256 key and CSR made with the openssl command; subj (slash
    form) overrides /CN=cn, ext adds an extension request."""
    key = os.path.join(d, name + ".key")
    req = os.path.join(d, name + ".csr")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", req,
                    "-subj", subj or "/CN=" + cn] + (["-addext", ext] if ext else []),
                   check=True, capture_output=True)
    return req, key
