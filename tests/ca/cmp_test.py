#!/usr/bin/python3
"""The cmp connector end to end, against OpenSSL's own CMP server
(`openssl cmp -port`) on loopback.

OpenSSL's server answers with a fixed certificate (-rsp_cert), so each
case issues that certificate beforehand for the key the case enrolls.
Shared-secret (PBM) and signature protection; p10cr, cr (raVerified);
a `waiting` server (-poll_count, -check_after) polled to the end by
`ca poll` and by otpenrolld across a restart; rejection (-pkistatus) ->
denied; revocation through rr; `ca check` (genm); a wrong secret and an
unreachable server; a certificate whose recording fails here (kept,
recorded by the next poll without a second p10cr or pollReq).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..")]
import pki  # noqa: E402
from harness import BUILD, check, db, failures, free_port, make_conf, oe, oe_json, wait_for  # noqa: E402

OED = os.path.join(BUILD, "tools", "otpenrolld")
CONNECTORS = os.path.join(BUILD, "lib", "ca", ".libs")
SECRET = "cmp-shared-s3cret"

tmp = tempfile.mkdtemp(prefix="oe-cmp-")
servers = []


class Server:
    """An `openssl cmp -port` process answering with rsp_cert."""

    def __init__(self, name, rsp_cert, *args, port=None):
        self.name = name
        self.port = port or free_port()
        self.log = os.path.join(tmp, name + ".srv.log")
        self.args = ["openssl", "cmp", "-config", "", "-port", str(self.port),
                     "-rsp_cert", rsp_cert, "-verbosity", "7"] + list(args)
        self.proc = subprocess.Popen(self.args, stdout=open(self.log, "a"),
                                     stderr=subprocess.STDOUT)
        servers.append(self)
        if not wait_for(self.listening, 10):
            raise RuntimeError("openssl cmp server %s did not start" % name)

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 0.2).close()
            return True
        except OSError:
            return False

    def received(self):
        return [line.split("received ")[1].strip() for line in open(self.log)
                if "CMP DEBUG: received " in line]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def url(self):
        return "http://127.0.0.1:%d/pkix/" % self.port


def pbm_server(name, rsp_cert, *args, port=None):
    """A server that protects its messages with the shared secret."""
    return Server(name, rsp_cert, "-srv_secret", "pass:" + SECRET, "-srv_ref", "srv", *args,
                  port=port)


def pbm(secret_file=None):
    return ("secret_file = " + (secret_file or P.secret), "reference = otpenroll",
            "recipient = /CN=CMP Test CA/O=Test")


class Pki:
    pass


P = Pki()


def make_pki():
    P.ca = pki.make(tmp, "cmpca", "CMP Test CA", ca=True)
    P.srv = pki.make(tmp, "cmpsrv", "CMP Server", issuer=P.ca, client=False)
    P.ra = pki.make(tmp, "ra", "otpenroll RA", issuer=P.ca)
    P.ra_noclient = pki.make(tmp, "ra2", "otpenroll RA 2", issuer=P.ca, client=False,
                             server=True)
    P.secret = pki.secret_file(tmp, "cmp.secret", SECRET)
    P.wrong = pki.secret_file(tmp, "wrong.secret", "not-the-secret")


def user_cert(name, cn, subj=None):
    """A user's CSR, and the certificate the server will answer with.  The
    subject is the [ca] template's for cn (RFC 4514 CN=cn,O=Test is
    /O=Test/CN=cn in encoding order), as p10cr forwards the CSR."""
    req, key = pki.csr(tmp, name, cn, subj or "/O=Test/CN=" + cn)
    ext = os.path.join(tmp, name + ".ext")
    with open(ext, "w") as f:
        f.write("keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    cert = os.path.join(tmp, name + ".pem")
    subprocess.run(["openssl", "x509", "-req", "-in", req, "-CA", P.ca.pem, "-CAkey",
                    P.ca.key_pem, "-CAcreateserial", "-days", "30", "-extfile", ext,
                    "-out", cert], check=True, capture_output=True)
    return req, cert


def write_conf(name, url, *ca_lines, command="p10cr"):
    d = os.path.join(tmp, name)
    return make_conf(d, """[enroll]
default_ca = cmp
connector_dir = {c}
max_tokens_per_user = 50
[daemon]
socket = {d}/oe.sock
poll_interval = 1
[ca cmp]
type = cmp
url = {u}
command = {cmd}
subject = CN={{user}},O=Test
timeout = 10
""".format(d=d, c=CONNECTORS, u=url, cmd=command) + "".join(line + "\n" for line in ca_lines))


def same_cert(pem_text, path):
    a = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"],
                       input=pem_text, capture_output=True, text=True).stdout
    b = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", path],
                       capture_output=True, text=True).stdout
    return a and a == b


def test_p10cr():
    req, cert = user_cert("alice", "alice")
    srv = pbm_server("p10cr", cert)
    conf = write_conf("p10cr", srv.url, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "alice", "--csr", req)
    check(rc == 0 and out and out["rollout_state"] == "enrolled" and
          same_cert(out.get("cert_pem", ""), cert),
          "p10cr with a shared secret: issued", (rc, out, err))
    check(srv.received()[:2] == ["P10CR", "CERTCONF"], "p10cr, then certConf",
          srv.received())
    rc, out, err = oe(conf, "ca", "check", "cmp")
    check(rc == 0 and "verifies" in out, "ca check: a genm answered and verified", out + err)
    # p10cr passes the CSR on as it is: it may ask only for what the
    # template gives.
    other, _ = pki.csr(tmp, "alice-admin", "admin", "/O=Test/CN=admin")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "alice", "--csr", other)
    check(rc == 1 and "subject must be CN=alice,O=Test" in err,
          "p10cr: a CSR for another subject is refused before it reaches the CA", err)
    ext, _ = pki.csr(tmp, "alice-san", "alice", "/O=Test/CN=alice",
                     "subjectAltName=DNS:www.example.com")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "alice", "--csr", ext)
    check(rc == 1 and "must not ask for extensions" in err,
          "p10cr: a CSR asking for extensions is refused", err)
    plain, key = pki.csr(tmp, "alice-unreadable", "alice", "/O=Test/CN=alice")
    unreadable = os.path.join(tmp, "alice-unreadable.der")
    subprocess.run([sys.executable, os.path.join(HERE, "..", "cert", "crafted_csr.py"),
                    "ext-unreadable", plain, key, unreadable], check=True)
    rc, out, err = oe_json(conf, "cert", "request", "--user", "alice", "--csr", unreadable)
    check(rc == 1 and "extension request does not parse" in err,
          "p10cr: a CSR whose extension request does not parse is refused", err)
    check(srv.received().count("P10CR") == 1, "neither reached the server", srv.received())
    srv.stop()
    return conf


def test_cr():
    req, cert = user_cert("bob", "bob")
    srv = pbm_server("cr", cert, "-accept_raverified")
    conf = write_conf("cr", srv.url, *pbm(), command="cr")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "bob", "--csr", req)
    check(rc == 0 and out and out["rollout_state"] == "enrolled",
          "cr with the CSR's key, raVerified: issued", (rc, out, err))
    srv.stop()
    req2, cert2 = user_cert("bob2", "bob2")
    srv = pbm_server("ir", cert2, "-accept_raverified")
    conf = write_conf("ir", srv.url, *pbm(), command="ir")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "bob", "--csr", req2)
    check(rc == 0 and out and out["rollout_state"] == "enrolled" and srv.received()[0] == "IR",
          "ir: issued", (rc, out, err, srv.received()))
    srv.stop()
    # A server that does not take our word for it says so.
    srv = pbm_server("cr-strict", cert)
    conf = write_conf("cr-strict", srv.url, *pbm(), command="cr")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "bob", "--csr", req)
    check(rc == 1 and "raverified not accepted" in err and
          db(conf, "SELECT rollout_state FROM tokens WHERE owner = 'bob'") == [("denied",)],
          "a server refusing raVerified: denied, with its words", (rc, out, err))
    srv.stop()


def test_signature():
    req, cert = user_cert("carol", "carol")
    srv = Server("sig", cert, "-srv_cert", P.srv.pem, "-srv_key", P.srv.key_pem,
                 "-srv_trusted", P.ca.pem, "-poll_count", "2", "-check_after", "1")
    conf = write_conf("sig", srv.url, "client_cert = " + P.ra.pem,
                      "client_key = " + P.ra.key_pem, "trusted = " + P.ca.pem,
                      "recipient = /CN=CMP Server/O=Test")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "carol", "--csr", req)
    check(rc == 3 and out and out["rollout_state"] == "pending",
          "signature protection; the server says waiting: pending", (rc, out, err))
    time.sleep(1.2)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["rollout_state"] == "enrolled",
          "a pollRep verified by signature, then issued", (rc, out, err))
    serial = out[0]["serial"] if out else None
    rc, out, err = oe(conf, "token", "revoke", serial or "-", "--reason", "superseded")
    check(rc == 0 and "RR" in srv.received(), "token revoke sends an rr", (rc, err))
    srv.stop()
    conf = write_conf("sig-noclient", "http://127.0.0.1:1/pkix/",
                      "client_cert = " + P.ra_noclient.pem, "client_key = " + P.ra_noclient.key_pem,
                      "trusted = " + P.ca.pem)
    rc, out, err = oe(conf, "ca", "check", "cmp")
    check(rc != 0 and "clientAuth" in err and "client_cert" in err,
          "a client certificate without clientAuth is refused at load", err)
    # Files that hold no PEM certificate, and a key file without a key.
    junk = os.path.join(tmp, "junk.pem")
    with open(junk, "w") as f:
        f.write("not a certificate\n")
    for name, lines, key in (
            ("trusted", ("client_cert = " + P.ra.pem, "client_key = " + P.ra.key_pem,
                         "trusted = " + junk), "trusted"),
            ("client_cert", ("client_cert = " + junk, "client_key = " + P.ra.key_pem,
                             "trusted = " + P.ca.pem), "client_cert"),
            ("ca_file", ("ca_file = " + junk,) + pbm(), "ca_file")):
        # ca_file is read for an https:// server only.
        conf = write_conf("junk-" + name, "http%s://127.0.0.1:1/pkix/"
                          % ("s" if name == "ca_file" else ""), *lines)
        rc, out, err = oe(conf, "ca", "check", "cmp")
        check(rc == 2 and "[ca cmp] %s" % key in err and "junk.pem holds no PEM certificate" in err,
              "a %s file without a certificate: refused at load, naming it" % name, (rc, err))
    # Both protections set: which one was meant is not guessed.
    conf = write_conf("both-protections", "http://127.0.0.1:1/pkix/", *pbm(),
                      "client_cert = " + P.ra.pem, "client_key = " + P.ra.key_pem,
                      "trusted = " + P.ca.pem)
    rc, out, err = oe(conf, "ca", "check", "cmp")
    check(rc == 2 and "secret_file" in err and "client_cert" in err,
          "secret_file and client_cert both set: refused at load, naming both", (rc, err))
    nokey = pki.secret_file(tmp, "nokey.pem", open(P.ra.pem).read())
    conf = write_conf("junk-key", "http://127.0.0.1:1/pkix/", "client_cert = " + P.ra.pem,
                      "client_key = " + nokey, "trusted = " + P.ca.pem)
    rc, out, err = oe(conf, "ca", "check", "cmp")
    check(rc == 2 and "holds no unencrypted PEM private key" in err,
          "a client_key file without a key: refused at load", (rc, err))


def test_polling():
    req, cert = user_cert("dave", "dave")
    srv = pbm_server("poll", cert, "-poll_count", "3", "-check_after", "1")
    conf = write_conf("poll", srv.url, *pbm())
    before = int(time.time())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "dave", "--csr", req)
    after = int(time.time()) + 1
    check(rc == 3 and out and out["rollout_state"] == "pending", "waiting: pending, exit 3",
          (rc, out, err))
    serial = out["serial"]
    cookie = json.loads(db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?", serial)[0][0])
    check(set(cookie) == {"v", "tid", "nonce", "cmd"} and cookie["cmd"] == "p10cr",
          "the transaction's state (tid, nonce, command) is kept", cookie)
    nxt = db(conf, "SELECT next_poll FROM tokens WHERE serial = ?", serial)[0][0]
    check(before + 1 <= nxt <= after + 1, "checkAfter (1 s) sets the next poll",
          (before, nxt, after))
    # Polling state that does not parse: the CA is not asked, the
    # request stays pending and the message says why.
    damaged = [dict(cookie, tid="ZZ"), dict(cookie, tid="ABC"), dict(cookie, tid=""),
               dict(cookie, nonce="0G"), dict(cookie, cmd="kur"),
               {k: v for k, v in cookie.items() if k != "cmd"}, dict(cookie, v=2),
               dict(cookie, tid=7), "not json"]
    for bad in damaged:
        text = bad if isinstance(bad, str) else json.dumps(bad)
        db(conf, "UPDATE tokens SET ca_cookie = ? WHERE serial = ?", text, serial)
        rc, out, err = oe_json(conf, "ca", "poll")
        check(rc == 1 and out and out[0]["rollout_state"] == "pending" and
              "polling state is damaged" in (out[0].get("message") or ""),
              "damaged polling state %s: not asked, still pending" % text, (rc, out, err))
    db(conf, "UPDATE tokens SET ca_cookie = ? WHERE serial = ?", json.dumps(cookie), serial)
    time.sleep(1.2)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["outcome"] == "pending",
          "a new process resumes the transaction: pollRep", (rc, out, err))
    time.sleep(1.2)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["rollout_state"] == "enrolled",
          "the next pollReq gets the certificate", (rc, out, err))
    check(srv.received() == ["P10CR", "POLLREQ", "POLLREQ", "POLLREQ", "CERTCONF"],
          "the server saw one transaction: p10cr, three pollReq, certConf", srv.received())
    srv.stop()


def test_lost_answer():
    """An answer lost on the way (here: the saved nonce put back) makes
    the server end the transaction; the request is submitted anew, not
    polled in vain forever."""
    req, cert = user_cert("hank", "hank")
    srv = pbm_server("lost", cert, "-poll_count", "3", "-check_after", "1")
    conf = write_conf("lost", srv.url, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "hank", "--csr", req)
    serial = out["serial"]
    before = db(conf, "SELECT ca_cookie FROM tokens WHERE serial = ?", serial)[0][0]
    time.sleep(1.1)
    oe(conf, "ca", "poll")
    db(conf, "UPDATE tokens SET ca_cookie = ? WHERE serial = ?", before, serial)
    time.sleep(1.1)
    rc, out, err = oe_json(conf, "ca", "poll")
    st = db(conf, "SELECT rollout_state, ca_cookie FROM tokens WHERE serial = ?", serial)
    check(out and st == [("failed", None)] and "ended the transaction" in out[0]["message"],
          "the server ends the transaction: failed, to be submitted again", (out, st))
    got = False
    for _ in range(8):
        time.sleep(1.1)
        oe(conf, "ca", "poll")
        if db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", serial) == [("enrolled",)]:
            got = True
            break
    check(got, "submitted again in a new transaction, polled to the end: enrolled",
          srv.received())
    srv.stop()


def test_check_after_big():
    """A checkAfter of years (100000000 s) is taken as at most a day, on
    the request and on a poll alike; the transaction goes on, not
    started again."""
    req, cert = user_cert("jack", "jack")
    srv = pbm_server("late", cert, "-poll_count", "3", "-check_after", "100000000")
    conf = write_conf("late", srv.url, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "jack", "--csr", req)
    serial = out["serial"] if out else None
    row = lambda: db(conf, "SELECT rollout_state, next_poll, ca_cookie FROM tokens"
                     " WHERE serial = ?", serial)
    first = row()
    check(rc == 3 and first and first[0][0] == "pending" and
          first[0][1] <= time.time() + 86400 + 5,
          "waiting with checkAfter 100000000: pending, asked again within a day",
          (rc, out, err, first))
    rc, out, err = oe_json(conf, "ca", "poll")
    second = row()
    check(rc == 0 and out and out[0]["outcome"] == "pending" and second and
          second[0][1] <= time.time() + 86400 + 5 and second[0][2] != first[0][2],
          "a pollRep with checkAfter 100000000: still pending, its nonce kept, within a day",
          (rc, out, err, second))
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["rollout_state"] == "enrolled",
          "the next pollReq gets the certificate", (rc, out, err))
    check(srv.received() == ["P10CR", "POLLREQ", "POLLREQ", "POLLREQ", "CERTCONF"],
          "one transaction throughout", srv.received())
    srv.stop()


def test_other_key():
    """A certificate for another key: OpenSSL's client refuses it in its
    certConf.  That is no answer, as another key is from any CA, not
    the server's refusal: failed, to be asked again."""
    _, cert = user_cert("kate-other", "kate")
    req, _ = pki.csr(tmp, "kate", "kate", "/O=Test/CN=kate")
    srv = pbm_server("otherkey", cert)
    conf = write_conf("otherkey", srv.url, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "kate", "--csr", req)
    st = db(conf, "SELECT rollout_state, status_message FROM tokens WHERE owner = 'kate'")
    check(rc == 1 and out and out["rollout_state"] == "failed" and st and
          st[0][0] == "failed" and "another key" in (st[0][1] or ""),
          "a certificate for another key: failed, not denied, and said so", (rc, out, err, st))
    check(srv.received()[:2] == ["P10CR", "CERTCONF"], "our certConf refused it",
          srv.received())
    rc, out, err = oe_json(conf, "ca", "poll")
    check(out and out[0]["rollout_state"] == "failed" and out[0]["outcome"] == "unreachable",
          "submitted again by ca poll: the same, still failed", (rc, out, err))
    srv.stop()


def test_unrecorded():
    """The server issues and recording the answer here fails (a store
    error, injected by a trigger on the write to enrolled): the
    certificate is kept with the request and the next poll records it
    from there, without a second p10cr (a second certificate) or a
    pollReq into the transaction the certConf closed."""
    req, cert = user_cert("lena", "lena")
    srv = pbm_server("unrecorded", cert, "-poll_count", "3", "-check_after", "1")
    conf = write_conf("unrecorded", srv.url, *pbm())
    fail = lambda: db(conf, "CREATE TRIGGER no_enrolled BEFORE UPDATE OF rollout_state ON tokens"
                      " WHEN NEW.rollout_state = 'enrolled' BEGIN SELECT RAISE(ABORT, 'injected');"
                      " END")
    heal = lambda: db(conf, "DROP TRIGGER no_enrolled")
    # The failed attempt's claim lapses, as it would 25 minutes later.
    lapse = lambda s: db(conf, "UPDATE tokens SET claimed_until = 0 WHERE serial = ?", s)
    state = lambda s: db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", s)
    rc, out, err = oe_json(conf, "cert", "request", "--user", "lena", "--csr", req)
    s = out["serial"] if out else "-"
    fail()
    for _ in range(8):
        time.sleep(1.1)
        rc, out, err = oe_json(conf, "ca", "poll")
        if not out or out[0]["outcome"] != "pending":
            break
    heal()
    seen = srv.received()
    check(rc == 1 and out and out[0]["outcome"] == "error" and "injected" in out[0]["message"]
          and "kept" in out[0]["message"] and state(s) == [("pending",)] and
          seen[0] == "P10CR" and seen[-1] == "CERTCONF" and seen.count("P10CR") == 1,
          "a pollReq gets the certificate, recording it fails: reported, kept",
          (rc, out, err, state(s), seen))
    lapse(s)
    rc, out, err = oe_json(conf, "ca", "poll")
    got = db(conf, "SELECT rollout_state, cert FROM tokens WHERE serial = ?", s)
    check(got and got[0][0] == "enrolled" and same_cert(got[0][1] or "", cert) and
          srv.received() == seen,
          "the next poll records the kept certificate; the server is not asked again",
          (rc, out, err, got and got[0][0], srv.received()))
    srv.stop()

    # A failed request submitted again by the poller.
    req, cert = user_cert("lena2", "lena")
    port = free_port()
    conf = write_conf("unrecorded", "http://127.0.0.1:%d/pkix/" % port, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "lena", "--csr", req)
    s = out["serial"] if out else "-"
    srv = pbm_server("unrecorded2", cert, port=port)
    fail()
    rc, out, err = oe_json(conf, "ca", "poll")
    heal()
    check(rc == 1 and out and out[0]["outcome"] == "error" and "kept" in out[0]["message"] and
          state(s) == [("failed",)] and srv.received() == ["P10CR", "CERTCONF"],
          "submitted by ca poll, issued, recording it fails: reported, kept",
          (rc, out, err, state(s), srv.received()))
    lapse(s)
    rc, out, err = oe_json(conf, "ca", "poll")
    got = db(conf, "SELECT rollout_state, cert FROM tokens WHERE serial = ?", s)
    check(got and got[0][0] == "enrolled" and same_cert(got[0][1] or "", cert) and
          srv.received() == ["P10CR", "CERTCONF"],
          "the next poll records it: no second p10cr", (rc, out, err, srv.received()))
    srv.stop()


def test_backlog():
    """More waiting requests than one batch (OE_CA_POLL_BATCH, 256):
    `ca poll` asks every remote one, however many wait for a local CA's
    approval (nothing to ask there)."""
    req, cert = user_cert("ivy", "ivy")
    srv = pbm_server("backlog", cert, "-poll_count", "3", "-check_after", "1")
    d = os.path.join(tmp, "backlog")
    conf = write_conf("backlog", srv.url, *pbm(), "[ca local]", "type = local",
                      "dir = " + os.path.join(d, "ca"), "approval = manual",
                      "[ca down]", "type = cmp",
                      "url = http://127.0.0.1:%d/pkix/" % free_port(), "command = p10cr",
                      *pbm())
    rc, out, err = oe(conf, "ca", "init", "local", "--subject", "/CN=Local CA/O=Test")
    check(rc == 0, "a local CA", err)
    rc, out, err = oe_json(conf, "cert", "request", "--user", "ivy", "--csr", req)
    remote = out["serial"] if rc == 3 and out else None
    local_req, _ = pki.csr(tmp, "ivy-local", "ivy", "/O=Test/CN=ivy")
    rc, out, err = oe_json(conf, "cert", "request", "--user", "ivy", "--ca", "local", "--csr",
                           local_req)
    local = out["serial"] if rc == 3 and out else None
    check(remote and local, "one request pending at the CMP server, one at the local CA",
          (rc, out, err))
    copies = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)"
              " INSERT INTO tokens (serial, type, owner, rollout_state, ca, subject, request,"
              " ca_cookie, next_poll, created, updated)"
              " SELECT printf('%s%03d', ?, i), 'certificate', owner, 'pending', ?, subject,"
              " request, ca_cookie, ?, created, updated FROM n, tokens WHERE serial = ?")
    # 300 waiting for `ca approve` (next_poll 0), 300 at a CA that does
    # not answer, due long ago: both ahead of the CMP request.
    db(conf, copies, "AAL", "local", 0, local)
    db(conf, copies, "AAD", "down", 1, remote)
    rc, out, err = oe_json(conf, "ca", "poll")
    asked = [e["serial"] for e in out] if out else []
    check(len(asked) == 301 and remote in asked and
          not any(e["ca"] == "local" for e in out),
          "ca poll asks all 301 remote requests, none of the 301 local ones",
          (rc, len(asked), err))
    check(srv.received().count("POLLREQ") == 2, "the CMP server was asked", srv.received())
    rc, out, err = oe(conf, "ca", "poll")
    check("301 request(s) asked about" in out, "and says how many", (rc, out, err))
    srv.stop()


def test_daemon_restart():
    req, cert = user_cert("erin", "erin")
    srv = pbm_server("restart", cert, "-poll_count", "5", "-check_after", "1")
    conf = write_conf("restart", srv.url, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "erin", "--csr", req)
    serial = out["serial"] if out else None
    log = open(os.path.join(tmp, "daemon.log"), "a")
    d = subprocess.Popen([OED, "-c", conf], stderr=log)
    polled = wait_for(lambda: srv.received().count("POLLREQ") >= 3, 20)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    check(polled and db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?", serial)
          == [("pending",)], "otpenrolld polls in the background; stopped while pending",
          srv.received())
    d = subprocess.Popen([OED, "-c", conf], stderr=log)
    got = wait_for(lambda: db(conf, "SELECT rollout_state FROM tokens WHERE serial = ?",
                              serial) == [("enrolled",)], 30)
    d.send_signal(signal.SIGTERM)
    d.wait(30)
    check(got, "restarted, it resumes the same transaction and the certificate arrives",
          srv.received())
    check(srv.received()[-1] == "CERTCONF" and srv.received().count("P10CR") == 1,
          "one request, confirmed once", srv.received())
    srv.stop()


def test_rejection():
    req, cert = user_cert("frank", "frank")
    srv = pbm_server("reject", cert, "-pkistatus", "2", "-failure", "2",
                     "-statusstring", "denied by policy")
    conf = write_conf("reject", srv.url, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "frank", "--csr", req)
    check(rc == 1 and "rejected" in err and
          db(conf, "SELECT rollout_state FROM tokens WHERE owner = 'frank'") == [("denied",)],
          "-pkistatus rejection: denied, exit 1", (rc, out, err))
    msg = db(conf, "SELECT status_message FROM tokens WHERE owner = 'frank'")
    check(msg and "denied by policy" in (msg[0][0] or ""), "with the server's status string", msg)
    srv.stop()


def test_generated_key():
    """A key made on our side (--generate) through CMP, end to end: the
    request the CA did not get is kept with its CSR; the certificate the
    server then answers with is issued for that CSR's key (read back
    from the store, as OpenSSL's server answers only with a certificate
    fixed beforehand); the poller submits it, and the PKCS#12 built when
    the certificate arrives opens with the password shown, holding the
    key the certificate is for."""
    port = free_port()
    conf = write_conf("generate", "http://127.0.0.1:%d/pkix/" % port, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "hana", "--generate")
    check(rc == 1 and out and out["rollout_state"] == "failed" and "pkcs12_password" not in out,
          "--generate with the CMP server down: failed, kept, no PKCS#12 yet", (rc, out, err))
    serial = out["serial"] if out else ""
    rows = db(conf, "SELECT request FROM tokens WHERE serial = ?", serial)
    req = os.path.join(tmp, "hana-generated.csr")
    with open(req, "w") as f:
        f.write(rows[0][0] if rows and rows[0][0] else "")
    ext = os.path.join(tmp, "hana.ext")
    with open(ext, "w") as f:
        f.write("keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n")
    cert = os.path.join(tmp, "hana-generated.pem")
    r = subprocess.run(["openssl", "x509", "-req", "-in", req, "-CA", P.ca.pem, "-CAkey",
                        P.ca.key_pem, "-CAcreateserial", "-days", "30", "-extfile", ext,
                        "-out", cert], capture_output=True, text=True)
    check(r.returncode == 0, "the kept request is a CSR the CA can sign", r.stderr)
    srv = pbm_server("generate", cert, port=port)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["rollout_state"] == "enrolled"
          and srv.received()[:2] == ["P10CR", "CERTCONF"],
          "the poller submits the generated key's request: issued", (rc, out, err, srv.received()))
    p12 = os.path.join(tmp, "hana.p12")
    rc, out, err = oe_json(conf, "cert", "fetch", serial, "--user", "hana", "--out", p12)
    pw = out.get("pkcs12_password", "") if out else ""
    check(rc == 0 and pw and os.stat(p12).st_mode & 0o777 == 0o600,
          "fetch: the PKCS#12, 0600, with its password", (rc, out, err))
    keypem = subprocess.run(["openssl", "pkcs12", "-in", p12, "-passin", "pass:" + pw,
                             "-nocerts", "-nodes"], capture_output=True, text=True)
    certpem = subprocess.run(["openssl", "pkcs12", "-in", p12, "-passin", "pass:" + pw,
                              "-clcerts", "-nokeys"], capture_output=True, text=True)
    pub_key = subprocess.run(["openssl", "pkey", "-pubout"], input=keypem.stdout,
                             capture_output=True, text=True).stdout
    pub_cert = subprocess.run(["openssl", "x509", "-noout", "-pubkey"], input=certpem.stdout,
                              capture_output=True, text=True).stdout
    check(keypem.returncode == 0 and pub_key and pub_key == pub_cert
          and same_cert(certpem.stdout, cert),
          "the PKCS#12 holds the CA's certificate and the key it is for",
          (keypem.stderr, certpem.stderr))
    check(db(conf, "SELECT secret IS NULL FROM tokens WHERE serial = ?", serial) == [(1,)],
          "the key is let go once the PKCS#12 was fetched")
    srv.stop()


def test_failures():
    req, cert = user_cert("gina", "gina")
    srv = pbm_server("wrong", cert)
    conf = write_conf("wrong", srv.url, *pbm(P.wrong))
    rc, out, err = oe_json(conf, "cert", "request", "--user", "gina", "--csr", req)
    check(rc != 0 and db(conf, "SELECT COUNT(*) FROM tokens") == [(0,)],
          "a wrong shared secret: refused, no token", (rc, out, err))
    check("protection" in err.lower(), "the message points at the protection", err)
    srv.stop()
    port = free_port()
    conf = write_conf("down", "http://127.0.0.1:%d/pkix/" % port, *pbm())
    rc, out, err = oe_json(conf, "cert", "request", "--user", "gina", "--csr", req)
    check(rc == 1 and out and out["rollout_state"] == "failed",
          "the server down: failed, kept", (rc, out, err))
    srv = pbm_server("up-again", cert, port=port)
    rc, out, err = oe_json(conf, "ca", "poll")
    check(rc == 0 and out and out[0]["rollout_state"] == "enrolled",
          "back up: submitted again and issued", (rc, out, err))
    srv.stop()
    rc, out, err = oe(conf, "ca", "sync", "cmp")
    check(rc == 1 and "cannot be asked" in err, "ca sync: CMP has no status query, said plainly",
          err)

    # The shared secret's file: missing, readable by others, reached
    # through a symbolic link; each refused when the connector opens,
    # naming the key, the file and what to do.
    loose = pki.secret_file(tmp, "loose.secret", SECRET)
    os.chmod(loose, 0o644)
    link = os.path.join(tmp, "link.secret")
    os.symlink(P.secret, link)
    fifo = os.path.join(tmp, "fifo.secret")
    os.mkfifo(fifo, 0o600)
    for name, path, want, why in (
            ("fifo", fifo, 2, "is not a regular file"),
            ("missing", os.path.join(tmp, "nosuch.secret"), 2, "No such file or directory"),
            ("loose", loose, 1, "is accessible by group or others; chmod 600 it"),
            ("link", link, 2, "Too many levels of symbolic links")):
        conf = write_conf("secret-" + name, "http://127.0.0.1:%d/pkix/" % port, *pbm(path))
        rc, out, err = oe(conf, "ca", "check", "cmp", timeout=60)
        check(rc == want and "[ca cmp] secret_file" in err and path in err and why in err,
              "a secret file %s: refused with where and why" % name, (rc, err))


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root (cert request --user)")
        return 77
    if shutil.which("openssl") is None:
        print("SKIP: openssl missing")
        return 77
    try:
        make_pki()
        test_p10cr()
        test_cr()
        test_signature()
        test_polling()
        test_lost_answer()
        test_check_after_big()
        test_other_key()
        test_unrecorded()
        test_backlog()
        test_daemon_restart()
        test_rejection()
        test_generated_key()
        test_failures()
    finally:
        for s in servers:
            s.stop()
    if failures:
        for s in servers:
            print("--- %s\n%s" % (s.name, open(s.log).read()[-1500:]))
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
