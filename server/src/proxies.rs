//! Which peers may say who the client behind them is (`trusted_proxies`). Behind a reverse
//! proxy every request comes from the proxy's address, so the failed-login throttle would
//! count every client's failures together; a proxy appends the address it saw to
//! `X-Forwarded-For`, and that is believed only when the socket's peer is a listed proxy.
//! Anyone can write the header, so the client is the rightmost address in it that is not
//! itself a trusted proxy: what lies to its left was written by the client.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// An address block: `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    net: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(s: &str) -> Result<Block, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("`{s}`: the prefix length must be 0 to {max}")),
            },
        };
        Ok(Block { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| match a {
            IpAddr::V4(v) => u128::from(u32::from(v)) << 96,
            IpAddr::V6(v) => u128::from(v),
        };
        if self.net.is_ipv4() != ip.is_ipv4() {
            return false;
        }
        let mask = match self.prefix {
            0 => 0,
            p => u128::MAX << (128 - u32::from(p)),
        };
        bits(self.net) & mask == bits(ip) & mask
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The `trusted_proxies` setting; empty trusts no one (the socket's peer is the client).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Block>);

impl TrustedProxies {
    /// A list of addresses and CIDR blocks separated by commas or spaces.
    pub fn parse(s: &str) -> Result<TrustedProxies, String> {
        s.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .map(Block::parse)
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|b| b.contains(ip))
    }

    /// The client behind `peer`: `forwarded_for` (every `X-Forwarded-For` field, joined
    /// by commas) read from the right while its addresses are trusted proxies. An entry
    /// that is no address stops the walk at the last proxy: nothing it says is believed.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for entry in forwarded_for.unwrap_or("").rsplit(',') {
            let Some(ip) = address(entry.trim()) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.0.iter().map(Block::to_string).collect();
        f.write_str(&all.join(", "))
    }
}

/// One `X-Forwarded-For` entry: an address, or one with a port (`[::1]:80`, `192.0.2.1:80`).
fn address(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .or_else(|_| s.parse::<SocketAddr>().map(|a| a.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// Every `X-Forwarded-For` field of a request, joined by commas (RFC 9110 §5.3).
pub fn forwarded_for(headers: &[(String, String)]) -> Option<String> {
    let all: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_str())
        .collect();
    (!all.is_empty()).then(|| all.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_parse_and_hold_their_addresses() {
        let t = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7 fd00::/8,::1").unwrap();
        assert_eq!(t.to_string(), "10.0.0.0/8, 192.0.2.7/32, fd00::/8, ::1/128");
        for yes in ["10.1.2.3", "192.0.2.7", "fd12::1", "::1", "::ffff:10.0.0.1"] {
            assert!(t.trusts(ip(yes).to_canonical()), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "fe80::1", "::2", "0.0.0.0"] {
            assert!(!t.trusts(ip(no)), "{no}");
        }
        assert!(TrustedProxies::parse("0.0.0.0/0")
            .unwrap()
            .trusts(ip("203.0.113.1")));
        assert_eq!(
            TrustedProxies::parse(" ").unwrap(),
            TrustedProxies::default()
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "proxy.example.com",
            "10.0.0.0/",
            "10.0.0.0/x",
        ] {
            let e = TrustedProxies::parse(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn the_client_is_the_rightmost_address_not_a_trusted_proxy() {
        let t = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let p = ip("10.0.0.1");
        let c = |xff: Option<&str>| t.client(p, xff).to_string();
        assert_eq!(c(Some("203.0.113.5")), "203.0.113.5");
        assert_eq!(c(Some("198.51.100.1, 203.0.113.5")), "203.0.113.5");
        assert_eq!(c(Some("203.0.113.5, 10.2.3.4")), "203.0.113.5");
        assert_eq!(c(Some("[2001:db8::1]:443")), "2001:db8::1");
        assert_eq!(c(Some("203.0.113.5:80")), "203.0.113.5");
        // All proxies: the leftmost; nothing usable: the last proxy that spoke.
        assert_eq!(c(Some("10.3.3.3, 10.2.2.2")), "10.3.3.3");
        assert_eq!(c(Some("203.0.113.5, unknown, 10.2.2.2")), "10.2.2.2");
        assert_eq!(c(Some("")), "10.0.0.1");
        assert_eq!(c(None), "10.0.0.1");
        // An untrusted peer's header is not read.
        assert_eq!(
            t.client(ip("192.0.2.1"), Some("203.0.113.5")).to_string(),
            "192.0.2.1"
        );
        assert_eq!(
            TrustedProxies::default()
                .client(p, Some("203.0.113.5"))
                .to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn every_forwarded_for_field_is_read() {
        let h = |k: &str, v: &str| (k.to_string(), v.to_string());
        let headers = [
            h("x-forwarded-for", "198.51.100.1"),
            h("host", "x"),
            h("X-Forwarded-For", "203.0.113.5"),
        ];
        assert_eq!(
            forwarded_for(&headers).as_deref(),
            Some("198.51.100.1, 203.0.113.5")
        );
        assert_eq!(forwarded_for(&[h("host", "x")]), None);
    }
}
