//! Trusted networks: sources (a carrier trunk, a media server) whose
//! requests are not challenged. Configured as CIDR strings (RFC 4632 §3.1
//! for IPv4, RFC 4291 §2.3 for IPv6 prefixes).

use crate::ConfigError;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An address prefix: `192.0.2.0/24`, `2001:db8::/32`, or a bare address
/// (a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// A prefix from its parts; `None` if the length is too long for the
    /// family or host bits are set.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let c = Cidr { addr, prefix };
        (prefix <= max_prefix(addr) && mask(addr, prefix) == addr).then_some(c)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, what a dual-stack socket reports) matches the
    /// IPv4 prefixes it maps (RFC 4291 §2.5.5.2).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

fn max_prefix(a: IpAddr) -> u8 {
    match a {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `a` with all bits past `prefix` cleared.
pub(crate) fn mask(a: IpAddr, prefix: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let bits = u32::from(v);
            let m = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(v) => {
            let bits = u128::from(v);
            let m = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for Cidr {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Cidr, ConfigError> {
        let err = |reason| ConfigError::InvalidNetwork {
            network: s.to_owned(),
            reason,
        };
        let t = s.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| err("not an IPv4 or IPv6 address"))?;
        let prefix = match p {
            None => max_prefix(addr),
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit()) => p
                .parse()
                .map_err(|_| err("prefix length is not a number"))?,
            Some(_) => return Err(err("prefix length is not a number")),
        };
        if prefix > max_prefix(addr) {
            return Err(err("prefix length too long for the address family"));
        }
        Cidr::new(addr, prefix).ok_or_else(|| err("host bits are set past the prefix"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A list of trusted prefixes with a matcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks {
    nets: Vec<Cidr>,
}

impl TrustedNetworks {
    /// Parses every entry; the first bad one is the error.
    pub fn parse<I, S>(list: I) -> Result<TrustedNetworks, ConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(TrustedNetworks {
            nets: list
                .into_iter()
                .map(|s| s.as_ref().parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// The prefixes.
    pub fn networks(&self) -> &[Cidr] {
        &self.nets
    }

    /// Whether `ip` is in any trusted prefix.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

impl From<Vec<Cidr>> for TrustedNetworks {
    fn from(nets: Vec<Cidr>) -> Self {
        TrustedNetworks { nets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_match_v4() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.255.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        assert!(!c.contains(ip("2001:db8::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.7")));
        let host: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        assert!(host.contains(ip("192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        assert_eq!(c.to_string(), "10.1.0.0/16");
    }

    #[test]
    fn parse_and_match_v6() {
        let c: Cidr = "2001:db8:abcd::/48".parse().unwrap();
        assert!(c.contains(ip("2001:db8:abcd:12::1")));
        assert!(!c.contains(ip("2001:db8:abce::1")));
        assert!(!c.contains(ip("10.0.0.1")));
        let b: Cidr = "[2001:db8::1]".parse().unwrap();
        assert_eq!(b.prefix(), 128);
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("fe80::1")));
    }

    #[test]
    fn bad_networks_are_errors() {
        for bad in [
            "",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.1/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/0008",
            "example.org/24",
            "10.0.0.0/24/1",
            "300.0.0.0/8",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let t = TrustedNetworks::parse(["192.0.2.0/24", "2001:db8::/32"]).unwrap();
        assert!(t.contains(ip("192.0.2.200")));
        assert!(t.contains(ip("2001:db8::5060")));
        assert!(!t.contains(ip("198.51.100.1")));
        assert!(TrustedNetworks::parse(["192.0.2.0/24", "nope"]).is_err());
    }
}
