//! Which addresses are inside our network. A push endpoint a user registers (Web Push,
//! UnifiedPush, webhook) is a URL of theirs; in production an outgoing request must not reach
//! this machine or a private network through it (SSRF). Registration checks the URL's host as
//! written ([`internal_host`]); the HTTP client checks again what a name resolves to
//! ([`internal_ip`], `HttpConfig::public_only`), since a public name can point inside.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True for hosts that name this machine or a private network: localhost names, internal IP
/// literals, and numeric forms other than dotted quads (`2130706433`, `127.1`, `0x7f.1`), which
/// URL parsers read as IPv4 addresses but are easy to slip past a check.
pub fn internal_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok_and(internal_v6);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return internal_ip(ip);
    }
    let last = host.rsplit('.').next().unwrap_or_default();
    last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x")
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking (RFC 2544)
        || a >= 240 // reserved
}

fn internal_v6(ip: Ipv6Addr) -> bool {
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses are IPv4 inside
    if let Some(v4) = ip.to_ipv4() {
        return internal_v4(v4);
    }
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local (fc00::/7)
        || (first & 0xffc0) == 0xfe80 // link-local (fe80::/10)
        || (first & 0xffc0) == 0xfec0 // site-local, deprecated (fec0::/10)
        || (ip.segments()[0] == 0x64 && ip.segments()[1] == 0xff9b) // NAT64 (64:ff9b::/96)
}

/// True for addresses of this machine, private networks, link-local, shared, reserved,
/// multicast and documentation ranges (IPv4-mapped IPv6 judged as the IPv4 inside).
pub fn internal_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => internal_v6(v6),
    }
}
