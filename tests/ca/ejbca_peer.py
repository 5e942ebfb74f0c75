#!/usr/bin/python3
"""A loopback test peer for otpenroll's ejbca-rest connector.

It follows the certificate resource of EJBCA CE's REST API v1 (EJBCA 8.x,
modules/ejbca-rest-certificate: CertificateRestResource; JSON in snake
case as Jackson writes it; errors as {"error_code", "error_message"}),
as far as the connector uses it:

  GET  /ejbca/ejbca-rest-api/v1/certificate/status
  GET  /ejbca/ejbca-rest-api/v1/ca                     (the CA resource's list)
  POST /ejbca/ejbca-rest-api/v1/certificate/pkcs10enroll
  POST /ejbca/ejbca-rest-api/v1/certificate/{request_id}/finalize
  PUT  /ejbca/ejbca-rest-api/v1/certificate/{issuer_dn}/{serial}/revoke?reason=
  GET  /ejbca/ejbca-rest-api/v1/certificate/{issuer_dn}/{serial}/revocationstatus

Where EJBCA's behaviour depends on its configuration, the profile names
choose it here:
  end_entity_profile_name "APPROVAL": an approval is outstanding; the
      answer is 202 with a finalize link (EJBCA with approvals, as the
      architecture contract describes it), resolved through /_test/.
  certificate_profile_name "REJECT": 400, as EJBCA refuses a request.
  certificate_profile_name "OFFLINE": 503, as when the CA's crypto token
      is offline.
  certificate_profile_name "SLOW": answered after 5 s, as a busy CA.
  certificate_profile_name "CEAPPROVAL": 400 "Single transaction
      enrollment request rejected since approvals are enabled ...", as
      EJBCA CE's pkcs10enroll answers where approvals are required.
  certificate_profile_name "HTTP405", "HTTP302" (any HTTPnnn): that
      status, as a URL that is not EJBCA's REST API gets (a 3xx with a
      Location, as a login page's redirect).
  an unknown certificate_authority_name: 404.

Authentication as EJBCA does it: a TLS client certificate (asked for,
not required, at the TLS level) that must be one of --admin-cert, or an
OAuth Bearer token; without either, 403 "Error no client certificate or
OAuth token received for authentication."  /certificate/status needs
neither.  An OAuth 2.0 token endpoint (client credentials grant, RFC 6749
4.4, client authenticated with HTTP Basic or in the form) answers on
/oauth/token, as an identity provider in front of EJBCA would.

Not part of EJBCA, for the tests only: POST /_test/approve/{id},
/_test/reject/{id}, /_test/revoke/{serial_hex} (revoked at the CA
directly) and GET /_test/state.  Every request is appended to --log as
one JSON line {"method", "path", "status", "auth", "peer"}; "peer" is
the client's address and port, which tells connections apart.
"""
import argparse
import base64
import datetime
import http.server
import json
import os
import re
import secrets
import socketserver
import ssl
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

BASE = "/ejbca/ejbca-rest-api/v1"
NO_AUTH = "Error no client certificate or OAuth token received for authentication."
REASONS = ["UNSPECIFIED", "KEY_COMPROMISE", "CA_COMPROMISE", "AFFILIATION_CHANGED",
           "SUPERSEDED", "CESSATION_OF_OPERATION", "CERTIFICATE_HOLD", "REMOVE_FROM_CRL",
           "PRIVILEGES_WITHDRAWN", "AA_COMPROMISE"]


class State:
    def __init__(self, args):
        self.lock = threading.RLock()
        with open(args.ca_cert, "rb") as f:
            self.ca_cert = x509.load_pem_x509_certificate(f.read())
        with open(args.ca_key, "rb") as f:
            self.ca_key = serialization.load_pem_private_key(f.read(), None)
        self.ca_name = args.ca_name
        self.admins = set()
        for path in args.admin_cert or []:
            with open(path, "rb") as f:
                c = x509.load_pem_x509_certificate(f.read())
                self.admins.add(c.fingerprint(hashes.SHA256()))
        self.oauth = {}
        if args.oauth_client:
            cid, _, sec = args.oauth_client.partition(":")
            self.oauth[cid] = sec
        self.token_ttl = args.token_ttl
        self.tokens = {}          # token -> expiry
        self.requests = {}        # id -> {"state", "csr", "username", "cert"}
        self.next_id = 100
        self.certs = {}           # serial hex -> {"cert", "revoked", "reason", "date"}
        self.double_b64 = args.double_b64
        self.chain_cert = None
        if args.chain_cert:
            with open(args.chain_cert, "rb") as f:
                self.chain_cert = x509.load_pem_x509_certificate(f.read())
        self.validity = args.validity_seconds
        self.log = args.log

    def issuer_dn(self):
        return self.ca_cert.subject.rfc4514_string()


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sign(st, csr_pem):
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    if not csr.is_signature_valid:
        raise ValueError("Invalid CSR signature")
    pub = csr.public_key()
    ku = x509.KeyUsage(digital_signature=True, key_encipherment=isinstance(pub, rsa.RSAPublicKey),
                       content_commitment=False, data_encipherment=False, key_agreement=False,
                       key_cert_sign=False, crl_sign=False, encipher_only=False,
                       decipher_only=False)
    b = (x509.CertificateBuilder()
         .subject_name(csr.subject)
         .issuer_name(st.ca_cert.subject)
         .public_key(pub)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now() - datetime.timedelta(minutes=5))
         .not_valid_after(now() + datetime.timedelta(seconds=st.validity))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(ku, critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    cert = b.sign(st.ca_key, hashes.SHA256())
    serial = format(cert.serial_number, "X")
    st.certs[serial] = {"cert": cert, "revoked": False, "reason": None, "date": None}
    return cert, serial


def der_b64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def issued_body(st, cert, serial, include_chain):
    c = der_b64(cert)
    if st.double_b64:
        c = base64.b64encode(c.encode()).decode()
    body = {"certificate": c, "serial_number": serial, "response_format": "DER"}
    if include_chain:
        body["certificate_chain"] = [der_b64(st.chain_cert or st.ca_cert)]
    return body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EJBCA-test-peer"
    # One write per answer, sent at once: headers and body apart would
    # meet the client's delayed ACK (40 ms a request), as no real
    # server's answers do.
    wbufsize = 65536
    disable_nagle_algorithm = True

    def setup(self):
        # The handshake in this connection's thread, not the acceptor's.
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, body=None, ctype="application/json", headers=()):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        st = self.server.state
        with st.lock, open(st.log, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path, "status": status,
                                "auth": getattr(self, "auth", None),
                                "peer": "%s:%d" % self.client_address[:2]}) + "\n")

    def error(self, status, message):
        self.reply(status, {"error_code": status, "error_message": message})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def authenticate(self):
        """The administrator: 'cert', 'oauth', or None after a 403."""
        st = self.server.state
        der = self.connection.getpeercert(binary_form=True)
        if der:
            cert = x509.load_der_x509_certificate(der)
            if cert.fingerprint(hashes.SHA256()) in st.admins:
                self.auth = "cert"
                return "cert"
            self.error(403, "Authentication failed. Client certificate %s is not an "
                       "administrator." % cert.subject.rfc4514_string())
            return None
        h = self.headers.get("Authorization", "")
        m = re.match(r"(?i)bearer +(\S+)$", h)
        if m:
            exp = st.tokens.get(m.group(1))
            if exp is None:
                self.error(403, "Authentication failed using OAuth Bearer Token")
                return None
            if exp < now():
                self.error(403, "Authentication failed using OAuth Bearer Token. "
                           "JWT token has expired.")
                return None
            self.auth = "oauth"
            return "oauth"
        self.error(403, NO_AUTH)
        return None

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    def route(self, method):
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        body = self.body()
        st = self.server.state
        try:
            if path == "/oauth/token" and method == "POST":
                return self.token(body)
            if path.startswith("/_test/"):
                return self.control(method, path)
            if not path.startswith(BASE + "/"):
                return self.error(404, "Not found")
            rest = path[len(BASE) + 1:]
            if rest == "certificate/status" and method == "GET":
                return self.reply(200, {"status": "OK", "version": "1.0",
                                        "revision": "EJBCA 8.0.0 Community (test peer)"})
            if self.authenticate() is None:
                return
            if rest == "ca" and method == "GET":
                return self.reply(200, {"certificate_authorities": [{
                    "id": 1, "name": st.ca_name, "subject_dn": st.issuer_dn(),
                    "issuer_dn": st.issuer_dn(),
                    "expiration_date": iso(st.ca_cert.not_valid_after)}]})
            if rest == "certificate/pkcs10enroll" and method == "POST":
                return self.enroll(body)
            m = re.fullmatch(r"certificate/(\d+)/finalize", rest)
            if m and method == "POST":
                return self.finalize(m.group(1), body)
            m = re.fullmatch(r"certificate/([^/]+)/([^/]+)/(revoke|revocationstatus)", rest)
            if m:
                issuer = urllib.parse.unquote(m.group(1))
                if m.group(3) == "revoke" and method == "PUT":
                    return self.revoke(issuer, m.group(2), query)
                if m.group(3) == "revocationstatus" and method == "GET":
                    return self.revstatus(issuer, m.group(2))
            return self.error(404, "Not found")
        except Exception as e:  # what EJBCA's ExceptionHandler does
            sys.stderr.write("peer: %r\n" % e)
            return self.error(500, "General failure.")

    def token(self, body):
        st = self.server.state
        form = urllib.parse.parse_qs(body.decode())
        cid = sec = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            pair = base64.b64decode(auth[6:]).decode()
            cid, _, sec = pair.partition(":")
            cid, sec = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)
        else:
            cid = form.get("client_id", [None])[0]
            sec = form.get("client_secret", [None])[0]
        self.auth = "token:%s" % cid
        if form.get("grant_type", [None])[0] != "client_credentials":
            return self.reply(400, {"error": "unsupported_grant_type"})
        if cid not in st.oauth or st.oauth[cid] != sec:
            return self.reply(401, {"error": "invalid_client"})
        tok = secrets.token_urlsafe(24)
        st.tokens[tok] = now() + datetime.timedelta(seconds=st.token_ttl)
        return self.reply(200, {"access_token": tok, "token_type": "Bearer",
                                "expires_in": st.token_ttl})

    def enroll(self, body):
        st = self.server.state
        req = json.loads(body)
        fmt = req.get("response_format")
        if fmt is None:
            return self.error(400, "Invalid input. Incorrect response format")
        if fmt.upper() not in ("DER", "PKCS7"):
            return self.error(400, "Invalid input. Response format can only be DER or PKCS7")
        for k in ("certificate_request", "certificate_profile_name",
                  "end_entity_profile_name", "certificate_authority_name", "username",
                  "password"):
            if not isinstance(req.get(k), str) or not req[k]:
                return self.error(400, "Invalid input. Missing %s" % k)
        if req["certificate_authority_name"] != st.ca_name:
            return self.error(404, "CA with name %s doesn't exist."
                              % req["certificate_authority_name"])
        if req["certificate_profile_name"] == "REJECT":
            return self.error(400, "Subject DN field 'CN' must match the end entity's.")
        if req["certificate_profile_name"] == "OFFLINE":
            return self.error(503, "Device was unavailable.")
        m = re.fullmatch(r"HTTP(\d{3})", req["certificate_profile_name"])
        if m and m.group(1).startswith("3"):
            return self.reply(int(m.group(1)), None, headers=[("Location", "/login")])
        if m:
            return self.error(int(m.group(1)), "HTTP %s from the test peer" % m.group(1))
        if req["certificate_profile_name"] == "SLOW":
            time.sleep(5)
        if req["certificate_profile_name"] == "CEAPPROVAL":
            return self.error(400, "Single transaction enrollment request rejected since "
                              "approvals are enabled for this CA (1) or Certificate Profile (2).")
        try:
            x509.load_pem_x509_csr(req["certificate_request"].encode())
        except ValueError:
            return self.error(400, "Invalid CSR format")
        with st.lock:
            if req["end_entity_profile_name"] == "APPROVAL":
                rid = st.next_id
                st.next_id += 1
                st.requests[rid] = {"state": "waiting", "csr": req["certificate_request"],
                                    "username": req["username"], "chain":
                                    bool(req.get("include_chain"))}
                host = self.headers.get("Host", "127.0.0.1")
                return self.reply(202, {
                    "status_code": 202,
                    "info_message": "Request has been sent for approval",
                    "link": "https://%s%s/certificate/%d/finalize" % (host, BASE, rid)})
            cert, serial = sign(st, req["certificate_request"])
        return self.reply(201, issued_body(st, cert, serial, bool(req.get("include_chain"))))

    def finalize(self, rid, body):
        st = self.server.state
        req = json.loads(body or b"{}")
        with st.lock:
            r = st.requests.get(int(rid))
            if r is None:
                return self.error(400, "Could not find request with Id '%s'" % rid)
            if req.get("response_format") not in ("DER", "PEM"):
                return self.error(400, "Invalid response format. Cannot create keystore for "
                                  "certificate request  with user generated keys")
            if r["state"] == "waiting":
                return self.reply(202, {
                    "status_code": 202,
                    "info_message": "Request with Id '%s' is still waiting for approval" % rid,
                    "link": "https://%s%s/certificate/%s/finalize"
                            % (self.headers.get("Host", "127.0.0.1"), BASE, rid)})
            if r["state"] == "rejected":
                return self.error(400, "Request with Id '%s' has been rejected" % rid)
            if r["state"] == "finalized":
                return self.error(400, "Enrollment with Id '%s' has already been finalized"
                                  % rid)
            cert, serial = sign(st, r["csr"])
            r["state"] = "finalized"
        # With the chain when the enrolment asked for it, as a 201 of
        # pkcs10enroll has it.
        return self.reply(201, issued_body(st, cert, serial, r["chain"]))

    def certificate(self, issuer, serial):
        """The record of issuer's certificate serial, or None when the
        404 EJBCA gives has been sent.  Called with the state lock held."""
        st = self.server.state
        if issuer != st.issuer_dn():
            self.error(404, "CA '%s' does not exist." % issuer)
            return None
        c = st.certs.get(serial.upper().lstrip("0") or "0")
        if c is None:
            self.error(404, "Certificate with serial number '%s' and issuer DN '%s' was "
                       "not found" % (serial, issuer))
        return c

    def revoke(self, issuer, serial, query):
        st = self.server.state
        reason = query.get("reason", [None])[0]
        with st.lock:
            c = self.certificate(issuer, serial)
            if c is None:
                return
            if reason not in REASONS:
                return self.error(400, "Invalid revocation reason.")
            if c["revoked"]:
                return self.error(409, "Certificate with issuer: %s and serial number: %s has "
                                  "previously been revoked. Revocation reason could not be "
                                  "changed or was not allowed." % (issuer, serial.lower()))
            c.update(revoked=True, reason=reason, date=iso(now()))
        return self.reply(200, {"issuer_dn": issuer, "serial_number": serial,
                                "revocation_reason": reason, "revocation_date": c["date"],
                                "message": "Successfully revoked", "revoked": True})

    def revstatus(self, issuer, serial):
        with self.server.state.lock:
            c = self.certificate(issuer, serial)
            if c is None:
                return
            body = {"issuer_dn": issuer, "serial_number": serial, "revoked": c["revoked"],
                    "revocation_reason": c["reason"] or "NOT_REVOKED"}
            if c["revoked"]:
                body["revocation_date"] = c["date"]
        return self.reply(200, body)

    def control(self, method, path):
        st = self.server.state
        self.auth = "test"
        m = re.fullmatch(r"/_test/(approve|reject)/(\d+)", path)
        with st.lock:
            if m and method == "POST":
                r = st.requests.get(int(m.group(2)))
                if r is None:
                    return self.error(404, "no such request")
                r["state"] = "approved" if m.group(1) == "approve" else "rejected"
                return self.reply(200, {"ok": True})
            m = re.fullmatch(r"/_test/revoke/([0-9A-Fa-f]+)", path)
            if m and method == "POST":
                c = st.certs.get(m.group(1).upper().lstrip("0"))
                if c is None:
                    return self.error(404, "no such certificate")
                c.update(revoked=True, reason="KEY_COMPROMISE", date=iso(now()))
                return self.reply(200, {"ok": True})
            if path == "/_test/state" and method == "GET":
                return self.reply(200, {
                    "requests": {str(k): v["state"] for k, v in st.requests.items()},
                    "certs": {k: v["revoked"] for k, v in st.certs.items()},
                    "tokens": len(st.tokens)})
        return self.error(404, "Not found")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert", required=True, help="the server's TLS certificate (PEM)")
    ap.add_argument("--key", required=True)
    ap.add_argument("--client-ca", required=True, help="CA of administrators' certificates")
    ap.add_argument("--admin-cert", action="append", help="an administrator's certificate")
    ap.add_argument("--ca-cert", required=True, help="the issuing CA (ManagementCA)")
    ap.add_argument("--ca-key", required=True)
    ap.add_argument("--ca-name", default="ManagementCA")
    ap.add_argument("--oauth-client", help="CLIENT_ID:SECRET the token endpoint accepts")
    ap.add_argument("--token-ttl", type=int, default=300)
    ap.add_argument("--tls-max", choices=["1.2", "1.3"], help="the newest TLS version offered")
    ap.add_argument("--validity-seconds", type=int, default=30 * 86400)
    ap.add_argument("--double-b64", action="store_true",
                    help="send certificates base64-encoded twice, as some versions have")
    ap.add_argument("--chain-cert",
                    help="send this as certificate_chain instead of the issuing CA "
                    "(a server that gets it wrong)")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.load_verify_locations(args.client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if args.tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    srv = Server(("127.0.0.1", 0), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
    srv.state = State(args)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
