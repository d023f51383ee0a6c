//! The client address a request is limited and logged under: the peer, or, when the peer is a
//! trusted proxy, the right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
//!
//! Only trusted proxies may speak for the client: anyone can send `X-Forwarded-For`, and taking
//! its left-most entry would let a client pick its own rate-limit key.

use std::net::IpAddr;

use crate::config::IpBlock;
use crate::config::ip_block::canonical;

/// The client address for a request from `peer` carrying the `X-Forwarded-For` header values
/// `forwarded` (in order of appearance), given the trusted proxies.
///
/// Walks the chain from the right: while the hop that handed the request on is trusted, the
/// address it names is the next candidate. Stops at the first untrusted hop, or at an entry that
/// is not an address (then the last trusted hop is the client, since nothing it said can be
/// checked further).
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded: impl IntoIterator<Item = &'a str>,
    trusted: &[IpBlock],
) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|block| block.contains(peer)) {
        return peer;
    }
    let entries: Vec<&str> = forwarded
        .into_iter()
        .flat_map(|value| value.split(','))
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            return client;
        };
        client = canonical(ip);
        if !trusted.iter().any(|block| block.contains(client)) {
            return client;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if entry.len() > 64 {
        return None;
    }
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = entry.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(list: &[&str]) -> Vec<IpBlock> {
        list.iter().map(|b| b.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let trusted = blocks(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), ["1.1.1.1"], &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = blocks(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["198.51.100.7"], &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_wins_over_spoofed_entries_on_the_left() {
        let trusted = blocks(&["10.0.0.0/8", "127.0.0.1"]);
        // The client sent "6.6.6.6" itself; the edge proxy appended the real address.
        let chain = ["6.6.6.6, 198.51.100.7", "10.1.2.3"];
        assert_eq!(
            client_ip(ip("127.0.0.1"), chain, &trusted),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn garbage_in_the_chain_stops_at_the_last_trusted_hop() {
        let trusted = blocks(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["not-an-ip"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["1.2.3.4, nonsense, 10.9.9.9"], &trusted),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_understood() {
        let trusted = blocks(&["127.0.0.1/32"]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), ["198.51.100.7:4711"], &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), ["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn blocks_parse_and_refuse_bad_prefixes() {
        assert!("10.0.0.0/33".parse::<IpBlock>().is_err());
        assert!("fe80::/129".parse::<IpBlock>().is_err());
        assert!("nonsense".parse::<IpBlock>().is_err());
        let all: IpBlock = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!(!all.contains(ip("2001:db8::1")));
    }
}
