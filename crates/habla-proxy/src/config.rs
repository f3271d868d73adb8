//! Configuration: the proxy's own names ([`LocalIdentity`]), its listening
//! interfaces, and policy values ([`ProxyConfig`]). Every value is an input:
//! nothing here is a static.

use habla_message::{Host, HostKind, Uri};
use habla_transaction::Transport;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One listening point of the proxy: a transport on a local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interface {
    /// The transport.
    pub transport: Transport,
    /// The local address (the Via sent-by and Record-Route host:port).
    pub addr: SocketAddr,
}

impl Interface {
    /// An interface.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Interface { transport, addr }
    }

    /// The Via transport token (`UDP`, `TCP`...).
    pub fn via_token(&self) -> &'static str {
        self.transport.token()
    }

    /// `host:port` as it goes in a Via sent-by or a URI (IPv6 bracketed).
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Whether the address is IPv6.
    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

/// The default port of a URI or Via (RFC 3261 §19.1.2, §18.2.2): 5061 for
/// `sips:` / TLS, 5060 otherwise.
pub(crate) fn default_port(secure: bool) -> u16 {
    if secure {
        5061
    } else {
        5060
    }
}

/// The proxy's own names (RFC 3261 §16.4: "a value the proxy placed into
/// the Record-Route header field", "the Request-URI ... indicates a
/// resource at this proxy"): its listening addresses with and without a
/// port, host names that resolve to it, and the domains it is responsible
/// for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalIdentity {
    /// Every listening interface. The first one per transport and address
    /// family is the one used to send.
    pub interfaces: Vec<Interface>,
    /// Host names of the proxy itself (`proxy.example.org`, optionally with
    /// a `:port`). Without a port an alias names the proxy on any port it
    /// listens on.
    pub aliases: Vec<String>,
    /// Domains the proxy is responsible for (location lookups happen for
    /// Request-URIs in them, RFC 3261 §16.5). A domain also names the proxy
    /// in a Route (a UA configured with `sip:example.org;lr` as its
    /// outbound proxy).
    pub domains: Vec<String>,
}

impl LocalIdentity {
    /// Whether `host:port` names this proxy: a listening address with the
    /// port (absent means the default port: 5060, 5061 when `secure`), an
    /// alias, or a served domain.
    pub fn is_self_host(&self, host: &Host<'_>, port: Option<u16>, secure: bool) -> bool {
        let port = port.unwrap_or(default_port(secure));
        if let Some(ip) = host.ip() {
            return self
                .interfaces
                .iter()
                .any(|i| same_ip(i.addr.ip(), ip) && i.addr.port() == port);
        }
        if matches!(host.kind(), HostKind::Ipv6(None)) {
            return false;
        }
        let name = host.as_str().trim_end_matches('.');
        let listens_on = |p: u16| self.interfaces.iter().any(|i| i.addr.port() == p);
        for alias in self.aliases.iter().chain(self.domains.iter()) {
            let (a_host, a_port) = split_host_port(alias);
            if a_host.trim_end_matches('.').eq_ignore_ascii_case(name) {
                match a_port {
                    Some(p) if p == port => return true,
                    Some(_) => {}
                    None if listens_on(port) || self.interfaces.is_empty() => return true,
                    None => {}
                }
            }
        }
        false
    }

    /// Whether a URI names this proxy (RFC 3261 §16.4): its host and port
    /// (default port rules: `sips:` or `transport=tls` mean 5061).
    pub fn is_self(&self, uri: &Uri) -> bool {
        let Some(sip) = uri.as_sip() else {
            return false;
        };
        let secure = sip.is_secure()
            || sip
                .transport()
                .is_some_and(|t| t.eq_ignore_ascii_case("tls"));
        self.is_self_host(&sip.host(), sip.port(), secure)
    }

    /// Whether the URI's host is one this proxy is responsible for (RFC 3261
    /// §16.5): a served domain or an alias whatever the port, or one of its
    /// addresses without a port or with one it listens on.
    pub fn is_local_domain(&self, uri: &Uri) -> bool {
        let Some(sip) = uri.as_sip() else {
            return false;
        };
        let host = sip.host();
        if let Some(ip) = host.ip() {
            // An address of ours is a domain of ours when written without a
            // port (an AOR like sip:bob@192.0.2.10) or with one we listen
            // on; with another port it names some other element on this
            // host (a UA's contact), which is not looked up.
            return self.interfaces.iter().any(|i| {
                same_ip(i.addr.ip(), ip) && sip.port().is_none_or(|p| p == i.addr.port())
            });
        }
        let name = host.as_str().trim_end_matches('.');
        self.aliases.iter().chain(self.domains.iter()).any(|d| {
            split_host_port(d)
                .0
                .trim_end_matches('.')
                .eq_ignore_ascii_case(name)
        })
    }
}

fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    canon(a) == canon(b)
}

/// `host[:port]` of an alias (IPv6 references keep their brackets).
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(end) = s.rfind(']') {
        let (h, rest) = s.split_at(end + 1);
        return (h, rest.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) => match p.parse() {
            Ok(p) => (h, Some(p)),
            Err(_) => (s, None),
        },
        None => (s, None),
    }
}

/// Proxy policy. Every limit and timer is here, with safe defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// The proxy's names and interfaces.
    pub identity: LocalIdentity,
    /// Insert Record-Route in dialog-initiating requests (RFC 3261 §16.6
    /// step 4), with `;lr`. Default true.
    pub record_route: bool,
    /// Timer C (RFC 3261 §16.6 step 11: "greater than 3 minutes"), reset
    /// by each provisional response other than 100. Default 180 s.
    pub timer_c: Duration,
    /// Longest wait for a final response on a non-INVITE branch before it
    /// counts as a 408 (the client transaction's Timer F is 64*T1 = 32 s;
    /// this is a safety net a little beyond it). Default 34 s.
    pub non_invite_timeout: Duration,
    /// How long an INVITE response context that forwarded a 2xx stays, to
    /// forward retransmitted and late forked 2xx responses (RFC 6026 §7.2:
    /// 64*T1). Default 32 s.
    pub linger: Duration,
    /// Most live response contexts; beyond it new requests get 503 with
    /// Retry-After. Default 100 000.
    pub max_contexts: usize,
    /// Retry-After (seconds) of that 503. Default 5.
    pub retry_after: u32,
    /// Where requests for other domains go when they carry no Route (a
    /// configured outbound proxy, RFC 3261 §16.6 step 7); `None` sends them
    /// to the Request-URI (RFC 3263 resolution is the driver's).
    pub outbound_proxy: Option<Uri>,
    /// Option tags the proxy supports (Proxy-Require, RFC 3261 §16.3 step
    /// 5; listed in Supported of its OPTIONS answers). Default `["path"]`.
    pub supported: Vec<String>,
    /// Allow header of the proxy's own OPTIONS answer.
    pub allow: String,
    /// Accept header of the proxy's own OPTIONS answer.
    pub accept: String,
    /// Server header of locally generated responses (`None`: none).
    pub server: Option<String>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            identity: LocalIdentity::default(),
            record_route: true,
            timer_c: Duration::from_secs(180),
            non_invite_timeout: Duration::from_secs(34),
            linger: Duration::from_secs(32),
            max_contexts: 100_000,
            retry_after: 5,
            outbound_proxy: None,
            supported: vec!["path".into()],
            allow: "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER, REGISTER".into(),
            accept: "application/sdp".into(),
            server: Some("habla".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> LocalIdentity {
        LocalIdentity {
            interfaces: vec![
                Interface::new(Transport::Udp, "192.0.2.10:5060".parse().unwrap()),
                Interface::new(Transport::Tls, "192.0.2.10:5061".parse().unwrap()),
                Interface::new(Transport::Udp, "[2001:db8::10]:5070".parse().unwrap()),
            ],
            aliases: vec!["Proxy.Example.org".into(), "other.example.org:5090".into()],
            domains: vec!["example.org".into()],
        }
    }

    fn is_self(s: &str) -> bool {
        id().is_self(&Uri::parse(s).unwrap())
    }

    #[test]
    fn addresses_with_and_without_port() {
        assert!(is_self("sip:192.0.2.10"));
        assert!(is_self("sip:192.0.2.10:5060;lr"));
        assert!(is_self("sips:192.0.2.10"));
        assert!(is_self("sip:192.0.2.10;transport=tls"));
        assert!(!is_self("sip:192.0.2.10:5070"));
        assert!(is_self("sip:[2001:db8::10]:5070"));
        assert!(is_self("sip:[2001:DB8:0::10]:5070"));
        assert!(!is_self("sip:[2001:db8::10]"));
        assert!(!is_self("sip:192.0.2.11"));
    }

    #[test]
    fn names_are_case_insensitive_with_default_ports() {
        assert!(is_self("sip:proxy.EXAMPLE.org;lr"));
        assert!(is_self("sip:proxy.example.org:5070"));
        assert!(!is_self("sip:proxy.example.org:5999"));
        assert!(is_self("sip:other.example.org:5090"));
        assert!(!is_self("sip:other.example.org"));
        assert!(is_self("sip:Example.ORG"));
        assert!(!is_self("tel:+1234"));
    }

    #[test]
    fn local_domains_ignore_ports() {
        let id = id();
        let local = |s: &str| id.is_local_domain(&Uri::parse(s).unwrap());
        assert!(local("sip:bob@example.org"));
        assert!(local("sip:bob@EXAMPLE.ORG:5999"));
        assert!(local("sip:bob@192.0.2.10"));
        assert!(!local("sip:bob@example.net"));
    }

    #[test]
    fn our_address_with_a_foreign_port_is_not_our_domain() {
        // A UA on the proxy's host (its contact in an in-dialog
        // Request-URI) must be reached, not looked up.
        let id = id();
        let local = |s: &str| id.is_local_domain(&Uri::parse(s).unwrap());
        assert!(local("sip:bob@192.0.2.10:5060"));
        assert!(!local("sip:callee@192.0.2.10:40000"));
        assert!(local("sip:bob@[2001:db8::10]:5070"));
        assert!(!local("sip:bob@[2001:db8::10]:5071"));
    }
}
