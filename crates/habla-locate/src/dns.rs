//! The DNS vocabulary the state machine speaks: queries out, answers in.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The record types RFC 3263 uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordType {
    /// NAPTR (RFC 3403): which transports a domain offers.
    Naptr,
    /// SRV (RFC 2782): which hosts and ports serve a transport.
    Srv,
    /// IPv4 addresses.
    A,
    /// IPv6 addresses.
    Aaaa,
}

/// A DNS query to perform: a name (lower case, without the trailing dot:
/// the driver treats it as fully qualified) and a record type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    /// The name queried.
    pub name: String,
    /// The record type wanted.
    pub rtype: RecordType,
}

impl Query {
    /// A query for `name` (normalised with [`normalize_name`]).
    pub fn new(name: &str, rtype: RecordType) -> Query {
        Query {
            name: normalize_name(name),
            rtype,
        }
    }
}

/// A name as compared and cached: ASCII lower case, without a trailing dot.
pub fn normalize_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A NAPTR record (RFC 3403 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Lower orders are processed first.
    pub order: u16,
    /// Within an order, lower preferences first.
    pub preference: u16,
    /// Flags; RFC 3263 uses `s` (the replacement names an SRV record).
    pub flags: String,
    /// The service: `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, `SIP+D2S`...
    pub services: String,
    /// The regular expression (must be empty for RFC 3263).
    pub regexp: String,
    /// The SRV name to look up next.
    pub replacement: String,
}

/// An SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower priorities are tried first.
    pub priority: u16,
    /// Relative weight among records of the same priority.
    pub weight: u16,
    /// The port to use at the target.
    pub port: u16,
    /// The target host (`.`: the service is not offered).
    pub target: String,
}

/// What the DNS said to a [`Query`]. TTLs are in seconds (for a record set:
/// the smallest of its records'; for a negative answer: the SOA minimum,
/// RFC 2308).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// NAPTR records.
    Naptr {
        /// The records.
        records: Vec<Naptr>,
        /// Their time to live.
        ttl: u32,
    },
    /// SRV records.
    Srv {
        /// The records.
        records: Vec<Srv>,
        /// Their time to live.
        ttl: u32,
    },
    /// A records.
    A {
        /// The addresses.
        records: Vec<Ipv4Addr>,
        /// Their time to live.
        ttl: u32,
    },
    /// AAAA records.
    Aaaa {
        /// The addresses.
        records: Vec<Ipv6Addr>,
        /// Their time to live.
        ttl: u32,
    },
    /// The name does not exist or has no record of that type (NXDOMAIN,
    /// NODATA). Cached for `ttl` (bounded by [`crate::Config`]).
    NotFound {
        /// The negative-caching time.
        ttl: u32,
    },
    /// No answer: timeout, SERVFAIL, refused, no DNS configured. Treated as
    /// "not found" for this resolution, never cached.
    Failed,
}

impl Answer {
    /// The answer's time to live; `None` for [`Answer::Failed`].
    pub fn ttl(&self) -> Option<u32> {
        match self {
            Answer::Naptr { ttl, .. }
            | Answer::Srv { ttl, .. }
            | Answer::A { ttl, .. }
            | Answer::Aaaa { ttl, .. }
            | Answer::NotFound { ttl } => Some(*ttl),
            Answer::Failed => None,
        }
    }

    /// Whether this answer carries records (not necessarily of the type
    /// asked for).
    pub fn is_positive(&self) -> bool {
        !matches!(self, Answer::NotFound { .. } | Answer::Failed)
    }

    /// Whether this answer fits a query of type `rtype` (a positive answer
    /// of another type is treated as "not found").
    pub(crate) fn fits(&self, rtype: RecordType) -> bool {
        matches!(
            (self, rtype),
            (Answer::Naptr { .. }, RecordType::Naptr)
                | (Answer::Srv { .. }, RecordType::Srv)
                | (Answer::A { .. }, RecordType::A)
                | (Answer::Aaaa { .. }, RecordType::Aaaa)
                | (Answer::NotFound { .. } | Answer::Failed, _)
        )
    }
}
