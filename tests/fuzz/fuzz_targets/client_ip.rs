//! The rate-limit key from `X-Forwarded-For`: for any peer, header values and trusted blocks,
//! `client_ip` never panics, an untrusted peer is its own key, a trusted one yields an address
//! written in the header (or the peer), and a client's own entries cannot change its key.
#![no_main]

use std::net::IpAddr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tasklight::{config::IpBlock, http::client_ip::client_ip};

#[derive(Debug, Arbitrary)]
enum Block {
    /// An address and a prefix length, formatted `addr/len` (always valid).
    Cidr(IpAddr, u8),
    /// A bare address.
    Bare(IpAddr),
    /// Any text, as an operator could configure it (kept only if it parses).
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Entry {
    Addr(IpAddr),
    WithPort(IpAddr, u16),
    Text(String),
}

impl Entry {
    fn render(&self) -> String {
        match self {
            Entry::Addr(ip) => ip.to_string(),
            Entry::WithPort(IpAddr::V4(ip), port) => format!("{ip}:{port}"),
            Entry::WithPort(IpAddr::V6(ip), port) => format!("[{ip}]:{port}"),
            Entry::Text(text) => text.clone(),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    peer: IpAddr,
    /// Header values: each a list of entries joined by `sep`.
    values: Vec<Vec<Entry>>,
    spaced: bool,
    trusted: Vec<Block>,
    /// What a client could put in front of the chain itself.
    spoof: Vec<Entry>,
    /// Another trusted proxy in front of the peer.
    front: IpAddr,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses written in one entry, however decorated (port, brackets).
fn written(entry: &str) -> Vec<IpAddr> {
    let entry = entry.trim();
    let mut found = Vec::new();
    let mut candidates = vec![entry];
    if let Some((host, _)) = entry.rsplit_once(':') {
        candidates.push(host);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        if let Some((inside, _)) = rest.split_once(']') {
            candidates.push(inside);
        }
    }
    for text in candidates {
        if let Ok(ip) = text.parse::<IpAddr>() {
            found.push(canonical(ip));
        }
    }
    found
}

fuzz_target!(|input: Input| {
    let mut trusted = Vec::new();
    for block in &input.trusted {
        match block {
            Block::Cidr(addr, len) => {
                let max = if canonical(*addr).is_ipv4() { 32 } else { 128 };
                let len_ok = len % (max + 1);
                let parsed: IpBlock = format!("{addr}/{len_ok}")
                    .parse()
                    .expect("a valid CIDR block parses");
                assert!(parsed.contains(*addr), "{addr}/{len_ok} does not contain {addr}");
                if *len > max {
                    assert!(format!("{addr}/{len}").parse::<IpBlock>().is_err());
                }
                trusted.push(parsed);
            }
            Block::Bare(addr) => {
                let parsed: IpBlock = addr.to_string().parse().expect("an address parses");
                assert!(parsed.contains(*addr));
                assert!(parsed.contains(canonical(*addr)));
                trusted.push(parsed);
            }
            Block::Text(text) => {
                if let Ok(parsed) = text.parse::<IpBlock>() {
                    trusted.push(parsed);
                }
            }
        }
    }
    let is_trusted = |ip: IpAddr| trusted.iter().any(|b| b.contains(ip));

    let sep = if input.spaced { ", " } else { "," };
    let values: Vec<String> = input
        .values
        .iter()
        .map(|entries| entries.iter().map(Entry::render).collect::<Vec<_>>().join(sep))
        .collect();
    let peer = canonical(input.peer);
    let result = client_ip(input.peer, values.iter().map(String::as_str), &trusted);

    // The key is never an IPv4-mapped IPv6 address (one client, one key).
    assert_eq!(result, canonical(result));
    if !is_trusted(peer) {
        assert_eq!(result, peer, "an untrusted peer chose its key");
    } else if result != peer {
        let in_header = values
            .iter()
            .flat_map(|v| v.split(','))
            .any(|entry| written(entry).contains(&result));
        assert!(in_header, "{result} is neither the peer nor written in {values:?}");
    }

    // Entries a client writes itself (on the left) cannot change a key that is not a trusted
    // proxy's: the walk stopped to the right of them.
    if !is_trusted(result) {
        let spoof = input.spoof.iter().map(Entry::render).collect::<Vec<_>>().join(sep);
        let spoofed = client_ip(
            input.peer,
            std::iter::once(spoof.as_str()).chain(values.iter().map(String::as_str)),
            &trusted,
        );
        assert_eq!(spoofed, result, "a client's own entries {spoof:?} changed its key");
    }

    // One more trusted proxy in front (it appends the peer it saw) changes nothing.
    if is_trusted(peer) && is_trusted(canonical(input.front)) {
        let peer_text = input.peer.to_string();
        let longer = client_ip(
            input.front,
            values.iter().map(String::as_str).chain(std::iter::once(peer_text.as_str())),
            &trusted,
        );
        assert_eq!(longer, result, "an extra trusted hop {} changed the key", input.front);
    }
});
