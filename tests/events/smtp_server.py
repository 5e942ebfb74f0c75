#!/usr/bin/python3
"""A loopback SMTP server for the usernotification tests (aiosmtpd).

Every accepted message is stored as DIR/NNNN.eml; the log (JSON lines)
records each TCP connection accepted, each connection that reaches SMTP
(under --implicit: after its TLS handshake), each EHLO and message with
whether it came under TLS (the transport's state at that moment), each
AUTH attempt and recipient, so that a test can count sessions and
Message-IDs.  Options make it offer
STARTTLS (--cert/--key) and require AUTH (--auth USER:PASSWORD), refuse
or defer recipients, take its time before it answers a message's data
(--slow-data), or put a line after its answer to STARTTLS (--inject).
--implicit serves TLS from the first byte (SMTP submission on port 465,
RFC 8314) instead of offering STARTTLS.  The port (0: a free one) goes to --port-file once
the server listens.
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, args):
        self.args = args
        self.log_file = open(args.log, "a", buffering=1)
        self.seq = len([n for n in os.listdir(args.dir) if n.endswith(".eml")])
        self.connections = 0
        self.accepted = 0

    def log(self, **event):
        self.log_file.write(json.dumps(event, sort_keys=True) + "\n")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.args.pipelining:
            responses.insert(1, "250-PIPELINING")
        self.log(event="ehlo", conn=server.conn_id, tls=server.tls_now())
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        for pattern in self.args.reject or []:
            if pattern in address:
                self.log(event="rcpt", conn=server.conn_id, to=address, code=550)
                return "550 5.1.1 no such user here"
        for pattern in self.args.defer or []:
            if pattern in address:
                self.log(event="rcpt", conn=server.conn_id, to=address, code=451)
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        self.log(event="rcpt", conn=server.conn_id, to=address, code=250)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        mid = msg.get("Message-ID", "")
        self.log(event="data", conn=server.conn_id, message_id=str(mid))
        if self.args.slow_data:
            await asyncio.sleep(self.args.slow_data)
        self.seq += 1
        path = os.path.join(self.args.dir, "%04d.eml" % self.seq)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.content)
        os.rename(path + ".tmp", path)
        self.log(event="message", conn=server.conn_id, message_id=str(mid),
                 mail_from=envelope.mail_from, rcpt_tos=envelope.rcpt_tos,
                 tls=server.tls_now(),
                 user=session.auth_data.login.decode() if session.authenticated else None,
                 file=os.path.basename(path))
        return "250 2.0.0 stored"


class Server(SMTP):
    def __init__(self, recorder, **kw):
        super().__init__(recorder, **kw)
        self.recorder = recorder
        self.conn_id = None
        self.implicit = False
        # Made for each TCP connection, before any TLS handshake: a
        # connection that fails its handshake has an "accept" event and
        # no "connect".
        recorder.accepted += 1
        recorder.log(event="accept", n=recorder.accepted)

    def tls_now(self):
        """Whether the connection is under TLS now: the transport is an SSL
        one whose handshake is done (not what the listener was meant for)."""
        obj = self.transport.get_extra_info("ssl_object") if self.transport else None
        return obj is not None and obj.version() is not None

    async def push(self, status):
        if self.recorder.args.inject and status.startswith("220 Ready to start TLS"):
            status += "\r\n250 injected before TLS"  # what a man in the middle could add
        await super().push(status)

    def connection_made(self, transport):
        if self.conn_id is None:  # not the same connection under TLS
            self.recorder.connections += 1
            self.conn_id = self.recorder.connections
            self.implicit = transport.get_extra_info("ssl_object") is not None
            self.recorder.log(event="connect", conn=self.conn_id, implicit=self.implicit)
        super().connection_made(transport)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--dir", required=True, help="where messages are stored")
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth", help="USER:PASSWORD, AUTH required")
    ap.add_argument("--reject", action="append", help="550 for recipients containing this")
    ap.add_argument("--defer", action="append", help="451 for recipients containing this")
    ap.add_argument("--slow-data", type=float, default=0,
                    help="seconds before a message's data is answered")
    ap.add_argument("--no-pipelining", dest="pipelining", action="store_false")
    ap.add_argument("--implicit", action="store_true", help="TLS from the first byte")
    ap.add_argument("--inject", action="store_true",
                    help="a line after the answer to STARTTLS, in the same write")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    recorder = Recorder(args)

    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

        def sni(sslobj, name, ctx):
            recorder.log(event="sni", name=name)
        tls.sni_callback = sni

    def authenticator(server, session, envelope, mechanism, data):
        ok = (args.auth is not None and isinstance(data, LoginPassword) and
              "%s:%s" % (data.login.decode(), data.password.decode()) == args.auth)
        recorder.log(event="auth", conn=server.conn_id, mechanism=mechanism, ok=ok,
                     user=data.login.decode() if isinstance(data, LoginPassword) else None)
        return AuthResult(success=ok, handled=False, auth_data=data)

    implicit = tls if args.implicit else None
    if implicit:
        tls = None  # no STARTTLS inside TLS
    kw = dict(hostname="mail.test", tls_context=tls, require_starttls=tls is not None)
    if args.auth:
        # Under implicit TLS the whole connection is protected already.
        kw.update(authenticator=authenticator, auth_required=True,
                  auth_require_tls=implicit is None)
    else:
        kw.update(auth_exclude_mechanism=["LOGIN", "PLAIN"])

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(
        lambda: Server(recorder, loop=loop, **kw), host="127.0.0.1", port=args.port,
        reuse_address=True, ssl=implicit))
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write("%d\n" % port)
    os.rename(args.port_file + ".tmp", args.port_file)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.run_forever()
    server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
