"""What the journey needs around the client: an `echo` process on either backend, the
webhook that receives its OTP codes, and a TCP proxy that can cut a connection.

`echo` runs as CI's binary does: embedded (SQLite in a temporary directory, in-process bus,
in-memory cache) or on the shared PostgreSQL, NATS and Redis (production mode, isolated by a
schema, subject and key prefix of its own: `t_pyjourney_<time>_<pid>_<n>`, which CI's clean-up of
leftover `t_` schemas also covers). Nothing from the caller's ECHO_* environment leaks in.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import itertools
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

WAIT = 30.0  # seconds for any one expectation
ACCESS_TOKEN_TTL = 3  # seconds: the journey outlives several tokens
_ISOLATIONS = itertools.count()  # this process's isolations, for names unique by construction

# Where the shared servers are: the same variables and defaults as crates/testenv.
SERVERS = {
    "ECHO_DATABASE_URL": (
        "ECHO_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
    ),
    "ECHO_BUS_URL": ("ECHO_TEST_NATS_URL", "nats://127.0.0.1:4222"),
    "ECHO_CACHE_URL": ("ECHO_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
}


class CheckFailed(Exception):
    """An expectation of the journey did not hold."""


class Skipped(Exception):
    """The real backends are not reachable and ECHO_REQUIRE_SERVICES is not set."""


def check(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


class OtpWebhook:
    """The SMS gateway stand-in: echo POSTs {"phone_number", "purpose", "code"} here."""

    def __init__(self, port: int) -> None:
        self.codes: dict[str, str] = {}
        self.arrived = threading.Condition()
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with webhook.arrived:
                    webhook.codes[body["phone_number"]] = body["code"]
                    webhook.arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}/otp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def code_for(self, phone: str) -> str:
        with self.arrived:
            if not self.arrived.wait_for(lambda: phone in self.codes, timeout=WAIT):
                raise CheckFailed(f"no OTP code for {phone} reached the webhook")
            return self.codes.pop(phone)


class Proxy:
    """A TCP proxy in front of echo: `cut()` drops every connection and refuses new ones (a
    phone losing its network), `restore()` lets them through again."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port, self.upstream = port, upstream
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()  # a reset, not a polite FIN
        self.writers.clear()

    async def _client(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        # Cancelled when the journey ends with connections open: nothing left to do then.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()
            self.writers.discard(writer)


class Echo:
    """`target/debug/echo` on free ports with 3 s access tokens, a 2 s live heartbeat and OTP
    codes sent to `otp_url`; `backend` is "embedded" or "real"."""

    def __init__(self, echo_bin: Path, work: Path, backend: str, ports, otp_url: str) -> None:
        self.port, admin, internal = ports
        self.target = f"127.0.0.1:{self.port}"
        self.backend = backend
        # Unique by construction: the time, this process and a count within it.
        self.isolation = f"t_pyjourney_{int(time.time() * 1000):012x}_{os.getpid():x}_{next(_ISOLATIONS):x}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO_")}
        env.update(
            ECHO_AUTH__OTP_SENDER=otp_url,
            ECHO_AUTH__ACCESS_TOKEN_TTL=str(ACCESS_TOKEN_TTL),
            ECHO_LIVE__HEARTBEAT_INTERVAL="2",
        )
        if backend == "real":
            env.update(self._real_backends(work))
        command = [str(echo_bin), "--data-dir", str(work / "data"), "--listen", self.target]
        command += ["--admin-listen", f"127.0.0.1:{admin}"]
        command += ["--internal-listen", f"127.0.0.1:{internal}"]
        self.log_path = work / "server.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def _real_backends(self, work: Path) -> dict[str, str]:
        env = {}
        for name, (variable, default) in SERVERS.items():
            url = os.environ.get(variable, default)
            if not _reachable(url):
                message = f"{url} is not reachable (set {variable} to point elsewhere)"
                if os.environ.get("ECHO_REQUIRE_SERVICES") == "1":
                    raise CheckFailed(f"{message}; ECHO_REQUIRE_SERVICES=1 makes this a failure")
                raise Skipped(message)
            env[name] = url
        # Production mode (any real backend) refuses development keys: give it fresh ones.
        key = work / "signing-key.pem"
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "ED25519", "-out", str(key)],
            check=True,
            capture_output=True,
        )
        env.update(
            ECHO_DATABASE_SCHEMA_PREFIX=f"{self.isolation}_",
            ECHO_BUS_SUBJECT_PREFIX=f"{self.isolation}.",
            ECHO_CACHE_KEY_PREFIX=f"{self.isolation}:",
            ECHO_AUTH__JWT_SIGNING_KEY_FILE=str(key),
            ECHO_AUTH__OTP_HMAC_KEY=secrets.token_hex(32),
            ECHO_SERVICE_SECRET=secrets.token_hex(32),
        )
        return env

    def log_tail(self, lines: int = 30) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()[-lines:]

    def stop(self) -> None:
        """SIGTERM, then drops this run's schemas on the real backends (best effort: CI's
        clean-up of leftover `t_` schemas catches what this misses)."""
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.backend == "real":
            _drop_schemas(self.isolation)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=2):
            return True
    except OSError:
        return False


def _drop_schemas(prefix: str) -> None:
    url = os.environ.get(*SERVERS["ECHO_DATABASE_URL"])
    query = f"SELECT nspname FROM pg_namespace WHERE nspname LIKE '{prefix}\\_%'"
    listed = subprocess.run(
        ["psql", url, "-Atc", query], check=False, capture_output=True, text=True
    )
    for schema in listed.stdout.split():
        subprocess.run(
            ["psql", url, "-qc", f'DROP SCHEMA "{schema}" CASCADE'],
            check=False,
            capture_output=True,
        )
