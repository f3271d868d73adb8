//! The transport's Via edits: `received`/`rport` on requests received
//! (RFC 3261 §18.2.1, RFC 3581 §4), sent-by and transport on requests sent
//! (§18.1.1), and where a response goes (§18.2.2, RFC 3581 §4).

use habla_message::{HeaderName, Message, Via};
use std::net::{IpAddr, SocketAddr};

/// The Via value without its parameters (`SIP/2.0/UDP host:port`).
fn head(via: &Via) -> &str {
    let all = via.as_str();
    let params = via.params().as_str();
    all.strip_suffix(params)
        .unwrap_or_else(|| all.split(';').next().unwrap_or(all))
        .trim_end()
}

/// Appends `;name[=value]` (a value as written, quoted ones included).
fn push_param(s: &mut String, name: &str, value: Option<&str>) {
    s.push(';');
    s.push_str(name);
    if let Some(v) = value {
        s.push('=');
        s.push_str(v);
    }
}

/// Replaces the top Via value by `value`, keeping the others (and their
/// lines) as received.
fn replace_top_via(msg: &mut Message, value: &str) -> Result<(), habla_message::Error> {
    msg.replace_first_value(HeaderName::Via, value)
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The server transport's duty on a received request (RFC 3261 §18.2.1):
/// add `received=<source IP>` to the top Via when its sent-by host differs
/// from the packet's source address, and fill `rport=<source port>` when
/// the Via carries an `rport` parameter (RFC 3581 §4: it then also gets
/// `received`, even if the host matches). Returns whether the message was
/// edited. Responses are left alone.
pub fn stamp_received(msg: &mut Message, source: SocketAddr) -> Result<bool, habla_message::Error> {
    if !msg.is_request() {
        return Ok(false);
    }
    let src_ip = canonical(source.ip());
    let via = msg.top_via()?;
    let host_matches = via.host().ip().map(canonical) == Some(src_ip);
    let rport_asked = via.rport().is_some();
    if host_matches && !rport_asked {
        return Ok(false);
    }
    // One string, written once: this runs for every request received.
    let mut value = String::with_capacity(via.as_str().len() + 48);
    value.push_str(head(via));
    for (name, v) in via.params().iter() {
        let stale_rport = rport_asked && name.eq_ignore_ascii_case("rport");
        if !(name.eq_ignore_ascii_case("received") || stale_rport) {
            push_param(&mut value, name, v);
        }
    }
    value.push_str(";received=");
    crate::flow::push_ip(&mut value, src_ip);
    if rport_asked {
        value.push_str(";rport=");
        crate::flow::push_decimal(&mut value, u64::from(source.port()));
    }
    replace_top_via(msg, &value)?;
    Ok(true)
}

/// Rewrites the top Via of a request about to be sent (RFC 3261 §18.1.1:
/// "the client transport MUST insert a value of the sent-by field"): the
/// transport token becomes `transport` and the sent-by `sent_by`, the
/// parameters (branch, rport...) stay. Without a Via, one cannot be made
/// (the branch belongs to the TU): an error.
pub fn set_sent_by(
    msg: &mut Message,
    transport: &str,
    sent_by: SocketAddr,
) -> Result<(), habla_message::Error> {
    set_sent_by_and_mark(msg, transport, sent_by, None)
}

/// [`set_sent_by`], and with `Some(shard)` the branch marked for that
/// driver shard ([`crate::shard::mark_branch`]) so that responses find the
/// shard holding the client transaction.
pub(crate) fn set_sent_by_and_mark(
    msg: &mut Message,
    transport: &str,
    sent_by: SocketAddr,
    shard: Option<usize>,
) -> Result<(), habla_message::Error> {
    let via = msg.top_via()?;
    let marked = match (shard, via.branch()) {
        (Some(s), Some(b)) if b.starts_with(habla_message::MAGIC_COOKIE) => {
            Some(crate::shard::mark_branch(b, s))
        }
        _ => None,
    };
    use std::fmt::Write;
    let mut value = String::with_capacity(via.as_str().len() + 32);
    let _ = write!(
        value,
        "{}/{}/{} {}",
        via.protocol_name(),
        via.protocol_version(),
        transport,
        sent_by
    );
    for (name, v) in via.params().iter() {
        match &marked {
            Some(m) if name.eq_ignore_ascii_case("branch") => push_param(&mut value, name, Some(m)),
            _ => push_param(&mut value, name, v),
        }
    }
    if value == via.as_str() {
        return Ok(());
    }
    replace_top_via(msg, &value)
}

/// Where a response travelling over a datagram transport goes (RFC 3261
/// §18.2.2 with RFC 3581 §4), from its top Via: `maddr` (an IP literal) and
/// the sent-by port; else the `received` address (or the sent-by host when
/// it is an IP) with the `rport` port when filled in, else the sent-by port
/// (default 5060). `fallback` (the request's source) covers a Via that
/// names no usable address.
pub fn response_destination(via: &Via, fallback: SocketAddr) -> SocketAddr {
    let port = via.port().unwrap_or(5060);
    if let Some(ip) = via.maddr().and_then(parse_ip) {
        return SocketAddr::new(ip, port);
    }
    let ip = via
        .received()
        .and_then(parse_ip)
        .or_else(|| via.host().ip())
        .unwrap_or(fallback.ip());
    let port = match via.rport() {
        Some(Some(p)) if p != 0 => p,
        _ => port,
    };
    SocketAddr::new(ip, port)
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn req(via: &str) -> Message {
        let raw = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP proxy.example;branch=z9hG4bKp\r\n\
             From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\
             Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(raw)).unwrap()
    }

    fn reparse(m: &Message) -> Message {
        Message::parse(m.to_bytes()).unwrap()
    }

    #[test]
    fn received_added_when_host_differs() {
        let mut m = req("SIP/2.0/UDP client.example:5070;branch=z9hG4bK1");
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert!(stamp_received(&mut m, src).unwrap());
        let m = reparse(&m);
        let v = m.top_via().unwrap();
        assert_eq!(v.received(), Some("127.0.0.1"));
        assert_eq!(v.rport(), None);
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(m.vias().unwrap().len(), 2);
        assert_eq!(
            response_destination(v, src),
            "127.0.0.1:5070".parse().unwrap()
        );
    }

    #[test]
    fn nothing_when_host_matches_without_rport() {
        let mut m = req("SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1");
        assert!(!stamp_received(&mut m, "127.0.0.1:5070".parse().unwrap()).unwrap());
        assert!(!m.is_edited());
    }

    #[test]
    fn rport_filled_and_used() {
        let mut m = req("SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bK1");
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert!(stamp_received(&mut m, src).unwrap());
        let m = reparse(&m);
        let v = m.top_via().unwrap();
        assert_eq!(v.received(), Some("127.0.0.1"));
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(response_destination(v, src), src);
    }

    #[test]
    fn ipv6_source() {
        let mut m = req("SIP/2.0/UDP [::1]:5070;rport;branch=z9hG4bK1");
        let src: SocketAddr = "[::1]:40000".parse().unwrap();
        stamp_received(&mut m, src).unwrap();
        let m = reparse(&m);
        let v = m.top_via().unwrap();
        assert_eq!(v.received(), Some("::1"));
        assert_eq!(response_destination(v, src), src);
    }

    #[test]
    fn sent_by_rewritten_params_kept() {
        let mut m = req("SIP/2.0/UDP placeholder;branch=z9hG4bK1;rport");
        set_sent_by(&mut m, "TCP", "192.0.2.1:5060".parse().unwrap()).unwrap();
        let m = reparse(&m);
        let v = m.top_via().unwrap();
        assert_eq!(v.transport(), "TCP");
        assert_eq!(v.host().as_str(), "192.0.2.1");
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert_eq!(v.rport(), Some(None));
    }
}
