#!/usr/bin/python3
"""A loopback HTTP(S) server for the webhook tests.

Listens on 127.0.0.1 on a free port (written to --port-file once it
listens) and appends every request to --log as one JSON line:
{"n", "peer", "method", "path", "headers", "body"}.  The path chooses the
answer:

  /ok      200 "ok"
  /flaky   500 for the first --fail-first requests to /flaky, then 200
  /bad     400 "malformed event"
  /deny    403 with the body "not on weekends" (a pre rule's refusal)
  /slow    sleeps --slow seconds, then 200

--cert/--key serve HTTPS instead.  It runs until killed.
"""
import argparse
import http.server
import json
import os
import ssl
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--fail-first", type=int, default=1)
    ap.add_argument("--slow", type=float, default=5)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    lock = threading.Lock()
    counts = {"all": 0, "/flaky": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def answer(self, code, text):
            body = text.encode()
            try:
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (the /slow hook outlives
                # its timeout on purpose): nothing to answer.
                self.close_connection = True

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with lock:
                counts["all"] += 1
                if self.path == "/flaky":
                    counts["/flaky"] += 1
                flaky = counts["/flaky"]
                with open(args.log, "a") as f:
                    f.write(json.dumps({
                        "n": counts["all"],
                        "peer": self.client_address[1],
                        "method": self.command,
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body.decode("utf-8", "replace"),
                    }) + "\n")
            if self.path == "/ok":
                self.answer(200, "ok\n")
            elif self.path == "/flaky":
                if flaky <= args.fail_first:
                    self.answer(500, "try again later\n")
                else:
                    self.answer(200, "ok\n")
            elif self.path == "/bad":
                self.answer(400, "malformed event\n")
            elif self.path == "/deny":
                self.answer(403, "\nnot on weekends\nsecond line\n")
            elif self.path == "/slow":
                time.sleep(args.slow)
                self.answer(200, "late\n")
            else:
                self.answer(404, "no such hook\n")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
