//! Typed header values (RFC 3261 §20, §25.1). Each parser takes the value as
//! a shared string and returns a view whose parts are slices of it.

use crate::params::{scan_header_params, Params};
use crate::scan::{comma_items, is_token, parse_u32, trim_lws, unquote, Scanner};
use crate::uri::{scan_host, scan_port, Host, Uri};
use crate::{Error, Method, SipStr};
use std::borrow::Cow;

/// The magic cookie that starts RFC 3261 branch ids (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    raw: SipStr,
    protocol: SipStr,
    transport: SipStr,
    host: HostText,
    port: Option<u16>,
    params: Params,
}

// Host with PartialEq/Eq by text, to keep Via comparable.
#[derive(Debug, Clone)]
struct HostText(Host);
impl PartialEq for HostText {
    fn eq(&self, o: &Self) -> bool {
        self.0.as_str() == o.0.as_str()
    }
}
impl Eq for HostText {}

impl Via {
    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    /// Protocol name and version, `SIP/2.0` (as written, LWS removed only at ends).
    pub fn protocol(&self) -> &str {
        &self.protocol
    }
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`...).
    pub fn transport(&self) -> &str {
        &self.transport
    }
    /// The sent-by host.
    pub fn host(&self) -> &Host {
        &self.host.0
    }
    /// The sent-by port, if given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// All parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }
    /// Whether the branch starts with the RFC 3261 magic cookie and has
    /// something after it (RFC 3261 §17.2.3 matching applies then).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }
    /// The `received` parameter as written.
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }
    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a
    /// value (a request asking for it), `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| parse_u32(p, 65535).map(|p| p as u16)))
    }
    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params.value("maddr")
    }
    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .value("ttl")
            .and_then(|t| parse_u32(t, 255))
            .map(|t| t as u8)
    }

    /// Parses one Via value (not a comma-separated list).
    pub fn parse(value: &SipStr) -> Result<Via, Error> {
        let err = |r: &'static str| Error::header("Via", r);
        let v = value.slice_ref(trim_lws(value));
        let mut sc = Scanner::new(v.as_str());
        let name = sc.token().ok_or_else(|| err("protocol name missing"))?;
        sc.skip_lws();
        if !sc.eat(b'/') {
            return Err(err("expected '/' after protocol name"));
        }
        sc.skip_lws();
        let version = sc.token().ok_or_else(|| err("protocol version missing"))?;
        sc.skip_lws();
        if !sc.eat(b'/') {
            return Err(err("expected '/' after protocol version"));
        }
        sc.skip_lws();
        let transport = sc.token().ok_or_else(|| err("transport missing"))?;
        let before = sc.pos;
        sc.skip_lws();
        if sc.pos == before {
            return Err(err("expected whitespace before sent-by"));
        }
        let host = scan_host(&mut sc, &v).map_err(err)?;
        let port = scan_port(&mut sc).map_err(err)?;
        let params = scan_header_params(&mut sc).map_err(err)?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(err("unexpected text after Via parameters"));
        }
        let params = Params(v.slice_ref(params));
        if let Some(b) = params.get("branch") {
            if b.is_none_or(|b| !b.bytes().all(is_token)) {
                return Err(err("branch must be a token"));
            }
        }
        let protocol = if name.len() + version.len() + 1 == v.len() {
            v.clone()
        } else {
            SipStr::from(format!("{name}/{version}"))
        };
        Ok(Via {
            protocol,
            transport: v.slice_ref(transport),
            host: HostText(host),
            port,
            params,
            raw: v,
        })
    }
}

/// `name-addr` or `addr-spec` with header parameters: the value of From, To,
/// Contact, Route, Record-Route, Reply-To, Path... (RFC 3261 §20.10).
#[derive(Debug, Clone)]
pub struct NameAddr {
    raw: SipStr,
    display: Option<SipStr>,
    uri: Uri,
    params: Params,
    bracketed: bool,
}

impl NameAddr {
    /// The value as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    /// The display name as written (quoted strings keep their quotes).
    pub fn display_raw(&self) -> Option<&str> {
        self.display.as_deref()
    }
    /// The display name with quotes removed and quoted-pairs resolved.
    pub fn display_name(&self) -> Option<Cow<'_, str>> {
        self.display.as_deref().map(unquote)
    }
    /// The URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
    /// Header parameters (after `>`, or after the addr-spec).
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
    /// Whether the URI was written inside `<...>`.
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }

    /// Parses one value (not a comma-separated list) of header `header`.
    pub fn parse(value: &SipStr, header: &'static str) -> Result<NameAddr, Error> {
        let err = |r: &'static str| Error::header(header, r);
        let v = value.slice_ref(trim_lws(value));
        let mut sc = Scanner::new(v.as_str());
        let mut display = None;
        let bracketed;
        let uri_text;
        if sc.peek() == Some(b'"') {
            let q = sc
                .quoted_string()
                .ok_or_else(|| err("display name opens a quote that is never closed"))?;
            display = Some(v.slice_ref(q));
            sc.skip_lws();
            if sc.peek() != Some(b'<') {
                return Err(err("expected '<' after quoted display name"));
            }
        } else {
            // Token display names (`*(token LWS)`), possibly without the LWS
            // before '<' (RFC 4475 §3.1.1.6 lwsdisp).
            let start = sc.pos;
            let mut last_end = start;
            while sc.token().is_some() {
                last_end = sc.pos;
                sc.skip_lws();
            }
            if sc.peek() == Some(b'<') {
                if last_end > start {
                    display = Some(v.slice_ref(sc.s.get(start..last_end).unwrap_or("")));
                }
            } else {
                sc.pos = start;
            }
        }
        if sc.eat(b'<') {
            let inner_start = sc.pos;
            let close = sc
                .rest()
                .find('>')
                .ok_or_else(|| err("'<' is never closed by '>'"))?;
            uri_text = v.slice(inner_start..inner_start + close);
            sc.pos = inner_start + close + 1;
            bracketed = true;
        } else {
            // addr-spec: no header-level ambiguity allowed, so the URI ends at
            // the first ';' after the host (RFC 3261 §20.10), and it may not
            // carry URI headers or commas.
            let rest = sc.rest();
            let host_start = rest.find('@').map_or(0, |a| a + 1);
            let end = rest
                .get(host_start..)
                .and_then(|r| r.find([';', ' ', '\t', '\r', '\n']))
                .map_or(rest.len(), |e| e + host_start);
            let text = rest.get(..end).unwrap_or("");
            if text.contains('?') {
                return Err(err("a URI with headers must be enclosed in '<' '>'"));
            }
            uri_text = v.slice_ref(text);
            sc.pos += end;
            bracketed = false;
        }
        let uri = if bracketed {
            if uri_text.starts_with([' ', '\t']) || uri_text.ends_with([' ', '\t']) {
                return Err(err("whitespace inside '<' '>' around the URI"));
            }
            Uri::parse_shared(&uri_text)?
        } else {
            Uri::parse_shared(&uri_text).map_err(|_| err("not a name-addr or addr-spec"))?
        };
        let params = scan_header_params(&mut sc).map_err(err)?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(err("unexpected text after the address"));
        }
        Ok(NameAddr {
            display,
            uri,
            params: Params(v.slice_ref(params)),
            bracketed,
            raw: v,
        })
    }
}

/// One Contact value: `*` or an address with `q`/`expires` parameters.
#[derive(Debug, Clone)]
pub enum Contact {
    /// `Contact: *` (RFC 3261 §10.2.2, only with `Expires: 0` in REGISTER).
    Star,
    /// An address.
    Addr(NameAddr),
}

impl Contact {
    /// The address, unless this is `*`.
    pub fn addr(&self) -> Option<&NameAddr> {
        match self {
            Contact::Star => None,
            Contact::Addr(a) => Some(a),
        }
    }
    /// The `q` parameter in thousandths (`q=0.5` is 500); `None` if absent
    /// or not a valid qvalue.
    pub fn q(&self) -> Option<u16> {
        self.addr()?.params().value("q").and_then(parse_qvalue)
    }
    /// The `expires` parameter in seconds, if present and a number.
    pub fn expires(&self) -> Option<u32> {
        self.addr()?
            .params()
            .value("expires")
            .and_then(|e| parse_u32(e, u32::MAX))
    }
}

/// RFC 3261 §25.1 qvalue: `0[.ddd]` or `1[.000]`, in thousandths.
pub fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let f = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(f),
        "1" if f == 0 => Some(1000),
        _ => None,
    }
}

/// Parses a Contact header value list (possibly `*`).
pub(crate) fn parse_contacts(value: &SipStr, out: &mut Vec<Contact>) -> Result<(), Error> {
    if trim_lws(value) == "*" {
        out.push(Contact::Star);
        return Ok(());
    }
    parse_list(value, "Contact", out, |item| {
        NameAddr::parse(item, "Contact").map(Contact::Addr)
    })
}

/// Splits a comma-list value and parses each item; an empty item is an error.
pub(crate) fn parse_list<T>(
    value: &SipStr,
    header: &'static str,
    out: &mut Vec<T>,
    f: impl Fn(&SipStr) -> Result<T, Error>,
) -> Result<(), Error> {
    for item in comma_items(value) {
        if item.is_empty() {
            return Err(Error::header(header, "empty element in comma-separated list"));
        }
        out.push(f(&value.slice_ref(item))?);
    }
    Ok(())
}

/// CSeq (RFC 3261 §20.16): sequence number and method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number (fits 32 bits, §8.1.1.5).
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses a CSeq value.
    pub fn parse(value: &SipStr) -> Result<CSeq, Error> {
        let mut sc = Scanner::new(value.as_str());
        sc.skip_lws();
        let digits = sc.take_while(|c| c.is_ascii_digit());
        let seq = parse_u32(digits, u32::MAX).ok_or_else(|| {
            Error::header("CSeq", "sequence number is not a number below 2**32")
        })?;
        let before = sc.pos;
        sc.skip_lws();
        if sc.pos == before {
            return Err(Error::header("CSeq", "expected whitespace after the number"));
        }
        let m = sc
            .token()
            .ok_or_else(|| Error::header("CSeq", "method missing"))?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(Error::header("CSeq", "unexpected text after the method"));
        }
        let method = Method::parse(&value.slice_ref(m))
            .ok_or_else(|| Error::header("CSeq", "method is not a token"))?;
        Ok(CSeq { seq, method })
    }
}

/// A media type (Content-Type, RFC 3261 §20.15): `type/subtype;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    raw: SipStr,
    type_len: usize,
    subtype: SipStr,
    params: Params,
}

impl MediaType {
    /// The top-level type (`application`).
    pub fn main_type(&self) -> &str {
        self.raw.get(..self.type_len).unwrap_or("")
    }
    /// The subtype (`sdp`).
    pub fn subtype(&self) -> &str {
        &self.subtype
    }
    /// Parameters (`;boundary=...`).
    pub fn params(&self) -> &Params {
        &self.params
    }
    /// `type/subtype` matches, case-insensitively.
    pub fn is(&self, main: &str, sub: &str) -> bool {
        self.main_type().eq_ignore_ascii_case(main) && self.subtype().eq_ignore_ascii_case(sub)
    }
    /// `type/subtype` as written (without parameters).
    pub fn essence(&self) -> &str {
        let end = self.subtype.as_ptr() as usize - self.raw.as_ptr() as usize + self.subtype.len();
        self.raw.get(..end).unwrap_or("")
    }

    /// Parses a media type.
    pub fn parse(value: &SipStr) -> Result<MediaType, Error> {
        let err = |r: &'static str| Error::header("Content-Type", r);
        let v = value.slice_ref(trim_lws(value));
        let mut sc = Scanner::new(v.as_str());
        let t = sc.token().ok_or_else(|| err("type missing"))?;
        sc.skip_lws();
        if !sc.eat(b'/') {
            return Err(err("expected '/' between type and subtype"));
        }
        sc.skip_lws();
        let st = sc.token().ok_or_else(|| err("subtype missing"))?;
        let params = scan_header_params(&mut sc).map_err(err)?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(err("unexpected text after the media type"));
        }
        Ok(MediaType {
            type_len: t.len(),
            subtype: v.slice_ref(st),
            params: Params(v.slice_ref(params)),
            raw: v,
        })
    }
}

/// Credentials or a challenge (Authorization, Proxy-Authorization,
/// WWW-Authenticate, Proxy-Authenticate; RFC 3261 §20.7, §20.27, §20.28,
/// §20.44): a scheme and its comma-separated `name=value` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    scheme: SipStr,
    params: Vec<(SipStr, SipStr)>,
}

impl AuthParams {
    /// The scheme (`Digest`).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }
    /// Parameters in order, values as written (quotes kept).
    pub fn params(&self) -> &[(SipStr, SipStr)] {
        &self.params
    }
    /// The value of a parameter (name case-insensitive), unquoted.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }

    /// Parses one credentials/challenge value (`header` names it in errors).
    pub fn parse(value: &SipStr, header: &'static str) -> Result<AuthParams, Error> {
        let err = |r: &'static str| Error::header(header, r);
        let v = value.slice_ref(trim_lws(value));
        let mut sc = Scanner::new(v.as_str());
        let scheme = sc.token().ok_or_else(|| err("scheme missing"))?;
        let scheme = v.slice_ref(scheme);
        let mut params = Vec::new();
        sc.skip_lws();
        while !sc.at_end() {
            let name = sc.token().ok_or_else(|| err("parameter name missing"))?;
            sc.skip_lws();
            if !sc.eat(b'=') {
                return Err(err("expected '=' after parameter name"));
            }
            sc.skip_lws();
            let value = match sc.quoted_string() {
                Some(q) => q,
                None => {
                    let t = sc.take_while(|c| is_token(c) || matches!(c, b'/' | b':' | b'@'));
                    if t.is_empty() {
                        return Err(err("parameter value missing or unterminated quote"));
                    }
                    t
                }
            };
            params.push((v.slice_ref(name), v.slice_ref(value)));
            if params.len() > 64 {
                return Err(err("too many parameters"));
            }
            sc.skip_lws();
            if !sc.eat(b',') && !sc.at_end() {
                return Err(err("expected ',' between parameters"));
            }
            sc.skip_lws();
        }
        Ok(AuthParams { scheme, params })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> SipStr {
        SipStr::from(x)
    }

    #[test]
    fn via_with_lws_and_params() {
        let v = Via::parse(&s("SIP  /   2.0  / UDP\r\n 192.0.2.2:5060;branch=z9hG4bK1;rport;received=[2001:db8::9:255]")).unwrap();
        assert_eq!(v.transport(), "UDP");
        assert_eq!(v.protocol(), "SIP/2.0");
        assert_eq!(v.host().as_str(), "192.0.2.2");
        assert_eq!(v.port(), Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK1"));
        assert!(v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        let v = Via::parse(&s("SIP/2.0/TCP h;branch=z9hG4bK;rport=5061;ttl=3")).unwrap();
        assert!(!v.has_rfc3261_branch());
        assert_eq!(v.rport(), Some(Some(5061)));
        assert_eq!(v.ttl(), Some(3));
        for bad in ["SIP/2.0/UDP", "SIP/2.0 UDP h", "SIP/2.0/UDP h;;a", "SIP/2.0/UDPh", "SIP/2.0/UDP h:x"] {
            assert!(Via::parse(&s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(&s("\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com>;tag=98asjd8"), "From").unwrap();
        assert_eq!(n.display_name().unwrap(), "J Rosenberg \\\"");
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse(&s("caller<sip:caller@example.com>;tag=323"), "From").unwrap();
        assert_eq!(n.display_name().unwrap(), "caller");
        let n = NameAddr::parse(&s("sip:user@host;tag=1;unknownparam"), "Contact").unwrap();
        assert_eq!(n.uri().as_str(), "sip:user@host");
        assert!(n.params().contains("unknownparam"));
        assert!(!n.is_bracketed());
        let n = NameAddr::parse(&s("<sip:user@host;unknownparam>"), "Contact").unwrap();
        assert!(n.uri().as_sip().unwrap().params().contains("unknownparam"));
        for bad in [
            "\"unclosed <sip:a@b>",
            "< sip:a@b>",
            "Bell, Alexander <sip:a@b>",
            "sip:a@b?Route=x",
            "<sip:a@b",
            "<sip:a@b> junk",
        ] {
            assert!(NameAddr::parse(&s(bad), "To").is_err(), "{bad}");
        }
    }

    #[test]
    fn contacts_and_qvalues() {
        let mut v = Vec::new();
        parse_contacts(&s("<sip:a@b>;q=0.7;expires=60, sip:c@d"), &mut v).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].q(), Some(700));
        assert_eq!(v[0].expires(), Some(60));
        let mut v = Vec::new();
        parse_contacts(&s(" * "), &mut v).unwrap();
        assert!(matches!(v[0], Contact::Star));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
    }

    #[test]
    fn cseq_and_media_type_and_auth() {
        let c = CSeq::parse(&s("0009 \r\n INVITE")).unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        assert!(CSeq::parse(&s("36893488147419103232 INVITE")).is_err());
        assert!(CSeq::parse(&s("1INVITE")).is_err());
        let m = MediaType::parse(&s("multipart/mixed;boundary=\"x;y\"")).unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.essence(), "multipart/mixed");
        assert_eq!(m.params().value("boundary"), Some("\"x;y\""));
        let a = AuthParams::parse(
            &s("Digest username=\"bob\", realm=\"a,b\",nonce=\"n\", uri=\"sip:x\", qop=auth, nc=00000001"),
            "Authorization",
        )
        .unwrap();
        assert_eq!(a.scheme(), "Digest");
        assert_eq!(a.get("REALM").unwrap(), "a,b");
        assert_eq!(a.get("qop").unwrap(), "auth");
        assert_eq!(a.get("nc").unwrap(), "00000001");
        assert!(AuthParams::parse(&s("Digest realm=\"x"), "Authorization").is_err());
    }
}
