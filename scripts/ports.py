#!/usr/bin/env python3
"""Ports for servers a script starts and tells where to listen; the twin of Rust's
`echo_testenv::free_port` (crates/testenv/src/ports.rs), sharing its lock directory.

Binding 127.0.0.1:0, reading the port and closing the socket races: the port is from the
kernel's ephemeral range, where connect() takes source ports, so any outgoing connection (a
service's pool opening to PostgreSQL) may take it before the child binds it; deploy/run-local.py
failed in CI that way ("Address already in use"). These ports lie below the ephemeral range and
are each locked (flock on $TMPDIR/echo-ports/<port>) while their holder lives, so no other caller
of either allocator is handed them meanwhile.

    import ports; a, b = ports.reserve(2)     # held while this Python process lives
    python3 scripts/ports.py 3 --for $$       # prints 3 ports, held while process $$ lives
"""

import argparse
import fcntl
import os
import socket
import sys
import tempfile
import time

LOWEST = 20_000
_held = []


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
        return low if low > LOWEST + 1_000 else 32_768
    except (OSError, ValueError, IndexError):
        return 32_768


def _lock_dir():
    path = os.path.join(tempfile.gettempdir(), "echo-ports")
    os.makedirs(path, exist_ok=True)
    return path


def reserve(count):
    """`count` distinct free ports on 127.0.0.1, locked for the life of this process."""
    directory, low, high = _lock_dir(), LOWEST, _ephemeral_low()
    span = high - low
    start = (os.getpid() * 7919) % span
    found = []
    for step in range(span):
        if len(found) == count:
            break
        port = low + (start + step) % span
        fd = os.open(os.path.join(directory, str(port)), os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", port))
        except OSError:
            os.close(fd)
            continue
        _held.append(fd)
        found.append(port)
    if len(found) < count:
        raise SystemExit(f"ports: only {len(found)} of {count} free ports in {low}..{high}")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int)
    parser.add_argument("--for", dest="owner", type=int, required=True,
                        help="hold the ports while this process id lives (a shell's $$)")
    args = parser.parse_args()
    print(*reserve(args.count), flush=True)
    # A child keeps the locks (flock belongs to the open file, which fork shares) until the
    # owner exits; the parent returns at once so `$(...)` sees end of output.
    if os.fork() == 0:
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(null, stream)
        while True:
            try:
                os.kill(args.owner, 0)
            except ProcessLookupError:
                os._exit(0)
            time.sleep(1)
    os._exit(0)  # the parent: its copies of the lock fds close; the child's keep the locks


if __name__ == "__main__":
    sys.exit(main())
