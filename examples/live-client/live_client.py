#!/usr/bin/env python3
"""A live Echo client: one Subscribe stream per device, resumed without loss after any failure.

    pip install ./clients/python              # the echo-client package (stubs + helpers)
    ECHO_PASSWORD=... python3 examples/live-client/live_client.py \\
        --server 127.0.0.1:8080 --phone +14155550102 --state bob.json

Prints each applied message as one JSON line on stdout ({"conversation_id", "seq", "text"});
logs go to stderr. The state file keeps the cursor, the applied seqs and the session, so a
restarted client resumes where it stopped. docs/live-client.md walks through it.

Exit status: 0 after SIGINT/SIGTERM, 3 when the session is revoked or signing in failed,
4 when another stream of this device took over, 1 on anything else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

EXIT_OK, EXIT_ERROR, EXIT_SIGNED_OUT, EXIT_REPLACED = 0, 1, 3, 4

log = logging.getLogger("live-client")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--server", default="127.0.0.1:8080", help="host:port of Echo's gRPC listener"
    )
    parser.add_argument("--tls", action="store_true", help="use TLS with the system's roots")
    parser.add_argument(
        "--state", type=Path, required=True, help="the state file (created if missing)"
    )
    parser.add_argument(
        "--phone",
        help="sign in with this phone number and $ECHO_PASSWORD when the state has no session",
    )
    parser.add_argument(
        "--access-token",
        default=os.environ.get("ECHO_ACCESS_TOKEN"),
        help="use this access token instead of signing in (default: $ECHO_ACCESS_TOKEN)",
    )
    parser.add_argument(
        "--device-name", default="live-client", help="device name shown in ListSessions"
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=20.0,
        help="Heartbeat.interval assumed until the server sends one (twice it in silence: dead)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every item, heartbeats included"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if args.verbose:
        log.setLevel(logging.DEBUG)
    # Imported after argument parsing so that --help works without echo-client installed.
    from stream import LiveClient, SignInRequired

    client = LiveClient(
        server=args.server,
        tls=args.tls,
        state_path=args.state,
        phone=args.phone,
        password=os.environ.get("ECHO_PASSWORD"),
        access_token=args.access_token,
        device_name=args.device_name,
        heartbeat_interval=args.heartbeat_interval,
    )
    try:
        return asyncio.run(run_until_signal(client))
    except SignInRequired as error:
        log.error("cannot sign in: %s", error)
        return EXIT_SIGNED_OUT


async def run_until_signal(client) -> int:
    """Runs the client until it stops by itself or SIGINT/SIGTERM arrives. A signal cancels it
    at its next await: printing a message and saving the state that records it have none in
    between, so the state file stays consistent with the output."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(client.run())
    stopping = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running in done:
            return running.result()
        log.info("signal received: stopping")
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return EXIT_OK
    finally:
        stopping.cancel()
        await client.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
