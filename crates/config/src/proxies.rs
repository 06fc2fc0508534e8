//! `trusted_proxies`: the peers whose `x-forwarded-for` names the client. Behind an ingress or
//! a cloud load balancer the peer addresses come from a pod or subnet range, so entries are
//! CIDR ranges (`10.0.0.0/8`, `fd00::/8`); a bare address means just that address (/32, /128).

use ipnet::IpNet;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};

/// Parse one entry: `a.b.c.d/len`, `v6::/len` or a bare address. A range with host bits set
/// (`10.1.2.3/8`) is refused rather than widened or narrowed silently: it is usually a typo for
/// another prefix length.
pub fn parse_range(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    if !entry.contains('/') {
        return entry
            .parse::<std::net::IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("trusted_proxies: `{entry}` is not an IP address or CIDR range (e.g. 10.0.0.0/8, fd00::/8, 192.0.2.7)"));
    }
    let range: IpNet = entry.parse().map_err(|_| {
        format!(
            "trusted_proxies: `{entry}` is not a CIDR range (address/prefix length, e.g. 10.0.0.0/8 or fd00::/8; the length is at most 32 for IPv4 and 128 for IPv6)"
        )
    })?;
    if range.trunc() != range {
        return Err(format!(
            "trusted_proxies: `{entry}` has host bits set after the /{}; did you mean {}?",
            range.prefix_len(),
            range.trunc()
        ));
    }
    Ok(range)
}

/// Serialized as strings (`127.0.0.1/32`), so defaults layer under file and env values.
pub fn serialize<S: Serializer>(ranges: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
    let strings: Vec<String> = ranges.iter().map(ToString::to_string).collect();
    strings.serialize(serializer)
}

/// A list (`["10.0.0.0/8", "::1"]`, or `[10.0.0.0/8, ::1]` in `ECHO_TRUSTED_PROXIES`) or one
/// comma-separated string (`ECHO_TRUSTED_PROXIES=10.0.0.0/8,::1`); an empty string is none.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    deserializer.deserialize_any(Ranges)
}

struct Ranges;

impl<'de> Visitor<'de> for Ranges {
    type Value = Vec<IpNet>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of IP addresses or CIDR ranges")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        value
            .split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| parse_range(entry).map_err(E::custom))
            .collect()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut ranges = Vec::new();
        while let Some(entry) = seq.next_element::<String>()? {
            ranges.push(parse_range(&entry).map_err(de::Error::custom)?);
        }
        Ok(ranges)
    }
}
