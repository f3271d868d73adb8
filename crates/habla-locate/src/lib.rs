//! RFC 3263 ("Locating SIP Servers") as a sans-IO state machine.
//!
//! Given the next hop of a request (a SIP or SIPS URI's host, port,
//! `transport` parameter), a [`Resolution`] says which DNS queries to make
//! (NAPTR, SRV, A, AAAA), takes their answers, and ends with an ordered list
//! of [`Candidate`]s — a transport and a socket address each — to try in
//! turn ([`Candidates::failover`], RFC 3263 §4.3). It does no I/O, reads no
//! clock and draws no random numbers: `now` and a seed for the RFC 2782
//! weighted choice are inputs, and the driver performs the queries.
//!
//! # The rules (RFC 3263 §4)
//!
//! | next hop | queries |
//! | --- | --- |
//! | a numeric IP address | none: that address, the explicit port or the transport's default |
//! | a name with an explicit port | A/AAAA of the name (transport: the parameter, else UDP; TLS for SIPS) |
//! | a name with a `transport` parameter | SRV for that transport (`_sip._udp`, `_sip._tcp`, `_sips._tcp`...), else A/AAAA on the default port |
//! | a name alone | NAPTR (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, `SIP+D2S`... with flag `s`, supported transports only, SIPS services only for a SIPS URI), each service's SRV, then A/AAAA of the SRV targets; without usable NAPTR records, SRV for every supported transport in preference order; without SRV records, A/AAAA on the default port |
//!
//! SRV records are ordered by priority, then by weighted random choice within
//! a priority (RFC 2782, [`order_srv`]); a target of `.` means the service is
//! not offered there. Answers are kept in a [`Cache`] until their TTL runs
//! out, negative answers too (for a bounded time).
//!
//! # The drain contract
//!
//! ```
//! use habla_locate::{Answer, Cache, Config, Resolution, Target};
//! use std::time::Instant;
//!
//! let now = Instant::now(); // in real code: the driver's clock
//! let mut cache = Cache::new(1024);
//! let target = Target::name("example.test");
//! let mut res = Resolution::new(target, &Config::default(), 7);
//! loop {
//!     // Send every query the resolution asks for (they may run at once)...
//!     let mut queries = Vec::new();
//!     while let Some(q) = res.poll_query(now, &mut cache) {
//!         queries.push(q);
//!     }
//!     if let Some(result) = res.poll_result() {
//!         // ...until it has a result: an ordered list of candidates.
//!         assert!(result.is_err()); // nothing answered below
//!         break;
//!     }
//!     // ...and hand each answer back (here: the name does not exist).
//!     for q in queries {
//!         res.handle_answer(now, &mut cache, &q, Answer::NotFound { ttl: 60 });
//!     }
//! }
//! ```
//!
//! Every answer from the network is hostile: record counts, targets and
//! candidates are bounded by [`Limits`], mismatched answers count as
//! "not found", and nothing panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cache;
mod candidates;
mod dns;
mod resolution;
mod srv;

pub use cache::Cache;
pub use candidates::{Candidate, Candidates};
pub use dns::{normalize_name, Answer, Naptr, Query, RecordType, Srv};
pub use habla_transaction::Transport;
pub use resolution::{Config, Families, Limits, LocateError, Resolution, Target};
pub use srv::{order_srv, SplitMix64};
