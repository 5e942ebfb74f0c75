"""Driver of tests/bench/events-bench.sh (see there)."""
import base64
import glob
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time

from daemon_client import call

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from harness import free_port  # noqa: E402

build, work, mails, samples, requests = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
# The programs themselves, not libtool's wrapper scripts (a shell and a
# path check per run would be timed too).
oe_bin = os.path.join(build, "tools", ".libs", "otpenroll")
oed_bin = os.path.join(build, "tools", ".libs", "otpenrolld")
if not os.path.exists(oe_bin):
    oe_bin = os.path.join(build, "tools", "otpenroll")
    oed_bin = os.path.join(build, "tools", "otpenrolld")
os.environ["LD_LIBRARY_PATH"] = os.path.join(build, "lib", ".libs")


def pct(lat, p):
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * p))] if lat else float("nan")


def row(name, n, ok, rate, lat):
    print("%-34s %6d %6d %9.1f %9.2f %9.2f" % (name, n, ok, rate, pct(lat, 0.5), pct(lat, 0.99)))


class Sink:
    """postfix's smtp-sink, dumping each message into its own file."""

    def __init__(self, name):
        self.dir = os.path.join(work, "sink-" + name)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-d", self.dir + "/%H%M%S.", "127.0.0.1:%d" % self.port,
             "1000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def files(self):
        return glob.glob(self.dir + "/*")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class Hang:
    """Accepts connections and never says a word."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return


def setup(name, smtp_port, approval="auto", extra=""):
    d = os.path.join(work, name)
    os.makedirs(os.path.join(d, "events.d"))
    conf = os.path.join(d, "oe.conf")
    with open(conf, "w") as f:
        f.write("""[store]
url = sqlite:{d}/oe.db
key_file = {d}/secret.key
backend_dir = {build}/lib/store/.libs
[enroll]
max_tokens_per_user = 10000
[users]
email = {{user}}@example.com
[ca local]
type = local
dir = {d}/ca
approval = {approval}
[smtp default]
host = 127.0.0.1
port = {port}
tls = none
from = otpenroll@example.com
timeout = 10
[events]
dir = {d}/events.d
handler_dir = {build}/hooks/handlers/.libs
[daemon]
socket = {d}/sock
{extra}""".format(d=d, approval=approval, port=smtp_port, build=build, extra=extra))
    with open(os.path.join(d, "events.d", "mail.conf"), "w") as f:
        f.write("""[rule mail]
event = token_init
handler = usernotification
action = sendmail
option.to = tokenowner
option.subject = Token {serial} for {user}
option.body = Hello {user}, your {tokentype} token {serial} is {rollout_state}.
""")
    for cmd in (["init"], ["ca", "init", "local", "--subject", "CN=Bench CA"]):
        r = subprocess.run([oe_bin, "-c", conf] + cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("otpenroll %s: %s" % (" ".join(cmd), r.stderr))
    return d, conf


def start_daemon(d, conf):
    p = subprocess.Popen([oed_bin, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(d, "daemon.log"), "w"))
    for _ in range(200):
        if os.path.exists(os.path.join(d, "sock")):
            return p
        time.sleep(0.05)
    raise RuntimeError("otpenrolld did not start")


def stop(p):
    p.terminate()
    p.wait()


print("%-34s %6s %6s %9s %9s %9s" % ("", "n", "ok", "per s", "p50 ms", "p99 ms"))

# 1. From a committed state change to the mail accepted by the server.
sink = Sink("latency")
d, conf = setup("latency", sink.port)
daemon = start_daemon(d, conf)
lat = []
for i in range(samples):
    before = len(sink.files())
    subprocess.run([oe_bin, "-c", conf, "token", "add-otp", "--user", "l%d" % i, "--type",
                    "totp"], check=True, capture_output=True)
    t0 = time.time()  # the command returned: its transaction committed
    deadline = t0 + 30
    while len(sink.files()) == before and time.time() < deadline:
        time.sleep(0.002)
    new = sorted(sink.files(), key=os.path.getmtime)
    if len(new) > before:
        lat.append(max(0.0, os.path.getmtime(new[-1]) - t0) * 1000)
stop(daemon)
sink.stop()
row("change -> mail accepted (daemon)", samples, len(lat), float("nan"), lat)

# 2. 1,000 queued notifications: our dispatcher against one connection per mail.
sink = Sink("batch")
d, conf = setup("batch", sink.port)
for i in range(mails):
    subprocess.run([oe_bin, "-c", conf, "token", "add-otp", "--user", "b%d" % i, "--type",
                    "totp"], check=True, capture_output=True)
t0 = time.monotonic()
r = subprocess.run([oe_bin, "-c", conf, "--json", "events", "dispatch", "--once"],
                   capture_output=True, text=True)
t = time.monotonic() - t0
ours = mails / t
row("otpenroll dispatch, one session", mails, len(sink.files()), ours, [t * 1000 / mails])
sink.stop()
sink = Sink("perconn")
msg = ("From: otpenroll@example.com\r\nTo: {u}@example.com\r\nSubject: Token T{i} for {u}\r\n"
       "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{i}.bench@example.com>\r\n"
       "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n"
       "Hello {u}, your totp token T{i} is enrolled.\r\n")
lat = []
t0 = time.monotonic()
for i in range(mails):
    s = time.monotonic()
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=10) as c:
        c.sendmail("otpenroll@example.com", ["b%d@example.com" % i],
                   msg.format(u="b%d" % i, i=i))
    lat.append((time.monotonic() - s) * 1000)
t = time.monotonic() - t0
theirs = mails / t
row("smtplib, one connection per mail", mails, len(sink.files()), theirs, lat)
sink.stop()
print("%-34s %.1fx" % ("ratio one session / per connection", ours / theirs))

# 3. cert request through the daemon, SMTP up, down and hanging.
csrdir = os.path.join(work, "csr")
os.makedirs(csrdir)
for i in range(requests):
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", "/dev/null", "-subj",
                    "/CN=r%d" % i, "-out", "%s/%d.csr" % (csrdir, i)],
                   check=True, capture_output=True)
csrs = [base64.b64encode(open("%s/%d.csr" % (csrdir, i), "rb").read()).decode()
        for i in range(requests)]
hang = Hang()
# The three daemons run side by side and take requests in turn, so the
# machine's drift over the run is shared by all three.
states = ("up", "down", "hanging")
runs = {}
for state in states:
    sink = Sink("req-" + state) if state == "up" else None
    port = sink.port if sink else (free_port() if state == "down" else hang.port)
    d, conf = setup("req-" + state, port, approval="manual")
    with open(os.path.join(d, "events.d", "mail.conf"), "a") as f:
        f.write("""
[rule pending]
event = token_init
handler = usernotification
action = sendmail
condition.tokentype = certificate
condition.rollout_state = pending
option.to = tokenowner
option.subject = Certificate request {serial} is pending
option.body = Hello {user}, your request {serial} awaits approval at CA {ca}.
""")
    runs[state] = {"d": d, "sink": sink, "daemon": start_daemon(d, conf), "lat": [], "ok": 0}
for i in range(requests):
    for state in states:
        r = runs[state]
        s = time.monotonic()
        rep = call(os.path.join(r["d"], "sock"), {"v": 1, "op": "cert_request",
                                                  "user": "r%d" % i, "csr_b64": csrs[i]})
        r["lat"].append((time.monotonic() - s) * 1000)
        r["ok"] += rep.get("status") == "ok" and rep["cert"]["rollout_state"] == "pending"
for state in states:
    r = runs[state]
    stop(r["daemon"])
    if r["sink"]:
        print("%-34s %d" % ("mails while SMTP up", len(r["sink"].files())))
        r["sink"].stop()
    row("cert request, SMTP " + state, requests, r["ok"], requests / (sum(r["lat"]) / 1000),
        r["lat"])
    if state != "up":
        print("%-34s %+.1f%%" % ("p99 against SMTP up",
                                 (pct(r["lat"], 0.99) / pct(runs["up"]["lat"], 0.99) - 1) * 100))
