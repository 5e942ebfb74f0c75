#!/usr/bin/env python3
"""End-to-end tests of otpenrolld over its Unix socket.

Starts the built daemon on a temporary store with a local CA, under
pam_wrapper so the OTP check runs the built pam_otpenroll.so, and talks
to it as root and as a real non-root user (created when missing), with
well-formed and malformed requests.  Needs root (to create the user and
to run clients under other uids); skips otherwise.
"""
import base64
import contextlib
import fcntl
import json
import os
import pty
import pwd
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import pam_wrapper_lock  # noqa: E402

TOP_BUILD = os.environ.get("top_builddir", os.getcwd())
# Where libpam finds its modules (configure found it).
PERMIT = os.path.join(os.environ.get("OE_PAM_MODDIR") or "/lib/x86_64-linux-gnu/security",
                      "pam_permit.so")
TEST_USER = "oe-test-user"
OTHER_USER = "oe-test-other"
ADMIN_GROUP = "oe-test-admins"
HOTP_KEY = "3132333435363738393031323334353637383930"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def frame(obj):
    body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    return struct.pack(">I", len(body)) + body


def recv_msg(s):
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (n,) = struct.unpack(">I", hdr)
    body = b""
    while len(body) < n:
        chunk = s.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return json.loads(body)


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    return s


def call(path, req, otp=None):
    """One request; answers an OTP prompt with otp if given."""
    s = connect(path)
    try:
        try:
            s.sendall(frame(req))
        except (BrokenPipeError, ConnectionResetError):
            # A daemon that refuses at once (busy) has answered already.
            pass
        reply = recv_msg(s)
        if reply and reply.get("status") == "otp_required":
            if otp is None:
                return reply
            s.sendall(frame({"v": 1, "op": "otp", "code": otp}))
            reply = recv_msg(s)
        return reply
    finally:
        s.close()


def as_user(user, fn):
    """Run fn() in a child process under user's uid; return its result."""
    pw = pwd.getpwnam(user)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            out = json.dumps(fn())
        except Exception as e:  # report, do not hide
            out = json.dumps({"exception": repr(e)})
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def hold_open(user, path, seconds):
    """A child under user's uid that connects, says nothing, and waits."""
    pw = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            s = connect(path)
            time.sleep(seconds)
            s.close()
        finally:
            os._exit(0)
    return pid


def processes_with(arg):
    """How many running processes have arg on their command line."""
    n = 0
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                n += arg.encode() in f.read().split(b"\0")
        except (OSError, ValueError):
            pass
    return n


def pids_with(arg):
    """The running processes that have arg on their command line."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    pids.append(int(pid))
        except (OSError, ValueError):
            pass
    return pids


def proc_stat(pid):
    """(state, parent pid) of a process, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    return fields[0], int(fields[1])


def children(pid):
    """The live (not zombie) children of pid."""
    kids = []
    for p in os.listdir("/proc"):
        st = proc_stat(int(p)) if p.isdigit() else None
        if st and st[0] != "Z" and st[1] == pid:
            kids.append(int(p))
    return kids


def ensure_user(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        run("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name)


def hotp(counter):
    return run("oathtool", "--hotp", "-c", str(counter), HOTP_KEY).strip()


def make_csr(tmp, name, key="ec"):
    keyf, csrf = os.path.join(tmp, name + ".key"), os.path.join(tmp, name + ".csr")
    if key == "ec":
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", keyf, "-subj", "/CN=whatever", "-out", csrf)
    else:
        run("openssl", "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", keyf,
            "-subj", "/CN=weak", "-out", csrf)
    with open(csrf, "rb") as f:
        return base64.b64encode(f.read()).decode()


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root to create a test user and act as it")
        return 77
    daemon = os.path.join(TOP_BUILD, "tools", ".libs", "otpenrolld")
    if not os.path.exists(daemon):
        daemon = os.path.join(TOP_BUILD, "tools", "otpenrolld")
    module = os.path.join(TOP_BUILD, "pam_module", ".libs", "pam_otpenroll.so")
    cli_lib = os.path.join(TOP_BUILD, "lib", ".libs")
    for tool in ("oathtool", "openssl"):
        if shutil.which(tool) is None:
            print("SKIP: %s missing" % tool)
            return 77
    pam_wrapper_lock()
    ensure_user(TEST_USER)
    ensure_user(OTHER_USER)
    # OTHER_USER administers: it may act for TEST_USER, not the reverse.
    subprocess.run(["groupadd", "-f", ADMIN_GROUP], check=True)
    subprocess.run(["usermod", "-a", "-G", ADMIN_GROUP, OTHER_USER], check=True)

    tmp = tempfile.mkdtemp(prefix="oe-daemon-")
    os.chmod(tmp, 0o755)  # the test user reaches the socket through it
    conf = os.path.join(tmp, "otpenroll.conf")
    sock = os.path.join(tmp, "run", "otpenroll.sock")
    with open(conf, "w") as f:
        f.write(f"""[store]
url = sqlite:{tmp}/state/oe.db
key_file = {tmp}/state/secret.key
backend_dir = {TOP_BUILD}/lib/store/.libs
[otp]
window = 5
[enroll]
default_ca = local
grant_ttl = 600
[ca local]
type = local
dir = {tmp}/state/ca
subject = CN={{user}},O=Test
[ca manual]
type = local
dir = {tmp}/state/ca2
approval = manual
[daemon]
socket = {sock}
admin_group = {ADMIN_GROUP}
""")
    os.makedirs(os.path.join(tmp, "pam.d"))
    with open(os.path.join(tmp, "pam.d", "otpenroll"), "w") as f:
        f.write(f"auth required {module} config={conf}\n"
                f"account required {PERMIT}\n")

    env = dict(os.environ, LD_LIBRARY_PATH=cli_lib)
    # Store, key, both CAs and the user's HOTP token, through the library.
    helper = os.path.join(TOP_BUILD, "tests", "daemon", "daemon_setup")
    run(helper, conf, TEST_USER, HOTP_KEY, env=env)

    denv = dict(env, LD_PRELOAD="libpam_wrapper.so", PAM_WRAPPER="1",
                PAM_WRAPPER_SERVICE_DIR=os.path.join(tmp, "pam.d"))
    log = open(os.path.join(tmp, "daemon.log"), "w")
    proc = subprocess.Popen([daemon, "-c", conf], env=denv, stderr=log)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        check(os.path.exists(sock), "daemon creates its socket")

        # Root: no OTP gate, acts directly.
        r = call(sock, {"v": 1, "op": "cert_request", "csr_b64": make_csr(tmp, "root")})
        check(r and r.get("status") == "ok" and r["cert"]["rollout_state"] == "enrolled",
              "root request is issued at once: %s" % r)
        if r and r.get("status") == "ok":
            pem = os.path.join(tmp, "root.pem")
            with open(pem, "w") as f:
                f.write(r["cert"]["cert_pem"])
            v = subprocess.run(["openssl", "verify", "-purpose", "sslclient", "-CAfile",
                                os.path.join(tmp, "state", "ca", "ca.pem"), pem],
                               capture_output=True, text=True)
            check(v.returncode == 0, "issued certificate verifies: " + v.stdout.strip())

        # Malformed input: every caller gets an error reply, and the daemon
        # keeps serving.  Framing errors for root and for a user; the
        # requests a user would first be asked an OTP for, for root.
        framing = [
            (b"\x00\x00\x00\x00", "zero length"),
            (struct.pack(">I", 10 * 1024 * 1024), "oversized length"),
            (frame(b"not json"), "not JSON"),
            (frame(b"[1,2,3]"), "a JSON array"),
            (frame({"v": 2, "op": "cert_list"}), "wrong version"),
            (frame({"v": 1, "op": "format_disk"}), "unknown op"),
            (frame({"v": 1}), "no op"),
            (struct.pack(">I", 100) + b'{"v":1', "truncated body"),
            (b"\x00\x00", "truncated header"),
        ]
        content = [
            (frame({"v": 1, "op": "cert_request", "csr_b64": "!!!"}), "bad base64"),
            (frame({"v": 1, "op": "cert_request", "csr_b64": base64.b64encode(b"junk").decode()}),
             "garbage CSR"),
            (frame({"v": 1, "op": "cert_request", "key_type": "rsa512"}), "unknown key type"),
        ]

        def send_raw(data):
            """Send data, end our side, and read one reply (None: none came)."""
            s = connect(sock)
            try:
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                return recv_msg(s)
            finally:
                s.close()
        for who, cases in (("root", framing + content), (TEST_USER, framing)):
            for data, what in cases:
                if who == "root":
                    reply = send_raw(data)
                else:
                    reply = as_user(who, lambda: send_raw(data))
                check(reply is not None and reply.get("status") == "error",
                      "%s: malformed request (%s) gets an error reply: %s"
                      % (who, what, reply and reply.get("error")))
        # Base64 that only a lax decoder takes is refused as such.
        for text, what in (("====", "padding only"), ("AA=A", "'=' amid the data"),
                           ("QQ==    ", "trailing spaces")):
            r = call(sock, {"v": 1, "op": "cert_request", "csr_b64": text})
            check(r and r.get("status") == "error" and "must be base64" in r.get("error", ""),
                  "base64 of %s is refused as base64: %s" % (what, r and r.get("error")))
        r = call(sock, {"v": 1, "op": "cert_list"})
        check(r and r.get("status") == "ok", "daemon still serves after malformed requests")

        # A weak key is refused with a clear message.
        r = call(sock, {"v": 1, "op": "cert_request", "csr_b64": make_csr(tmp, "weak", "rsa")})
        check(r and r.get("status") == "error" and "weak" in r.get("error", ""),
              "RSA-1024 request refused: %s" % (r and r.get("error")))

        # A real non-root user: without a grant the daemon asks for an OTP.
        csr = make_csr(tmp, "user")
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_request", "csr_b64": csr}))
        check(r.get("status") == "otp_required", "user without a grant is asked for an OTP")
        time.sleep(0.5)  # the daemon's side of that connection finishes
        r = call(sock, {"v": 1, "op": "cert_list", "user": TEST_USER})
        check(r and r.get("status") == "ok" and r["certs"] == [],
              "walking away from the OTP prompt enrolls nothing")
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_request", "csr_b64": csr},
                                            otp="000000"))
        check(r.get("status") == "error" and "refused" in r.get("error", ""),
              "wrong OTP refused: %s" % r.get("error"))
        code = hotp(0)
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_request", "csr_b64": csr},
                                            otp=code))
        check(r.get("status") == "ok" and r["cert"]["user"] == TEST_USER
              and r["cert"]["rollout_state"] == "enrolled",
              "right OTP: certificate issued for the user: %s" % r.get("error"))
        serial = r.get("cert", {}).get("serial")
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_request",
                                                   "key_type": "ec256"}))
        check(r.get("status") == "ok" and r["cert"].get("pkcs12_b64")
              and r["cert"].get("pkcs12_password"),
              "within the grant no OTP is asked; generated key comes as PKCS#12")
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_list"}))
        check(r.get("status") == "ok" and len(r["certs"]) == 2
              and all(c["user"] == TEST_USER for c in r["certs"]),
              "user lists only their own certificates")

        # Reaching for another user's token, or acting for another user.
        # Both users hold a grant here, so what refuses is the ownership
        # check, not the OTP gate.
        cli = os.path.join(TOP_BUILD, "tools", ".libs", "otpenroll")
        cenv = dict(os.environ, LD_LIBRARY_PATH=cli_lib, OTPENROLL_SOCKET=sock)
        keyfile = os.path.join(tmp, "other.hex")
        with open(keyfile, "w") as f:
            f.write(HOTP_KEY + "\n")
        os.chmod(keyfile, 0o600)
        run(cli, "-c", conf, "token", "add-otp", "--user", OTHER_USER, "--type", "hotp",
            "--secret-file", keyfile, env=cenv)
        # OTHER_USER logs in through PAM with a configuration whose grants
        # last 2 s (and which checks on the store itself, not the daemon).
        short = os.path.join(tmp, "short-grant.conf")
        with open(conf) as f, open(short, "w") as g:
            g.write(f.read().replace("grant_ttl = 600", "grant_ttl = 2")
                    .replace("socket = %s\n" % sock, ""))
        with open(os.path.join(tmp, "pam.d", "short-grant"), "w") as f:
            f.write("auth required %s config=%s\n" % (module, short))
        penv = dict(env, LD_PRELOAD="libpam_wrapper.so", PAM_WRAPPER="1",
                    PAM_WRAPPER_SERVICE_DIR=os.path.join(tmp, "pam.d"))

        def pam_login(service, user, code):
            """pamtester: user logs in to service (tmp/pam.d) answering code."""
            return subprocess.run(["pamtester", service, user, "authenticate"],
                                  input=code + "\n", capture_output=True, text=True, env=penv)
        p = pam_login("short-grant", OTHER_USER, hotp(0))
        check(p.returncode == 0, "OTP login with a 2 s grant: %s" % p.stderr.strip())
        granted = time.monotonic()
        r = call(sock, {"v": 1, "op": "cert_list"})
        root_serial = [c["serial"] for c in r["certs"]][0]
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_fetch",
                                                   "serial": root_serial}))
        check(r.get("status") == "error" and "has no token" in r.get("error", ""),
              "user cannot fetch root's token: %s" % r.get("error"))
        r = as_user(OTHER_USER, lambda: call(sock, {"v": 1, "op": "cert_list"}))
        check(r.get("status") == "ok" and r["certs"] == [], "another user sees no tokens")
        r = as_user(OTHER_USER, lambda: call(sock, {"v": 1, "op": "cert_fetch", "serial": serial}))
        check(time.monotonic() - granted < 2, "(still within the 2 s grant)")
        check(r.get("status") == "error" and "has no token" in r.get("error", ""),
              "another user, past the OTP gate, cannot fetch the user's token: %s"
              % (r.get("error") or r.get("status")))
        # Once the grant has expired the daemon asks for an OTP again.
        time.sleep(max(0, granted + 3 - time.monotonic()))
        r = as_user(OTHER_USER, lambda: call(sock, {"v": 1, "op": "cert_fetch", "serial": serial}))
        check(r.get("status") == "otp_required",
              "after grant_ttl the daemon asks for an OTP again: %s" % r.get("status"))
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "cert_list", "user": "root"}))
        check(r.get("status") == "error" and "admin_group" in r.get("error", ""),
              "user cannot act for root")
        r = call(sock, {"v": 1, "op": "cert_list", "user": TEST_USER})
        check(r.get("status") == "ok" and len(r["certs"]) == 2, "root may act for the user")
        r = as_user(OTHER_USER, lambda: call(sock, {"v": 1, "op": "cert_list", "user": TEST_USER}))
        check(r.get("status") == "ok" and len(r["certs"]) == 2,
              "an admin_group member may act for the user")

        # The command line through the daemon, as a user: the OTP comes from
        # standard input (not a terminal), a manual CA makes it pending (3).
        csr_path = os.path.join(tmp, "other.csr")
        with open(csr_path, "wb") as f:
            f.write(base64.b64decode(make_csr(tmp, "other")))
        os.chmod(csr_path, 0o644)

        def cli_run(args, stdin):
            p = subprocess.run([cli] + args, input=stdin, capture_output=True, text=True,
                               env=cenv, cwd="/")
            return {"rc": p.returncode, "out": p.stdout, "err": p.stderr}
        r = as_user(OTHER_USER, lambda: cli_run(["--json", "cert", "request", "--csr", csr_path,
                                                 "--ca", "manual"], "999999\n"))
        check(r["rc"] == 1 and "refused" in r["err"], "CLI: wrong OTP on stdin refused: %s" % r)
        code = hotp(1)
        r = as_user(OTHER_USER, lambda: cli_run(["--json", "cert", "request", "--csr", csr_path,
                                                 "--ca", "manual"], code + "\n"))
        check(r["rc"] == 3 and json.loads(r["out"])["rollout_state"] == "pending",
              "CLI: right OTP on stdin, manual CA: exit 3, pending: %s" % r)
        pending = json.loads(r["out"])["serial"] if r["rc"] == 3 else "none"
        run(cli, "-c", conf, "ca", "approve", pending, env=cenv)
        # --out files go in a directory of the user's: each is written as
        # a new file there that then takes its name.
        home = os.path.join(tmp, "other-home")
        os.mkdir(home)
        os.chown(home, pwd.getpwnam(OTHER_USER).pw_uid, -1)
        out = os.path.join(home, "fetched.pem")
        r = as_user(OTHER_USER, lambda: cli_run(["cert", "fetch", pending, "--out", out], ""))
        check(r["rc"] == 0, "CLI: fetch after approval, within the grant: %s" % r)
        r = as_user(OTHER_USER, lambda: cli_run(["cert", "fetch", pending, "--out", out], ""))
        check(r["rc"] == 1 and "exists; --force replaces it" in r["err"],
              "CLI: an existing --out is refused: %s" % r)
        r = as_user(OTHER_USER, lambda: cli_run(["cert", "fetch", pending, "--out", out,
                                                 "--force"], ""))
        check(r["rc"] == 0 and os.listdir(home) == ["fetched.pem"],
              "CLI: --force replaces it, nothing else left in the directory: %s %s"
              % (r, os.listdir(home)))
        v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(tmp, "state", "ca2",
                            "ca.pem"), out], capture_output=True, text=True)
        check(v.returncode == 0, "CLI: the fetched certificate verifies")
        r = as_user(OTHER_USER, lambda: cli_run(["cert", "list"], ""))
        check(r["rc"] == 0 and pending in r["out"], "CLI: cert list shows it")
        # --user from the command line goes to the daemon, which decides:
        # an admin_group member may act for another user, others may not.
        r = as_user(OTHER_USER, lambda: cli_run(["--json", "cert", "list", "--user", TEST_USER],
                                                ""))
        certs = json.loads(r["out"]) if r["rc"] == 0 else []
        check(len(certs) == 2 and all(c["user"] == TEST_USER for c in certs),
              "CLI: an admin_group member lists the user's certificates with --user: %s" % r)
        # not_after is the text a direct (root's) list gives, not seconds.
        direct = json.loads(subprocess.run([cli, "-c", conf, "--json", "cert", "list",
                                            "--user", TEST_USER], capture_output=True,
                                           text=True, env=cenv).stdout or "[]")
        check(sorted(c["not_after"] or "" for c in certs) ==
              sorted(c["not_after"] or "" for c in direct) and
              any(isinstance(c["not_after"], str) for c in certs),
              "CLI: not_after reads the same through the daemon as directly: %s %s"
              % (certs, direct))
        keys = lambda lst: sorted(sorted(c) for c in lst)
        check(len(direct) == 2 and keys(certs) == keys(direct) and
              {"serial", "type", "user", "active", "rollout_state", "failcount",
               "locked"} <= set(certs[0] if certs else {}),
              "CLI: a token in cert list --json has one shape through the daemon and directly:"
              " %s %s" % (keys(certs), keys(direct)))
        # A certificate token an admin has disabled shows as such to its owner.
        run(cli, "-c", conf, "token", "disable", serial, env=cenv)
        r = as_user(TEST_USER, lambda: cli_run(["--json", "cert", "list"], ""))
        mine = {c["serial"]: c for c in json.loads(r["out"])} if r["rc"] == 0 else {}
        check(mine.get(serial, {}).get("active") is False and
              all(c["active"] is True for k, c in mine.items() if k != serial),
              "CLI: the owner's cert list --json shows a disabled token as not active: %s" % r)
        run(cli, "-c", conf, "token", "enable", serial, env=cenv)
        theirs = os.path.join(home, "theirs.pem")
        r = as_user(OTHER_USER, lambda: cli_run(["cert", "fetch", serial, "--user", TEST_USER,
                                                 "--out", theirs], ""))
        check(r["rc"] == 0 and os.path.exists(theirs),
              "CLI: an admin_group member fetches the user's certificate with --user: %s" % r)
        r = as_user(TEST_USER, lambda: cli_run(["cert", "list", "--user", OTHER_USER], ""))
        check(r["rc"] == 1 and "only root and members of admin_group" in r["err"],
              "CLI: --user of a user outside admin_group: the daemon's refusal shown: %s" % r)

        # A key made by the daemon, as the user, into the user's own file.
        p12 = os.path.join(home, "mine.p12")
        r = as_user(OTHER_USER, lambda: cli_run(["--json", "cert", "request", "--generate",
                                                 "--out", p12], ""))
        ok = r["rc"] == 0 and os.path.exists(p12)
        check(ok, "CLI: --generate through the daemon writes the PKCS#12: %s" % r)
        if ok:
            st = os.stat(p12)
            check(st.st_mode & 0o777 == 0o600 and st.st_uid == pwd.getpwnam(OTHER_USER).pw_uid,
                  "the PKCS#12 is the user's, mode 0600 (%o)" % (st.st_mode & 0o777))
            pw = json.loads(r["out"]).get("pkcs12_password", "")
            v = subprocess.run(["openssl", "pkcs12", "-in", p12, "-passin", "pass:" + pw,
                                "-nodes", "-noout"], capture_output=True, text=True)
            check(v.returncode == 0, "it opens with the password shown: %s" % v.stderr.strip())
        # An existing certificate, uploaded through the daemon; one the
        # user holds as a token already (the one fetched above) is refused.
        r = as_user(OTHER_USER, lambda: cli_run(["cert", "upload", out], ""))
        check(r["rc"] == 1 and "already has this certificate" in r["err"],
              "CLI: uploading a certificate the user has already is refused: %s" % r)
        own = os.path.join(home, "own.pem")
        subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "/dev/null",
                        "-subj", "/CN=own", "-days", "2", "-out", own,
                        "-addext", "basicConstraints=critical,CA:FALSE"],
                       check=True, capture_output=True)
        os.chmod(own, 0o644)
        r = as_user(OTHER_USER, lambda: cli_run(["--json", "cert", "upload", own], ""))
        up = json.loads(r["out"]) if r["rc"] == 0 else {}
        check(up.get("rollout_state") == "enrolled" and up.get("user") == OTHER_USER,
              "CLI: cert upload through the daemon records an enrolled token: %s" % r)

        dbpath = os.path.join(tmp, "state", "oe.db")

        @contextlib.contextmanager
        def another_daemon(name, edit=lambda text: text, env=None):
            """A second daemon on the same store, at run/NAME.sock, its
            configuration the first one's changed by edit: (conf, sock)
            while it runs, stopped afterwards."""
            conf_n = os.path.join(tmp, name + ".conf")
            sock_n = os.path.join(tmp, "run", name + ".sock")
            with open(conf) as f, open(conf_n, "w") as g:
                g.write(edit(f.read().replace("socket = " + sock, "socket = " + sock_n)))
            p = subprocess.Popen([daemon, "-c", conf_n], env=env or denv, stderr=log)
            try:
                for _ in range(100):
                    if os.path.exists(sock_n) or p.poll() is not None:
                        break
                    time.sleep(0.05)
                yield conf_n, sock_n
            finally:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)

        def forget_grant(user):
            subprocess.run(["sqlite3", "-cmd", ".timeout 10000", dbpath,
                            "DELETE FROM grants WHERE username = '%s'" % user], check=True)

        def exec_cli_as_other(args):
            """In a child: become OTHER_USER and run the CLI with args."""
            pw = pwd.getpwnam(OTHER_USER)
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            os.chdir("/")
            os.execve(cli, [cli] + args, cenv)

        # A field the daemon reads that is there with another type than
        # its own is a malformed request, named in the refusal (exit 2),
        # never taken as absent: a CA named in a list is not the default
        # CA, a "user" object not the caller.
        csr = make_csr(tmp, "typed")
        before = call(sock, {"v": 1, "op": "cert_list"})
        cases = [
            ({"op": "cert_request", "csr_b64": csr, "ca": ["manual"]}, "ca"),
            ({"op": "cert_request", "csr_b64": csr, "ca": None}, "ca"),
            ({"op": "cert_request", "csr_b64": csr, "key_type": 7}, "key_type"),
            ({"op": "cert_request", "csr_b64": 5}, "csr_b64"),
            ({"op": "cert_request", "csr_b64": csr, "attestation_b64": {}}, "attestation_b64"),
            ({"op": "cert_list", "user": {"name": TEST_USER}}, "user"),
            ({"op": "cert_request", "key_type": "ec256", "user": 5}, "user"),
            ({"op": "cert_fetch", "serial": 5}, "serial"),
            ({"op": "cert_upload", "cert_b64": [csr]}, "cert_b64"),
            ({"op": 5}, "op"),
            ({"op": "otp_auth", "user": TEST_USER, "code": "000000", "service": 5}, "service"),
            ({"op": "otp_auth", "user": TEST_USER, "code": 123456, "service": "t"}, "code"),
            ({"op": "otp_auth", "user": [TEST_USER], "code": "000000"}, "user"),
        ]
        for req, field in cases:
            r = call(sock, dict(req, v=1))
            check(r and r.get("status") == "error" and r.get("exit") == 2
                  and 'field "%s" must be a string' % field in r.get("error", ""),
                  "root: %s refused, naming %s: %s" % (json.dumps(req)[:90], field, r))
        after = call(sock, {"v": 1, "op": "cert_list"})
        check(before and after and len(after["certs"]) == len(before["certs"]),
              "root: nothing is issued for a request with a field of the wrong type")
        # A user's malformed request is refused before the OTP prompt; a
        # code that is not a string is named too.
        forget_grant(OTHER_USER)
        r = as_user(OTHER_USER, lambda: call(sock, {"v": 1, "op": "cert_request",
                                                    "csr_b64": csr, "ca": ["manual"]}))
        check(r.get("status") == "error" and r.get("exit") == 2
              and 'field "ca" must be a string' in r.get("error", ""),
              "user: a field of the wrong type is refused before the OTP prompt: %s" % r)

        def otp_not_a_string():
            s = connect(sock)
            try:
                s.sendall(frame({"v": 1, "op": "cert_request", "csr_b64": csr}))
                first = recv_msg(s)
                s.sendall(frame({"v": 1, "op": "otp", "code": 123456}))
                return [first, recv_msg(s)]
            finally:
                s.close()
        r = as_user(OTHER_USER, otp_not_a_string)
        check(isinstance(r, list) and r[0].get("status") == "otp_required"
              and r[1].get("status") == "error" and r[1].get("exit") == 2
              and 'field "code" must be a string' in r[1].get("error", ""),
              "user: an OTP answer whose code is not a string is refused, naming it: %s" % r)

        # On a terminal the one-time password is read without echo.
        forget_grant(OTHER_USER)
        code = hotp(2)
        pid, fd = pty.fork()
        if pid == 0:
            try:
                exec_cli_as_other(["cert", "fetch", pending])
            finally:
                os._exit(127)
        seen, sent = b"", False
        end = time.monotonic() + 30
        while time.monotonic() < end:
            # Never a read that waits for ever: a CLI stuck reading the
            # terminal fails the test instead of hanging it.
            if not select.select([fd], [], [], max(0, end - time.monotonic()))[0]:
                os.kill(pid, signal.SIGKILL)
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not sent and b"password" in seen.lower():
                os.write(fd, code.encode() + b"\n")
                sent = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        check(sent and os.WEXITSTATUS(status) == 0 and b"BEGIN CERTIFICATE" in seen,
              "CLI on a terminal: asked for the OTP, then served: %r" % seen[-200:])
        check(sent and code.encode() not in seen, "the code typed on the terminal is not echoed")

        def on_pty(args, typed, ctty=True, sig=None):
            """The CLI as OTHER_USER on a new terminal (its controlling one
            unless not ctty, then only its standard input and output); typed
            is written once it asks for a password (or signal sig is sent
            to it then).  (what it wrote, its wait status, the terminal's
            lflag after it ended)."""
            master, slave = os.openpty()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(master)
                    os.setsid()
                    if ctty:
                        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                    for n in (0, 1, 2):
                        os.dup2(slave, n)
                    exec_cli_as_other(args)
                finally:
                    os._exit(127)
            # The terminal stays open here, so its end is the child's.
            seen, sent, status = b"", False, None
            end = time.monotonic() + 30
            while time.monotonic() < end:
                if select.select([master], [], [], 0.1)[0]:
                    seen += os.read(master, 4096)
                    if not sent and b"password" in seen.lower():
                        if sig is None:
                            os.write(master, typed)
                        else:
                            os.kill(pid, sig)
                        sent = True
                    continue
                done, st = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = st
                    break
            if status is None:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
            while select.select([master], [], [], 0)[0]:
                seen += os.read(master, 4096)
            lflag = termios.tcgetattr(slave)[3]
            os.close(master)
            os.close(slave)
            return seen, status, lflag
        # Ctrl-C at the prompt: the terminal gets its echo back, and the
        # CLI ends by the signal, as it would have without a prompt.
        forget_grant(OTHER_USER)
        seen, status, lflag = on_pty(["cert", "fetch", pending], b"\x03")
        check(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT,
              "CLI: Ctrl-C at the OTP prompt ends it by SIGINT (%s): %r" % (status, seen[-200:]))
        check(lflag & termios.ECHO, "CLI: after Ctrl-C at the OTP prompt the terminal echoes again")
        # Killed at the prompt (SIGTERM, SIGQUIT): the same.
        for sig in (signal.SIGTERM, signal.SIGQUIT):
            forget_grant(OTHER_USER)
            seen, status, lflag = on_pty(["cert", "fetch", pending], b"", sig=sig)
            check(os.WIFSIGNALED(status) and os.WTERMSIG(status) == sig
                  and lflag & termios.ECHO,
                  "CLI: %s at the OTP prompt ends it by that signal, the terminal echoing"
                  " again (%s, echo %s)" % (sig.name, status, bool(lflag & termios.ECHO)))
        # Ended by a signal at the prompt, the command leaves no --out
        # behind, neither the name it took nor the file beside it that
        # was to take it; a file that was there before (--force) stays.
        kept = os.path.join(home, "kept.pem")
        with open(kept, "w") as f:
            f.write("kept\n")
        os.chown(kept, pwd.getpwnam(OTHER_USER).pw_uid, -1)
        for sig, force in ((signal.SIGINT, False), (signal.SIGTERM, False),
                           (signal.SIGHUP, False), (signal.SIGTERM, True)):
            forget_grant(OTHER_USER)
            before = sorted(os.listdir(home))
            args = ["cert", "fetch", pending, "--out"] + ([kept, "--force"] if force else
                                                          [os.path.join(home, "sig.pem")])
            if sig == signal.SIGINT:
                seen, status, _ = on_pty(args, b"\x03")
            else:
                seen, status, _ = on_pty(args, b"", sig=sig)
            with open(kept) as f:
                kept_text = f.read()
            check(b"password" in seen.lower() and os.WIFSIGNALED(status)
                  and os.WTERMSIG(status) == sig and sorted(os.listdir(home)) == before
                  and kept_text == "kept\n",
                  "CLI: %s at the OTP prompt%s leaves the --out directory as it was: %s -> %s,"
                  " %r %r" % (sig.name, " with --force" if force else "", before,
                              sorted(os.listdir(home)), kept_text, seen[-200:]))
        os.unlink(kept)
        # Ctrl-Z at the prompt, under job control as a shell runs it: while
        # it is stopped, the shell's terminal echoes; on `fg` the prompt
        # comes again, the code is read without echo, and the command ends.
        # A stand-in for the shell (this test's child: session leader,
        # the terminal's controlling process) runs the CLI as a job in its
        # own process group, as bash does, and reports what it saw.
        forget_grant(OTHER_USER)
        code = hotp(3)
        master, slave = os.openpty()
        rpipe, wpipe = os.pipe()
        shell = os.fork()
        if shell == 0:
            try:
                os.close(master)
                os.close(rpipe)
                os.setsid()
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                signal.signal(signal.SIGTTOU, signal.SIG_IGN)
                job = os.fork()
                if job == 0:
                    try:
                        os.setpgid(0, 0)
                        signal.signal(signal.SIGTTOU, signal.SIG_DFL)
                        for n in (0, 1, 2):
                            os.dup2(slave, n)
                        exec_cli_as_other(["cert", "fetch", pending])
                    finally:
                        os._exit(127)
                os.setpgid(job, job)
                os.tcsetpgrp(slave, job)
                seen = {}
                _, st = os.waitpid(job, os.WUNTRACED)
                seen["stopped"] = os.WIFSTOPPED(st)
                if seen["stopped"]:
                    seen["echo_while_stopped"] = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
                    os.tcsetpgrp(slave, job)  # fg
                    os.kill(-job, signal.SIGCONT)
                    _, st = os.waitpid(job, 0)
                seen["exit"] = os.WEXITSTATUS(st) if os.WIFEXITED(st) else -1
                seen["echo_after"] = bool(termios.tcgetattr(slave)[3] & termios.ECHO)
                os.write(wpipe, json.dumps(seen).encode())
            finally:
                os._exit(0)
        os.close(wpipe)
        out, prompts, sent = b"", 0, 0
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    break
                prompts = out.lower().count(b"password")
                if prompts == 1 and sent == 0:
                    os.write(master, b"\x1a")  # Ctrl-Z
                    sent = 1
                elif prompts == 2 and sent == 1:
                    os.write(master, code.encode() + b"\n")
                    sent = 2
                continue
            if os.waitpid(shell, os.WNOHANG)[0]:
                break
        else:
            # Stuck: the stand-in goes, and with it the terminal's
            # session, whose hangup ends the job too.
            os.kill(shell, signal.SIGKILL)
            os.waitpid(shell, 0)
        with os.fdopen(rpipe, "rb") as f:
            report = f.read()
        os.close(master)
        os.close(slave)
        seen = json.loads(report) if report else {}
        check(seen.get("stopped") and seen.get("echo_while_stopped"),
              "CLI: Ctrl-Z at the OTP prompt stops it with the terminal echoing: %s %r"
              % (seen, out[-200:]))
        check(prompts == 2 and seen.get("exit") == 0 and b"BEGIN CERTIFICATE" in out
              and code.encode() not in out and seen.get("echo_after"),
              "CLI: on fg the prompt comes again and the code is read without echo: %s %r"
              % (seen, out[-300:]))
        # Standard input a terminal that is not the controlling one (no
        # /dev/tty): the code is still read without echo.
        forget_grant(OTHER_USER)
        code = hotp(4)
        seen, status, lflag = on_pty(["cert", "fetch", pending], code.encode() + b"\n",
                                     ctty=False)
        check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
              and b"BEGIN CERTIFICATE" in seen and code.encode() not in seen,
              "CLI: without /dev/tty, the code on a terminal is read without echo: %r"
              % seen[-300:])
        check(lflag & termios.ECHO, "CLI: and that terminal echoes again afterwards")

        # pam_otpenroll with [daemon] socket set asks the daemon, which
        # checks on its own store connection; replay is still refused.
        with open(os.path.join(tmp, "pam.d", "login"), "w") as f:
            f.write("auth required %s config=%s\n" % (module, conf))
        code = hotp(1)
        p1 = pam_login("login", TEST_USER, code)
        p2 = pam_login("login", TEST_USER, code)
        check(p1.returncode == 0 and p2.returncode != 0,
              "PAM through the daemon: code accepted once (%s / %s)" % (p1.returncode, p2.returncode))
        with open(os.path.join(tmp, "daemon.log")) as f:
            dlog = f.read()
        check("otp_auth user=%s service=login: success" % TEST_USER in dlog
              and "otp_auth user=%s service=login: failure" % TEST_USER in dlog,
              "the daemon answered both logins")
        check(code not in dlog, "no code in the daemon's log")
        r = as_user(TEST_USER, lambda: call(sock, {"v": 1, "op": "otp_auth", "user": TEST_USER,
                                                   "code": hotp(2)}))
        check(r.get("status") == "error", "otp_auth is for root only")

        # The daemon opens the CA keys once, for all its clients; a CA made
        # anew since is read afresh, not served from what was kept.
        with open(os.path.join(tmp, "daemon.log")) as f:
            check("CA keys preloaded" in f.read(), "the daemon preloads the CA keys")
        cadir = os.path.join(tmp, "state", "ca")
        os.rename(cadir, cadir + ".old")
        run(cli, "-c", conf, "ca", "init", "local", "--subject", "CN=Renewed CA", env=cenv)
        r = call(sock, {"v": 1, "op": "cert_request", "csr_b64": make_csr(tmp, "renewed")})
        ok = r and r.get("status") == "ok" and "cert_pem" in r["cert"]
        if ok:
            pem = os.path.join(tmp, "renewed.pem")
            with open(pem, "w") as f:
                f.write(r["cert"]["cert_pem"])
            v = subprocess.run(["openssl", "verify", "-CAfile", os.path.join(cadir, "ca.pem"), pem],
                               capture_output=True, text=True)
            ok = v.returncode == 0
        check(ok, "a CA created after the daemon started signs its requests: %s"
              % (r and (r.get("error") or r["cert"].get("rollout_state"))))

        # Many clients at once.
        socks = [connect(sock) for _ in range(24)]
        for s in socks:
            s.sendall(frame({"v": 1, "op": "cert_list"}))
        replies = [recv_msg(s) for s in socks]
        for s in socks:
            s.close()
        check(all(r and r.get("status") == "ok" for r in replies), "24 clients at once served")

        # Clients that connect and say nothing hold up no one: three root
        # connections (the listener reads root's first message itself) and
        # a user's stay open for 10 s while others must be answered within
        # 1.5 s each.  A listener that waited on each idle root client in
        # turn (2 s apiece) fails here.
        idle = [connect(sock) for _ in range(3)]
        holder = hold_open(TEST_USER, sock, 10)
        time.sleep(0.2)

        def quick(req):
            s = connect(sock)
            s.settimeout(1.5)
            try:
                s.sendall(frame(req))
                return recv_msg(s)
            except socket.timeout:
                return {"status": "no answer within 1.5 s"}
            finally:
                s.close()
        r = quick({"v": 1, "op": "cert_list"})
        check(r and r.get("status") == "ok",
              "idle clients do not block root's request: %s" % (r and r.get("status")))
        r = quick({"v": 1, "op": "otp_auth", "user": "oe-nobody", "code": "123456",
                   "service": "test"})
        check(r and r.get("result") == "no_token",
              "idle clients do not block otp_auth: %s" % (r and r.get("status")))
        r = as_user(TEST_USER, lambda: quick({"v": 1, "op": "cert_list"}))
        check(r.get("status") == "ok",
              "idle clients do not block a user's request: %s" % r.get("status"))
        # Once its time is up an idle root client is told so.
        for s in idle:
            s.settimeout(10)
            try:
                r = recv_msg(s)
            except socket.timeout:
                r = None
            s.close()
            check(r and r.get("status") == "error" and "timed out" in r.get("error", ""),
                  "an idle root client gets an error after its time: %s" % (r and r.get("error")))
        os.kill(holder, signal.SIGKILL)
        os.waitpid(holder, 0)

        # Beyond [daemon] max_clients a client is told to come back later:
        # a second daemon on the same store allows two.
        with another_daemon("busy", lambda text: text + "max_clients = 2\nmax_clients_per_user = 2\n") \
                as (conf2, sock2):
            check(os.path.exists(sock2), "a daemon with max_clients = 2 starts")
            holders = [hold_open(TEST_USER, sock2, 10) for _ in range(2)]
            # Busy once the daemon has a session for each holder: its
            # processes (listener, dispatcher, poller and those two) are
            # counted, since a request sent to find out would take a slot.
            for _ in range(100):
                if processes_with(conf2) >= 5:
                    break
                time.sleep(0.05)
            r = call(sock2, {"v": 1, "op": "cert_list"}) if os.path.exists(sock2) else None
            check(r and r.get("status") == "error" and "busy" in r.get("error", "")
                  and r.get("untouched") is True,
                  "a client beyond max_clients is told the daemon is busy, nothing done: %s" % r)
            # pam_otpenroll facing a busy daemon checks the store itself
            # (the daemon says it took nothing) instead of failing the login.
            with open(os.path.join(tmp, "pam.d", "busy"), "w") as f:
                f.write("auth required %s config=%s\n" % (module, conf2))
            busy_code = hotp(2)
            p = pam_login("busy", TEST_USER, busy_code)
            check(p.returncode == 0,
                  "PAM login while the daemon is busy, checked on the store: %s" % p.stderr.strip())
            for pid in holders:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            for _ in range(50 if os.path.exists(sock2) else 0):
                r = call(sock2, {"v": 1, "op": "cert_list"})
                if r and r.get("status") == "ok":
                    break
                time.sleep(0.1)
            check(r and r.get("status") == "ok", "served again once clients have left: %s" % r)
            # The session that answered cert_list may not have exited yet;
            # a login that finds the daemon busy again is refused by the
            # store instead (the code is spent there too), so try until the
            # daemon itself has answered.
            refused = True
            for _ in range(5):  # max_fail is 10: never lock the user
                p = pam_login("busy", TEST_USER, busy_code)
                refused = refused and p.returncode != 0
                with open(os.path.join(tmp, "daemon.log")) as f:
                    dlog = f.read()
                if "otp_auth user=%s service=busy:" % TEST_USER in dlog:
                    break
                time.sleep(0.2)
            check(refused
                  and "otp_auth user=%s service=busy: failure" % TEST_USER in dlog
                  and "otp_auth user=%s service=busy: success" % TEST_USER not in dlog,
                  "the code taken while the daemon was busy is spent: the daemon refuses it again")

        # A PAM service whose stack passes without pam_otpenroll (as when
        # /etc/pam.d/otpenroll is missing and "other" asks for the Unix
        # password) opens no gate: the daemon wants the module's own login.
        permit_dir = os.path.join(tmp, "pam.d-permit")
        os.makedirs(permit_dir)
        with open(os.path.join(permit_dir, "otpenroll"), "w") as f:
            f.write(f"auth required {PERMIT}\naccount required {PERMIT}\n")
        forget_grant(OTHER_USER)
        with another_daemon("permit", env=dict(denv, PAM_WRAPPER_SERVICE_DIR=permit_dir)) \
                as (_, sock3):
            csr = make_csr(tmp, "permit")
            r = as_user(OTHER_USER, lambda: call(sock3, {"v": 1, "op": "cert_request",
                                                         "csr_b64": csr}, otp="123456"))
            check(r and r.get("status") == "error" and "refused" in r.get("error", ""),
                  "a PAM stack without pam_otpenroll passes no one: %s" % r)
            with open(os.path.join(tmp, "daemon.log")) as f:
                check("without pam_otpenroll accepting a code" in f.read(),
                      "the daemon says why it refused the passing stack")

        # Attestation through the daemon (attestation_b64), required: a
        # chain to the anchor for the request's own key is what it takes.
        anchors = os.path.join(tmp, "anchors")
        os.makedirs(anchors)
        att = os.path.join(tmp, "att")
        os.makedirs(att)
        ossl = lambda *a: run("openssl", *a)
        ossl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", att + "/root.key", "-subj", "/CN=Attestation Root", "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,keyCertSign", "-out", anchors + "/root.pem")
        csr4 = make_csr(tmp, "attested")
        attest = {}
        for name, keyfile in (("own", os.path.join(tmp, "attested.key")),
                              ("other", os.path.join(tmp, "permit.key"))):
            ossl("req", "-new", "-key", keyfile, "-subj", "/CN=device", "-out", att + "/dev.csr")
            ossl("x509", "-req", "-in", att + "/dev.csr", "-CA", anchors + "/root.pem", "-CAkey",
                 att + "/root.key", "-CAcreateserial", "-days", "10", "-out", att + "/dev.pem")
            with open(att + "/dev.pem", "rb") as f:
                attest[name] = base64.b64encode(f.read()).decode()
        require = lambda text: text.replace("[enroll]\n", "[enroll]\nattestation = require\n"
                                            "attestation_ca_dir = %s\n" % anchors)
        with another_daemon("attest", require) as (_, sock4):
            base = {"v": 1, "op": "cert_request", "csr_b64": csr4, "user": TEST_USER}
            r = call(sock4, base)
            check(r and r.get("status") == "error" and "attestation" in r.get("error", ""),
                  "attestation = require: a request without one is refused: %s" % r)
            r = call(sock4, dict(base, attestation_b64=attest["other"]))
            check(r and r.get("status") == "error" and "another key" in r.get("error", ""),
                  "an attestation for another key is refused: %s" % r)
            r = call(sock4, dict(base, attestation_b64="not base64!"))
            check(r and r.get("status") == "error" and "base64" in r.get("error", ""),
                  "attestation_b64 that is not base64 is refused: %s" % r)
            r = call(sock4, dict(base, attestation_b64=attest["own"]))
            check(r and r.get("status") == "ok" and r["cert"]["rollout_state"] == "enrolled",
                  "an attestation of the request's key, chained to the anchor, passes: %s"
                  % (r and (r.get("error") or r["cert"].get("rollout_state"))))

        # One user's connections take at most max_clients_per_user slots
        # (a quarter of max_clients unless set); others are still served.
        with another_daemon("peruser", lambda text: text + "max_clients = 4\n") as (conf3, sock3):
            holder = hold_open(TEST_USER, sock3, 30)
            for _ in range(400):  # its session forked, on a slow machine too
                if processes_with(conf3) >= 4:
                    break
                time.sleep(0.05)
            r = as_user(TEST_USER, lambda: call(sock3, {"v": 1, "op": "cert_list"}))
            check(r and r.get("status") == "error" and "max_clients_per_user" in r.get("error", "")
                  and r.get("untouched") is True,
                  "a user's second connection beyond max_clients_per_user is refused: %s" % r)
            r = as_user(OTHER_USER, lambda: call(sock3, {"v": 1, "op": "cert_list"}))
            check(r and r.get("status") == "ok",
                  "another user is served meanwhile: %s" % (r and r.get("error")))
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)

        # The background workers (dispatcher, poller) hold neither the
        # listening socket nor the root connections the listener reads,
        # and end with the listener.  A worker started again while a root
        # client's first message is being read leaves that connection to
        # the listener: its end comes with the reply.
        with another_daemon("orphans") as (conf5, sock5):
            for _ in range(400):
                if processes_with(conf5) >= 3:
                    break
                time.sleep(0.05)
            listener = [p for p in pids_with(conf5) if proc_stat(p)[1] == os.getpid()]
            workers = children(listener[0]) if listener else []
            check(len(listener) == 1 and len(workers) == 2,
                  "a daemon runs its two workers: %s %s" % (listener, workers))
            listener = listener[0] if listener else -1
            s = connect(sock5)
            if workers:
                os.kill(workers[0], signal.SIGKILL)
            new = []
            for _ in range(36):  # within root's 2 s to send its message
                new = [p for p in children(listener) if p not in workers]
                if new:
                    break
                time.sleep(0.05)
            s.sendall(frame({"v": 1, "op": "cert_list"}))
            r = recv_msg(s)
            s.settimeout(3)
            try:
                end = s.recv(1)
            except socket.timeout:
                end = "no end within 3 s"
            s.close()
            check(new and r and r.get("status") == "ok" and end == b"",
                  "a root client connected while a worker restarts gets its reply, then"
                  " the end of the connection: %s, %s %r" % (new, r, end))
            workers = children(listener)
            os.kill(listener, signal.SIGKILL)
            time.sleep(0.1)
            t0 = time.monotonic()
            try:
                connect(sock5).close()
                refused = "connected"
            except ConnectionRefusedError:
                refused = True
            check(refused is True and time.monotonic() - t0 < 1,
                  "once the listener is killed, a client's connect is refused at once: %s"
                  % refused)
            for _ in range(200):
                alive = [p for p in workers if proc_stat(p) and proc_stat(p)[0] != "Z"]
                if not alive:
                    break
                time.sleep(0.05)
            check(not alive, "the workers end with the listener: %s still run" % alive)
            for p in alive:
                os.kill(p, signal.SIGKILL)

        # SIGTERM while a client is asked for its one-time password: the
        # daemon does not wait for a person to type; the client is told
        # it is stopping (nothing was done).
        forget_grant(OTHER_USER)
        prompted_r, prompted_w = os.pipe()
        csr = make_csr(tmp, "stopping")

        def ask_and_wait():
            s = connect(sock)
            s.sendall(frame({"v": 1, "op": "cert_request", "csr_b64": csr}))
            first = recv_msg(s)
            os.write(prompted_w, b"x")
            return [first, recv_msg(s)]
        waiting = {}
        t = threading.Thread(target=lambda: waiting.update(r=as_user(OTHER_USER, ask_and_wait)))
        t.start()
        # And one connected that has sent nothing yet: it does not hold
        # up the stop for its 30 s either.
        idle_ready_r, idle_ready_w = os.pipe()

        def idle_and_wait():
            s = connect(sock)
            os.write(idle_ready_w, b"x")
            s.settimeout(60)
            try:
                return recv_msg(s)
            except socket.timeout:
                return None
        idle = {}
        t2 = threading.Thread(target=lambda: idle.update(r=as_user(TEST_USER, idle_and_wait)))
        t2.start()
        select.select([idle_ready_r], [], [], 20)
        os.close(idle_ready_r)
        os.close(idle_ready_w)
        for _ in range(400):  # its session forked (slow on a busy machine)
            if processes_with(conf) >= 5:
                break
            time.sleep(0.05)
        select.select([prompted_r], [], [], 20)
        os.close(prompted_r)
        os.close(prompted_w)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        t.join(timeout=30)
        r = waiting.get("r")
        r = r if isinstance(r, list) else [r, None]
        check(r[0] and r[0].get("status") == "otp_required" and r[1]
              and r[1].get("status") == "error" and "stopping" in r[1].get("error", "")
              and r[1].get("untouched") is True,
              "a client waiting for its OTP is told the daemon stops: %s" % r)
        check(proc.returncode == 0, "the daemon stopped without waiting for the OTP (exit %s)"
              % proc.returncode)
        t2.join(timeout=30)
        r = idle.get("r")
        check(isinstance(r, dict) and r.get("status") == "error" and "stopping" in r.get("error", "")
              and r.get("untouched") is True,
              "a client that had sent nothing is told the daemon stops: %s" % r)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = None
        log.close()
    check(rc == 0, "SIGTERM stops the daemon cleanly (exit %s)" % rc)
    check(not os.path.exists(sock), "the socket is removed on exit")
    if failures:
        print(open(os.path.join(tmp, "daemon.log")).read())
    shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
