"""One grpc.aio channel per server, with the keepalive a mobile-grade client wants."""

from __future__ import annotations

import grpc

# HTTP/2 keepalive on the client side too: a half-open connection (a phone that lost its
# network without a FIN) is noticed by the transport even while a stream is idle; Echo pings
# from its side every 30 s as well (`keepalive_interval`).
CHANNEL_OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
)


def connect(target: str, *, tls: bool = False) -> grpc.aio.Channel:
    """A channel to Echo's public gRPC port (`host:port`); TLS with the system's roots."""
    if tls:
        return grpc.aio.secure_channel(target, grpc.ssl_channel_credentials(), CHANNEL_OPTIONS)
    return grpc.aio.insecure_channel(target, CHANNEL_OPTIONS)
