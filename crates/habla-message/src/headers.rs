//! Typed header values (RFC 3261 §20, §25.1). Each parser takes the value as
//! a shared string and returns a view whose parts are slices of it.

use crate::params::{scan_header_params, scan_header_params_finding, Params};
use crate::scan::{comma_items, find_byte, is_token, parse_u32, trim_lws, unquote, Scanner};
use crate::scan::{run_end, PARAM_VALUE, TOKEN};
use crate::text::Sub;
use crate::uri::{fast_host_port, scan_host, scan_port, Host, HostKind, SipSpans, Uri};
use crate::{Error, Method, SipStr};
use std::borrow::Cow;

/// The magic cookie that starts RFC 3261 branch ids (§8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;params`.
#[derive(Clone)]
// Unit tests compare every span; elsewhere `Debug` shows the text (the
// shared source can be a whole header section).
#[cfg_attr(test, derive(Debug))]
pub struct Via {
    // The header line's value (possibly several comma-separated Vias) and
    // this value's extent in it.
    raw: SipStr,
    all: Sub,
    name: Sub,
    version: Sub,
    transport: Sub,
    host: Sub,
    host_kind: HostKind,
    port: Option<u16>,
    params: Sub,
    /// The value of the first `branch` parameter, found while parsing.
    branch: Option<Sub>,
    /// The first `received`, `rport` and `maddr` parameters, found while
    /// parsing: a transport reads them for every request and response
    /// (RFC 3261 §18.2.2, RFC 3581), so their accessors do not scan.
    known: KnownParams,
}

/// Where a Via's first `received`, `rport` and `maddr` parameters are:
/// `None` when absent, `Some(None)` when present without a value.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Copy, Default)]
struct KnownParams {
    received: Option<Option<Sub>>,
    rport: Option<Option<Sub>>,
    maddr: Option<Option<Sub>>,
}

impl KnownParams {
    /// The known parameters of a parameter list (the general path; the
    /// fast one finds them in its own scan), `params` a slice of `src`.
    fn of(src: &str, params: &str) -> KnownParams {
        let mut k = KnownParams::default();
        for (name, value) in Params(params).iter() {
            let slot = if name.eq_ignore_ascii_case("received") {
                &mut k.received
            } else if name.eq_ignore_ascii_case("rport") {
                &mut k.rport
            } else if name.eq_ignore_ascii_case("maddr") {
                &mut k.maddr
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(value.map(|v| Sub::of(src, v)));
            }
        }
        k
    }
}

impl PartialEq for Via {
    fn eq(&self, other: &Via) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Via {}

impl Via {
    /// The value as written.
    #[inline]
    pub fn as_str(&self) -> &str {
        self.all.get(&self.raw)
    }
    /// Protocol name (`SIP`).
    pub fn protocol_name(&self) -> &str {
        self.name.get(&self.raw)
    }
    /// Protocol version (`2.0`).
    pub fn protocol_version(&self) -> &str {
        self.version.get(&self.raw)
    }
    /// The transport token as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`...).
    #[inline]
    pub fn transport(&self) -> &str {
        self.transport.get(&self.raw)
    }
    /// The sent-by host.
    #[inline]
    pub fn host(&self) -> Host<'_> {
        Host::new(self.host.get(&self.raw), self.host_kind)
    }
    /// The sent-by port, if given.
    #[inline]
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// All parameters.
    pub fn params(&self) -> Params<'_> {
        Params(self.params.get(&self.raw))
    }
    /// The `branch` parameter.
    #[inline]
    pub fn branch(&self) -> Option<&str> {
        self.branch.map(|b| b.get(&self.raw))
    }
    /// Whether the branch starts with the RFC 3261 magic cookie and has
    /// something after it (RFC 3261 §17.2.3 matching applies then).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }
    /// The `received` parameter as written.
    #[inline]
    pub fn received(&self) -> Option<&str> {
        self.known.received.flatten().map(|v| v.get(&self.raw))
    }
    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a
    /// value (a request asking for it), `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.known
            .rport
            .map(|v| v.and_then(|p| parse_u32(p.get(&self.raw), 65535).map(|p| p as u16)))
    }
    /// The `maddr` parameter.
    #[inline]
    pub fn maddr(&self) -> Option<&str> {
        self.known.maddr.flatten().map(|v| v.get(&self.raw))
    }
    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params()
            .value("ttl")
            .and_then(|t| parse_u32(t, 255))
            .map(|t| t as u8)
    }

    /// Parses one Via value (not a comma-separated list).
    pub fn parse(value: &SipStr) -> Result<Via, Error> {
        Via::parse_in(value, Sub::new(0, value.len()))
    }

    /// Parses the Via value at `item` of a header value, sharing `src`.
    pub(crate) fn parse_in(src: &SipStr, item: Sub) -> Result<Via, Error> {
        let err = |r: &'static str| Error::header("Via", r);
        let v: &str = trim_lws(item.get(src));
        let mut sc = Scanner::new(v);
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
        let (host, host_kind) = scan_host(&mut sc).map_err(err)?;
        let port = scan_port(&mut sc).map_err(err)?;
        let (params, branch) = scan_header_params_finding(&mut sc, "branch").map_err(err)?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(err("unexpected text after Via parameters"));
        }
        if let Some(b) = branch {
            if b.is_none_or(|b| !b.bytes().all(is_token)) {
                return Err(err("branch must be a token"));
            }
        }
        Ok(Via {
            all: Sub::of(src, v),
            name: Sub::of(src, name),
            version: Sub::of(src, version),
            transport: Sub::of(src, transport),
            host: Sub::of(src, host),
            host_kind,
            port,
            params: Sub::of(src, params),
            branch: branch.flatten().map(|b| Sub::of(src, b)),
            known: KnownParams::of(src, params),
            raw: src.clone(),
        })
    }
}

/// A parameter found by [`fast_params`]: the extent of its value, if any,
/// and whether the value is a token (no ':', '[' or ']').
type FoundParam = Option<(usize, usize, bool)>;

/// `*( ";" token [ "=" 1*param-value-char ] )` from `b[i..]` without LWS or
/// quotes: the end of the list and the first parameter named `key` (its
/// value's extent, if it has one). `None` for a malformed parameter or one
/// that needs the general scanner ([`scan_header_params_finding`]), which
/// gives the same result on every list this one accepts.
#[inline(always)]
fn fast_params(b: &[u8], i: usize, key: Key) -> Option<(usize, Option<FoundParam>)> {
    fast_params_of(b, i, [key]).map(|(end, [found])| (end, found))
}

/// [`fast_params`] looking for several keys at once (each its first
/// occurrence).
#[inline(always)]
fn fast_params_of<const N: usize>(
    b: &[u8],
    mut i: usize,
    keys: [Key; N],
) -> Option<(usize, [Option<FoundParam>; N])> {
    let mut found = [None; N];
    while b.get(i) == Some(&b';') {
        i += 1;
        let n0 = i;
        i = run_end(b, i, &TOKEN);
        if i == n0 {
            return None;
        }
        let n1 = i;
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            i += 1;
            let v0 = i;
            // Token characters, then the other value characters
            // (gen-value = token / host / quoted-string, RFC 3261 §25.1):
            // one pass that also tells whether the value is a token, as a
            // Via branch must be (via-branch = "branch" EQUAL token).
            let token_end = run_end(b, i, &TOKEN);
            i = run_end(b, token_end, &PARAM_VALUE);
            if i == v0 {
                return None;
            }
            value = Some((v0, i, token_end == i));
        }
        for (slot, key) in found.iter_mut().zip(keys) {
            if slot.is_none() && is_key(b, n0, n1, key) {
                *slot = Some(value);
                break;
            }
        }
    }
    Some((i, found))
}

/// A parameter name looked for by [`fast_params`]: at most eight lower-case
/// letters, as one little-endian word (zeros past the name) and a length.
#[derive(Clone, Copy)]
struct Key {
    word: u64,
    len: usize,
}

impl Key {
    const fn new(name: &[u8]) -> Key {
        assert!(name.len() <= 8, "a key is at most eight letters");
        let mut word = 0u64;
        let mut i = 0;
        while i < name.len() {
            assert!(name[i].is_ascii_lowercase(), "a key is lower-case letters");
            word |= (name[i] as u64) << (8 * i);
            i += 1;
        }
        Key {
            word,
            len: name.len(),
        }
    }

    /// No name: no parameter is looked for.
    const NONE: Key = Key { word: 0, len: 0 };
    const TAG: Key = Key::new(b"tag");
    const BRANCH: Key = Key::new(b"branch");
    const RECEIVED: Key = Key::new(b"received");
    const RPORT: Key = Key::new(b"rport");
    const MADDR: Key = Key::new(b"maddr");
}

/// Whether the parameter name `b[n0..n1]` is `key` in any case: `| 0x20`
/// turns an upper-case letter into its lower case and no octet but the two
/// cases of a letter into a lower-case letter. One word compared when the
/// eight octets from `n0` are there (the name's are the low ones).
#[inline(always)]
fn is_key(b: &[u8], n0: usize, n1: usize, key: Key) -> bool {
    if key.len == 0 || n1.wrapping_sub(n0) != key.len {
        return false;
    }
    match crate::scan::load8(b, n0) {
        Some(w) => (w | 0x2020_2020_2020_2020) & (u64::MAX >> (64 - 8 * key.len)) == key.word,
        None => b.get(n0..n1).is_some_and(|n| {
            n.iter()
                .zip(key.word.to_le_bytes())
                .all(|(&x, k)| x | 0x20 == k)
        }),
    }
}

impl Via {
    /// The first Via value of the header value at `value` in `src` when it
    /// has the usual form, `SIP/2.0/TRANSPORT host[:port][;params]`
    /// without LWS or quotes, ended by the value's end or a comma: the same
    /// `Via` as the general path (comma split, then [`Via::parse_in`]) in
    /// one pass. `None` sends every other form, valid or not, there.
    pub(crate) fn parse_first_fast(src: &SipStr, value: Sub) -> Option<Via> {
        // Positions are those of `src`, whose octets `b` ends with the value.
        let v0 = value.start();
        let b = src.as_bytes().get(..value.end())?;
        if b.get(v0..v0.checked_add(8)?)? != b"SIP/2.0/" {
            return None;
        }
        let t0 = v0 + 8;
        let t1 = run_end(b, t0, &TOKEN);
        let i = t1;
        if t1 == t0 || b.get(i) != Some(&b' ') {
            return None;
        }
        let h0 = i + 1;
        let (h1, host_kind, port, after) = fast_host_port(b, h0)?;
        let (end, [branch, received, rport, maddr]) = fast_params_of(
            b,
            after,
            [Key::BRANCH, Key::RECEIVED, Key::RPORT, Key::MADDR],
        )?;
        if !matches!(b.get(end), None | Some(b',')) {
            return None;
        }
        let branch = match branch {
            None => None,
            Some(Some((x, y, true))) => Some(Sub::new(x, y)),
            // A branch without value or with a non-token one: the general
            // path reports it.
            Some(_) => return None,
        };
        Some(Via {
            all: Sub::new(v0, end),
            name: Sub::new(v0, v0 + 3),
            version: Sub::new(v0 + 4, v0 + 7),
            transport: Sub::new(t0, t1),
            host: Sub::new(h0, h1),
            host_kind,
            port,
            params: if end > after {
                Sub::new(after, end)
            } else {
                Sub::default()
            },
            branch,
            known: KnownParams {
                received: received.map(|v| v.map(|(x, y, _)| Sub::new(x, y))),
                rport: rport.map(|v| v.map(|(x, y, _)| Sub::new(x, y))),
                maddr: maddr.map(|v| v.map(|(x, y, _)| Sub::new(x, y))),
            },
            raw: src.clone(),
        })
    }
}

/// The parts of a name-addr in the usual form (see [`NameAddr::scan_fast`]),
/// found without building anything: the name-addr is built once, where it
/// is stored.
#[derive(Clone, Copy)]
pub(crate) struct NameAddrSpans {
    /// The SIP URI's parts, or `None` for another URI, between `<` and `>`
    /// (at `uri`).
    sip: Option<SipSpans>,
    uri: Sub,
    all: Sub,
    display: Option<Sub>,
    params: Sub,
    tag: Option<Sub>,
}

impl NameAddrSpans {
    /// The name-addr whose parts these are, in `src`: `None` only when its
    /// URI is not a SIP URI and does not parse.
    #[inline(always)]
    pub(crate) fn build(self, src: &SipStr) -> Option<NameAddr> {
        let uri = match self.sip {
            Some(sip) => Uri::Sip(sip.build(src)),
            None => Uri::parse_in(src, self.uri).ok()?,
        };
        Some(self.with_uri(uri))
    }

    /// The SIP URI's parts, if the URI is one.
    #[inline(always)]
    pub(crate) fn sip(&self) -> Option<SipSpans> {
        self.sip
    }

    /// The name-addr with `uri` (built from [`NameAddrSpans::sip`] where
    /// the name-addr is stored, so that it is not moved afterwards).
    #[inline(always)]
    pub(crate) fn with_uri(self, uri: Uri) -> NameAddr {
        NameAddr {
            uri,
            all: self.all,
            display: self.display,
            params: self.params,
            tag: self.tag,
            bracketed: true,
        }
    }
}

impl NameAddr {
    /// The value at `value` in `src` when it is one `<URI>` with an
    /// optional display name of tokens separated by single spaces, and
    /// header parameters without LWS or quotes: the same `NameAddr` as
    /// [`NameAddr::parse_in`] (and, for a list header, as splitting the
    /// value at commas first: such a value has no comma outside `<...>`).
    /// `None` sends every other form, valid or not, to the general path.
    #[inline]
    pub(crate) fn parse_fast(src: &SipStr, value: Sub) -> Option<NameAddr> {
        NameAddr::scan_fast(src, value)?.build(src)
    }

    /// The parts of the value [`NameAddr::parse_fast`] accepts (a URI that
    /// is not a SIP URI is parsed when built).
    #[inline]
    pub(crate) fn scan_fast(src: &SipStr, value: Sub) -> Option<NameAddrSpans> {
        // Positions are those of `src`, whose octets `b` ends with the value.
        let (v0, v1) = (value.start(), value.end());
        let b = src.as_bytes().get(..v1)?;
        let mut i = v0;
        let mut display = None;
        if b.get(i) != Some(&b'<') {
            loop {
                let t0 = i;
                i = run_end(b, i, &TOKEN);
                if i == t0 {
                    return None;
                }
                let end = i;
                match b.get(i) {
                    Some(b'<') => {
                        display = Some(end);
                        break;
                    }
                    Some(b' ') => {
                        i += 1;
                        if b.get(i) == Some(&b'<') {
                            display = Some(end);
                            break;
                        }
                    }
                    _ => return None,
                }
            }
        }
        // b[i] is '<'.
        let u0 = i + 1;
        // The usual SIP URI, scanned up to its '>' (which none of its parts
        // holds: the first '>'); any other URI is found by the '>' first.
        let (sip, close) = match Uri::scan_sip_until(b, u0, b'>') {
            Some(sip) => (Some(sip), sip.end()),
            None => {
                let close = u0 + memchr::memchr(b'>', b.get(u0..)?)?;
                if matches!(b.get(u0), Some(b' ' | b'\t'))
                    || matches!(b.get(close - 1), Some(b' ' | b'\t'))
                {
                    return None;
                }
                (None, close)
            }
        };
        let after = close + 1;
        let (end, tag) = fast_params(b, after, Key::TAG)?;
        if end != v1 {
            return None;
        }
        Some(NameAddrSpans {
            sip,
            uri: Sub::new(u0, close),
            all: Sub::new(v0, v1),
            display: display.map(|d| Sub::new(v0, d)),
            params: if end > after {
                Sub::new(after, end)
            } else {
                Sub::default()
            },
            tag: tag.flatten().map(|(x, y, _)| Sub::new(x, y)),
        })
    }
}

/// `name-addr` or `addr-spec` with header parameters: the value of From, To,
/// Contact, Route, Record-Route, Reply-To, Path... (RFC 3261 §20.10).
#[derive(Clone)]
// Unit tests compare every span; elsewhere `Debug` shows the text (the
// shared source can be a whole header section).
#[cfg_attr(test, derive(Debug))]
pub struct NameAddr {
    // The URI holds the shared text of the whole value.
    uri: Uri,
    all: Sub,
    display: Option<Sub>,
    params: Sub,
    /// The value of the first `tag` parameter, found while parsing.
    tag: Option<Sub>,
    bracketed: bool,
}

impl NameAddr {
    #[inline]
    fn src(&self) -> &str {
        self.uri.source()
    }
    /// The value as written.
    pub fn as_str(&self) -> &str {
        self.all.get(self.src())
    }
    /// The display name as written (quoted strings keep their quotes).
    pub fn display_raw(&self) -> Option<&str> {
        self.display.map(|d| d.get(self.src()))
    }
    /// The display name with quotes removed and quoted-pairs resolved.
    pub fn display_name(&self) -> Option<Cow<'_, str>> {
        self.display_raw().map(unquote)
    }
    /// The URI.
    #[inline]
    pub fn uri(&self) -> &Uri {
        &self.uri
    }
    /// Header parameters (after `>`, or after the addr-spec).
    pub fn params(&self) -> Params<'_> {
        Params(self.params.get(self.src()))
    }
    /// The `tag` parameter (RFC 3261 §19.3).
    #[inline]
    pub fn tag(&self) -> Option<&str> {
        self.tag.map(|t| t.get(self.src()))
    }
    /// Whether the URI was written inside `<...>`.
    pub fn is_bracketed(&self) -> bool {
        self.bracketed
    }

    /// Parses one value (not a comma-separated list) of header `header`.
    pub fn parse(value: &SipStr, header: &'static str) -> Result<NameAddr, Error> {
        NameAddr::parse_in(value, Sub::new(0, value.len()), header)
    }

    /// Parses the value at `item` of a header value, sharing `value`.
    pub(crate) fn parse_in(
        value: &SipStr,
        item: Sub,
        header: &'static str,
    ) -> Result<NameAddr, Error> {
        let err = |r: &'static str| Error::header(header, r);
        let v: &str = trim_lws(item.get(value));
        let mut sc = Scanner::new(v);
        let mut display = None;
        if sc.peek() == Some(b'"') {
            let q = sc
                .quoted_string()
                .ok_or_else(|| err("display name opens a quote that is never closed"))?;
            display = Some(q);
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
                    display = v.get(start..last_end);
                }
            } else {
                sc.pos = start;
            }
        }
        let bracketed = sc.eat(b'<');
        let uri_text = if bracketed {
            let inner_start = sc.pos;
            let close = find_byte(sc.rest().as_bytes(), b'>')
                .ok_or_else(|| err("'<' is never closed by '>'"))?;
            sc.pos = inner_start + close + 1;
            let t = v.get(inner_start..inner_start + close).unwrap_or("");
            if t.starts_with([' ', '\t']) || t.ends_with([' ', '\t']) {
                return Err(err("whitespace inside '<' '>' around the URI"));
            }
            t
        } else {
            // addr-spec: the URI ends at the first ';' after the host
            // (RFC 3261 §20.10: its parameters are header parameters), and
            // it may not carry URI headers.
            let rest = sc.rest();
            let host_start = find_byte(rest.as_bytes(), b'@').map_or(0, |a| a + 1);
            let end = rest
                .as_bytes()
                .get(host_start..)
                .and_then(|r| {
                    r.iter()
                        .position(|&c| matches!(c, b';' | b' ' | b'\t' | b'\r' | b'\n'))
                })
                .map_or(rest.len(), |e| e + host_start);
            let t = rest.get(..end).unwrap_or("");
            if find_byte(t.as_bytes(), b'?').is_some() {
                return Err(err("a URI with headers must be enclosed in '<' '>'"));
            }
            sc.pos += end;
            t
        };
        let uri = Uri::parse_in(value, Sub::of(value, uri_text));
        let uri = if bracketed {
            uri?
        } else {
            uri.map_err(|_| err("not a name-addr or addr-spec"))?
        };
        let (params, tag) = scan_header_params_finding(&mut sc, "tag").map_err(err)?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(err("unexpected text after the address"));
        }
        Ok(NameAddr {
            all: Sub::of(value, v),
            display: display.map(|d| Sub::of(value, d)),
            params: Sub::of(value, params),
            tag: tag.flatten().map(|t| Sub::of(value, t)),
            bracketed,
            uri,
        })
    }
}

#[cfg(not(test))]
impl std::fmt::Debug for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Via")
            .field("value", &self.as_str())
            .field("transport", &self.transport())
            .field("host", &self.host())
            .field("port", &self.port)
            .field("params", &self.params())
            .finish()
    }
}

#[cfg(not(test))]
impl std::fmt::Debug for NameAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NameAddr")
            .field("value", &self.as_str())
            .field("display", &self.display_raw())
            .field("uri", &self.uri)
            .field("params", &self.params())
            .finish()
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
    #[inline]
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
pub(crate) fn parse_contacts(
    src: &SipStr,
    value: Sub,
    out: &mut Vec<Contact>,
) -> Result<(), Error> {
    if let Some(a) = NameAddr::parse_fast(src, value) {
        out.push(Contact::Addr(a));
        return Ok(());
    }
    if trim_lws(value.get(src)) == "*" {
        out.push(Contact::Star);
        return Ok(());
    }
    parse_list(src, value, "Contact", out, |src, item| {
        NameAddr::parse_in(src, item, "Contact").map(Contact::Addr)
    })
}

/// Splits a comma-list value and parses each item; an empty item is an error.
pub(crate) fn parse_list<T>(
    src: &SipStr,
    value: Sub,
    header: &'static str,
    out: &mut Vec<T>,
    f: impl Fn(&SipStr, Sub) -> Result<T, Error>,
) -> Result<(), Error> {
    for item in comma_items(value.get(src)) {
        if item.is_empty() {
            return Err(Error::header(
                header,
                "empty element in comma-separated list",
            ));
        }
        out.push(f(src, Sub::of(src, item))?);
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
        CSeq::parse_at(value, Sub::new(0, value.len()))
    }

    /// Parses the CSeq value at `value` in `src`.
    pub(crate) fn parse_at(src: &SipStr, value: Sub) -> Result<CSeq, Error> {
        // Fast path: `DIGITS SP METHOD`, which the general code accepts with
        // the same result.
        let b = src
            .as_bytes()
            .get(value.start()..value.end())
            .unwrap_or(&[]);
        // The number (`parse_u32`'s value: leading zeros allowed, at most
        // 2**32 - 1): up to seven digits from one word when the value has
        // eight octets, else in the same pass as its digits.
        let (digits, seq) = match crate::scan::load8(b, 0).and_then(leading_digits) {
            Some((n, v)) if n < 8 => (n, v),
            _ => {
                let mut digits = 0;
                let mut seq = 0u64;
                for &c in b {
                    let d = c.wrapping_sub(b'0');
                    if d > 9 {
                        break;
                    }
                    seq = (seq * 10 + u64::from(d)).min(1 << 32);
                    digits += 1;
                }
                (digits, seq)
            }
        };
        if digits > 0 && seq <= u64::from(u32::MAX) && b.get(digits) == Some(&b' ') {
            // `Method::parse_bytes` accepts exactly the non-empty tokens.
            if let Some(method) = b
                .get(digits + 1..)
                .and_then(|m| Method::parse_bytes(m, src))
            {
                return Ok(CSeq {
                    seq: seq as u32,
                    method,
                });
            }
        }
        CSeq::parse_general(value.get(src), src)
    }

    /// [`CSeq::parse_at`] without its fast path.
    fn parse_general(value: &str, src: &SipStr) -> Result<CSeq, Error> {
        let mut sc = Scanner::new(value);
        sc.skip_lws();
        let digits = sc.take_while(|c| c.is_ascii_digit());
        let seq = parse_u32(digits, u32::MAX)
            .ok_or_else(|| Error::header("CSeq", "sequence number is not a number below 2**32"))?;
        let before = sc.pos;
        sc.skip_lws();
        if sc.pos == before {
            return Err(Error::header(
                "CSeq",
                "expected whitespace after the number",
            ));
        }
        let m = sc
            .token()
            .ok_or_else(|| Error::header("CSeq", "method missing"))?;
        sc.skip_lws();
        if !sc.at_end() {
            return Err(Error::header("CSeq", "unexpected text after the method"));
        }
        let method = Method::parse_in(m, src)
            .ok_or_else(|| Error::header("CSeq", "method is not a token"))?;
        Ok(CSeq { seq, method })
    }
}

/// The decimal digits at the start of the eight octets of `w` (the first
/// octet in the low bits): how many (at least one; `None` for none) and
/// their value. Word arithmetic: a digit is an octet `c` with `c - '0'`
/// below 10; the lowest octet that is not one is found exactly (no borrow
/// or carry leaves an octet below it, as they all hold digits), and the
/// digits, moved to the top of the word behind zeros, are combined by
/// pairs, fours and eights.
#[inline]
fn leading_digits(w: u64) -> Option<(usize, u64)> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let x = w.wrapping_sub(b'0' as u64 * ONES);
    // High bit of an octet: below '0' (the subtraction wrapped) or above
    // '9' (10 + 0x76 reaches 0x80).
    let not_digit = (x | x.wrapping_add(0x76 * ONES)) & (0x80 * ONES);
    let n = (not_digit.trailing_zeros() / 8) as usize;
    if n == 0 {
        return None;
    }
    // The n digit values, most significant first, in the top n octets.
    let d = (x << (8 * (8 - n))) & (0x0f * ONES);
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00ff_00ff_00ff_00ff;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_ffff_0000_ffff;
    let d = d.wrapping_mul(10000) + (d >> 32);
    Some((n, d & 0xffff_ffff))
}

/// A media type (Content-Type, RFC 3261 §20.15): `type/subtype;params`.
#[derive(Clone)]
// Unit tests compare every span; elsewhere `Debug` shows the text (the
// shared source can be a whole header section).
#[cfg_attr(test, derive(Debug))]
pub struct MediaType {
    // The shared text the value lives in (possibly a whole header section)
    // and the value's extent in it; the parts are spans of `src`.
    src: SipStr,
    all: Sub,
    main: Sub,
    subtype: Sub,
    params: Sub,
}

impl PartialEq for MediaType {
    /// Media types are equal when written the same (the parts follow from
    /// the text).
    fn eq(&self, other: &MediaType) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for MediaType {}

impl MediaType {
    /// The value as written (without the white space around it).
    fn as_str(&self) -> &str {
        self.all.get(&self.src)
    }
    /// The top-level type (`application`).
    #[inline]
    pub fn main_type(&self) -> &str {
        self.main.get(&self.src)
    }
    /// The subtype (`sdp`).
    #[inline]
    pub fn subtype(&self) -> &str {
        self.subtype.get(&self.src)
    }
    /// Parameters (`;boundary=...`).
    pub fn params(&self) -> Params<'_> {
        Params(self.params.get(&self.src))
    }
    /// `type/subtype` matches, case-insensitively.
    pub fn is(&self, main: &str, sub: &str) -> bool {
        self.main_type().eq_ignore_ascii_case(main) && self.subtype().eq_ignore_ascii_case(sub)
    }
    /// `type/subtype` as written (without parameters).
    pub fn essence(&self) -> &str {
        self.src
            .get(self.main.start()..self.subtype.end())
            .unwrap_or("")
    }

    /// Parses a media type.
    pub fn parse(value: &SipStr) -> Result<MediaType, Error> {
        MediaType::parse_in(value, Sub::new(0, value.len()))
    }

    /// Parses the media type at `value` in `src`, sharing `src`.
    pub(crate) fn parse_in(src: &SipStr, value: Sub) -> Result<MediaType, Error> {
        // Fast path: `token/token[;params]` without LWS or quotes, which the
        // general code below accepts with the same spans. Positions are
        // those of `src`, whose octets `b` ends with the value.
        let (v0, v1) = (value.start(), value.end());
        if let Some(b) = src.as_bytes().get(..v1) {
            let mut i = run_end(b, v0, &TOKEN);
            let t1 = i;
            if t1 > v0 && b.get(i) == Some(&b'/') {
                i += 1;
                let s0 = i;
                i = run_end(b, i, &TOKEN);
                let s1 = i;
                if s1 > s0 {
                    if let Some((end, _)) = fast_params(b, s1, Key::NONE) {
                        if end == v1 {
                            return Ok(MediaType {
                                src: src.clone(),
                                all: Sub::new(v0, v1),
                                main: Sub::new(v0, t1),
                                subtype: Sub::new(s0, s1),
                                params: if end > s1 {
                                    Sub::new(s1, end)
                                } else {
                                    Sub::default()
                                },
                            });
                        }
                    }
                }
            }
        }
        let err = |r: &'static str| Error::header("Content-Type", r);
        let v = trim_lws(value.get(src));
        let mut sc = Scanner::new(v);
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
            all: Sub::of(src, v),
            main: Sub::of(src, t),
            subtype: Sub::of(src, st),
            params: Sub::of(src, params),
            src: src.clone(),
        })
    }
}

#[cfg(not(test))]
impl std::fmt::Debug for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaType")
            .field("value", &self.as_str())
            .field("type", &self.main_type())
            .field("subtype", &self.subtype())
            .field("params", &self.params())
            .finish()
    }
}

/// Credentials or a challenge (Authorization, Proxy-Authorization,
/// WWW-Authenticate, Proxy-Authenticate; RFC 3261 §20.7, §20.27, §20.28,
/// §20.44): a scheme and its comma-separated `name=value` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    raw: SipStr,
    scheme: Sub,
    params: Vec<(Sub, Sub)>,
}

impl AuthParams {
    /// The scheme (`Digest`).
    pub fn scheme(&self) -> &str {
        self.scheme.get(&self.raw)
    }
    /// Parameters in order, values as written (quotes kept).
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.params
            .iter()
            .map(|(n, v)| (n.get(&self.raw), v.get(&self.raw)))
    }
    /// The value of a parameter (name case-insensitive), unquoted.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        self.params
            .iter()
            .find(|(n, _)| {
                n.end().wrapping_sub(n.start()) == name.len()
                    && n.get(&self.raw).eq_ignore_ascii_case(name)
            })
            .map(|(_, v)| unquote(v.get(&self.raw)))
    }

    /// Parses one credentials/challenge value (`header` names it in errors).
    pub fn parse(value: &SipStr, header: &'static str) -> Result<AuthParams, Error> {
        let err = |r: &'static str| Error::header(header, r);
        let v = value.slice_ref(trim_lws(value));
        let mut sc = Scanner::new(v.as_str());
        let scheme = Sub::of(&v, sc.token().ok_or_else(|| err("scheme missing"))?);
        // Digest credentials carry up to about ten parameters.
        let mut params = Vec::with_capacity(12);
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
            params.push((Sub::of(&v, name), Sub::of(&v, value)));
            if params.len() > 64 {
                return Err(err("too many parameters"));
            }
            sc.skip_lws();
            if !sc.eat(b',') && !sc.at_end() {
                return Err(err("expected ',' between parameters"));
            }
            sc.skip_lws();
        }
        Ok(AuthParams {
            raw: v,
            scheme,
            params,
        })
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
        assert_eq!(v.protocol_name(), "SIP");
        assert_eq!(v.protocol_version(), "2.0");
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
        for bad in [
            "SIP/2.0/UDP",
            "SIP/2.0 UDP h",
            "SIP/2.0/UDP h;;a",
            "SIP/2.0/UDPh",
            "SIP/2.0/UDP h:x",
        ] {
            assert!(Via::parse(&s(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            &s("\"J Rosenberg \\\\\\\"\"  <sip:jdrosen@example.com>;tag=98asjd8"),
            "From",
        )
        .unwrap();
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
        let c = s("<sip:a@b>;q=0.7;expires=60, sip:c@d");
        parse_contacts(&c, Sub::new(0, c.len()), &mut v).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].q(), Some(700));
        assert_eq!(v[0].expires(), Some(60));
        let mut v = Vec::new();
        let c = s(" * ");
        parse_contacts(&c, Sub::new(0, c.len()), &mut v).unwrap();
        assert!(matches!(v[0], Contact::Star));
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("0.1234"), None);
    }

    /// Header values around the fast paths' edges: each variant is either
    /// refused by the fast path or parsed to exactly what the general path
    /// gives (every span, compared through `Debug`).
    const EDGES: &[&str] = &[
        "<sip:bob@biloxi.example.com>",
        "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf",
        "Bob<sip:bob@biloxi.example.com>",
        "Bob  <sip:bob@biloxi.example.com>",
        "J Q  Public <sip:x@y>",
        "\"Bob\" <sip:bob@b>;tag=1",
        "<sip:alice@192.0.2.101:5060;transport=udp>",
        "<sip:alice@192.0.2.101:5060;transport=udp>;expires=60;q=0.5",
        "<sip:a@b>;tag=1;TAG=2",
        "<sip:a@b>;Tag",
        "<sip:a@b>;tag=",
        "<sip:a@b>;tag=\"q\"",
        "<sip:a@b> ;tag=1",
        "<sip:a@b>;tag=1 ",
        "<sip:a@b>,<sip:c@d>",
        "< sip:a@b>",
        "<sip:a@b >",
        "<sip:a@b",
        "<sips:a:pw@[2001:db8::1]:5061;lr?h=v>",
        "<sip:%61@b>",
        "<sip:a@b..c>",
        "<sip:a@1.2.3.256>",
        "<sip:a@01.2.3.4>",
        "<sip:a@b:65536>",
        "<sip:a@b:0>",
        "<sip:host:5060;maddr=x@y>",
        "<sip:host>",
        "<sip:a@b>>",
        "<sip:a@b;lr>;tag=x",
        "<sip:a@1.2.3.4>",
        "<sip:a@1.2.3.04>",
        "<sip:a>b@c>",
        "<sip:a@b\r\n >",
        "<sips:a@b>",
        "<SIP:a@b:5060;lr>",
        "<sip:a@b?x=y>",
        "<sip:@b>",
        "<sip:a@b:>",
        "<sip:a@b;x=>",
        "<sip:a@b;=x>",
        "<sip:a@b;x=y",
        "<tel:+1-201-555-0123>",
        "<urn:x>",
        "sip:bob@b;tag=1",
        "*",
        "Bob <sip:bob@b>;x=[::1]",
        "Bob <sip:bob@b>;x=a:b",
        "SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK77ef4c2312983.1;rport",
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1",
        "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2",
        "SIP/2.0/UDP a;branch=z9hG4bK1 , SIP/2.0/TCP b",
        "SIP/2.0/UDP a;branch",
        "SIP/2.0/UDP a;branch=x:y",
        "SIP/2.0/UDP a;branch=1;BRANCH=2",
        "SIP/2.0/UDP a;Branch=1",
        "SIP/2.0/UDP  a",
        "SIP/2.0/UDP a ;branch=1",
        "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa",
        "SIP/2.0/UDP 192.0.2.1:5060",
        "SIP/2.0/UDP 192.0.2.1:99999",
        "SIP/2.0/UDP h:",
        "SIP/2.0/UDP h;rport;x=\"a,b\"",
        "sip/2.0/udp h",
        "SIP/2.0/UDP h.-x",
        "SIP/2.0/UDP h_x.example",
        "SIP/2.0/ h",
        "SIP/2.0/UDP h;branch=z9hG4bK1;rport=5070;received=192.0.2.1;maddr=239.1.1.1",
        "SIP/2.0/UDP h;RPORT;Received=10.0.0.1;rport=7;received=x;MADDR=m;maddr=n",
        "SIP/2.0/UDP h;received;rport=;maddr",
        "SIP/2.0/UDP h;received=[2001:db8::1];rport=99999",
        "SIP/2.0/UDP h;rport=+5;received=1.2.3.4",
        "SIP/2.0/UDP h;receive=1;rports=2;madd=3;receivedx=4",
        "SIP/2.0/UDP h;received=\"q\";rport=1",
        "SIP/2.0/UDP h ; rport = 5 ; received = 1.2.3.4",
    ];

    #[test]
    fn name_addr_fast_path_agrees_with_the_general_path() {
        let mut fast_count = 0;
        for v in EDGES {
            // The value alone, and inside a longer text (as in a header
            // section): the fast path reads nothing outside the value.
            for (before, after) in EMBEDDINGS {
                let text = format!("{before}{v}{after}");
                let src = s(&text);
                let all = Sub::new(before.len(), before.len() + v.len());
                if let Some(fast) = NameAddr::parse_fast(&src, all) {
                    fast_count += 1;
                    let general = NameAddr::parse_in(&src, all, "To").expect(v);
                    assert_eq!(format!("{fast:?}"), format!("{general:?}"), "{text:?}");
                    // As a Contact list: one element, the same.
                    let mut list = Vec::new();
                    parse_list(&src, all, "Contact", &mut list, |src, i| {
                        NameAddr::parse_in(src, i, "Contact")
                    })
                    .expect(v);
                    assert_eq!(list.len(), 1, "{v}");
                    assert_eq!(format!("{:?}", list[0]), format!("{general:?}"), "{v}");
                }
            }
        }
        assert!(fast_count >= 40, "{fast_count}");
    }

    /// Texts around a value in the fast path tests: none, a header line's,
    /// and octets that would extend the value's last part if read.
    const EMBEDDINGS: [(&str, &str); 4] = [
        ("", ""),
        ("To: ", "\r\n"),
        ("x", "a;b>c"),
        ("\u{e9}", "\u{e9}"),
    ];

    #[test]
    fn via_fast_path_agrees_with_the_general_path() {
        let mut fast_count = 0;
        for v in EDGES {
            for (before, after) in EMBEDDINGS {
                let text = format!("{before}{v}{after}");
                let src = s(&text);
                let all = Sub::new(before.len(), before.len() + v.len());
                if let Some(fast) = Via::parse_first_fast(&src, all) {
                    fast_count += 1;
                    let first = comma_items(all.get(&src)).next().expect(v);
                    let general = Via::parse_in(&src, Sub::of(&src, first)).expect(v);
                    assert_eq!(format!("{fast:?}"), format!("{general:?}"), "{text:?}");
                }
            }
        }
        assert!(fast_count >= 16, "{fast_count}");
    }

    #[test]
    fn via_received_rport_and_maddr_are_what_a_parameter_scan_finds() {
        let mut checked = 0;
        for v in EDGES {
            let src = s(v);
            let all = Sub::new(0, v.len());
            let fast = Via::parse_first_fast(&src, all);
            let general = comma_items(v)
                .next()
                .and_then(|first| Via::parse_in(&src, Sub::of(&src, first)).ok());
            for via in fast.iter().chain(general.iter()) {
                checked += 1;
                let p = via.params();
                assert_eq!(via.received(), p.value("received"), "{v}");
                assert_eq!(via.maddr(), p.value("maddr"), "{v}");
                let rport = p
                    .get("rport")
                    .map(|r| r.and_then(|r| parse_u32(r, 65535).map(|r| r as u16)));
                assert_eq!(via.rport(), rport, "{v}");
            }
        }
        assert!(checked >= 10, "{checked}");
    }

    #[test]
    fn media_type_fast_path_agrees_with_the_general_path() {
        let values = [
            "application/sdp",
            "Application/SDP;charset=utf-8",
            "multipart/mixed;boundary=unique-boundary-1",
            "multipart/mixed;boundary=\"x;y\"",
            "text/plain ;a=b",
            "text /plain",
            "text/ plain",
            "text/plain;",
            "text/plain;a=",
            "text/plain;a=[::1]",
            "text/plain;a=b:c",
            "text/plain;a;b=c;d",
            "text/",
            "/plain",
            "text",
            "text/plain/x",
            "t\u{e9}xt/plain",
            "",
        ];
        let mut fast_count = 0;
        for v in values {
            for (before, after) in EMBEDDINGS {
                let text = format!("{before}{v}{after}");
                let src = s(&text);
                let all = Sub::new(before.len(), before.len() + v.len());
                let parsed = MediaType::parse_in(&src, all);
                // The general path alone: the value with a space in front,
                // which the fast path refuses.
                let spaced = format!("{before} {v}{after}");
                let general = MediaType::parse_in(
                    &s(&spaced),
                    Sub::new(before.len(), before.len() + v.len() + 1),
                );
                match (&parsed, &general) {
                    (Ok(p), Ok(g)) => {
                        fast_count += 1;
                        assert_eq!(p, g, "{text:?}");
                        assert_eq!(
                            (p.main_type(), p.subtype(), p.params().as_str(), p.essence()),
                            (g.main_type(), g.subtype(), g.params().as_str(), g.essence()),
                            "{text:?}"
                        );
                    }
                    (Err(p), Err(g)) => assert_eq!(p, g, "{text:?}"),
                    _ => panic!("{text:?}: {parsed:?} / {general:?}"),
                }
            }
        }
        assert!(fast_count >= 30, "{fast_count}");
    }

    #[test]
    fn parameter_keys_match_in_any_case_only() {
        for (key, name) in [
            (Key::TAG, "tag"),
            (Key::BRANCH, "branch"),
            (Key::RECEIVED, "received"),
            (Key::RPORT, "rport"),
            (Key::MADDR, "maddr"),
        ] {
            // Every octet at every position, with and without octets after
            // the name in the buffer (the word load and the octet loop).
            for at in 0..name.len() {
                for x in 0..=255u8 {
                    let mut n = name.as_bytes().to_vec();
                    n[at] = x;
                    let want = n.eq_ignore_ascii_case(name.as_bytes());
                    for tail in [&b""[..], b"=1", b";lr=12345678"] {
                        let b = [&b";"[..], &n, tail].concat();
                        assert_eq!(is_key(&b, 1, 1 + n.len(), key), want, "{b:?}");
                    }
                }
            }
            for other in ["ta", "tags", "bran", "branches", "", "TAG", "BrAnCh"] {
                let b = format!(";{other}=x");
                let want = other.eq_ignore_ascii_case(name);
                assert_eq!(is_key(b.as_bytes(), 1, 1 + other.len(), key), want, "{b}");
            }
        }
        assert!(!is_key(b";x", 1, 2, Key::NONE));
    }

    #[test]
    fn leading_digits_of_a_word() {
        let mut seed = 9u64;
        let alphabet = b"0123456789 /:a\x00\xff";
        for round in 0..200_000 {
            crate::scan::test_lcg::step(&mut seed);
            let mut w = [0u8; 8];
            for (k, c) in w.iter_mut().enumerate() {
                let r = (seed >> (5 * k)) as usize;
                *c = if round % 2 == 0 {
                    alphabet[r % alphabet.len()]
                } else {
                    b'0' + (r % 10) as u8
                };
            }
            let n = w.iter().take_while(|c| c.is_ascii_digit()).count();
            let want = (n > 0).then(|| {
                (
                    n,
                    w[..n]
                        .iter()
                        .fold(0u64, |v, c| v * 10 + u64::from(c - b'0')),
                )
            });
            assert_eq!(leading_digits(u64::from_le_bytes(w)), want, "{w:?}");
        }
    }

    #[test]
    fn cseq_fast_path_agrees_with_the_general_path() {
        let numbers = [
            "0",
            "1",
            "314159",
            "4294967295",
            "4294967296",
            "1234567",
            "12345678",
            "123456789",
            "0000007",
            "00000000004294967295",
            "99999999999999999999",
            "",
            "1a",
            "-1",
        ];
        let rests = [
            " INVITE",
            " invite",
            " FOO-BAR.x",
            "  INVITE",
            " ",
            "",
            " INV ITE",
            " INVITE ",
            "\tINVITE",
            " INVITE\r\n",
            " IN\u{e9}",
            " @",
            " REGISTER",
        ];
        for n in numbers {
            for r in rests {
                let v = format!("{n}{r}");
                for (before, after) in EMBEDDINGS {
                    let text = format!("{before}{v}{after}");
                    let src = s(&text);
                    let all = Sub::new(before.len(), before.len() + v.len());
                    let fast = CSeq::parse_at(&src, all).map_err(|e| e.to_string());
                    let general =
                        CSeq::parse_general(all.get(&src), &src).map_err(|e| e.to_string());
                    assert_eq!(fast, general, "{text:?}");
                }
            }
        }
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
