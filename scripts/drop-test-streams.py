#!/usr/bin/env python3
"""Delete the JetStream streams tests left on a NATS server: `python3 scripts/drop-test-streams.py`.

Tests on the real backends isolate themselves with a subject prefix from
`echo_testenv::unique_name("t")` (or, in the web and Python client tests, `t_web_…`,
`t_pyjourney_…`), so their streams are named `T_<…>_ECHO_<SERVICE>`;
they are not deleted when a test ends (a killed test could not anyway), and the shared server
would collect hundreds per CI run. CI runs this before the tests, beside dropping the test
schemas. Only names of that shape are touched; any other stream stays. Speaks the NATS client
protocol directly (the JetStream API is request/reply over plain subjects), so it needs no
package.

    NATS_URL=nats://127.0.0.1:4222 python3 scripts/drop-test-streams.py
"""

import json
import os
import re
import socket
import sys
from urllib.parse import urlsplit

TEST_STREAM = re.compile(r"^T_[0-9A-Z_]+_ECHO_[A-Z]+$")
INBOX = "_INBOX.drop_test_streams"


class Nats:
    def __init__(self, url):
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout=10)
        self.file = self.sock.makefile("rb")
        if not self.file.readline().startswith(b"INFO"):
            raise SystemExit("not a NATS server")
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n')
        self.sock.sendall(f"SUB {INBOX} 1\r\n".encode())

    def request(self, subject, body):
        data = json.dumps(body).encode()
        self.sock.sendall(f"PUB {subject} {INBOX} {len(data)}\r\n".encode() + data + b"\r\n")
        while True:
            line = self.file.readline()
            if not line:
                raise SystemExit("NATS closed the connection")
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise SystemExit(line.decode().strip())
            elif line.startswith(b"MSG"):
                size = int(line.split()[-1])
                return json.loads(self.file.read(size + 2)[:-2] or b"{}")


def main():
    nats = Nats(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"))
    names = []
    while True:
        page = nats.request("$JS.API.STREAM.NAMES", {"offset": len(names)})
        if "error" in page:
            raise SystemExit(f"listing streams: {page['error']}")
        names += page.get("streams") or []
        if not page.get("streams") or len(names) >= page.get("total", 0):
            break
    dropped = failed = 0
    for name in names:
        if not TEST_STREAM.match(name):
            continue
        reply = nats.request(f"$JS.API.STREAM.DELETE.{name}", {})
        if reply.get("success"):
            dropped += 1
        else:
            failed += 1
            print(f"warning: could not delete stream {name}: {reply.get('error')}", file=sys.stderr)
    print(f"dropped {dropped} leftover test stream(s) of {len(names)}" + (f", {failed} failed" if failed else ""))


if __name__ == "__main__":
    main()
