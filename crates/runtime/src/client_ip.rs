//! The client's IP (DESIGN §10): the peer address, or — only when the peer is a trusted proxy
//! (the edge, a load balancer) — the nearest untrusted address in `x-forwarded-for`.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client IP of `request`, trusting forwarding headers only from peers in the `trusted`
/// ranges.
pub fn client_ip<T>(request: &tonic::Request<T>, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|range| range.contains(ip));
    let peer = request.remote_addr()?.ip();
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded = request
        .metadata()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let hops = forwarded.map(|h| {
        h.split(',')
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
    });
    // Walk from the nearest hop outwards; the first address we do not trust is the client.
    hops.and_then(|hops| {
        hops.collect::<Vec<_>>()
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
    })
    .or(Some(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(peer: &str, forwarded: Option<&str>) -> tonic::Request<()> {
        let mut request = tonic::Request::new(());
        request
            .extensions_mut()
            .insert(tonic::transport::server::TcpConnectInfo {
                local_addr: None,
                remote_addr: Some(peer.parse().unwrap()),
            });
        if let Some(forwarded) = forwarded {
            request
                .metadata_mut()
                .insert("x-forwarded-for", forwarded.parse().unwrap());
        }
        request
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let spoofed = request("203.0.113.9:1000", Some("1.2.3.4"));
        assert_eq!(
            client_ip(&spoofed, &trusted),
            Some("203.0.113.9".parse().unwrap())
        );
        let via_edge = request("127.0.0.1:1000", Some("1.2.3.4, 198.51.100.7"));
        assert_eq!(
            client_ip(&via_edge, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let direct = request("127.0.0.1:1000", None);
        assert_eq!(
            client_ip(&direct, &trusted),
            Some("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn every_hop_inside_a_trusted_range_is_skipped() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        // Client → ingress (10.1.0.5) → edge (10.2.0.9) → auth.
        let via_ingress = request("10.2.0.9:1000", Some("198.51.100.7, 10.1.0.5"));
        assert_eq!(
            client_ip(&via_ingress, &trusted),
            Some("198.51.100.7".parse().unwrap())
        );
        let v6 = request("[fd12::1]:1000", Some("2001:db8::7"));
        assert_eq!(
            client_ip(&v6, &trusted),
            Some("2001:db8::7".parse().unwrap())
        );
        let outside = request("11.0.0.1:1000", Some("198.51.100.7"));
        assert_eq!(
            client_ip(&outside, &trusted),
            Some("11.0.0.1".parse().unwrap())
        );
    }
}
