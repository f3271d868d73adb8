//! URIs: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966) and any other
//! absolute URI carried opaquely (RFC 3261 §25.1 `absoluteURI`).

use crate::params::{check_escapes, scan_uri_params, Params};
use crate::scan::{class, find_byte, is, run_end, Scanner, Table};
use crate::text::Sub;
use crate::{Error, SipStr};
use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URI as found in a Request-URI, a name-addr or built locally.
///
/// Equality (`==`) follows RFC 3261 §19.1.4 for SIP and SIPS URIs (escapes
/// decoded, host case-insensitive, parameter order ignored...), RFC 3966 §4
/// for tel URIs, and exact text (scheme case-insensitive) otherwise.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Uri {
    /// `sip:` or `sips:`
    Sip(SipUri),
    /// `tel:`
    Tel(TelUri),
    /// Any other scheme, carried as written.
    Absolute(AbsoluteUri),
}

/// A `sip:` or `sips:` URI. Components are kept as written (escaped); use the
/// `*_decoded` accessors for their values.
#[derive(Clone)]
// Unit tests compare every span; elsewhere `Debug` shows the text (the
// shared source can be a whole header section).
#[cfg_attr(test, derive(Debug))]
pub struct SipUri {
    // The shared text the URI lives in (possibly a whole name-addr) and the
    // URI's own extent in it; every component is a span of `src`.
    src: SipStr,
    all: Sub,
    secure: bool,
    user: Option<Sub>,
    password: Option<Sub>,
    host: Sub,
    host_kind: HostKind,
    port: Option<u16>,
    params: Sub,
    headers: Sub,
}

/// A `tel:` URI (RFC 3966).
#[derive(Clone)]
// Unit tests compare every span; elsewhere `Debug` shows the text (the
// shared source can be a whole header section).
#[cfg_attr(test, derive(Debug))]
pub struct TelUri {
    src: SipStr,
    all: Sub,
    number: Sub,
    params: Sub,
}

/// A URI of a scheme this crate does not interpret.
#[derive(Clone)]
// Unit tests compare every span; elsewhere `Debug` shows the text (the
// shared source can be a whole header section).
#[cfg_attr(test, derive(Debug))]
pub struct AbsoluteUri {
    src: SipStr,
    all: Sub,
    scheme_len: usize,
}

/// A host: a domain name, an IPv4 address or an IPv6 reference, borrowed
/// from the URI or Via it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Host<'a> {
    text: &'a str,
    kind: HostKind,
}

/// What kind of host a [`Host`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A domain name.
    Name,
    /// A dotted-quad IPv4 address.
    Ipv4(Ipv4Addr),
    /// A bracketed IPv6 reference; `None` when the text is only tolerated by
    /// RFC 3261's grammar (for example three colons, RFC 5118 §4.3).
    Ipv6(Option<Ipv6Addr>),
}

impl<'a> Host<'a> {
    pub(crate) fn new(text: &'a str, kind: HostKind) -> Self {
        Host { text, kind }
    }

    /// The host as written; IPv6 references keep their brackets.
    #[inline]
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// What kind of host this is.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// The IP address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.kind {
            HostKind::Ipv4(a) => Some(IpAddr::V4(a)),
            HostKind::Ipv6(a) => a.map(IpAddr::V6),
            HostKind::Name => None,
        }
    }

    /// Parses a host as it appears in a URI or Via sent-by.
    pub fn parse(s: &'a str) -> Result<Host<'a>, Error> {
        let mut sc = Scanner::new(s);
        let (text, kind) = scan_host(&mut sc).map_err(|r| Error::uri(s, r))?;
        if !sc.at_end() {
            return Err(Error::uri(s, "unexpected characters after host"));
        }
        Ok(Host { text, kind })
    }
}

impl PartialEq for Host<'_> {
    /// Hosts compare case-insensitively; IP addresses by value (RFC 3261
    /// §19.1.4). A name never equals an address.
    fn eq(&self, other: &Host<'_>) -> bool {
        match (self.kind, other.kind) {
            (HostKind::Ipv4(a), HostKind::Ipv4(b)) => a == b,
            (HostKind::Ipv6(Some(a)), HostKind::Ipv6(Some(b))) => a == b,
            _ => self.text.eq_ignore_ascii_case(other.text),
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

/// Scans `host` (RFC 3261 §25.1): `[IPv6]`, IPv4 or a domain name.
#[inline]
pub(crate) fn scan_host<'a>(sc: &mut Scanner<'a>) -> Result<(&'a str, HostKind), &'static str> {
    let start = sc.pos;
    if sc.eat(b'[') {
        let inner = sc.take_while(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
        if !sc.eat(b']') {
            return Err("IPv6 reference is not closed by ']'");
        }
        if inner.bytes().filter(|&c| c == b':').count() < 2 {
            return Err("IPv6 reference needs at least two ':'");
        }
        let addr = inner.parse::<Ipv6Addr>().ok();
        return Ok((sc.since(start), HostKind::Ipv6(addr)));
    }
    // One pass: the extent of the name, and whether it holds "..".
    let (end, double_dot) = crate::scan::host_name_end(sc.s.as_bytes(), start);
    sc.pos = end;
    let name = sc.since(start);
    let nb = name.as_bytes();
    match nb.first() {
        None => return Err("host is missing"),
        Some(b'.' | b'-') => return Err("host name is not valid"),
        _ => {}
    }
    // Only a name made of digits and dots is an IPv4 address (a letter
    // first rules it out at once).
    let kind = if nb.first().is_some_and(u8::is_ascii_digit)
        && nb.iter().all(|c| c.is_ascii_digit() || *c == b'.')
    {
        match parse_ipv4(nb) {
            Some(a) => HostKind::Ipv4(a),
            None => return Err("IPv4 address is not valid"),
        }
    } else {
        if double_dot {
            return Err("host name is not valid");
        }
        HostKind::Name
    };
    Ok((name, kind))
}

/// `host [":" port]` from `b[i..]` for a domain name or an IPv4 address
/// (not an IPv6 reference), accepted exactly when [`scan_host`] and
/// [`scan_port`] accept it: the end of the host, its kind, the port and the
/// position after it. `None` when they would fail (or for `[`).
#[inline(always)]
pub(crate) fn fast_host_port(
    b: &[u8],
    mut i: usize,
) -> Option<(usize, HostKind, Option<u16>, usize)> {
    let start = i;
    let first = *b.get(i)?;
    if !is(first, class::HOSTNAME) || first == b'.' || first == b'-' {
        return None;
    }
    // An IPv4 address followed by an octet that is not a host name's is
    // the whole host (the run of host name octets): no scan of the run
    // first. Anything else is scanned.
    let kind = match first
        .is_ascii_digit()
        .then(|| ipv4_prefix(b, start))
        .flatten()
    {
        Some((a, end)) if !b.get(end).is_some_and(|&c| is(c, class::HOSTNAME)) => {
            i = end;
            HostKind::Ipv4(a)
        }
        _ => {
            let double_dot;
            (i, double_dot) = crate::scan::host_name_end(b, i);
            let host = b.get(start..i)?;
            // A name made of digits and dots must be an IPv4 address.
            match first.is_ascii_digit().then(|| parse_ipv4(host)).flatten() {
                Some(a) => HostKind::Ipv4(a),
                None if first.is_ascii_digit()
                    && host.iter().all(|c| c.is_ascii_digit() || *c == b'.') =>
                {
                    return None
                }
                None if double_dot => return None,
                None => HostKind::Name,
            }
        }
    };
    let host_end = i;
    let mut port = None;
    if b.get(i) == Some(&b':') {
        i += 1;
        let p0 = i;
        let mut v = 0u32;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            v = v * 10 + u32::from(c - b'0');
            if v > 65535 {
                return None;
            }
            i += 1;
        }
        if i == p0 {
            return None;
        }
        port = Some(v as u16);
    }
    Some((host_end, kind, port, i))
}

/// A dotted-quad IPv4 address as `std` parses it (four decimal octets of
/// one to three digits, no leading zero, at most 255), without its generic
/// parser.
#[inline]
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    ipv4_prefix(b, 0)
        .filter(|&(_, end)| end == b.len())
        .map(|(a, _)| a)
}

/// The IPv4 address at the start of `b[i..]` (four octets as in
/// [`parse_ipv4`], with at most three digits each, so that a fourth digit
/// ends it) and its end. One pass, an address octet at a time, over the
/// sixteen octets from `i` (zeros past the end of `b`: neither digit nor
/// dot), which hold any address and the octet after it.
#[inline]
fn ipv4_prefix(b: &[u8], i: usize) -> Option<(Ipv4Addr, usize)> {
    let mut padded = [0u8; 16];
    let c: &[u8; 16] = match b.get(i..).and_then(|r| r.first_chunk::<16>()) {
        Some(c) => c,
        None => {
            let rest = b.get(i..).unwrap_or(&[]);
            if let Some(head) = padded.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            &padded
        }
    };
    // Positions stay below 16 (an address is at most 15 octets); `& 15`
    // tells the compiler so.
    let digit = |k: usize| {
        let d = c[k & 15].wrapping_sub(b'0');
        (d <= 9).then_some(d)
    };
    let mut octets = [0u8; 4];
    let mut k = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if c[k & 15] != b'.' {
                return None;
            }
            k += 1;
        }
        let d0 = digit(k)?;
        let mut v = u32::from(d0);
        k += 1;
        if let Some(d1) = digit(k) {
            // No leading zero.
            if d0 == 0 {
                return None;
            }
            v = v * 10 + u32::from(d1);
            k += 1;
            if let Some(d2) = digit(k) {
                v = v * 10 + u32::from(d2);
                k += 1;
            }
        }
        *octet = u8::try_from(v).ok()?;
    }
    Some((Ipv4Addr::from(octets), i + k))
}

/// Scans `[":" port]`.
#[inline]
pub(crate) fn scan_port(sc: &mut Scanner<'_>) -> Result<Option<u16>, &'static str> {
    if !sc.eat(b':') {
        return Ok(None);
    }
    let digits = sc.take_while(|c| c.is_ascii_digit());
    crate::scan::parse_u32(digits, 65535)
        .map(|p| Some(p as u16))
        .ok_or("port is not a number between 0 and 65535")
}

fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(|c| c.is_ascii_alphabetic())
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

impl Uri {
    /// Parses a URI from text (copied once into a shared buffer).
    pub fn parse(s: &str) -> Result<Uri, Error> {
        Uri::parse_shared(&SipStr::from(s))
    }

    /// Parses a URI that is a slice of a received message, without copying.
    pub fn parse_shared(raw: &SipStr) -> Result<Uri, Error> {
        Uri::parse_in(raw, Sub::new(0, raw.len()))
    }

    /// Parses the URI at `all` inside `src` (a name-addr, say), keeping
    /// `src` shared.
    pub(crate) fn parse_in(src: &SipStr, all: Sub) -> Result<Uri, Error> {
        // Fast path: the usual SIP URI, read from the octets (it accepts
        // ASCII only, so a span that is not a `str` slice goes on to the
        // general path and its error).
        if let Some(b) = src.as_bytes().get(..all.end()) {
            if let Some(from) = b.get(all.start()..).and_then(sip_scheme) {
                if let Some(u) = sip_scan(b, all.start(), all.start() + from, None) {
                    return Ok(Uri::Sip(u.build(src)));
                }
            }
        }
        let s = all.get(src);
        let b = s.as_bytes();
        if let Some(from) = sip_scheme(b) {
            return parse_sip(src, all, from, from == 5)
                .map(Uri::Sip)
                .map_err(|r| Error::uri(s, r));
        }
        let Some(colon) = find_byte(s.as_bytes(), b':') else {
            return Err(Error::uri(
                s,
                "no scheme (expected sip:, sips:, tel: or scheme:)",
            ));
        };
        let scheme = &s[..colon];
        if !is_scheme(scheme) {
            return Err(Error::uri(s, "scheme is not valid"));
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            let secure = scheme.len() == 4;
            parse_sip(src, all, colon + 1, secure)
                .map(Uri::Sip)
                .map_err(|r| Error::uri(s, r))
        } else if scheme.eq_ignore_ascii_case("tel") {
            parse_tel(src, all, colon + 1)
                .map(Uri::Tel)
                .map_err(|r| Error::uri(s, r))
        } else {
            let rest = &s[colon + 1..];
            if rest.is_empty()
                || !rest
                    .bytes()
                    .all(|c| c > b' ' && c != 0x7f && !matches!(c, b'<' | b'>' | b'"'))
            {
                return Err(Error::uri(
                    s,
                    "opaque part is empty or holds forbidden characters",
                ));
            }
            Ok(Uri::Absolute(AbsoluteUri {
                src: src.clone(),
                all,
                scheme_len: colon,
            }))
        }
    }

    /// The URI as written.
    #[inline]
    pub fn as_str(&self) -> &str {
        // Every kind is a span of its source: one slice for all three.
        let (src, all) = match self {
            Uri::Sip(u) => (&u.src, u.all),
            Uri::Tel(u) => (&u.src, u.all),
            Uri::Absolute(u) => (&u.src, u.all),
        };
        all.get(src)
    }

    /// The scheme as written.
    pub fn scheme(&self) -> &str {
        let s = self.as_str();
        let n = match self {
            Uri::Sip(u) => {
                if u.secure {
                    4
                } else {
                    3
                }
            }
            Uri::Tel(_) => 3,
            Uri::Absolute(u) => u.scheme_len,
        };
        s.get(..n).unwrap_or("")
    }

    /// The whole text the URI was parsed from (for a URI inside a
    /// name-addr, the name-addr).
    #[inline]
    pub(crate) fn source(&self) -> &str {
        match self {
            Uri::Sip(u) => &u.src,
            Uri::Tel(u) => &u.src,
            Uri::Absolute(u) => &u.src,
        }
    }

    /// The SIP URI, if this is one.
    #[inline]
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }
}

fn parse_sip(src: &SipStr, all: Sub, from: usize, secure: bool) -> Result<SipUri, &'static str> {
    let s = all.get(src);
    // Positions below are in `s`; spans are stored relative to `src`.
    let base = Sub::of(src, s).start();
    let span = |a: usize, b: usize| Sub::new(base + a, base + b);
    let b = s.as_bytes();
    let mut sc = Scanner::new(s);
    sc.pos = from;
    // userinfo: everything before the first '@' (which no other part may
    // hold). One scan of user characters finds it in the usual forms
    // (`user@`, `user:password@`, no userinfo at all).
    let (mut user, mut password) = (None, None);
    let mut i = from;
    let mut escaped = false;
    while let Some(&c) = b.get(i) {
        if !is(c, class::USER) {
            break;
        }
        escaped |= c == b'%';
        i += 1;
    }
    let mut at = None;
    match b.get(i) {
        Some(b'@') => at = Some(i),
        Some(b':') => {
            let mut j = i + 1;
            while let Some(&c) = b.get(j) {
                if !is(c, class::PASSWORD) {
                    break;
                }
                j += 1;
            }
            if b.get(j) == Some(&b'@') {
                at = Some(j);
            } else if b.get(j..).and_then(|r| find_byte(r, b'@')).is_some() {
                at = b
                    .get(from..)
                    .and_then(|r| find_byte(r, b'@'))
                    .map(|a| from + a);
            }
        }
        _ => {
            if b.get(i..).and_then(|r| find_byte(r, b'@')).is_some() {
                at = b
                    .get(from..)
                    .and_then(|r| find_byte(r, b'@'))
                    .map(|a| from + a);
            }
        }
    }
    if let Some(at) = at {
        let userinfo = s.get(from..at).unwrap_or("");
        let (u, p) = match find_byte(userinfo.as_bytes(), b':') {
            Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
            None => (userinfo, None),
        };
        if u.is_empty() {
            return Err("user part before '@' is empty");
        }
        if u.len() != i - from && !u.bytes().all(|c| is(c, class::USER)) {
            return Err("user part holds a character that must be escaped");
        }
        if escaped || u.len() != i - from {
            check_escapes(u)?;
        }
        user = Some(span(from, from + u.len()));
        if let Some(p) = p {
            if !p.bytes().all(|c| is(c, class::PASSWORD)) {
                return Err("password holds a character that must be escaped");
            }
            check_escapes(p)?;
            let ps = from + u.len() + 1;
            password = Some(span(ps, ps + p.len()));
        }
        sc.pos = at + 1;
    }
    let host_start = sc.pos;
    let (host, host_kind) = scan_host(&mut sc)?;
    let host = span(host_start, host_start + host.len());
    let port = scan_port(&mut sc)?;
    let params_start = sc.pos;
    let params = scan_uri_params(&mut sc)?;
    let params = span(params_start, params_start + params.len());
    let mut headers = Sub::new(base + sc.pos, base + sc.pos);
    if sc.eat(b'?') {
        let hs = sc.pos;
        let h = sc.take_while(|c| is(c, class::URI_HEADER));
        check_escapes(h)?;
        if h.is_empty() || h.split('&').any(|kv| kv.is_empty() || kv.starts_with('=')) {
            return Err("URI headers are malformed");
        }
        headers = span(hs, hs + h.len());
    }
    if !sc.at_end() {
        return Err("unexpected character in SIP URI");
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        host_kind,
        port,
        params,
        headers,
        src: src.clone(),
        all,
    })
}

/// The position after `sip:` or `sips:` (scheme in any case) at the start
/// of `b`, if it starts so.
#[inline]
fn sip_scheme(b: &[u8]) -> Option<usize> {
    // `| 0x20` lowers the letters s, i, p (and makes them of no other
    // octet); the ':' after `sip` is compared as it is.
    let w = u32::from_le_bytes(*b.first_chunk::<4>()?);
    let folded = w | 0x0020_2020;
    if folded == u32::from_le_bytes(*b"sip:") {
        Some(4)
    } else if folded | 0x2000_0000 == u32::from_le_bytes(*b"sips") && b.get(4) == Some(&b':') {
        Some(5)
    } else {
        None
    }
}

/// Octets the usual SIP URI's user part is made of: `user` characters
/// without escapes (RFC 3261 §25.1: unreserved / user-unreserved).
static USER_PLAIN: Table = crate::scan::class_table_except(class::USER, Some(b'%'));

/// Octets of the usual SIP URI's parameters: `paramchar` without escapes
/// (RFC 3261 §19.1.1: param-unreserved / unreserved).
static PARAM_PLAIN: Table = crate::scan::class_table_except(class::URI_PARAM, Some(b'%'));

/// The parts of a SIP URI found by [`sip_scan`]: a [`SipUri`] without its
/// shared text, so that scanning takes no reference count and the URI is
/// built once, where it is stored ([`SipSpans::build`]).
#[derive(Clone, Copy)]
pub(crate) struct SipSpans {
    all: Sub,
    secure: bool,
    user: Option<Sub>,
    host: Sub,
    host_kind: HostKind,
    port: Option<u16>,
    params: Sub,
}

impl SipSpans {
    /// The URI these parts are spans of `src` of.
    #[inline(always)]
    pub(crate) fn build(self, src: &SipStr) -> SipUri {
        SipUri {
            src: src.clone(),
            all: self.all,
            secure: self.secure,
            user: self.user,
            password: None,
            host: self.host,
            host_kind: self.host_kind,
            port: self.port,
            params: self.params,
            headers: Sub::new(self.all.end(), self.all.end()),
        }
    }

    /// The end of the URI (a position in its source).
    #[inline(always)]
    pub(crate) fn end(&self) -> usize {
        self.all.end()
    }
}

/// The usual SIP URI, `[user@]host[:port][;param[=value]]*` with no escape,
/// password, IPv6 reference or URI headers, in one pass over `b` from
/// `start` (where the scheme is; `from` is the position after the scheme's
/// ':'); positions are those of `b`, which is the URI's source up to some
/// point. With `end` `None`, the URI is the rest of `b`; with `Some(c)`,
/// it ends at the first octet outside its grammar, which must be `c` (an
/// octet none of its parts holds, such as the '>' of a name-addr), so that
/// the URI found is the one the general path parses from the text up to
/// the first `c`. Gives the parts of the same `SipUri` as the general path,
/// or `None` for it to handle every other form.
#[inline]
fn sip_scan(b: &[u8], start: usize, from: usize, end: Option<u8>) -> Option<SipSpans> {
    let i = run_end(b, from, &USER_PLAIN);
    let (user, host_start) = match b.get(i).copied() {
        Some(b'@') if i > from => (Some(Sub::new(from, i)), i + 1),
        // No '@' can follow: the user scan stopped at the end, at ':' (a
        // port: digits, then parameters, which hold no '@'), or at a
        // character the host scan will refuse.
        Some(b':') => (None, from),
        stop if stop == end => (None, from),
        _ => return None,
    };
    let (host_end, host_kind, port, after) = fast_host_port(b, host_start)?;
    // Parameters: paramchar without escapes.
    let mut j = after;
    while b.get(j) == Some(&b';') {
        j += 1;
        let n0 = j;
        j = run_end(b, j, &PARAM_PLAIN);
        if j == n0 {
            return None;
        }
        if b.get(j) == Some(&b'=') {
            j += 1;
            let v0 = j;
            j = run_end(b, j, &PARAM_PLAIN);
            if j == v0 {
                return None;
            }
        }
    }
    if b.get(j).copied() != end {
        return None;
    }
    Some(SipSpans {
        all: Sub::new(start, j),
        secure: from - start == 5,
        user,
        host: Sub::new(host_start, host_end),
        host_kind,
        port,
        params: Sub::new(after, j),
    })
}

impl Uri {
    /// The usual SIP URI at `b[start..]`, ended by the octet `end` (one
    /// that no part of it holds, such as a name-addr's '>'): its parts (the
    /// position of `end` is their end; positions are those of `b`), or
    /// `None` for the general path. Gives the same URI as
    /// [`Uri::parse_in`] on the text up to the first `end`.
    #[inline]
    pub(crate) fn scan_sip_until(b: &[u8], start: usize, end: u8) -> Option<SipSpans> {
        let from = start + sip_scheme(b.get(start..)?)?;
        sip_scan(b, start, from, Some(end))
    }
}

fn parse_tel(src: &SipStr, all: Sub, from: usize) -> Result<TelUri, &'static str> {
    let mut sc = Scanner::new(all.get(src));
    sc.pos = from;
    let number = sc.take_while(|c| {
        c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b'(' | b')' | b'*' | b'#')
    });
    if number.is_empty() || number[1..].contains('+') {
        return Err("tel number is missing or malformed");
    }
    let params = scan_uri_params(&mut sc)?;
    if !sc.at_end() {
        return Err("unexpected character in tel URI");
    }
    Ok(TelUri {
        number: Sub::of(src, number),
        params: Sub::of(src, params),
        src: src.clone(),
        all,
    })
}

/// Decodes `%HH` escapes; borrows when there is none.
pub fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    if !s.contains('%') {
        return Cow::Borrowed(s.as_bytes());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|x| (*x as char).to_digit(16)),
                b.get(i + 2).and_then(|x| (*x as char).to_digit(16)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    Cow::Owned(out)
}

fn decoded_eq_ignore_case(a: &str, b: &str) -> bool {
    percent_decode(a).eq_ignore_ascii_case(&percent_decode(b))
}

impl SipUri {
    /// `sips:` rather than `sip:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// The user part as written (escaped).
    #[inline]
    pub fn user(&self) -> Option<&str> {
        self.user.map(|u| u.get(&self.src))
    }
    /// The user part with `%HH` escapes decoded (may hold any octet, NUL included).
    pub fn user_decoded(&self) -> Option<Cow<'_, [u8]>> {
        self.user().map(percent_decode)
    }
    /// The password as written.
    pub fn password(&self) -> Option<&str> {
        self.password.map(|p| p.get(&self.src))
    }
    /// The host.
    #[inline]
    pub fn host(&self) -> Host<'_> {
        Host {
            text: self.host.get(&self.src),
            kind: self.host_kind,
        }
    }
    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// URI parameters (`;transport=tcp;lr`...).
    pub fn params(&self) -> Params<'_> {
        Params(self.params.get(&self.src))
    }
    /// URI headers as written, without the `?` (empty if none).
    pub fn headers(&self) -> &str {
        self.headers.get(&self.src)
    }

    /// Whether [`SipUri::headers`] is not empty, from its span.
    pub(crate) fn has_headers(&self) -> bool {
        self.headers.start() < self.headers.end()
    }
    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&str> {
        self.params().value("transport")
    }
    /// Whether the URI has the `lr` parameter (RFC 3261 §16.4 loose routing).
    pub fn is_loose_route(&self) -> bool {
        self.params().contains("lr")
    }
    /// `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        self.params().value("maddr")
    }
    /// The URI as written.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.all.get(&self.src)
    }

    /// The URI without parameters and headers, `sip:user@host:port`: the
    /// canonical key of an address-of-record once lower-cased by the caller
    /// as its policy requires.
    pub fn without_params(&self) -> String {
        let mut s = String::with_capacity(self.all.end() - self.all.start());
        s.push_str(if self.secure { "sips:" } else { "sip:" });
        if let Some(u) = self.user() {
            s.push_str(u);
            if let Some(p) = self.password() {
                s.push(':');
                s.push_str(p);
            }
            s.push('@');
        }
        s.push_str(self.host().as_str());
        if let Some(p) = self.port {
            s.push(':');
            s.push_str(&p.to_string());
        }
        s
    }
}

impl PartialEq for SipUri {
    /// RFC 3261 §19.1.4.
    fn eq(&self, o: &SipUri) -> bool {
        if self.secure != o.secure || self.port != o.port || self.host() != o.host() {
            return false;
        }
        // userinfo: case-sensitive after unescaping.
        if self.user_decoded() != o.user_decoded()
            || self.password().map(percent_decode) != o.password().map(percent_decode)
        {
            return false;
        }
        // Parameters present in both must match; user, ttl, method, maddr and
        // transport present in only one never match.
        const MUST_BOTH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
        for (a, b) in [(self, o), (o, self)] {
            for (name, value) in a.params().iter() {
                match b.params().get(name) {
                    Some(v2) => {
                        let eq = match (value, v2) {
                            (None, None) => true,
                            (Some(x), Some(y)) => decoded_eq_ignore_case(x, y),
                            _ => false,
                        };
                        if !eq {
                            return false;
                        }
                    }
                    None => {
                        if MUST_BOTH.iter().any(|m| m.eq_ignore_ascii_case(name)) {
                            return false;
                        }
                    }
                }
            }
        }
        // Headers are never ignored: same set, order aside.
        let split = |h: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
            let mut v: Vec<_> = h
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
                    (
                        percent_decode(k).to_ascii_lowercase(),
                        percent_decode(val).into_owned(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        split(self.headers()) == split(o.headers())
    }
}

impl TelUri {
    /// The number as written (`+1-201-555-0123`).
    pub fn number(&self) -> &str {
        self.number.get(&self.src)
    }
    /// Parameters (`;phone-context=...`).
    pub fn params(&self) -> Params<'_> {
        Params(self.params.get(&self.src))
    }
}

impl PartialEq for TelUri {
    /// RFC 3966 §4: visual separators are ignored, parameters compared
    /// case-insensitively regardless of order.
    fn eq(&self, o: &TelUri) -> bool {
        let digits = |n: &str| -> String {
            n.chars()
                .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        if digits(self.number()) != digits(o.number()) {
            return false;
        }
        let norm = |p: Params<'_>| -> Vec<(String, String)> {
            let mut v: Vec<_> = p
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.unwrap_or("").to_ascii_lowercase()))
                .collect();
            v.sort();
            v
        };
        norm(self.params()) == norm(o.params())
    }
}

impl PartialEq for Uri {
    fn eq(&self, other: &Uri) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a == b,
            (Uri::Tel(a), Uri::Tel(b)) => a == b,
            (Uri::Absolute(a), Uri::Absolute(b)) => {
                let (x, y) = (self.as_str(), other.as_str());
                let (sa, ra) = x.split_at(a.scheme_len.min(x.len()));
                let (sb, rb) = y.split_at(b.scheme_len.min(y.len()));
                sa.eq_ignore_ascii_case(sb) && ra == rb
            }
            _ => false,
        }
    }
}

#[cfg(not(test))]
impl fmt::Debug for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipUri")
            .field("uri", &self.as_str())
            .field("user", &self.user())
            .field("host", &self.host())
            .field("port", &self.port)
            .field("params", &self.params())
            .field("headers", &self.headers())
            .finish()
    }
}

#[cfg(not(test))]
impl fmt::Debug for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelUri")
            .field("uri", &self.all.get(&self.src))
            .field("number", &self.number())
            .field("params", &self.params())
            .finish()
    }
}

#[cfg(not(test))]
impl fmt::Debug for AbsoluteUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AbsoluteUri")
            .field(&self.all.get(&self.src))
            .finish()
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Uri {
        Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The one-pass SIP URI path against the general one on combinations
    /// of the parts' usual and unusual forms: whenever it answers, every
    /// span is the general path's; ended by '>' (as in a name-addr), it
    /// answers exactly as the general path on the text up to the first '>'.
    #[test]
    fn sip_fast_path_agrees_with_the_general_path() {
        let schemes = ["sip:", "sips:", "SIP:", "sIpS:"];
        let users = [
            "",
            "bob@",
            "alice.b-c_d!~*'()&=+$,;?/@",
            "%41@",
            "@",
            "a:b@",
            "a b@",
            "a>b@",
            "a@b@",
            "é@",
        ];
        let hosts = [
            "biloxi.example.com",
            "192.0.2.101",
            "192.0.2.101a",
            "1.2.3.4-",
            "10.0.0.1.",
            "255.255.255.2555",
            "1.2.3.04",
            "1.2.3.256",
            "1and1.com",
            "a..b",
            ".a",
            "-a",
            "a-",
            "[::1]",
            "h_x",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "9",
            "",
            "a.b.c.d.e.f.g.h.i.j",
            "x>y",
        ];
        let ports = [
            "",
            ":5060",
            ":65535",
            ":65536",
            ":",
            ":0",
            ":00005060",
            ":5x",
        ];
        let params = [
            "",
            ";lr",
            ";transport=udp",
            ";x=",
            ";=y",
            ";a;b=c",
            ";p=%41",
            ";maddr=[::1]",
            ";a=b:c",
            ";",
            ";a@b",
            ";a>b",
        ];
        let headers = ["", "?h=v", "?", "?a=b&c=d"];
        let tails = ["", ">", ">;tag=1", "> ", ">>"];
        let mut fast_count = 0;
        for scheme in schemes {
            for user in users {
                for host in hosts {
                    for port in ports {
                        for param in params {
                            for header in headers {
                                let uri = format!("{scheme}{user}{host}{port}{param}{header}");
                                let src = SipStr::from(uri.as_str());
                                let all = Sub::new(0, src.len());
                                let b = src.as_bytes();
                                if let Some(from) = sip_scheme(b) {
                                    if let Some(fast) = sip_scan(b, 0, from, None) {
                                        let fast = fast.build(&src);
                                        fast_count += 1;
                                        let general = parse_sip(&src, all, from, from == 5)
                                            .unwrap_or_else(|e| panic!("{uri}: {e}"));
                                        assert_eq!(fast.has_headers(), !fast.headers().is_empty());
                                        assert_eq!(
                                            format!("{fast:?}"),
                                            format!("{general:?}"),
                                            "{uri}"
                                        );
                                    }
                                }
                                // After a prefix too: positions are the
                                // source's.
                                for (prefix, tail) in tails
                                    .iter()
                                    .flat_map(|t| [("", t), ("<", t), ("Contact: a <", t)])
                                {
                                    let text = format!("{prefix}{uri}{tail}");
                                    let src = SipStr::from(text.as_str());
                                    let start = prefix.len();
                                    let Some(fast) =
                                        Uri::scan_sip_until(src.as_bytes(), start, b'>')
                                    else {
                                        continue;
                                    };
                                    let (fast, close) = (Uri::Sip(fast.build(&src)), fast.end());
                                    let first =
                                        start + text[start..].find('>').expect("ended by '>'");
                                    assert_eq!(close, first, "{text}");
                                    let from = sip_scheme(&src.as_bytes()[start..]).expect("sip");
                                    let general =
                                        parse_sip(&src, Sub::new(start, first), from, from == 5)
                                            .map(Uri::Sip)
                                            .unwrap_or_else(|e| panic!("{text}: {e}"));
                                    assert_eq!(
                                        format!("{fast:?}"),
                                        format!("{general:?}"),
                                        "{text}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(fast_count > 1000, "{fast_count}");
    }

    #[test]
    fn headers_span_says_whether_there_are_headers() {
        for text in [
            "sip:a@b",
            "sip:a@b?h=v",
            "sip:a@b;lr?h=v&x=y",
            "sips:a:pw@[::1]:5061;lr?h=%20",
            "sip:b",
            "sip:a@b;x=y",
        ] {
            let Uri::Sip(s) = u(text) else {
                panic!("{text}")
            };
            assert_eq!(s.has_headers(), !s.headers().is_empty(), "{text}");
        }
    }

    #[test]
    fn rfc3261_19_1_4_equal_examples() {
        let pairs = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
            (
                "sip:carol@chicago.com;newparam=5",
                "sip:carol@chicago.com;security=on",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in pairs {
            assert_eq!(u(a), u(b), "{a} == {b}");
            assert_eq!(u(b), u(a), "{b} == {a}");
        }
    }

    #[test]
    fn rfc3261_19_1_4_unequal_examples() {
        let pairs = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ];
        for (a, b) in pairs {
            assert_ne!(u(a), u(b), "{a} != {b}");
            assert_ne!(u(b), u(a), "{b} != {a}");
        }
        assert_ne!(u("sip:a@x"), u("sips:a@x"));
        assert_ne!(u("sip:x;maddr=1.2.3.4"), u("sip:x"));
    }

    #[test]
    fn components() {
        let Uri::Sip(s) = u("sips:user:pw@[2001:db8::10]:5070;transport=tcp;lr?h=v") else {
            panic!()
        };
        assert!(s.is_secure());
        assert_eq!(s.user(), Some("user"));
        assert_eq!(s.password(), Some("pw"));
        assert_eq!(s.host().as_str(), "[2001:db8::10]");
        assert_eq!(s.host().ip(), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(s.port(), Some(5070));
        assert_eq!(s.transport(), Some("tcp"));
        assert!(s.is_loose_route());
        assert_eq!(s.headers(), "h=v");
        assert_eq!(s.without_params(), "sips:user:pw@[2001:db8::10]:5070");
    }

    #[test]
    fn escaped_users_decode_once() {
        let Uri::Sip(s) = u("sip:sips%3Auser%40example.com@example.net") else {
            panic!()
        };
        assert_eq!(&*s.user_decoded().unwrap(), b"sips:user@example.com");
        let Uri::Sip(s) = u("sip:%00@host") else {
            panic!()
        };
        assert_eq!(&*s.user_decoded().unwrap(), b"\0");
        let Uri::Sip(s) = u("sip:%2525@host") else {
            panic!()
        };
        assert_eq!(&*s.user_decoded().unwrap(), b"%25");
    }

    #[test]
    fn ipv4_like_std() {
        let cases = [
            "1.2.3.4",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            "1..2.3",
            "",
            ".",
            "1.2.3.04",
            "1.2.3.0",
            "1234.1.1.1",
            "10.0.0.1",
            "001.2.3.4",
            "1.2.3.4 ",
            "9.99.199.249",
            "1.2.3.",
            "0.0.0.00",
        ];
        for c in cases {
            assert_eq!(
                parse_ipv4(c.as_bytes()),
                c.parse::<Ipv4Addr>().ok(),
                "{c:?}"
            );
        }
        for a in 0..=300u32 {
            for z in ["", "0", "00"] {
                let c = format!("{z}{a}.1.{a}.{z}{a}");
                assert_eq!(
                    parse_ipv4(c.as_bytes()),
                    c.parse::<Ipv4Addr>().ok(),
                    "{c:?}"
                );
            }
        }
        // Strings of digits and dots (and a few others).
        let alphabet = b"0123456789...2.5x";
        let mut seed = 5u64;
        for _ in 0..200_000 {
            crate::scan::test_lcg::step(&mut seed);
            let len = (seed >> 59) as usize;
            let c: Vec<u8> = (0..len)
                .map(|k| alphabet[(seed >> (4 * k % 56)) as usize % alphabet.len()])
                .collect();
            let c = String::from_utf8(c).unwrap();
            assert_eq!(
                parse_ipv4(c.as_bytes()),
                c.parse::<Ipv4Addr>().ok(),
                "{c:?}"
            );
        }
    }

    #[test]
    fn tel_and_opaque() {
        let Uri::Tel(t) = u("tel:+1-201-555-0123;ext=1234") else {
            panic!()
        };
        assert_eq!(t.number(), "+1-201-555-0123");
        assert_eq!(t.params().value("ext"), Some("1234"));
        assert_eq!(
            u("tel:+12015550123;EXT=1234"),
            u("tel:+1-201-555-0123;ext=1234")
        );
        let x = u("soap.beep://192.0.2.103:3002");
        assert_eq!(x.scheme(), "soap.beep");
        assert!(matches!(x, Uri::Absolute(_)));
        assert_eq!(u("urn:x"), u("URN:x"));
    }

    #[test]
    fn malformed_uris_are_rejected_with_a_reason() {
        for bad in [
            "sip:2001:db8::10",
            "<sip:x@y>",
            "sip:user@example.com; lr",
            "sip:",
            "sip:@host",
            "sip:[::1",
            "sip:host:99999",
            "sip:host;",
            "sip:ho st",
            "sip:a%zz@host",
            "nocolon",
            "1abc:x",
            "tel:",
        ] {
            let e = Uri::parse(bad).expect_err(bad);
            assert!(matches!(e, Error::Uri { .. }), "{bad}: {e}");
        }
    }
}
