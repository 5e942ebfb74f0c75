"""A loopback SMTP server for the mail tests, on Debian's aiosmtpd.

Each accepted message is written to DIR/N.eml (headers as received);
each connection adds a line to DIR/connections.  Options: --tls CERT KEY
(STARTTLS offered and required), --auth USER:PASS (AUTH PLAIN/LOGIN,
over TLS only), --data-delay S (wait S seconds before accepting DATA),
--reject (answer 550 to every recipient).  It writes DIR/ready when it
listens and runs until killed.
"""
import argparse
import asyncio
import os
import ssl
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--dir", required=True)
ap.add_argument("--tls", nargs=2)
ap.add_argument("--auth")
ap.add_argument("--data-delay", type=float, default=0)
ap.add_argument("--reject", action="store_true")
args = ap.parse_args()
os.makedirs(args.dir, exist_ok=True)


class Store:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if args.reject:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if args.data_delay:
            await asyncio.sleep(args.data_delay)
        n = len([f for f in os.listdir(args.dir) if f.endswith(".eml")])
        tmp = os.path.join(args.dir, "%d.tmp" % n)
        with open(tmp, "wb") as f:
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-TLS: " + (b"yes" if session.ssl else b"no") + b"\r\n")
            f.write(envelope.original_content)
        os.rename(tmp, os.path.join(args.dir, "%d.eml" % n))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    user, password = args.auth.split(":", 1)
    ok = (auth_data.login.decode() == user and auth_data.password.decode() == password)
    return AuthResult(success=ok)


class CountingSMTP(SMTP):
    def connection_made(self, transport):
        with open(os.path.join(args.dir, "connections"), "a") as f:
            f.write("%f\n" % time.time())
        super().connection_made(transport)


class Server(Controller):
    def factory(self):
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


kw = {}
if args.tls:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*args.tls)
    kw.update(tls_context=ctx, require_starttls=True)
if args.auth:
    kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=True)
server = Server(Store(), hostname="127.0.0.1", port=args.port, **kw)
server.start()
open(os.path.join(args.dir, "ready"), "w").close()
try:
    while True:
        time.sleep(3600)
finally:
    server.stop()
