"""One request to otpenrolld over its Unix socket (doc/protocol.md):
a 4-byte big-endian length, then a JSON object, each way."""
import json
import socket
import struct


def call(path, req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        body = json.dumps(req).encode()
        s.sendall(struct.pack(">I", len(body)) + body)
        hdr = b""
        while len(hdr) < 4:
            chunk = s.recv(4 - len(hdr))
            if not chunk:
                raise ConnectionError("no reply")
            hdr += chunk
        n = struct.unpack(">I", hdr)[0]
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise ConnectionError("truncated reply")
            data += chunk
        return json.loads(data)
    finally:
        s.close()
