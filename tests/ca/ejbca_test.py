#!/usr/bin/python3
"""The ejbca-rest connector end to end, against tests/ca/ejbca_peer.py
(EJBCA CE REST API v1 shapes, mTLS and OAuth) on loopback.

Issued at once (and doubly base64-encoded); an approval outstanding
(202, then finalize through `ca poll` and through otpenrolld's poller);
refused (400 -> denied); not an administrator (403); OAuth with the
token cached in the store; a wrong PKCS#12 password, a legacy-encrypted
PKCS#12, a client certificate without clientAuth; trusted_ca,
trusted_serial and tls_min_version refusing servers; the server down
(failed, kept, then issued) and offline (503); revocation; `ca sync`
(revoked at the CA, expired); `ca check`; an issued answer whose
recording fails here (kept, recorded by the next poll, never submitted
or finalized again).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..")]
import pki  # noqa: E402
from harness import BUILD, OE, check, db, failures, make_conf, oe, oe_json, wait_for  # noqa: E402

SRC = os.environ.get("top_srcdir", os.path.join(os.path.dirname(__file__), "..", ".."))
OED = os.path.join(BUILD, "tools", "otpenrolld")
CONNECTORS = os.path.join(BUILD, "lib", "ca", ".libs")
PEER = os.path.join(SRC, "tests", "ca", "ejbca_peer.py")
PY = "/usr/bin/python3"

tmp = tempfile.mkdtemp(prefix="oe-ejbca-")
peers = []


class Peer:
    def __init__(self, name, server, *extra):
        self.name = name
        self.log = os.path.join(tmp, name + ".log")
        self.port_file = os.path.join(tmp, name + ".port")
        self.args = [PY, PEER, "--port-file", self.port_file, "--log", self.log,
                     "--cert", server.pem, "--key", server.key_pem,
                     "--client-ca", P.clients.pem, "--admin-cert", P.admin.pem,
                     "--ca-cert", P.issuing.pem, "--ca-key", P.issuing.key_pem,
                     "--oauth-client", "otpenroll:" + OAUTH_SECRET] + list(extra)
        self.proc = None
        self.start()
        peers.append(self)

    def start(self):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        self.proc = subprocess.Popen(self.args, stderr=open(self.log + ".err", "a"))
        if not wait_for(lambda: os.path.exists(self.port_file), 15):
            raise RuntimeError("peer %s did not start" % self.name)
        self.port = int(open(self.port_file).read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    @property
    def url(self):
        return "https://127.0.0.1:%d/ejbca/ejbca-rest-api/v1" % self.port

    def requests(self):
        if not os.path.exists(self.log):
            return []
        return [json.loads(line) for line in open(self.log)]

    def state(self):
        r = subprocess.run(["curl", "-sS", "--cacert", P.tls_ca.pem,
                            "https://127.0.0.1:%d/_test/state" % self.port],
                           capture_output=True, text=True)
        return json.loads(r.stdout)

    def control(self, path):
        r = subprocess.run(["curl", "-sS", "--cacert", P.tls_ca.pem, "-X", "POST",
                            "https://127.0.0.1:%d/_test/%s" % (self.port, path)],
                           capture_output=True, text=True)
        return r.returncode == 0 and '"ok"' in r.stdout


class Pki:
    pass


P = Pki()
OAUTH_SECRET = "s3cret-for-the-idp"


def make_pki():
    d = tmp
    P.tls_ca = pki.make(d, "tls-ca", "TLS CA One", ca=True)
    P.tls_ca2 = pki.make(d, "tls-ca2", "TLS CA Two", ca=True)
    P.server = pki.make(d, "server", "localhost", issuer=P.tls_ca, server=True, client=False)
    P.server2 = pki.make(d, "server2", "localhost", issuer=P.tls_ca2, server=True, client=False)
    # Both TLS CAs, for the default "any server that chains" trust.
    P.both = os.path.join(d, "both-cas.pem")
    with open(P.both, "w") as f:
        f.write(open(P.tls_ca.pem).read() + open(P.tls_ca2.pem).read())
    P.clients = pki.make(d, "clients", "Admin CA", ca=True)
    P.admin = pki.make(d, "admin", "otpenroll RA", issuer=P.clients)
    P.stranger = pki.make(d, "stranger", "someone else", issuer=P.clients)
    P.noclient = pki.make(d, "noclient", "otpenroll RA 2", issuer=P.clients, client=False,
                          server=True)
    P.issuing = pki.make(d, "issuing", "ManagementCA", ca=True)
    P.admin_p12 = pki.pkcs12(d, "admin", P.admin, "p12-pass")
    P.legacy_p12 = pki.pkcs12(d, "admin-legacy", P.admin, "p12-pass", legacy=True)
    P.stranger_p12 = pki.pkcs12(d, "stranger", P.stranger, "p12-pass")
    P.noclient_p12 = pki.pkcs12(d, "noclient", P.noclient, "p12-pass")
    P.pass_file = pki.secret_file(d, "p12.pass", "p12-pass")
    P.wrong_pass = pki.secret_file(d, "wrong.pass", "not-it")
    P.oauth_file = pki.secret_file(d, "oauth.secret", OAUTH_SECRET)
    P.oauth_wrong = pki.secret_file(d, "oauth-wrong.secret", "guess")


def write_conf(name, peer_url, *ca_lines, poll_interval=1):
    d = os.path.join(tmp, name)
    given = {line.split("=")[0].strip() for line in ca_lines}
    defaults = "".join("%s = %s\n" % (key, value) for key, value in (
        ("ca_name", "ManagementCA"), ("certificate_profile", "ENDUSER"),
        ("end_entity_profile", "EMPTY")) if key not in given)
    return make_conf(d, """[enroll]
default_ca = ejbca
connector_dir = {c}
max_tokens_per_user = 50
[daemon]
socket = {d}/oe.sock
poll_interval = {pi}
sync_interval = 2
[ca ejbca]
type = ejbca-rest
url = {u}
timeout = 10
""".format(d=d, c=CONNECTORS, u=peer_url, pi=poll_interval) + defaults +
        "".join(line + "\n" for line in ca_lines))


def mtls(ca_file=None, p12=None, pw=None):
    return ("ca_file = " + (ca_file or P.both), "client_pkcs12 = " + (p12 or P.admin_p12),
            "client_pkcs12_password_file = " + (pw or P.pass_file))


def request(conf, user, *extra):
    req, key = pki.csr(os.path.dirname(conf), user + str(time.monotonic_ns()), user)
    rc, out, err = oe_json(conf, "cert", "request", "--user", user, "--csr", req, *extra)
    return rc, out, err, key


def verify(pem_text):
    path = os.path.join(tmp, "v.pem")
    with open(path, "w") as f:
        f.write(pem_text)
    r = subprocess.run(["openssl", "verify", "-CAfile", P.issuing.pem, "-purpose", "sslclient",
                        path], capture_output=True, text=True)
    return r.returncode == 0


def test_issued(peer):
    conf = write_conf("mtls", peer.url, *mtls())
    rc, out, err, key = request(conf, "alice")
    check(rc == 0 and out and out["rollout_state"] == "enrolled",
          "pkcs10enroll 201: the token is enrolled", (rc, out, err))
    check(out is not None and verify(out.get("cert_pem") or ""),
          "the certificate verifies with openssl against the CA", out)
    auths = [r["auth"] for r in peer.requests() if r["path"].endswith("pkcs10enroll")]
    check(auths and auths[-1] == "cert", "EJBCA saw our client certificate", auths)
    rc, out, err = oe(conf, "ca", "check", "ejbca")
    check(rc == 0 and "authenticated" in out and "ManagementCA" in out,
          "ca check: reachable, authenticated, the CA is there", out + err)
    return conf


def test_keepalive(peer, conf):
    """Consecutive requests of one process share a connection."""
    before = len(peer.requests())
    rc, out, err = oe(conf, "ca", "check", "ejbca")   # two calls: status, ca
    calls = peer.requests()[before:]
    check(rc == 0 and len(calls) == 2 and calls[0]["peer"] == calls[1]["peer"],
          "keep_alive: two calls of one command over one connection", calls)
    conf2 = write_conf("fresh", peer.url, *mtls(), "keep_alive = no")
    before = len(peer.requests())
    rc, out, err = oe(conf2, "ca", "check", "ejbca")
    calls = peer.requests()[before:]
    check(rc == 0 and len(calls) == 2 and calls[0]["peer"] != calls[1]["peer"],
          "keep_alive = no: a fresh connection per call", calls)


def test_double_b64(tls_ca):
    peer = Peer("double", P.server, "--double-b64")
    conf = write_conf("double", peer.url, *mtls())
    rc, out, err, _ = request(conf, "bob")
    check(rc == 0 and out and out["rollout_state"] == "enrolled" and verify(out["cert_pem"]),
          "a doubly base64-encoded certificate is taken", (rc, out, err))
    peer.stop()


def p12_ca_subjects(p12, password):
    r = subprocess.run(["openssl", "pkcs12", "-in", p12, "-nokeys", "-cacerts", "-passin",
                        "pass:" + password], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if line.startswith("subject=")]


def test_chain(peer):
    """The issuer from certificate_chain goes into a PKCS#12 only when it
    issued the certificate."""
    for name, p, want in (("chain-right", peer, ["ManagementCA"]),
                          ("chain-wrong", Peer("wrong-chain", P.server, "--chain-cert",
                                               P.tls_ca.pem), [])):
        conf = write_conf(name, p.url, *mtls())
        p12 = os.path.join(tmp, name + ".p12")
        rc, out, err = oe_json(conf, "cert", "request", "--user", "gail", "--generate",
                               "--out", p12)
        got = p12_ca_subjects(p12, out["pkcs12_password"]) if rc == 0 and out else None
        check(got is not None and len(got) == len(want) and
              all(w in g for w, g in zip(want, got)),
              "%s: the PKCS#12's CA certificates are %s" % (name, want or "none"),
              (rc, err, got))
        if p is not peer:
            p.stop()


def test_utf8_issuer():
    """Revocation names the issuer as EJBCA writes DNs: UTF-8 as it is."""
    ca = pki.make(tmp, "issuing-utf8", "Zertifizierungsstelle Müller", ca=True)
    p = Peer("utf8", P.server, "--ca-cert", ca.pem, "--ca-key", ca.key_pem)
    conf = write_conf("utf8", p.url, *mtls())
    rc, out, err, _ = request(conf, "ulla")
    serial = out["serial"] if rc == 0 and out else None
    rc, out, err = oe(conf, "token", "revoke", serial or "-")
    revokes = [r for r in p.requests() if r["path"].endswith("/revoke") or "/revoke?" in r["path"]]
    check(rc == 0 and revokes and revokes[-1]["status"] == 200,
          "a CA named in UTF-8: the revocation finds it", (rc, err, revokes))
    p.stop()


def test_approval(peer):
    conf = write_conf("approval", peer.url, *mtls(), "end_entity_profile = APPROVAL")
    rc, out, err, _ = request(conf, "carol")
    check(rc == 3 and out and out["rollout_state"] == "pending",
          "202: pending, exit 3", (rc, out, err))
    serial = out["serial"] if out else None
    cookie = db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?", serial)
    check(cookie and '"request_id"' in (cookie[0][0] or ""), "the request id is kept", cookie)
    rid = json.loads(cookie[0][0])["request_id"] if cookie and cookie[0][0] else None
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["outcome"] == "pending",
          "ca poll: finalize answers 202, still pending", (rc, out, err))
    check(peer.control("approve/%s" % rid), "approved at the CA")
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["rollout_state"] == "enrolled",
          "ca poll: finalize answers 201, enrolled", (rc, out, err))
    # A 201 lost on the way: EJBCA says "already finalized"; the token is
    # not denied for it.
    rc2, out2, err2, _ = request(conf, "carol")
    rid2 = json.loads(db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?",
                         out2["serial"])[0][0])["request_id"]
    peer.control("approve/%s" % rid2)
    subprocess.run(["curl", "-sS", "--cacert", P.tls_ca.pem, "--cert", P.admin.pem, "--key",
                    P.admin.key_pem, "-X", "POST", "-H", "Content-Type: application/json",
                    "-d", '{"response_format":"DER"}', peer.url + "/certificate/%s/finalize"
                    % rid2], capture_output=True)
    oe(conf, "ca", "poll")
    st = db(conf, "SELECT rollout_state, status_message FROM tokens WHERE serial = ?",
            out2["serial"])
    check(st and st[0][0] == "pending" and "finalized this request already" in (st[0][1] or ""),
          "a finalize whose 201 was lost: still pending, with what to do, not denied", st)
    oe(conf, "ca", "deny", out2["serial"])
    rc, out, err = oe_json(conf, "cert", "fetch", "--user", "carol", serial)
    check(rc == 0 and out and verify(out.get("cert_pem", "")), "cert fetch: the certificate",
          (rc, out, err))
    ev = db(conf, "SELECT payload FROM outbox WHERE event = 'token_rollout_state'")
    check(any('"old_rollout_state":"pending"' in p[0] and '"rollout_state":"enrolled"' in p[0]
              for p in ev), "token_rollout_state pending -> enrolled is in the outbox", ev)
    # Rejected at the CA: denied.
    rc, out, err, _ = request(conf, "dave")
    rid = json.loads(db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?",
                        out["serial"])[0][0])["request_id"]
    peer.control("reject/%s" % rid)
    rc, out2, err = oe_json(conf, "ca", "poll")
    st = db(conf, "SELECT rollout_state, status_message FROM tokens WHERE serial = ?",
            out["serial"])
    check(st and st[0][0] == "denied" and "rejected" in (st[0][1] or ""),
          "rejected at the CA (finalize 400): denied, with EJBCA's words", st)
    return conf


def test_generated_pending(peer):
    """A key made here waits sealed until EJBCA issues; then the PKCS#12."""
    conf = write_conf("approval", peer.url, *mtls(), "end_entity_profile = APPROVAL")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "erin", "--generate")
    check(rc == 3 and out and out["rollout_state"] == "pending", "--generate: pending",
          (rc, out, err))
    serial = out["serial"]
    rid = json.loads(db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?",
                        serial)[0][0])["request_id"]
    sealed = db(conf, "SELECT secret IS NOT NULL FROM tokens WHERE serial = ?", serial)
    check(sealed == [(1,)], "the generated key is kept, sealed, while pending")
    peer.control("approve/%s" % rid)
    oe(conf, "ca", "poll")
    p12 = os.path.join(tmp, "erin.p12")
    rc, out, err = oe_json(conf, "cert", "fetch", "--user", "erin", serial, "--out", p12)
    ok = rc == 0 and out and out.get("pkcs12_password")
    check(ok, "cert fetch gives the PKCS#12 and its password once", (rc, out, err))
    if ok:
        r = subprocess.run(["openssl", "pkcs12", "-in", p12, "-nokeys", "-passin",
                            "pass:" + out["pkcs12_password"]], capture_output=True, text=True)
        check(r.returncode == 0 and "BEGIN CERTIFICATE" in r.stdout,
              "the PKCS#12 opens with the password shown", r.stderr)
        got = p12_ca_subjects(p12, out["pkcs12_password"])
        check(len(got) == 1 and "ManagementCA" in got[0],
              "the PKCS#12 holds the issuing CA, as one issued at once does", got)


def test_daemon_poller(peer):
    """otpenrolld asks EJBCA in the background; a restart loses nothing."""
    conf = write_conf("approval", peer.url, *mtls(), "end_entity_profile = APPROVAL")
    rc, out, err, _ = request(conf, "frank")
    serial = out["serial"]
    rid = json.loads(db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?",
                        serial)[0][0])["request_id"]
    log = open(os.path.join(tmp, "daemon.log"), "a")
    finalize = "/certificate/%s/finalize" % rid

    def asked():
        return len([r for r in peer.requests() if r["path"].endswith(finalize)])
    before = asked()
    d = subprocess.Popen([OED, "-c", conf], stderr=log)
    # The daemon's poller asks while the request is not approved yet.
    polled = wait_for(lambda: asked() > before, 30)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    check(polled and db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", serial)
          == [("pending",)], "the daemon's poller asked EJBCA; still pending after it stopped",
          (polled, asked()))
    peer.control("approve/%s" % rid)
    d = subprocess.Popen([OED, "-c", conf], stderr=log)
    got = wait_for(lambda: db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?",
                              serial) == [("enrolled",)], 30)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    check(got, "a restarted otpenrolld's poller finalizes it: enrolled")


def test_refusals(peer):
    conf = write_conf("reject", peer.url, *mtls(), "certificate_profile = REJECT")
    rc, out, err, _ = request(conf, "gina")
    check(rc == 1 and "refused" in err and "must match" in err,
          "400: refused with EJBCA's error_message, exit 1", (rc, out, err))
    st = db(conf, "SELECT rollout_state FROM tokens WHERE owner = 'gina'")
    check(st == [("denied",)], "the token is denied", st)

    conf = write_conf("stranger", peer.url, *mtls(p12=P.stranger_p12))
    rc, out, err, _ = request(conf, "hank")
    check(rc != 0 and "credentials" in err and "not an administrator" in err,
          "403: a certificate EJBCA does not map to an administrator is refused",
          (rc, out, err))
    check(db(conf, "SELECT COUNT(*) FROM tokens") == [(0,)], "no token is left behind")
    rc, out, err = oe(conf, "ca", "check", "ejbca")
    check(rc != 0 and "refused our client certificate" in err, "ca check says so", err)

    conf = write_conf("ceapproval", peer.url, *mtls(), "certificate_profile = CEAPPROVAL")
    rc, out, err, _ = request(conf, "hank")
    check(rc != 0 and "approvals are enabled" in err and
          db(conf, "SELECT COUNT(*) FROM tokens") == [(0,)],
          "EJBCA CE's 400 for a profile with approvals: a setup error, no token", err)
    conf = write_conf("plainhttp", peer.url.replace("https://", "http://"), *mtls())
    rc, out, err = oe(conf, "ca", "check", "ejbca")
    check(rc == 2 and "https://" in err, "an http:// EJBCA URL is refused at load", err)

    # Other 4xx and 3xx: not EJBCA's REST API as configured, or not
    # for us; a setup error, not an outage retried for ever.
    for status in ("405", "302"):
        conf = write_conf("http" + status, peer.url, *mtls(),
                          "certificate_profile = HTTP" + status)
        rc, out, err, _ = request(conf, "hank")
        check(rc == 2 and status in err and db(conf, "SELECT COUNT(*) FROM tokens") == [(0,)],
              "HTTP %s: a setup error, naming it; no token" % status, (rc, out, err))

    conf = write_conf("noca", peer.url, *mtls(), "ca_name = NoSuchCA")
    rc, out, err, _ = request(conf, "ivan")
    check(rc != 0 and "does not know" in err, "404: an unknown CA name is a setup error",
          (rc, out, err))
    rc, out, err = oe(conf, "ca", "check", "ejbca")
    check(rc != 0 and "no CA named NoSuchCA" in err, "ca check names the missing CA", err)


def test_credentials(peer):
    conf = write_conf("wrongpass", peer.url, *mtls(pw=P.wrong_pass))
    rc, out, err, _ = request(conf, "judy")
    check(rc != 0 and "does not open" in err and "client_pkcs12" in err,
          "a wrong PKCS#12 password is refused, naming the key", err)
    conf = write_conf("noclient", peer.url, *mtls(p12=P.noclient_p12))
    rc, out, err, _ = request(conf, "judy")
    check(rc != 0 and "clientAuth" in err, "a client certificate without clientAuth is refused",
          err)
    conf = write_conf("legacy", peer.url, *mtls(p12=P.legacy_p12))
    rc, out, err, _ = request(conf, "judy")
    check(rc == 0 and out and out["rollout_state"] == "enrolled",
          "a legacy-encrypted PKCS#12 (RC2/3DES) works", (rc, out, err))
    os.chmod(P.pass_file, 0o644)
    conf = write_conf("mtls", peer.url, *mtls())
    rc, out, err, _ = request(conf, "judy")
    check(rc != 0 and "chmod 600" in err, "a password file others can read is refused", err)
    os.chmod(P.pass_file, 0o600)


def test_oauth(peer):
    conf = write_conf("oauth", peer.url, "ca_file = " + P.both,
                      "oauth_token_url = https://127.0.0.1:%d/oauth/token" % peer.port,
                      "oauth_client_id = otpenroll", "oauth_client_secret_file = " + P.oauth_file,
                      "oauth_scope = ejbca")
    before = len([r for r in peer.requests() if r["path"] == "/oauth/token"])
    rc1, out1, err1, _ = request(conf, "kim")
    rc2, out2, err2, _ = request(conf, "kim")
    tokens = [r for r in peer.requests() if r["path"] == "/oauth/token"][before:]
    enrol = [r for r in peer.requests() if r["path"].endswith("pkcs10enroll")][-2:]
    check(rc1 == 0 and rc2 == 0 and len(enrol) == 2 and all(r["auth"] == "oauth" for r in enrol),
          "OAuth: requests go with a Bearer token", (rc1, err1, rc2, err2, enrol))
    check(len(tokens) == 1, "the token is fetched once and cached across processes", tokens)
    conf = write_conf("oauth-bad", peer.url, "ca_file = " + P.both,
                      "oauth_token_url = https://127.0.0.1:%d/oauth/token" % peer.port,
                      "oauth_client_id = otpenroll", "oauth_client_secret_file = " + P.oauth_wrong)
    rc, out, err, _ = request(conf, "kim")
    check(rc != 0 and "refused client otpenroll" in err and "invalid_client" in err,
          "a wrong client secret: the token endpoint's refusal is shown", err)
    # The secret's file is read when the connector loads: an empty or a
    # missing one is refused before anyone asks for a certificate, and
    # the token endpoint is not called.
    empty = pki.secret_file(tmp, "oauth-empty.secret", "")
    before = len([r for r in peer.requests() if r["path"] == "/oauth/token"])
    for name, path, why in (("empty", empty, "the file is empty"),
                            ("missing", os.path.join(tmp, "nosuch.secret"), "No such file")):
        conf = write_conf("oauth-" + name, peer.url, "ca_file = " + P.both,
                          "oauth_token_url = https://127.0.0.1:%d/oauth/token" % peer.port,
                          "oauth_client_id = otpenroll", "oauth_client_secret_file = " + path)
        rc, out, err = oe(conf, "ca", "check", "ejbca")
        check(rc == 2 and "oauth_client_secret_file" in err and why in err,
              "an OAuth secret file %s: refused when the connector loads" % name, (rc, err))
    check(len([r for r in peer.requests() if r["path"] == "/oauth/token"]) == before,
          "and the token endpoint was not asked")


def test_tls(peer):
    # trusted_ca: the server must be issued by that CA (the trust has both).
    conf = write_conf("trusted", peer.url, *mtls(), "trusted_ca = " + P.tls_ca2.pem)
    rc, out, err, _ = request(conf, "leo")
    check(rc != 0 and "not by trusted_ca" in err and "TLS CA One" in err,
          "a server from another CA is refused while trusted_ca is set", err)
    conf = write_conf("trusted-ok", peer.url, *mtls(), "trusted_ca = " + P.tls_ca.pem,
                      "trusted_serial = " + P.server.serial_hex)
    rc, out, err, _ = request(conf, "leo")
    check(rc == 0, "trusted_ca and the right trusted_serial: accepted", err)
    conf = write_conf("serial", peer.url, *mtls(), "trusted_ca = " + P.tls_ca.pem,
                      "trusted_serial = 0x1234")
    rc, out, err, _ = request(conf, "leo")
    check(rc != 0 and "not trusted_serial 1234" in err, "a wrong trusted_serial is refused", err)
    conf = write_conf("untrusted", peer.url, *mtls(ca_file=P.tls_ca2.pem))
    rc, out, err, _ = request(conf, "leo")
    check(rc != 0 and "TLS" in err, "a server outside ca_file is refused", err)
    old = Peer("tls12", P.server, "--tls-max", "1.2")
    conf = write_conf("tls13", old.url, *mtls(), "tls_min_version = 1.3")
    rc, out, err, _ = request(conf, "leo")
    check(rc != 0 and "TLS" in err and "version" in err.lower(),
          "a server offering only TLS 1.2 is refused with tls_min_version = 1.3", err)
    rc, out, err = oe(conf, "ca", "check", "ejbca")
    check(rc != 0 and "not reachable as configured" in err, "ca check says why", err)
    conf = write_conf("tls12ok", old.url, *mtls(), "tls_ciphers = ECDHE-ECDSA-AES256-GCM-SHA384")
    rc, out, err, _ = request(conf, "leo")
    check(rc == 0, "TLS 1.2 with a tls_ciphers list the server shares: accepted", err)
    conf = write_conf("tls13suites", peer.url, *mtls(), "tls_min_version = 1.3",
                      "tls13_ciphers = TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384")
    rc, out, err, _ = request(conf, "leo")
    check(rc == 0, "TLS 1.3 with a tls13_ciphers list: accepted", err)
    conf = write_conf("bad13", peer.url, *mtls(), "tls13_ciphers = TLS_NO_SUCH_SUITE")
    rc, out, err, _ = request(conf, "leo")
    check(rc == 2 and "tls13_ciphers" in err, "an unusable tls13_ciphers is a configuration error",
          (rc, err))
    conf = write_conf("badciphers", old.url, *mtls(), "tls_ciphers = NO-SUCH-CIPHER")
    rc, out, err, _ = request(conf, "leo")
    check(rc == 2 and "tls_ciphers" in err, "an unusable tls_ciphers is a configuration error",
          (rc, err))
    old.stop()


def test_outage():
    peer = Peer("flaky", P.server)
    conf = write_conf("outage", peer.url, *mtls())
    peer.stop()
    rc, out, err, _ = request(conf, "mia")
    check(rc == 1 and out and out["rollout_state"] == "failed",
          "the server down: failed, exit 1", (rc, out, err))
    serial = out["serial"]
    req, _ = pki.csr(os.path.dirname(conf), "mia-text", "mia")
    rc2, out2, err2 = oe(conf, "cert", "request", "--user", "mia", "--csr", req)
    check(rc2 == 1 and "it is kept and sent again later" in err2,
          "without --json the user is told it is kept", (rc2, err2))
    db(conf, "DELETE FROM tokens WHERE owner = 'mia' AND serial != ?", serial)
    before = int(time.time())
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 1 and out and out[0]["outcome"] == "unreachable",
          "ca poll while down: unreachable, still failed", (rc, out, err))
    att = db(conf, "SELECT poll_attempts, next_poll FROM tokens WHERE serial = ?", serial)
    check(att and att[0][0] >= 1 and att[0][1] >= before + 1,
          "backoff: attempts counted, next poll later", (before, att))
    peer.start()
    # The port changed: the URL is the configuration's.
    conf = write_conf("outage", peer.url, *mtls())
    rc, out, err = oe_json(conf, "ca", "poll")
    st = db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", serial)
    check(st == [("enrolled",)], "back up: the kept request is submitted again and issued",
          (rc, out, err, st))
    ev = db(conf, "SELECT COUNT(*) FROM outbox WHERE event = 'token_rollout_state' AND "
            "payload LIKE '%\"old_rollout_state\":\"failed\"%'")
    check(ev == [(1,)], "token_rollout_state failed -> enrolled fired once", ev)
    peer.stop()

    # The request is recorded before the CA is asked: a process killed
    # while it waits leaves a failed request, submitted again later.
    peer = Peer("slow", P.server)
    conf = write_conf("killed", peer.url, *mtls(), "certificate_profile = SLOW")
    req, _ = pki.csr(os.path.dirname(conf), "quinn", "quinn")
    p = subprocess.Popen([OE, "-c", conf, "cert", "request", "--user", "quinn", "--csr", req],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = lambda: db(conf, "SELECT serial, rollout_state, request IS NOT NULL, claimed_until > "
                      "strftime('%s','now') FROM tokens WHERE owner = 'quinn'")
    seen = wait_for(lambda: len(rows()) == 1, 10)
    p.kill()
    p.wait()
    check(seen and rows()[0][1:] == ("failed", 1, 1),
          "killed while EJBCA answers: the request is there, failed and claimed", rows())
    events = lambda: db(conf, "SELECT event, payload FROM outbox WHERE payload LIKE '%\"quinn\"%'")
    check(events() == [], "nothing announced before the CA answered", events())
    rc, out, err = oe_json(conf, "ca", "poll")
    check(out == [], "a claimed request is not asked about by another process", out)
    db(conf, "UPDATE tokens SET claimed_until = 0 WHERE owner = 'quinn'")
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rows() and rows()[0][1] == "enrolled", "once the claim lapses it is submitted again",
          (out, rows()))
    ev = events()
    check([e for e, _ in ev] == ["token_init"] and json.loads(ev[0][1])["rollout_state"] == "enrolled",
          "the request whose process died is announced once, by token_init with its answer", ev)
    # The same, with the CA out of order when the poller takes it over:
    # announced as failed then, and the certificate's arrival is a change.
    req, _ = pki.csr(os.path.dirname(conf), "rhea", "rhea")
    p = subprocess.Popen([OE, "-c", conf, "cert", "request", "--user", "rhea", "--csr", req],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rhea = lambda: db(conf, "SELECT rollout_state FROM tokens WHERE owner = 'rhea'")
    wait_for(lambda: len(rhea()) == 1, 10)
    p.kill()
    p.wait()
    write_conf("killed", peer.url, *mtls(), "certificate_profile = OFFLINE")
    db(conf, "UPDATE tokens SET claimed_until = 0 WHERE owner = 'rhea'")
    oe_json(conf, "ca", "poll")
    rev = lambda: [(e, json.loads(pl)["rollout_state"], json.loads(pl).get("old_rollout_state"))
                   for e, pl in db(conf, "SELECT event, payload FROM outbox"
                                   " WHERE payload LIKE '%\"rhea\"%' ORDER BY id")]
    check(rhea() == [("failed",)] and rev() == [("token_init", "failed", None)],
          "taken over while the CA is down: announced once, as failed", (rhea(), rev()))
    write_conf("killed", peer.url, *mtls())
    db(conf, "UPDATE tokens SET next_poll = 1 WHERE owner = 'rhea'")
    oe_json(conf, "ca", "poll")
    check(rhea() == [("enrolled",)] and rev() == [("token_init", "failed", None),
                                                 ("token_rollout_state", "enrolled", "failed")],
          "then its certificate comes as failed -> enrolled, no second token_init", (rhea(), rev()))
    peer.stop()

    peer = Peer("offline", P.server)
    conf = write_conf("offline", peer.url, *mtls(), "certificate_profile = OFFLINE")
    rc, out, err, _ = request(conf, "nina")
    check(rc == 1 and out and out["rollout_state"] == "failed" and
          "unavailable" in (out.get("message") or ""),
          "503 (CA offline): failed with EJBCA's words, retryable", (rc, out, err))
    peer.stop()


def test_unrecorded(peer):
    """EJBCA issues and recording the answer here fails (a store error,
    injected by a trigger on the write to enrolled): the certificate is
    kept with the request, and the next poll records it from there.
    EJBCA is not asked again, which would issue a second certificate:
    for the request's own answer (a key made here), for the poller's
    submission of a failed request and for its finalize of an approved
    one.  When even keeping it fails, the error names the token and the
    certificate."""
    conf = write_conf("unrecorded", peer.url, *mtls())
    asked = lambda what: len([r for r in peer.requests() if r["path"].endswith(what)])
    issued = lambda: list(peer.state()["certs"])
    fail = lambda: db(conf, "CREATE TRIGGER no_enrolled BEFORE UPDATE OF rollout_state ON tokens"
                      " WHEN NEW.rollout_state = 'enrolled' BEGIN SELECT RAISE(ABORT, 'injected');"
                      " END")
    heal = lambda: db(conf, "DROP TRIGGER no_enrolled")
    # The failed attempt's claim lapses, as it would 25 minutes later.
    lapse = lambda s: db(conf, "UPDATE tokens SET claimed_until = 0 WHERE serial = ?", s)
    row = lambda s: [(st, (cs or "").lstrip("0")) for st, cs in
                     db(conf, "SELECT rollout_state, cert_serial FROM tokens WHERE serial = ?", s)]

    # The request's own answer; its key was made here.
    n, before = asked("/pkcs10enroll"), issued()
    fail()
    rc, out, err = oe_json(conf, "cert", "request", "--user", "olga", "--generate")
    heal()
    new = [c for c in issued() if c not in before]
    serial = db(conf, "SELECT serial FROM tokens WHERE owner = 'olga'")
    s = serial[0][0] if serial else "-"
    check(rc == 1 and "injected" in err and len(new) == 1 and new[0] in err and
          "kept" in err and asked("/pkcs10enroll") == n + 1 and
          row(s) == [("failed", "")],
          "issued at once, recording it fails: the user is told, the certificate is kept",
          (rc, out, err, new, row(s)))
    lapse(s)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(new and row(s) == [("enrolled", new[0])] and asked("/pkcs10enroll") == n + 1 and
          issued() == before + new,
          "the next poll records the kept certificate, the CA's first; no second submission",
          (rc, out, err, row(s), asked("/pkcs10enroll"), issued()[len(before):]))
    check(db(conf, "SELECT COUNT(*) FROM tokens WHERE serial = ? AND kept_cert IS NULL", s)
          == [(1,)] and db(conf, "SELECT COUNT(*) FROM outbox WHERE event = 'token_init' AND"
                              " payload LIKE '%\"olga\"%'") == [(1,)],
          "and lets it go; the token is announced once", db(conf, "SELECT event FROM outbox"))
    p12 = os.path.join(tmp, "olga.p12")
    rc, out, err = oe_json(conf, "cert", "fetch", "--user", "olga", s, "--out", p12)
    check(rc == 0 and out and out.get("pkcs12_password") and new and
          (out.get("cert_serial") or "").lstrip("0") == new[0] and
          any("ManagementCA" in c for c in p12_ca_subjects(p12, out["pkcs12_password"])),
          "the key made here goes out in a PKCS#12 with it, chained to the issuing CA",
          (rc, out, err))

    # The poller submits a failed request again; EJBCA issues.
    conf = write_conf("unrecorded", peer.url, *mtls(), "certificate_profile = OFFLINE")
    rc, out, err, _ = request(conf, "pia")
    s = out["serial"] if out else "-"
    conf = write_conf("unrecorded", peer.url, *mtls())
    n, before = asked("/pkcs10enroll"), issued()
    fail()
    rc, out, err = oe_json(conf, "ca", "poll")
    heal()
    new = [c for c in issued() if c not in before]
    msg = (out[0].get("message") or "") if out else ""
    check(rc == 1 and out and out[0]["outcome"] == "error" and "injected" in msg and
          len(new) == 1 and new[0] in msg and asked("/pkcs10enroll") == n + 1 and
          row(s) == [("failed", "")],
          "ca poll: submitted, issued, recording it fails: reported, the certificate kept",
          (rc, out, err, new, row(s)))
    lapse(s)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(new and row(s) == [("enrolled", new[0])] and asked("/pkcs10enroll") == n + 1 and
          issued() == before + new,
          "the next poll records it: the CA's first certificate, no second submission",
          (rc, out, err, row(s), asked("/pkcs10enroll"), issued()[len(before):]))

    # An approved request, finalized by the poller.
    conf = write_conf("unrecorded", peer.url, *mtls(), "end_entity_profile = APPROVAL")
    rc, out, err, _ = request(conf, "quin")
    s = out["serial"] if out else "-"
    rid = json.loads(db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?", s)[0][0])["request_id"]
    peer.control("approve/%s" % rid)
    finalize = "/certificate/%s/finalize" % rid
    before = issued()
    fail()
    rc, out, err = oe_json(conf, "ca", "poll")
    heal()
    new = [c for c in issued() if c not in before]
    check(rc == 1 and out and out[0]["outcome"] == "error" and len(new) == 1 and
          asked(finalize) == 1 and row(s) == [("pending", "")],
          "ca poll: finalized, recording it fails: reported, still pending, kept",
          (rc, out, err, new, row(s)))
    rc, out, err = oe(conf, "ca", "deny", s)
    check(rc == 1 and "has issued the certificate already" in err and
          row(s) == [("pending", "")],
          "ca deny of a request whose certificate is kept: refused, still pending", (rc, err))
    rc, out, err = oe(conf, "token", "delete", s)
    check(rc == 1 and "has issued the certificate already" in err and
          row(s) == [("pending", "")],
          "token delete of a request whose certificate is kept: refused, still there", (rc, err))
    lapse(s)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(new and row(s) == [("enrolled", new[0])] and asked(finalize) == 1,
          "the next poll records it without a second finalize", (rc, out, err, row(s)))

    # Keeping it fails too: said, with the token and the certificate.
    conf = write_conf("unrecorded", peer.url, *mtls(), "certificate_profile = OFFLINE")
    rc, out, err, _ = request(conf, "rosa")
    s = out["serial"] if out else "-"
    conf = write_conf("unrecorded", peer.url, *mtls())
    before = issued()
    fail()
    db(conf, "CREATE TRIGGER no_keep BEFORE UPDATE OF kept_cert ON tokens"
       " WHEN NEW.kept_cert IS NOT NULL BEGIN SELECT RAISE(ABORT, 'injected too'); END")
    rc, out, err = oe_json(conf, "ca", "poll")
    heal()
    db(conf, "DROP TRIGGER no_keep")
    new = [c for c in issued() if c not in before]
    msg = (out[0].get("message") or "") if out else ""
    check(rc == 1 and len(new) == 1 and new[0] in msg and s in msg and
          "could not be kept" in msg and "injected too" in msg,
          "the certificate cannot be kept either: the error names the token and its serial",
          (rc, out, err, new))


def test_unwritten_answer(peer):
    """EJBCA answers "still pending" and writing that here fails (a
    trigger on the write of the cookie): the request is rescheduled after
    the backoff and let go at once, not held by the failed poll's claim
    for 25 minutes; then asked again and written."""
    conf = write_conf("unwritten", peer.url, *mtls(), "end_entity_profile = APPROVAL")
    rc, out, err, _ = request(conf, "ruth")
    s = out["serial"] if out else "-"
    check(rc == 3, "pending at EJBCA", (rc, out, err))
    db(conf, "CREATE TRIGGER no_cookie BEFORE UPDATE OF ca_cookie ON tokens"
       " BEGIN SELECT RAISE(ABORT, 'injected pending'); END")
    t0 = int(time.time())
    rc, out, err = oe_json(conf, "ca", "poll")
    db(conf, "DROP TRIGGER no_cookie")
    st = db(conf, "SELECT rollout_state, claimed_until, next_poll, poll_attempts, status_message"
            " FROM tokens WHERE serial = ?", s)
    check(rc == 1 and out and out[0]["outcome"] == "error" and
          "injected pending" in (out[0].get("message") or "") and st and
          st[0][0] == "pending" and st[0][1] == 0 and t0 < st[0][2] <= int(time.time()) + 120 and
          st[0][3] == 1 and "injected pending" in (st[0][4] or ""),
          "writing the answer fails: reported, rescheduled after the backoff, the claim let go",
          (rc, out, err, st))
    rc, out, err = oe_json(conf, "ca", "poll")
    st = db(conf, "SELECT rollout_state, claimed_until, poll_attempts FROM tokens WHERE serial = ?",
            s)
    check(rc == 0 and out and out[0]["outcome"] == "pending" and st == [("pending", 0, 0)],
          "the next poll asks again and writes the answer", (rc, out, err, st))


def test_revoke_and_sync(peer):
    conf = write_conf("sync", peer.url, *mtls())
    rc, out, err, _ = request(conf, "olga")
    s1 = out["serial"]
    rc, out, err, _ = request(conf, "olga")
    s2 = out["serial"]
    cs2 = out["cert_serial"]
    rc, out, err = oe(conf, "token", "revoke", s1, "--reason", "keyCompromise")
    check(rc == 0, "token revoke goes through EJBCA", err)
    rev = [r for r in peer.requests() if "/revoke?" in r["path"]]
    check(rev and rev[-1]["status"] == 200 and "reason=KEY_COMPROMISE" in rev[-1]["path"],
          "PUT .../revoke?reason=KEY_COMPROMISE answered 200", rev[-1:])
    # Revoked at EJBCA, recording it here fails: said so, with what to do;
    # a second revoke records it (EJBCA answers that it is revoked already).
    rc, out, err, _ = request(conf, "olga")
    s6 = out["serial"]
    db(conf, "CREATE TRIGGER no_revoked BEFORE UPDATE OF rollout_state ON tokens"
       " WHEN NEW.rollout_state = 'revoked' BEGIN SELECT RAISE(ABORT, 'injected'); END")
    n = len([r for r in peer.requests() if "/revoke?" in r["path"]])
    rc, out, err = oe(conf, "token", "revoke", s6)
    db(conf, "DROP TRIGGER no_revoked")
    rev = [r for r in peer.requests() if "/revoke?" in r["path"]]
    check(rc == 1 and len(rev) == n + 1 and rev[-1]["status"] == 200 and
          "[ca ejbca] revoked the certificate of token %s, but recording it here failed;"
          " token revoke %s again records it: " % (s6, s6) in err and "injected" in err and
          db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s6) == [("enrolled",)],
          "revoked at EJBCA, recording it fails: the message says so and what to do", (rc, err))
    rc, out, err = oe(conf, "token", "revoke", s6)
    check(rc == 0 and db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s6)
          == [("revoked",)], "token revoke again: recorded", (rc, err))
    # Revoked at the CA directly: sync notices, and only that changes.
    check(peer.control("revoke/" + cs2), "revoked at EJBCA itself")
    rc, out, err = oe_json(conf, "ca", "sync", "ejbca")
    check(rc == 0 and out and any(e["serial"] == s2 and e["outcome"] == "revoked" for e in out),
          "ca sync: the certificate EJBCA revoked is revoked here", (rc, out, err))
    st = db(conf, "SELECT rollout_state, revoke_reason FROM tokens WHERE serial = ?", s2)
    check(st == [("revoked", "keyCompromise")], "with EJBCA's reason", st)
    ev = db(conf, "SELECT COUNT(*) FROM outbox WHERE event = 'token_revoke' AND payload LIKE ?",
            '%' + s2 + '%')
    check(ev == [(1,)], "token_revoke fired for it", ev)
    # otpenrolld does the same on its own schedule ([daemon] sync_interval).
    rc, out, err, _ = request(conf, "olga")
    s3, cs3 = out["serial"], out["cert_serial"]
    peer.control("revoke/" + cs3)
    d = subprocess.Popen([OED, "-c", conf], stderr=open(os.path.join(tmp, "daemon.log"), "a"))
    got = wait_for(lambda: db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s3) ==
                   [("revoked",)], 30)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    check(got, "otpenrolld's scheduled sync revokes it too")
    # Short-lived certificates: reported as expired, nothing changed.
    short = Peer("short", P.server, "--validity-seconds", "2")
    conf = write_conf("expiry", short.url, *mtls())
    rc, out, err, _ = request(conf, "paul")
    time.sleep(3)
    rc, out2, err = oe_json(conf, "ca", "sync", "ejbca")
    check(rc == 0 and out2 and out2[0]["outcome"] == "expired",
          "ca sync lists an expired certificate", (rc, out2, err))
    check(db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", out["serial"]) ==
          [("enrolled",)], "and changes nothing about it")
    short.stop()
    # EJBCA out of reach: not revoked, unless --local says so.
    gone = Peer("gone", P.server)
    conf = write_conf("gone", gone.url, *mtls())
    rc, out, err, _ = request(conf, "olga")
    s4 = out["serial"]
    rc, out, err, _ = request(conf, "olga")
    s5 = out["serial"]
    gone.stop()
    rc, out2, err = oe(conf, "token", "revoke", s4)
    check(rc != 0 and db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s4)
          == [("enrolled",)], "EJBCA unreachable: token revoke fails and changes nothing", err)
    rc, out2, err = oe(conf, "token", "revoke", s4, "--local")
    check(rc == 0 and db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s4)
          == [("revoked",)] and db(conf, "SELECT COUNT(*) FROM audit WHERE action = "
                                   "'token_revoke_here' AND serial = ?", s4) == [(1,)],
          "token revoke --local: revoked here, audited as such", err)
    # The connector itself gone (its plugin uninstalled): --local still
    # revokes here, and the audit says the CA was not told.
    empty = os.path.join(tmp, "no-connectors")
    os.makedirs(empty, exist_ok=True)
    with open(conf) as f:
        text = f.read()
    with open(conf, "w") as f:
        f.write(text.replace("connector_dir = " + CONNECTORS, "connector_dir = " + empty))
    rc, out2, err = oe(conf, "token", "revoke", s5)
    check(rc != 0 and "ejbca-rest" in err, "no connector: token revoke fails, saying which", err)
    rc, out2, err = oe(conf, "token", "revoke", s5, "--local")
    check(rc == 0 and db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s5)
          == [("revoked",)] and db(conf, "SELECT COUNT(*) FROM audit WHERE action = "
                                   "'token_revoke_here' AND serial = ?", s5) == [(1,)],
          "no connector: token revoke --local revokes here, audited as not told", (rc, err))



def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (cert request --user)")
        return 77
    for tool in ("openssl", "curl"):
        if shutil.which(tool) is None:
            print("SKIP: %s missing" % tool)
            return 77
    try:
        make_pki()
        peer = Peer("main", P.server)
        conf = test_issued(peer)
        test_keepalive(peer, conf)
        test_double_b64(P.tls_ca)
        test_chain(peer)
        test_utf8_issuer()
        test_approval(peer)
        test_generated_pending(peer)
        test_daemon_poller(peer)
        test_refusals(peer)
        test_credentials(peer)
        test_oauth(peer)
        test_tls(peer)
        test_outage()
        test_unrecorded(peer)
        test_unwritten_answer(peer)
        test_revoke_and_sync(peer)
    finally:
        for p in peers:
            p.stop()
    if failures:
        for p in peers:
            if os.path.exists(p.log + ".err"):
                print(open(p.log + ".err").read()[-2000:])
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
