"""What the Python tests share: reporting a check, waiting for a
condition, a free loopback port, and running the otpenroll command line
against a configuration.  The shell tests have the same in tests/lib.sh.

A test script imports it after putting this directory on sys.path:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from harness import check, failures, wait_for, free_port
"""
import fcntl
import json
import os
import socket
import sqlite3
import subprocess
import time

BUILD = os.environ.get("top_builddir", os.getcwd())
OE = os.path.join(BUILD, "tools", "otpenroll")
# The store backends, as a test's [store] backend_dir.
STORES = os.path.join(BUILD, "lib", "store", ".libs")

# Every failed check, in order; a script exits 1 when it is not empty.
failures = []


def pam_wrapper_lock():
    """Take turns with the machine's other pam_wrapper tests
    (tests/pam/wrapper.h says why): the lock is held until this process
    ends, and the tests it runs know it is held.  Waiting is bounded, so
    that a holder that never lets go costs ten minutes."""
    if os.environ.get("OE_PAMWRAP_LOCKED"):
        return
    f = open("/tmp/oe-pam-wrapper.lock", "a")
    for _ in range(600):
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            time.sleep(1)
    else:
        print("/tmp/oe-pam-wrapper.lock still held after 600 s; going on without it")
    pam_wrapper_lock.held = f  # open for as long as the process runs
    os.environ["OE_PAMWRAP_LOCKED"] = "1"


def check(cond, what, detail=None):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
        if detail is not None:
            print("     " + str(detail).replace("\n", "\n     "), flush=True)


def wait_for(pred, seconds=20, step=0.05):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listener(backlog=8):
    """A TCP socket listening on loopback, a port of its own; a test
    decides what it answers (or that it answers nothing)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def make_conf(d, text):
    """A configuration d/oe.conf with its store in d and then text, the
    store initialised once: the path.  A configuration the command line
    refuses is still written (a test may be about just that)."""
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "oe.conf")
    with open(conf, "w") as f:
        f.write("[store]\nurl = sqlite:{d}/oe.db\nkey_file = {d}/secret.key\nbackend_dir = {b}\n"
                .format(d=d, b=STORES))
        f.write(text)
    if not os.path.exists(os.path.join(d, "oe.db")):
        oe(conf, "init")
    return conf


def oe(conf, *args, env=None, timeout=300):
    """otpenroll -c conf args...: (exit code, stdout, stderr).  A command
    that hangs past timeout fails the script (TimeoutExpired)."""
    r = subprocess.run([OE, "-c", conf] + list(args), capture_output=True, text=True, env=env,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def oe_json(conf, *args):
    """The same with --json: (exit code, parsed output or None, stderr)."""
    rc, out, err = oe(conf, "--json", *args)
    try:
        return rc, json.loads(out), err
    except ValueError:
        return rc, None, err + out


def db(conf, sql, *a):
    """Rows of a statement on the store beside conf (oe.db), committed."""
    c = sqlite3.connect(os.path.join(os.path.dirname(conf), "oe.db"))
    try:
        rows = c.execute(sql, a).fetchall()
        c.commit()
        return rows
    finally:
        c.close()
