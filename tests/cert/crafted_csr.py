"""Certificate requests whose self-signature verifies with OpenSSL but
that the local CA must refuse, made from a real request (DER) and its
key with the standard library and the openssl command only.

  crafted_csr.py KIND SRC.der SRC.key OUT.der
KIND:
  v2          version 2 (RFC 2986 defines only v1, encoded 0), re-signed
  rsa-bool    an RSA key whose algorithm parameters are BOOLEAN TRUE
              (RFC 3279 wants NULL), re-signed with the request's key
  rsa-e1      the request's RSA modulus with public exponent 1: the
              "signature" is the padded hash itself, made with no key
  ec-infinity the P-256 point at infinity as the key, with an ECDSA
              signature made from a nonce alone (r = x(kG), s = e/k),
              which verifies for that point
  ext-unreadable  an extensionRequest attribute whose value is an
              INTEGER, not the SEQUENCE of extensions, re-signed
SRC may be PEM.
"""
import hashlib
import re
import subprocess
import sys

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
SHA256_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
SHA256_DIGESTINFO = bytes.fromhex("3031300d060960864801650304020105000420")


def content(d, i):
    """Where the DER element at i has its content, and its end."""
    n, j = d[i + 1], i + 2
    if n & 0x80:
        k = n & 0x7F
        n, j = int.from_bytes(d[j:j + k], "big"), j + k
    return j, j + n


def element(tag, body):
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + body


def integer(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")  # a leading 0 keeps it positive
    return element(0x02, b)


def parts(d):
    """The request's info (version, subject, key, attributes) as elements."""
    s, _ = content(d, 0)
    info_s, info_e = content(d, s)
    out, i = [], info_s
    while i < info_e:
        _, e = content(d, i)
        out.append(bytes(d[i:e]))
        i = e
    alg_s = info_e
    _, alg_e = content(d, alg_s)
    return out, bytes(d[alg_s:alg_e])


def request(info_parts, alg, sig):
    info = element(0x30, b"".join(info_parts))
    return element(0x30, info + alg + element(0x03, b"\0" + sig))


def openssl_sign(key, data):
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=data,
                          capture_output=True, check=True).stdout


def key_text(key):
    return subprocess.run(["openssl", "pkey", "-in", key, "-noout", "-text"],
                          capture_output=True, check=True, text=True).stdout


def hex_field(text, name):
    """A colon-separated hex field of `openssl pkey -text`, as an int."""
    m = re.search(name + r":\s*\n((?:\s+[0-9a-f:]+\n)+)", text)
    return int(re.sub(r"[\s:]", "", m.group(1)), 16)


def v2(d, key):
    info, alg = parts(d)
    assert info[0] == b"\x02\x01\x00"
    info[0] = b"\x02\x01\x01"
    return request(info, alg, openssl_sign(key, element(0x30, b"".join(info))))


def rsa_bool(d, key):
    info, alg = parts(d)
    spki = info[2]
    s, _ = content(spki, 0)
    _, ae = content(spki, s)
    rsa_alg = element(0x30, element(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x01\x01\xff")
    info[2] = element(0x30, rsa_alg + spki[ae:])
    return request(info, alg, openssl_sign(key, element(0x30, b"".join(info))))


def rsa_e1(d, key):
    info, _ = parts(d)
    n = hex_field(key_text(key), "modulus")
    bits = element(0x30, integer(n) + integer(1))
    rsa_alg = element(0x30, element(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    info[2] = element(0x30, rsa_alg + element(0x03, b"\0" + bits))
    tbs = element(0x30, b"".join(info))
    t = SHA256_DIGESTINFO + hashlib.sha256(tbs).digest()
    k = (n.bit_length() + 7) // 8
    em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t  # EMSA-PKCS1-v1_5
    return request(info, SHA256_RSA, em)  # s = em^d with d = 1


def ec_infinity(d, key):
    info, alg = parts(d)
    spki = info[2]
    s, _ = content(spki, 0)
    _, ae = content(spki, s)
    info[2] = element(0x30, spki[s:ae] + element(0x03, b"\0\0"))
    tbs = element(0x30, b"".join(info))
    # The nonce k is the request key's private scalar, kG its public point.
    text = key_text(key)
    k = hex_field(text, "priv")
    point = hex_field(text, "pub").to_bytes(65, "big")
    r = int.from_bytes(point[1:33], "big") % P256_ORDER
    e = int.from_bytes(hashlib.sha256(tbs).digest(), "big")
    sig = element(0x30, integer(r) + integer(e * pow(k, -1, P256_ORDER) % P256_ORDER))
    return request(info, alg, sig)


def ext_unreadable(d, key):
    info, alg = parts(d)
    ext_req = element(0x06, bytes.fromhex("2a864886f70d01090e"))
    info[3] = element(0xA0, element(0x30, ext_req + element(0x31, integer(5))))
    return request(info, alg, openssl_sign(key, element(0x30, b"".join(info))))


KINDS = {"ext-unreadable": ext_unreadable, "v2": v2, "rsa-bool": rsa_bool, "rsa-e1": rsa_e1, "ec-infinity": ec_infinity}

if __name__ == "__main__":
    kind, src, key, out = sys.argv[1:]
    der = subprocess.run(["openssl", "req", "-in", src, "-outform", "DER"],
                         capture_output=True).stdout
    if not der:  # already DER
        with open(src, "rb") as f:
            der = f.read()
    with open(out, "wb") as f:
        f.write(KINDS[kind](der, key))
