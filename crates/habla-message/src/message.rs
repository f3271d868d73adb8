//! [`Message`]: a parsed SIP request or response that keeps the buffer it was
//! received in, hands out slices of it, parses header values on first access
//! and caches the result, and serialises untouched parts byte for byte.

use crate::error::{Error, LimitKind, ParseError};
use crate::headers::{parse_contacts, parse_list, CSeq, Contact, MediaType, NameAddr, Via};
use crate::lines::Lines;
use crate::scan::{is_token, parse_u32, parse_u32_bytes};
use crate::text::Sub;
use crate::{HeaderName, Method, SipStr, Uri};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::cell::OnceCell as OnceLock;
use std::fmt;

/// Size limits applied while parsing (every one is configurable; the
/// defaults suit a server facing the Internet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message, in octets.
    pub max_message_size: usize,
    /// Largest header section (start line and headers), in octets.
    pub max_header_size: usize,
    /// Most header lines (folded continuation lines not counted).
    pub max_headers: usize,
    /// Largest body, in octets.
    pub max_body_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 65_535,
            max_header_size: 32 * 1024,
            max_headers: 256,
            max_body_size: 64 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Positions are bounded by Limits (far below u32::MAX).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone)]
enum StartLine {
    Request { method: Method, uri: Span },
    Response { code: u16, reason: Span },
}

/// One header line. Spans point into the message's header section, or into
/// `Message::owned[owned - 1]` for a header added or changed by an edit.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: HeaderName,
    /// 0 for a received line; otherwise 1 + the index of its text in
    /// `Message::owned`.
    owned: u32,
    /// The name is `line.start..name_end`.
    name_end: u32,
    value: Span,
    /// The whole line including its terminator and folds (original fields).
    line: Span,
}

impl Field {
    fn name_range(&self) -> std::ops::Range<usize> {
        self.line.start as usize..self.name_end as usize
    }
}

#[derive(Debug, Default)]
struct Cache {
    request_uri: OnceLock<Result<Uri, Error>>,
    top_via: OnceLock<Result<Via, Error>>,
    from: OnceLock<Result<NameAddr, Error>>,
    to: OnceLock<Result<NameAddr, Error>>,
    call_id: OnceLock<Result<SipStr, Error>>,
    cseq: OnceLock<Result<CSeq, Error>>,
    max_forwards: OnceLock<Result<Option<u32>, Error>>,
    contacts: OnceLock<Result<OneOrMany<Contact>, Error>>,
    /// The lists of every Via, Route and Record-Route value, in one cell:
    /// many messages are never asked for them, and one empty cell is all
    /// their drop then looks at.
    lists: OnceLock<Lists>,
    content_type: OnceLock<Result<Option<MediaType>, Error>>,
}

/// The cached lists of a message (see `Cache::lists`).
#[derive(Debug, Default)]
struct Lists {
    vias: OnceLock<Result<Vec<Via>, Error>>,
    routes: OnceLock<Result<Vec<NameAddr>, Error>>,
    record_routes: OnceLock<Result<Vec<NameAddr>, Error>>,
}

/// A list that holds its usual single element without allocating.
#[derive(Debug)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(x) => std::slice::from_ref(x),
            OneOrMany::Many(v) => v,
        }
    }
}

#[inline]
fn cached<T>(
    cell: &OnceLock<Result<T, Error>>,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<&T, Error> {
    match cell.get_or_init(f) {
        Ok(v) => Ok(v),
        Err(e) => Err(e.clone()),
    }
}

/// A SIP request or response (RFC 3261 §7).
///
/// Parsing ([`Message::parse`]) frames the message and splits its header
/// lines without copying; typed header values are parsed on first access
/// and cached. Edits (pushing a Via, removing a Route...) are recorded per
/// header line, and [`Message::to_bytes`] writes untouched lines exactly as
/// received.
pub struct Message {
    raw: Bytes,
    head: SipStr,
    start: StartLine,
    start_line: Span,
    // The errors found while framing, kept for `validate` (rare: boxed, so
    // that the message stays small for every move).
    start_error: Option<Box<Error>>,
    version: Span,
    fields: Vec<Field>,
    body: Bytes,
    body_error: Option<Box<Error>>,
    edited: bool,
    /// What edits wrote (none until the first edit).
    edits: Option<Box<Edits>>,
    /// The typed values parsed so far. Boxed: the cells take 1.1 KB, and
    /// a message is moved several times on its way through a server (from
    /// the parser to the transport, the transaction, the events); one
    /// allocation costs less than copying them at every move.
    cache: Box<Cache>,
    /// First position and count of each frequently used header, so that a
    /// lookup skips the scan of every line.
    index: [Slot; CORE_HEADERS],
}

/// The text that edits wrote.
#[derive(Debug, Clone, Default)]
struct Edits {
    /// The text of header lines added or changed.
    owned: Vec<SipStr>,
    /// A new start line.
    start_line: Option<SipStr>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    first: u32,
    count: u32,
}

const CORE_HEADERS: usize = 11;

/// The slot of a frequently used header: the first `CORE_HEADERS` variants
/// of [`HeaderName`] (Via, From, To, Call-ID, CSeq, Contact, Max-Forwards,
/// Route, Record-Route, Content-Length, Content-Type).
#[inline]
fn core_slot(name: HeaderName) -> Option<usize> {
    let i = name as usize;
    (i < CORE_HEADERS).then_some(i)
}

impl Clone for Message {
    /// Clones the message and its edits but not the cache of parsed
    /// headers, which the copy rebuilds on access: a clone costs a few
    /// reference counts and the line table, not a deep copy of every parsed
    /// value.
    fn clone(&self) -> Message {
        Message {
            raw: self.raw.clone(),
            head: self.head.clone(),
            start: self.start.clone(),
            start_line: self.start_line,
            start_error: self.start_error.clone(),
            version: self.version,
            fields: self.fields.clone(),
            body: self.body.clone(),
            body_error: self.body_error.clone(),
            edited: self.edited,
            edits: self.edits.clone(),
            cache: Box::default(),
            index: self.index,
        }
    }
}

/// A header line as seen by [`Message::headers`].
#[derive(Debug, Clone, Copy)]
pub struct HeaderRef<'a> {
    /// The recognised name (`Other` for unknown ones).
    pub name: HeaderName,
    /// The name as written.
    pub raw_name: &'a str,
    /// The value as written (folds included, ends trimmed).
    pub value: &'a str,
}

const SP: u8 = b' ';

impl Message {
    /// Parses one message from a datagram or a framed stream message, and
    /// validates the headers every element relies on (RFC 3261 §8.1.1: Via,
    /// From, To, Call-ID, CSeq, Max-Forwards, and the request line).
    #[inline]
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        Message::parse_with(buf, &Limits::default())
    }

    /// [`Message::parse`] with explicit limits.
    #[inline]
    pub fn parse_with(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        Message::parse_inner(buf, limits, true)
    }

    /// Frames the message and splits its lines, parsing no header value:
    /// every typed accessor then parses on first use and reports its own
    /// errors. Use [`Message::validate`] to check the mandatory headers.
    #[inline]
    pub fn parse_lazy(buf: Bytes, limits: &Limits) -> Result<Message, ParseError> {
        Message::parse_inner(buf, limits, false)
    }

    /// [`Message::parse_lazy`], then [`Message::validate`] if `validate`:
    /// one function, so that the message is moved into the caller's result
    /// once (not into this function's result, then into the caller's).
    fn parse_inner(buf: Bytes, limits: &Limits, validate: bool) -> Result<Message, ParseError> {
        let hard = |e| Err(ParseError::new(e, None));
        if buf.len() > limits.max_message_size {
            return hard(Error::Limit {
                what: LimitKind::MessageSize,
                limit: limits.max_message_size,
            });
        }
        let data = &buf[..];
        // RFC 3261 §7.5: CRLFs before the start line are ignored.
        let mut pos = 0;
        while let Some(b'\r' | b'\n') = data.get(pos) {
            pos += 1;
        }
        if pos >= data.len() {
            return hard(Error::Empty);
        }
        let msg_start = pos;
        // The header section may not extend past this position.
        let head_limit = msg_start.saturating_add(limits.max_header_size);

        // The line feeds from the start line on, and whether the octets
        // passed are ASCII.
        let mut lines = Lines::new(data, msg_start);
        // The start line.
        let (_, next) = line_end(&mut lines, data, pos);
        if next > head_limit {
            return hard(Error::Limit {
                what: LimitKind::HeaderSize,
                limit: limits.max_header_size,
            });
        }
        let start_line = Span::new(pos, next);
        pos = next;

        // Split the header lines: one pass that finds each line end, the
        // name (validated as a token), the colon and the trimmed value. The
        // loop ends at the empty line (the body starts after it) or at the
        // end of the data; `pos` is then the end of the header lines.
        let mut fields: Vec<Field> = Vec::with_capacity(20);
        let mut index = [Slot::default(); CORE_HEADERS];
        let body_start = loop {
            if pos >= data.len() {
                break data.len();
            }
            let (content_end, next) = line_end(&mut lines, data, pos);
            if next > head_limit {
                return hard(Error::Limit {
                    what: LimitKind::HeaderSize,
                    limit: limits.max_header_size,
                });
            }
            // field-name = token, then optional white space and ':'.
            let (name_end, name, colon) = match HeaderName::known_before_colon(data, pos) {
                // The usual `Name:` (the colon is on this line: a known
                // name is made of letters and '-', so this is neither the
                // empty line nor a folded one).
                Some((colon, name)) if colon < content_end => (colon, name, colon),
                _ => {
                    if content_end == pos {
                        break next;
                    }
                    let first = data.get(pos).copied().unwrap_or(0);
                    if first == SP || first == b'\t' {
                        // RFC 3261 §7.3.1 line folding: a continuation of
                        // the value.
                        let Some(f) = fields.last_mut() else {
                            return hard(Error::HeaderLine {
                                line: line_number(data, msg_start, pos),
                                reason: "continuation line before any header",
                            });
                        };
                        let end = trim_end_ws(data, pos, content_end);
                        if end > pos {
                            f.value.end = end as u32;
                            if f.value.start > f.value.end {
                                f.value.start = f.value.end;
                            }
                        }
                        f.line.end = next as u32;
                        pos = next;
                        continue;
                    }
                    let (name_end, name) = HeaderName::scan_at(data, pos, content_end);
                    let mut i = name_end;
                    while i < content_end && matches!(data.get(i), Some(&(SP | b'\t'))) {
                        i += 1;
                    }
                    if i >= content_end || data.get(i) != Some(&b':') || name_end == pos {
                        let line = data.get(pos..content_end).unwrap_or(&[]);
                        return hard(Error::HeaderLine {
                            line: line_number(data, msg_start, pos),
                            reason: if crate::scan::find_byte(line, b':').is_some() {
                                "header name is not a token"
                            } else {
                                "no ':' after the header name"
                            },
                        });
                    }
                    (name_end, name, i)
                }
            };
            if fields.len() >= limits.max_headers {
                return hard(Error::Limit {
                    what: LimitKind::HeaderCount,
                    limit: limits.max_headers,
                });
            }
            // The value, without the white space (SP, HTAB) around it.
            // Usually `: value` (one space, then an octet above the space)
            // ending in an octet above the space: one comparison each. The
            // loops are for the other forms, control octets included. The
            // octet at `content_end` is CR or LF (or past the end), so the
            // value starts at most there (and after a space after the
            // colon, the line goes on past it).
            let ws = |c: u8| c == SP || c == b'\t';
            let (vstart, vend) = match (
                data.get(colon + 1..).and_then(|r| r.first_chunk::<2>()),
                data.get(content_end.wrapping_sub(1)),
            ) {
                (Some(&[SP, c]), Some(&last)) if c > SP && last > SP => (colon + 2, content_end),
                _ => {
                    let mut vstart = colon + 1;
                    while vstart < content_end && data.get(vstart).is_some_and(|&c| ws(c)) {
                        vstart += 1;
                    }
                    (vstart, trim_end_ws(data, vstart, content_end))
                }
            };
            if let Some(slot) = index.get_mut(name as usize) {
                if slot.count == 0 {
                    slot.first = fields.len() as u32;
                }
                slot.count = slot.count.saturating_add(1);
            }
            fields.push(Field {
                name,
                owned: 0,
                name_end: name_end as u32,
                value: Span::new(vstart, vend),
                line: Span::new(pos, next),
            });
            pos = next;
        };
        let head_end_lines = pos;
        // Validate UTF-8 once; every later slice is then a `str`.
        let head_bytes = data.get(..head_end_lines).unwrap_or(&[]);
        // (The octets before `msg_start` are CR and LF.)
        let ascii = lines
            .ascii_until(head_end_lines)
            .unwrap_or_else(|| head_bytes.is_ascii());
        let head = if ascii {
            SipStr::from_ascii(buf.slice(..head_end_lines))
        } else {
            match SipStr::from_utf8(buf.slice(..head_end_lines)) {
                Ok(h) => h,
                Err(_) => return hard(Error::NotUtf8),
            }
        };
        let (start, version, start_error) = match parse_start_line(&head, start_line) {
            Ok(x) => x,
            Err(e) => return hard(e),
        };
        // RFC 3261 §18.3: Content-Length frames the body; without it a
        // datagram's body is the rest of the datagram.
        let body_start = body_start.min(buf.len());
        let available = buf.len() - body_start;
        let (body_len, body_error) = match parse_content_length(&head, &fields, &index) {
            Ok(Some(n)) if n as usize > available => (
                0,
                Some(Error::BodyTruncated {
                    declared: n as usize,
                    available,
                }),
            ),
            Ok(Some(n)) => (n as usize, None),
            Ok(None) => (available, None),
            Err(e) => (0, Some(e)),
        };
        // A body over the limit: the message goes with the error, without
        // its body.
        let too_big = body_len > limits.max_body_size;
        let (body, raw) = if too_big {
            (Bytes::new(), Bytes::new())
        } else {
            let body = if body_len > 0 {
                buf.slice(body_start..body_start + body_len)
            } else {
                Bytes::new()
            };
            // The message itself: the buffer without the leading CRLFs and
            // whatever follows the body (no reference count taken when the
            // datagram holds exactly one message).
            let mut raw = buf;
            if body_error.is_none() {
                raw.truncate(body_start + body_len);
            }
            raw.advance(msg_start);
            (body, raw)
        };
        let m = Message {
            raw,
            head,
            start,
            start_line,
            start_error: start_error.map(Box::new),
            version,
            fields,
            body,
            body_error: body_error.map(Box::new),
            edited: false,
            edits: None,
            cache: Box::default(),
            index,
        };
        if too_big {
            return Err(ParseError::new(
                Error::Limit {
                    what: LimitKind::BodySize,
                    limit: limits.max_body_size,
                },
                Some(m),
            ));
        }
        if validate {
            if let Err(e) = m.validate() {
                return Err(ParseError::new(e, Some(m)));
            }
        }
        Ok(m)
    }

    /// Checks what every SIP element needs before acting on a message: a
    /// supported version, a well-formed request line, the headers of RFC 3261
    /// §8.1.1 (Max-Forwards optional for RFC 2543 peers), a CSeq method
    /// equal to the request method, a body framed by Content-Length.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(e) = &self.start_error {
            return Err((**e).clone());
        }
        // The version as written, usually in upper case (one comparison).
        let version = self
            .start_text()
            .as_bytes()
            .get(self.version.range())
            .unwrap_or(&[]);
        if version != b"SIP/2.0" && !version.eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(Error::Version(self.version().to_owned()));
        }
        self.top_via()?;
        self.from()?;
        self.to()?;
        self.call_id()?;
        let cseq = self.cseq()?;
        self.max_forwards()?;
        if let Some(e) = &self.body_error {
            return Err((**e).clone());
        }
        if let StartLine::Request { method, .. } = &self.start {
            if cseq.method != *method {
                return Err(Error::CSeqMismatch {
                    cseq: cseq.method.to_string(),
                    method: method.to_string(),
                });
            }
            if let Uri::Sip(u) = self.request_uri()? {
                // RFC 3261 §19.1.1 table: headers are not allowed in a Request-URI.
                if u.has_headers() {
                    return Err(Error::RequestUriHeaders);
                }
            }
        }
        Ok(())
    }

    // ----- start line -------------------------------------------------------

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method; for a response, `None` (see [`Message::cseq`]).
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response, as written.
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => self.start_text().get(reason.range()),
            StartLine::Request { .. } => None,
        }
    }

    /// The SIP version as written (`SIP/2.0`).
    pub fn version(&self) -> &str {
        self.start_text().get(self.version.range()).unwrap_or("")
    }

    /// The Request-URI as written.
    pub fn request_uri_str(&self) -> Option<&str> {
        match self.start {
            StartLine::Request { uri, .. } => self.start_text().get(uri.range()),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI (an error for a response).
    #[inline]
    pub fn request_uri(&self) -> Result<&Uri, Error> {
        cached(&self.cache.request_uri, || match self.start {
            StartLine::Request { uri, .. } => Uri::parse_in(
                self.start_text(),
                Sub::new(uri.start as usize, uri.end as usize),
            ),
            StartLine::Response { .. } => {
                Err(Error::StartLine("a response has no Request-URI".into()))
            }
        })
    }

    // ----- typed headers ----------------------------------------------------

    /// All Via values, top first, across every Via line.
    pub fn vias(&self) -> Result<&[Via], Error> {
        cached(&self.lists().vias, || {
            self.list(HeaderName::Via, |src, v, out| {
                parse_list(src, v, "Via", out, Via::parse_in)
            })
        })
        .map(Vec::as_slice)
    }

    /// The topmost Via value. Parses only that value: the others wait for
    /// [`Message::vias`].
    #[inline]
    pub fn top_via(&self) -> Result<&Via, Error> {
        cached(&self.cache.top_via, || {
            let field = self
                .first_field(HeaderName::Via)
                .ok_or(Error::Missing("Via"))?;
            let src = self.src(field);
            if let Some(v) = Via::parse_first_fast(src, Message::value_sub(field)) {
                return Ok(v);
            }
            let value = self.value_str(field);
            let first = crate::scan::comma_items(value).next().unwrap_or("");
            if first.is_empty() {
                return Err(Error::header(
                    "Via",
                    "empty element in comma-separated list",
                ));
            }
            Via::parse_in(src, Sub::of(src, first))
        })
    }

    /// From (RFC 3261 §20.20).
    #[inline]
    pub fn from(&self) -> Result<&NameAddr, Error> {
        cached(&self.cache.from, || self.name_addr(HeaderName::From))
    }

    /// To (RFC 3261 §20.39).
    #[inline]
    pub fn to(&self) -> Result<&NameAddr, Error> {
        cached(&self.cache.to, || self.name_addr(HeaderName::To))
    }

    /// Call-ID (RFC 3261 §20.8).
    #[inline]
    pub fn call_id(&self) -> Result<&SipStr, Error> {
        cached(&self.cache.call_id, || {
            let f = self
                .single(HeaderName::CallId)?
                .ok_or(Error::Missing("Call-ID"))?;
            // callid = word [ "@" word ] (RFC 3261 §25.1)
            if crate::scan::is_call_id(self.value_bytes(f)) {
                Ok(self.value_of(f))
            } else {
                Err(Error::header("Call-ID", "not word[@word]"))
            }
        })
    }

    /// CSeq (RFC 3261 §20.16).
    #[inline]
    pub fn cseq(&self) -> Result<&CSeq, Error> {
        cached(&self.cache.cseq, || {
            let f = self
                .single(HeaderName::CSeq)?
                .ok_or(Error::Missing("CSeq"))?;
            CSeq::parse_at(self.src(f), Message::value_sub(f))
        })
    }

    /// Max-Forwards (RFC 3261 §20.22), `None` when absent.
    #[inline]
    pub fn max_forwards(&self) -> Result<Option<u32>, Error> {
        cached(&self.cache.max_forwards, || {
            self.single(HeaderName::MaxForwards)?
                .map(|f| {
                    parse_u32_bytes(self.value_bytes(f), 255)
                        .ok_or_else(|| Error::header("Max-Forwards", "not a number from 0 to 255"))
                })
                .transpose()
        })
        .copied()
    }

    /// Contact values (RFC 3261 §20.10), empty when absent.
    #[inline]
    pub fn contacts(&self) -> Result<&[Contact], Error> {
        cached(&self.cache.contacts, || {
            // One line with one address (the usual case): no list.
            if let Some(f) = self.only_field(HeaderName::Contact) {
                let src = self.src(f);
                if let Some(spans) = NameAddr::scan_fast(src, Message::value_sub(f)) {
                    if let Some(sip) = spans.sip() {
                        let a = spans.with_uri(Uri::Sip(sip.build(src)));
                        return Ok(OneOrMany::One(Contact::Addr(a)));
                    }
                    if let Some(a) = spans.build(src) {
                        return Ok(OneOrMany::One(Contact::Addr(a)));
                    }
                }
            }
            self.list(HeaderName::Contact, parse_contacts)
                .map(OneOrMany::Many)
        })
        .map(OneOrMany::as_slice)
    }

    /// Route values, top first (RFC 3261 §20.34).
    pub fn routes(&self) -> Result<&[NameAddr], Error> {
        cached(&self.lists().routes, || {
            self.addr_list(HeaderName::Route, "Route")
        })
        .map(Vec::as_slice)
    }

    /// Record-Route values, top first (RFC 3261 §20.30).
    pub fn record_routes(&self) -> Result<&[NameAddr], Error> {
        cached(&self.lists().record_routes, || {
            self.addr_list(HeaderName::RecordRoute, "Record-Route")
        })
        .map(Vec::as_slice)
    }

    /// Content-Length (RFC 3261 §20.14), `None` when absent.
    pub fn content_length(&self) -> Result<Option<u32>, Error> {
        self.single(HeaderName::ContentLength)?
            .map(|f| {
                parse_u32_bytes(self.value_bytes(f), u32::MAX)
                    .ok_or_else(|| Error::header("Content-Length", "not a non-negative number"))
            })
            .transpose()
    }

    /// Content-Type (RFC 3261 §20.15), `None` when absent.
    #[inline]
    pub fn content_type(&self) -> Result<Option<&MediaType>, Error> {
        cached(&self.cache.content_type, || {
            self.single(HeaderName::ContentType)?
                .map(|f| MediaType::parse_in(self.src(f), Message::value_sub(f)))
                .transpose()
        })
        .map(Option::as_ref)
    }

    /// Credentials or challenges of one of the four auth headers
    /// (Authorization, Proxy-Authorization, WWW-Authenticate,
    /// Proxy-Authenticate), one per line, parsed on each call.
    pub fn auth_headers(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<crate::AuthParams, Error>> + '_ {
        let label = match name {
            HeaderName::Authorization => "Authorization",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            _ => "",
        };
        self.fields_named(name)
            .filter(move |_| !label.is_empty())
            .map(move |f| crate::AuthParams::parse(&self.value_of(f), label))
    }

    /// The body (exactly Content-Length octets).
    #[inline]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    fn lists(&self) -> &Lists {
        self.cache.lists.get_or_init(Lists::default)
    }

    fn start_text(&self) -> &SipStr {
        self.edits
            .as_ref()
            .and_then(|e| e.start_line.as_ref())
            .unwrap_or(&self.head)
    }

    // ----- raw headers ------------------------------------------------------

    /// Every header line in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.fields.iter().map(|f| HeaderRef {
            name: f.name,
            raw_name: self.text(f).get(f.name_range()).unwrap_or(""),
            value: self.value_str(f),
        })
    }

    /// Values of every line of a header, by name (case-insensitive; compact
    /// forms match their long names).
    pub fn header_values<'a, 'n>(
        &'a self,
        name: &'n str,
    ) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        let hn = HeaderName::parse(name);
        self.fields
            .iter()
            .filter(move |f| {
                f.name == hn
                    && (hn != HeaderName::Other
                        || self
                            .text(f)
                            .get(f.name_range())
                            .is_some_and(|n| n.eq_ignore_ascii_case(name)))
            })
            .map(|f| self.value_str(f))
    }

    /// The first value of a header, by name.
    pub fn header<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.header_values(name).next()
    }

    /// Values of a known header as shared strings.
    pub fn typed_values(&self, name: HeaderName) -> impl Iterator<Item = SipStr> + '_ {
        self.fields_named(name).map(|f| self.value_of(f))
    }

    /// Values of every line of a known header, borrowed (no shared-string
    /// reference count touched): for copying them.
    pub(crate) fn values_str(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.fields_named(name).map(|f| self.value_str(f))
    }

    fn fields_named(&self, name: HeaderName) -> impl Iterator<Item = &Field> + '_ {
        let (first, count) = match core_slot(name) {
            Some(i) => (self.index[i].first as usize, self.index[i].count as usize),
            None => (0, usize::MAX),
        };
        self.fields
            .get(first..)
            .unwrap_or(&[])
            .iter()
            .filter(move |f| f.name == name)
            .take(count)
    }

    fn reindex(&mut self) {
        self.index = [Slot::default(); CORE_HEADERS];
        for (i, f) in self.fields.iter().enumerate() {
            if let Some(k) = core_slot(f.name) {
                let slot = &mut self.index[k];
                if slot.count == 0 {
                    slot.first = i as u32;
                }
                slot.count = slot.count.saturating_add(1);
            }
        }
    }

    /// The shared text a field's spans point into.
    #[inline]
    fn src(&self, f: &Field) -> &SipStr {
        static EMPTY: SipStr = SipStr::new();
        if f.owned == 0 {
            &self.head
        } else {
            self.edits
                .as_ref()
                .and_then(|e| e.owned.get(f.owned as usize - 1))
                .unwrap_or(&EMPTY)
        }
    }

    #[inline]
    fn text<'a>(&'a self, f: &Field) -> &'a str {
        self.src(f).as_str()
    }

    #[inline]
    fn value_str<'a>(&'a self, f: &Field) -> &'a str {
        self.text(f).get(f.value.range()).unwrap_or("")
    }

    /// The octets of a field's value.
    #[inline]
    fn value_bytes<'a>(&'a self, f: &Field) -> &'a [u8] {
        self.src(f).as_bytes().get(f.value.range()).unwrap_or(&[])
    }

    /// The value of a field as a span of [`Message::src`].
    #[inline]
    fn value_sub(f: &Field) -> Sub {
        Sub::new(f.value.start as usize, f.value.end as usize)
    }

    fn value_of(&self, f: &Field) -> SipStr {
        self.src(f).slice(f.value.range())
    }

    /// The first line of a known header (found from the index).
    #[inline]
    fn first_field(&self, name: HeaderName) -> Option<&Field> {
        match core_slot(name).and_then(|i| self.index.get(i)) {
            Some(slot) if slot.count == 0 => None,
            Some(slot) => self.fields.get(slot.first as usize),
            None => self.fields_named(name).next(),
        }
    }

    /// The line of a header when it has exactly one.
    #[inline]
    fn only_field(&self, name: HeaderName) -> Option<&Field> {
        match core_slot(name).and_then(|i| self.index.get(i)) {
            Some(slot) if slot.count == 1 => self.fields.get(slot.first as usize),
            Some(_) => None,
            None => {
                let mut lines = self.fields_named(name);
                match (lines.next(), lines.next()) {
                    (Some(f), None) => Some(f),
                    _ => None,
                }
            }
        }
    }

    /// The line of a header that may appear once; several lines with
    /// different values are an error.
    #[inline]
    fn single(&self, name: HeaderName) -> Result<Option<&Field>, Error> {
        if let Some(slot) = core_slot(name).and_then(|i| self.index.get(i)) {
            // A core header on one line (the usual case): no search.
            match slot.count {
                0 => return Ok(None),
                1 => return Ok(self.fields.get(slot.first as usize)),
                _ => {}
            }
        }
        self.single_searched(name)
    }

    /// [`Message::single`] by a search of the lines.
    fn single_searched(&self, name: HeaderName) -> Result<Option<&Field>, Error> {
        let mut it = self.fields_named(name);
        let Some(first) = it.next() else {
            return Ok(None);
        };
        if let Some(second) = it.next() {
            let v = self.value_str(first);
            if self.value_str(second) != v || it.any(|o| self.value_str(o) != v) {
                return Err(Error::Duplicate(name.as_str()));
            }
        }
        Ok(Some(first))
    }

    fn name_addr(&self, name: HeaderName) -> Result<NameAddr, Error> {
        let f = self
            .single(name)?
            .ok_or_else(|| Error::Missing(name.as_str()))?;
        let (src, value) = (self.src(f), Message::value_sub(f));
        // The usual form is scanned first and built where it is returned.
        if let Some(spans) = NameAddr::scan_fast(src, value) {
            if let Some(sip) = spans.sip() {
                return Ok(spans.with_uri(Uri::Sip(sip.build(src))));
            }
            if let Some(a) = spans.build(src) {
                return Ok(a);
            }
        }
        NameAddr::parse_in(src, value, name.as_str())
    }

    fn list<T>(
        &self,
        name: HeaderName,
        f: impl Fn(&SipStr, Sub, &mut Vec<T>) -> Result<(), Error>,
    ) -> Result<Vec<T>, Error> {
        let mut out = Vec::new();
        for field in self.fields_named(name) {
            f(self.src(field), Message::value_sub(field), &mut out)?;
        }
        Ok(out)
    }

    fn addr_list(&self, name: HeaderName, label: &'static str) -> Result<Vec<NameAddr>, Error> {
        self.list(name, |src, v, out| {
            parse_list(src, v, label, out, |src, i| {
                NameAddr::parse_in(src, i, label)
            })
        })
    }

    // ----- edits ------------------------------------------------------------

    /// A new header line `raw_name: value` whose text goes to `owned`.
    fn owned_field(
        &mut self,
        name: HeaderName,
        raw_name: &str,
        value: &str,
    ) -> Result<Field, Error> {
        if raw_name.is_empty() || !raw_name.bytes().all(is_token) {
            return Err(Error::HeaderLine {
                line: 0,
                reason: "header name is not a token",
            });
        }
        if memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_some() {
            return Err(Error::header(
                if name == HeaderName::Other {
                    "extension"
                } else {
                    name.as_str()
                },
                "a value may not contain CR or LF",
            ));
        }
        let mut text = String::with_capacity(raw_name.len() + 2 + value.len());
        text.push_str(raw_name);
        text.push_str(": ");
        text.push_str(value);
        Ok(self.add_owned(name, raw_name.len(), text))
    }

    fn add_owned(&mut self, name: HeaderName, name_len: usize, text: String) -> Field {
        let vstart = (name_len + 2).min(text.len());
        let owned = &mut self.edits.get_or_insert_with(Default::default).owned;
        let f = Field {
            name,
            owned: owned.len() as u32 + 1,
            name_end: name_len as u32,
            value: Span::new(vstart, text.len()),
            line: Span::new(0, text.len()),
        };
        owned.push(SipStr::from(text));
        f
    }

    fn touched(&mut self) {
        *self.cache = Cache::default();
        self.touched_header(HeaderName::Other);
    }

    /// After an edit of the lines of `name` only: the typed values of the
    /// other headers stay cached (they share the text they were parsed
    /// from, which an edit does not move), so that a transport stamping
    /// the top Via or a proxy pushing its own does not make every later
    /// accessor parse again.
    fn touched_header(&mut self, name: HeaderName) {
        self.edited = true;
        // Every cell named, so that a new one cannot be forgotten here.
        let Cache {
            request_uri: _,
            top_via,
            from,
            to,
            call_id,
            cseq,
            max_forwards,
            contacts,
            lists,
            content_type,
        } = &mut *self.cache;
        match name {
            HeaderName::Via => {
                *top_via = OnceLock::new();
                if let Some(l) = lists.get_mut() {
                    l.vias = OnceLock::new();
                }
            }
            HeaderName::Route => {
                if let Some(l) = lists.get_mut() {
                    l.routes = OnceLock::new();
                }
            }
            HeaderName::RecordRoute => {
                if let Some(l) = lists.get_mut() {
                    l.record_routes = OnceLock::new();
                }
            }
            HeaderName::From => *from = OnceLock::new(),
            HeaderName::To => *to = OnceLock::new(),
            HeaderName::CallId => *call_id = OnceLock::new(),
            HeaderName::CSeq => *cseq = OnceLock::new(),
            HeaderName::MaxForwards => *max_forwards = OnceLock::new(),
            HeaderName::Contact => *contacts = OnceLock::new(),
            HeaderName::ContentType => *content_type = OnceLock::new(),
            // No typed value of its own (or everything reset by `touched`).
            _ => {}
        }
        // Drop the text of edited lines that are gone.
        let live = self.fields.iter().filter(|f| f.owned != 0).count();
        if let Some(edits) = &mut self.edits {
            if live != edits.owned.len() {
                let mut owned = Vec::with_capacity(live);
                for f in &mut self.fields {
                    if f.owned != 0 {
                        let text = edits.owned.get(f.owned as usize - 1).cloned();
                        owned.push(text.unwrap_or_default());
                        f.owned = owned.len() as u32;
                    }
                }
                edits.owned = owned;
            }
        }
        self.reindex();
    }

    /// Inserts a value above every existing value of `name` (a proxy pushing
    /// its Via, RFC 3261 §16.6 step 8, or a Record-Route, step 4).
    pub fn push_header(&mut self, name: HeaderName, value: &str) -> Result<(), Error> {
        let f = self.owned_field(name, name.as_str(), value)?;
        let at = self.fields.iter().position(|f| f.name == name).unwrap_or(0);
        self.fields.insert(at, f);
        self.touched_header(name);
        Ok(())
    }

    /// Replaces the topmost value of a list header by `value`, keeping the
    /// other values (a transport stamping `received`/`rport` on the top Via,
    /// RFC 3261 §18.2.1): one edit, where [`Message::remove_first_value`]
    /// then [`Message::push_header`] would be two.
    /// A header that is not a comma-separated list (Date, Authorization...)
    /// has its first line replaced whole; without one, the value is added
    /// above every other header.
    pub fn replace_first_value(&mut self, name: HeaderName, value: &str) -> Result<(), Error> {
        let f = self.owned_field(name, name.as_str(), value)?;
        match self.fields.iter().position(|f| f.name == name) {
            // A line with one value (no comma at all: the usual case), or
            // of a header that is no list, is replaced where it is.
            Some(i)
                if !is_comma_list(name)
                    || memchr::memchr(b',', self.value_bytes(&self.fields[i])).is_none() =>
            {
                self.fields[i] = f;
            }
            // The first value goes; the line keeps the others (or goes, if
            // that was its only one), and the new value takes its place.
            Some(i) => {
                self.take_first_value(name);
                self.fields.insert(i, f);
            }
            None => self.fields.insert(0, f),
        }
        self.touched_header(name);
        Ok(())
    }

    /// Appends a header line (any name, known or not) after all others.
    pub fn append_header(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let hn = HeaderName::parse(name);
        let f = self.owned_field(hn, name, value)?;
        self.fields.push(f);
        self.touched_header(hn);
        Ok(())
    }

    /// Replaces every line of a header by one line with `value` (in the
    /// position of the first one), or appends it.
    pub fn set_header(&mut self, name: HeaderName, value: &str) -> Result<(), Error> {
        let f = self.owned_field(name, name.as_str(), value)?;
        match self.fields.iter().position(|f| f.name == name) {
            Some(i) => {
                self.fields[i] = f;
                let mut idx = 0;
                self.fields.retain(|x| {
                    idx += 1;
                    idx - 1 == i || x.name != name
                });
            }
            None => self.fields.push(f),
        }
        self.touched_header(name);
        Ok(())
    }

    /// Removes every line of a header; returns how many were removed.
    pub fn remove_header(&mut self, name: HeaderName) -> usize {
        let before = self.fields.len();
        self.fields.retain(|f| f.name != name);
        let n = before - self.fields.len();
        if n > 0 {
            self.touched_header(name);
        }
        n
    }

    /// Removes the topmost value of a list header (a Via when forwarding a
    /// response, RFC 3261 §16.7 step 3; a Route, §16.4), keeping the other
    /// values of a comma-joined line. Returns the removed value.
    pub fn remove_first_value(&mut self, name: HeaderName) -> Option<SipStr> {
        let first = self.take_first_value(name)?;
        self.touched_header(name);
        Some(first)
    }

    /// [`Message::remove_first_value`] without the bookkeeping of an edit
    /// (the caller does it once, after its other changes).
    fn take_first_value(&mut self, name: HeaderName) -> Option<SipStr> {
        let i = self.fields.iter().position(|f| f.name == name)?;
        let value = self.value_of(&self.fields[i]);
        if !is_comma_list(name) {
            // A comma inside a Date or a challenge separates nothing.
            self.fields.remove(i);
            return Some(value);
        }
        let mut items = crate::scan::comma_items(&value);
        let first = value.slice_ref(items.next().unwrap_or(""));
        let rest: Vec<&str> = items.collect();
        if rest.is_empty() {
            self.fields.remove(i);
        } else {
            let joined = rest.join(", ");
            // The remaining text came from a parsed line: no CR/LF but folds,
            // which `comma_items` trimmed; a fold inside an item stays valid
            // LWS, so build the line directly.
            let raw_name = self
                .text(&self.fields[i])
                .get(self.fields[i].name_range())
                .unwrap_or("")
                .to_owned();
            let text = format!("{raw_name}: {joined}");
            self.fields[i] = self.add_owned(name, raw_name.len(), text);
        }
        Some(first)
    }

    /// Replaces the Request-URI (RFC 3261 §16.6 step 2 and §16.5).
    pub fn set_request_uri(&mut self, uri: &Uri) -> Result<(), Error> {
        let method = match &self.start {
            StartLine::Request { method, .. } => method.clone(),
            StartLine::Response { .. } => {
                return Err(Error::StartLine("a response has no Request-URI".into()))
            }
        };
        let line = format!("{} {} SIP/2.0", method, uri.as_str());
        if line.bytes().any(|c| c == b'\r' || c == b'\n') {
            return Err(Error::uri(uri.as_str(), "CR or LF in URI"));
        }
        let start = method.as_str().len() + 1;
        let end = start + uri.as_str().len();
        let text = SipStr::from(line);
        self.start_line = Span::new(0, text.len());
        self.version = Span::new(end + 1, text.len());
        self.start = StartLine::Request {
            method,
            uri: Span::new(start, end),
        };
        self.edits.get_or_insert_with(Default::default).start_line = Some(text);
        self.start_error = None;
        self.touched();
        Ok(())
    }

    /// Replaces the body; Content-Length follows at serialisation.
    pub fn set_body(&mut self, body: Bytes) {
        self.body = body;
        self.body_error = None;
        self.touched();
    }

    /// Whether the message was edited since it was parsed.
    pub fn is_edited(&self) -> bool {
        self.edited
    }

    // ----- serialisation ----------------------------------------------------

    /// The message as bytes: exactly the received octets if nothing was
    /// edited; otherwise untouched lines are copied as received, edited ones
    /// written anew, and Content-Length set to the body's length.
    pub fn to_bytes(&self) -> Bytes {
        if !self.edited {
            return self.raw.clone();
        }
        let mut out = BytesMut::with_capacity(self.raw.len() + 256);
        self.write_to(&mut out);
        out.freeze()
    }

    /// Writes the serialised message (see [`Message::to_bytes`]).
    pub fn write_to(&self, out: &mut BytesMut) {
        if !self.edited {
            out.extend_from_slice(&self.raw);
            return;
        }
        let start = self.start_text().get(self.start_line.range()).unwrap_or("");
        out.extend_from_slice(start.trim_end_matches(['\r', '\n']).as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut wrote_length = false;
        for f in &self.fields {
            if f.name == HeaderName::ContentLength {
                if !wrote_length {
                    write_content_length(out, self.body.len());
                    wrote_length = true;
                }
                continue;
            }
            match f.owned {
                0 => {
                    let line = self.head.get(f.line.range()).unwrap_or("");
                    out.extend_from_slice(line.as_bytes());
                    if !line.ends_with('\n') {
                        out.extend_from_slice(b"\r\n");
                    }
                }
                _ => {
                    out.extend_from_slice(self.text(f).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
        }
        if !wrote_length {
            write_content_length(out, self.body.len());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// Whether the values of a header may be joined on one line with commas
/// (RFC 3261 §7.3.1: the headers whose grammar is a comma-separated list;
/// an unknown header is taken as one value per line).
fn is_comma_list(name: HeaderName) -> bool {
    use HeaderName as H;
    matches!(
        name,
        H::Via
            | H::Contact
            | H::Route
            | H::RecordRoute
            | H::Path
            | H::Accept
            | H::AcceptEncoding
            | H::AcceptLanguage
            | H::AlertInfo
            | H::Allow
            | H::AllowEvents
            | H::CallInfo
            | H::ContentEncoding
            | H::ContentLanguage
            | H::ErrorInfo
            | H::InReplyTo
            | H::ProxyRequire
            | H::Reason
            | H::Require
            | H::Supported
            | H::Unsupported
            | H::Warning
    )
}

fn write_content_length(out: &mut BytesMut, len: usize) {
    out.extend_from_slice(b"Content-Length: ");
    out.put_slice(crate::text::Decimal::new(len as u64).as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Content-Length of a message being parsed, as [`Message::content_length`]
/// reads it once the message is built.
fn parse_content_length(
    head: &str,
    fields: &[Field],
    index: &[Slot; CORE_HEADERS],
) -> Result<Option<u32>, Error> {
    let name = HeaderName::ContentLength;
    let slot = index.get(name as usize).copied().unwrap_or_default();
    let value = |f: &Field| head.as_bytes().get(f.value.range()).unwrap_or(&[]);
    let v = match slot.count {
        0 => return Ok(None),
        // One line (the usual case): no search.
        1 => fields.get(slot.first as usize).map_or(&[][..], value),
        _ => {
            let mut lines = fields
                .get(slot.first as usize..)
                .unwrap_or(&[])
                .iter()
                .filter(|f| f.name == name)
                .take(slot.count as usize);
            let Some(first) = lines.next() else {
                return Ok(None);
            };
            let v = value(first);
            if lines.any(|o| value(o) != v) {
                return Err(Error::Duplicate(name.as_str()));
            }
            v
        }
    };
    parse_u32_bytes(v, u32::MAX)
        .map(Some)
        .ok_or_else(|| Error::header("Content-Length", "not a non-negative number"))
}

/// The number of the line at `pos` (the start line being 1): every line
/// before it ended with a LF. Worked out for errors only.
fn line_number(data: &[u8], msg_start: usize, pos: usize) -> usize {
    1 + data
        .get(msg_start..pos)
        .unwrap_or(&[])
        .iter()
        .filter(|&&c| c == b'\n')
        .count()
}

#[inline]
fn trim_end_ws(data: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(data.get(end - 1), Some(&(SP | b'\t'))) {
        end -= 1;
    }
    end
}

/// The end of the line starting at `pos` without its terminator (LF or
/// CRLF), and the start of the next line (`data.len()` for the last line
/// when it has no terminator). Lines are taken in order: `pos` is where
/// the previous one ended, after a LF (or, for the start line, the first
/// octet that is neither CR nor LF), so the octet before an empty line's
/// LF is never a CR of that line.
#[inline]
fn line_end(lines: &mut Lines<'_>, data: &[u8], pos: usize) -> (usize, usize) {
    match lines.next_lf() {
        Some(nl) => {
            debug_assert!(nl > pos || data.get(nl.wrapping_sub(1)) != Some(&b'\r'));
            let content_end = if data.get(nl.wrapping_sub(1)) == Some(&b'\r') {
                nl - 1
            } else {
                nl
            };
            (content_end, nl + 1)
        }
        None => (data.len(), data.len()),
    }
}

/// Parses the start line. Errors in a request line that still looks like a
/// request are deferred (returned third) so that a 400 can be sent.
fn parse_start_line(head: &SipStr, span: Span) -> Result<(StartLine, Span, Option<Error>), Error> {
    let full = head.get(span.range()).unwrap_or("");
    let line = full.trim_end_matches(['\r', '\n']);
    let base = span.start as usize;
    let b = line.as_bytes();
    // Fast path: `SIP/2.0 DDD[ reason]` with a code from 100 to 699, which
    // the general code below accepts with these same spans.
    if let (Some(b"SIP/2.0 "), Some(&[x, y, z])) = (b.get(..8), b.get(8..11)) {
        if x.is_ascii_digit()
            && y.is_ascii_digit()
            && z.is_ascii_digit()
            && matches!(b.get(11), None | Some(&SP))
        {
            let code = u16::from(x - b'0') * 100 + u16::from(y - b'0') * 10 + u16::from(z - b'0');
            if (100..=699).contains(&code) {
                let reason = Span::new(base + 12.min(b.len()), base + b.len());
                return Ok((
                    StartLine::Response { code, reason },
                    Span::new(base, base + 7),
                    None,
                ));
            }
        }
    }
    if b.len() >= 4 && b[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = line
            .find(' ')
            .ok_or_else(|| Error::StartLine("no space after the SIP version".into()))?;
        let version = Span::new(base, base + sp);
        check_version_syntax(&line[..sp])?;
        let rest = &line[sp + 1..];
        let code_str = rest.split(' ').next().unwrap_or("");
        if code_str.len() != 3 || !code_str.bytes().all(|c| c.is_ascii_digit()) {
            return Err(Error::StatusCode(code_str.chars().take(20).collect()));
        }
        let code = parse_u32(code_str, 999).unwrap_or(0) as u16;
        if !(100..=699).contains(&code) {
            return Err(Error::StatusCode(code_str.to_owned()));
        }
        let reason_start = (sp + 1 + 3 + 1).min(line.len());
        let reason = Span::new(base + reason_start, base + line.len());
        return Ok((StartLine::Response { code, reason }, version, None));
    }
    // Fast path: `METHOD SP Request-URI SP SIP/2.0` with single spaces and
    // no white space in the URI, which the general code below accepts with
    // these same spans and no deferred error.
    if let Some(uri_end) = b.len().checked_sub(8) {
        if b.get(uri_end..) == Some(b" SIP/2.0") {
            let first = crate::scan::run_end(b, 0, &crate::scan::TOKEN);
            if first > 0
                && first + 1 < uri_end
                && b.get(first) == Some(&SP)
                && !crate::scan::has_sp_or_htab(b.get(first + 1..uri_end).unwrap_or(&[]))
            {
                if let Some(method) = b.get(..first).and_then(|m| Method::parse_bytes(m, head)) {
                    return Ok((
                        StartLine::Request {
                            method,
                            uri: Span::new(base + first + 1, base + uri_end),
                        },
                        Span::new(base + uri_end + 1, base + b.len()),
                        None,
                    ));
                }
            }
        }
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces.
    // Extra whitespace is an error (RFC 4475 §3.1.2.6, §3.1.2.7), deferred
    // so that the request can still be answered with 400; the spans exclude
    // it so that nothing forwards it.
    let first = line
        .find(' ')
        .ok_or_else(|| Error::StartLine("neither a request line nor a status line".into()))?;
    let method = Method::parse_in(&line[..first], head)
        .ok_or_else(|| Error::StartLine("method is not a token".into()))?;
    let trimmed = line.trim_end_matches([' ', '\t']);
    let last = trimmed.rfind(' ').unwrap_or(first).max(first);
    let version = Span::new(base + last + 1, base + trimmed.len());
    let between = trimmed.get(first + 1..last).unwrap_or("");
    let uri_str = between.trim_matches([' ', '\t']);
    let uri_start = first + 1 + (between.len() - between.trim_start_matches([' ', '\t']).len());
    let uri_span = Span::new(base + uri_start, base + uri_start + uri_str.len());
    let deferred = if last == first || uri_str.is_empty() {
        Some(Error::StartLine(
            "Request-URI or SIP version missing".into(),
        ))
    } else if uri_str.bytes().any(|c| c == SP || c == b'\t') {
        Some(Error::StartLine("Request-URI contains whitespace".into()))
    } else if uri_str.len() != between.len() || trimmed.len() != line.len() {
        Some(Error::StartLine(
            "request line elements must be separated by exactly one space".into(),
        ))
    } else {
        check_version_syntax(&trimmed[last + 1..]).err()
    };
    Ok((
        StartLine::Request {
            method,
            uri: uri_span,
        },
        version,
        deferred,
    ))
}

/// `SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT` (RFC 3261 §25.1).
fn check_version_syntax(v: &str) -> Result<(), Error> {
    let ok = v.len() > 4
        && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/")
        && v[4..].split_once('.').is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        });
    if ok {
        Ok(())
    } else {
        Err(Error::StartLine(format!(
            "{:?} is not a SIP version (SIP/2.0)",
            v.chars().take(20).collect::<String>()
        )))
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.start_text().get(self.start_line.range()).unwrap_or("");
        f.debug_struct("Message")
            .field("start_line", &start.trim_end())
            .field("headers", &self.fields.len())
            .field("body_len", &self.body.len())
            .field("edited", &self.edited)
            .finish()
    }
}

impl PartialEq for Message {
    /// Two messages are equal when they serialise to the same bytes.
    fn eq(&self, other: &Message) -> bool {
        self.to_bytes() == other.to_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(start: &str) -> Result<Message, ParseError> {
        let text = format!(
            "{start}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
             To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        Message::parse(Bytes::from(text))
    }

    #[test]
    fn start_line_fast_path_edges() {
        let m = msg("INVITE sip:bob@biloxi.example.com SIP/2.0").unwrap();
        assert_eq!(m.request_uri_str(), Some("sip:bob@biloxi.example.com"));
        assert_eq!(m.version(), "SIP/2.0");
        for (line, reason) in [
            ("INVITE  SIP/2.0", "Request-URI or SIP version missing"),
            (
                "INVITE sip:a@b  SIP/2.0",
                "request line elements must be separated by exactly one space",
            ),
            ("INVITE sip:a b SIP/2.0", "Request-URI contains whitespace"),
            ("INVITE sip:a@b SIP/2.0 ", "exactly one space"),
        ] {
            let e = msg(line).unwrap_err();
            assert!(e.to_string().contains(reason), "{line}: {e}");
            assert!(e.can_answer(), "{line}");
        }
        let m = msg("SIP/2.0 200").unwrap();
        assert_eq!((m.status(), m.reason()), (Some(200), Some("")));
        let m = msg("SIP/2.0 180 Ringing").unwrap();
        assert_eq!((m.status(), m.reason()), (Some(180), Some("Ringing")));
        for line in [
            "SIP/2.0 099 x",
            "SIP/2.0 200OK",
            "SIP/2.0 700 x",
            "SIP/2.0  200 OK",
        ] {
            assert!(msg(line).is_err(), "{line}");
        }
    }

    #[test]
    fn header_line_errors_name_their_line() {
        for (text, line) in [
            ("INVITE sip:a@b SIP/2.0\r\n badfold\r\nVia: x\r\n\r\n", 2),
            (
                "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n folded\r\nBad Name: x\r\n\r\n",
                4,
            ),
            ("\r\n\r\nINVITE sip:a@b SIP/2.0\nVia: x\nnocolon\n\n", 3),
            ("SIP/2.0 200 OK\r\nTo: a\r\n:x\r\n", 3),
        ] {
            let e = Message::parse(Bytes::from(text)).unwrap_err();
            assert!(
                matches!(e.error(), Error::HeaderLine { line: l, .. } if *l == line),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn values_are_trimmed_of_sp_and_htab_only() {
        let text = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\n\
                    CSeq: 1 OPTIONS\r\nX-A: \tv\t\r\nX-B:v\r\nX-C:  v \r\n\
                    X-D: \x01v\x01\r\nX-E: \r\nX-F: v\r\n w\r\nX-G:\tv\nX-H: v w\r\n\
                    Content-Length: 0\r\n\r\n";
        let m = Message::parse(Bytes::from(text)).unwrap();
        for (name, value) in [
            ("X-A", "v"),
            ("X-B", "v"),
            ("X-C", "v"),
            ("X-D", "\x01v\x01"),
            ("X-E", ""),
            ("X-F", "v\r\n w"),
            ("X-G", "v"),
            ("X-H", "v w"),
        ] {
            assert_eq!(m.header(name), Some(value), "{name}");
        }
    }

    #[test]
    fn typed_values_after_each_edit_are_those_of_the_edited_text() {
        let text = "INVITE sip:bob@b SIP/2.0\r\n\
            Via: SIP/2.0/UDP a;branch=z9hG4bK1;rport, SIP/2.0/TCP b;branch=z9hG4bK2\r\n\
            Via: SIP/2.0/UDP c;branch=z9hG4bK3;received=192.0.2.9\r\n\
            Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:r1;lr>\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
            Max-Forwards: 70\r\nContact: <sip:a@192.0.2.1>\r\n\
            Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n";
        let mut m = Message::parse(Bytes::from(text)).unwrap();
        type Edit = fn(&mut Message);
        let edits: [(&str, Edit); 12] = [
            ("replace a joined top Via", |m| {
                m.replace_first_value(
                    HeaderName::Via,
                    "SIP/2.0/UDP a;branch=z9hG4bK1;rport=5;received=192.0.2.1",
                )
                .unwrap()
            }),
            ("replace a lone top Via", |m| {
                m.replace_first_value(HeaderName::Via, "SIP/2.0/UDP z;branch=z9hG4bKz;maddr=m")
                    .unwrap()
            }),
            ("push a Via", |m| {
                m.push_header(HeaderName::Via, "SIP/2.0/TCP p;branch=z9hG4bKp")
                    .unwrap()
            }),
            ("pop a Via", |m| drop(m.remove_first_value(HeaderName::Via))),
            ("pop a Route", |m| {
                drop(m.remove_first_value(HeaderName::Route))
            }),
            ("push a Record-Route", |m| {
                m.push_header(HeaderName::RecordRoute, "<sip:r0;lr>")
                    .unwrap()
            }),
            ("set From", |m| {
                m.set_header(HeaderName::From, "<sip:x@y>;tag=9").unwrap()
            }),
            ("append a second To", |m| {
                m.append_header("t", "<sip:q@r>").unwrap()
            }),
            ("remove To", |m| {
                m.remove_header(HeaderName::To);
            }),
            ("set Contact", |m| {
                m.set_header(HeaderName::Contact, "<sip:n@1.2.3.4>;expires=5, *")
                    .unwrap()
            }),
            ("set CSeq and Max-Forwards", |m| {
                m.set_header(HeaderName::CSeq, "2 INVITE").unwrap();
                m.set_header(HeaderName::MaxForwards, "9").unwrap();
            }),
            ("set Content-Type, Call-ID and an extension", |m| {
                m.set_header(HeaderName::ContentType, "text/plain").unwrap();
                m.set_header(HeaderName::CallId, "y@z").unwrap();
                m.append_header("X-A", "1").unwrap();
            }),
        ];
        for (what, edit) in edits {
            // Every value cached before the edit, as a server would have.
            crate::fuzzing::typed_values(&m);
            edit(&mut m);
            let fresh = Message::parse_lazy(m.to_bytes(), &crate::Limits::default()).unwrap();
            assert_eq!(
                crate::fuzzing::typed_values(&m),
                crate::fuzzing::typed_values(&fresh),
                "after: {what}"
            );
        }
    }

    /// The header lines of a message, in order, as serialised.
    fn header_lines(m: &Message) -> Vec<String> {
        let text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        head.split("\r\n").skip(1).map(str::to_owned).collect()
    }

    #[test]
    fn replace_first_value_keeps_the_place_and_splits_only_lists() {
        let text = "INVITE sip:bob@b SIP/2.0\r\n\
            Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
            Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
            Contact: \"Doe, J\" <sip:j@h>\r\nContent-Length: 0\r\n\r\n";
        let mut m = Message::parse(Bytes::from(text)).unwrap();
        // A list: the first value is replaced in its place, the rest stays.
        m.replace_first_value(HeaderName::Via, "SIP/2.0/UDP z;branch=z9hG4bKz")
            .unwrap();
        // One value whose text holds a comma: replaced where it was.
        m.replace_first_value(HeaderName::Contact, "<sip:k@h>")
            .unwrap();
        // Not a list: the whole line, in its place.
        m.replace_first_value(HeaderName::Date, "Sun, 14 Nov 2010 00:00:00 GMT")
            .unwrap();
        // Absent: added on top.
        m.replace_first_value(HeaderName::Subject, "hi").unwrap();
        assert_eq!(
            header_lines(&m),
            [
                "Subject: hi",
                "Date: Sun, 14 Nov 2010 00:00:00 GMT",
                "Via: SIP/2.0/UDP z;branch=z9hG4bKz",
                "Via: SIP/2.0/UDP b;branch=z9hG4bK2",
                "From: <sip:a@b>;tag=1",
                "To: <sip:c@d>",
                "Call-ID: x",
                "CSeq: 1 INVITE",
                "Contact: <sip:k@h>",
                "Content-Length: 0",
            ]
        );
        // Removing a Date's "first value" removes the Date.
        assert_eq!(
            m.remove_first_value(HeaderName::Date).unwrap().as_str(),
            "Sun, 14 Nov 2010 00:00:00 GMT"
        );
        assert!(m.header("Date").is_none());
    }

    #[test]
    fn an_edit_keeps_the_typed_values_of_other_headers() {
        let text = "INVITE sip:bob@b SIP/2.0\r\n\
            Via: SIP/2.0/UDP a;branch=z9hG4bK1\r\nRoute: <sip:p1;lr>\r\n\
            From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        let mut m = Message::parse(Bytes::from(text)).unwrap();
        let from: *const NameAddr = m.from().unwrap();
        let vias: *const [Via] = m.vias().unwrap();
        m.push_header(HeaderName::Via, "SIP/2.0/UDP p;branch=z9hG4bKp")
            .unwrap();
        // Still the value parsed before the edit, not one parsed again.
        assert!(std::ptr::eq(from, m.from().unwrap()));
        assert_eq!(m.vias().unwrap().len(), 2);
        let vias_after: *const [Via] = m.vias().unwrap();
        m.remove_first_value(HeaderName::Route);
        assert!(std::ptr::eq(vias_after, m.vias().unwrap()));
        assert!(!std::ptr::eq(vias, vias_after));
        assert!(m.routes().unwrap().is_empty());
    }

    #[test]
    fn a_request_uri_with_headers_is_refused() {
        let err = msg("INVITE sip:a@b?subject=x SIP/2.0").unwrap_err();
        assert!(matches!(err.error(), Error::RequestUriHeaders), "{err:?}");
        // The same URI is fine where headers belong (a Contact, a Refer-To).
        assert!(msg("INVITE sip:a@b SIP/2.0").is_ok());
    }

    #[test]
    fn the_header_section_is_utf8_wherever_its_octets_fall() {
        let head = |extra: &str| {
            format!(
                "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n{extra}"
            )
        };
        // A multi-octet character in a line longer than a 64-octet block
        // (the vectorised ASCII check's blocks) is accepted as text.
        let long = format!("Subject: {}\u{e9}{}\r\n", "a".repeat(70), "b".repeat(70));
        let text = head(&format!("{long}Content-Length: 0\r\n\r\n"));
        let m = Message::parse(Bytes::from(text)).unwrap();
        assert!(m.header("Subject").unwrap().contains('\u{e9}'));
        // An octet that is not UTF-8, in any position of a block.
        for pad in 0..70 {
            let mut bytes = head(&format!("X-Pad: {}", "p".repeat(pad))).into_bytes();
            bytes.push(0xff);
            bytes.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
            let err = Message::parse(Bytes::from(bytes)).unwrap_err();
            assert!(matches!(err.error(), Error::NotUtf8), "{pad}: {err:?}");
        }
        // A body that is not UTF-8, right after an ASCII header section
        // (in the same 64-octet block): the body is octets, fine.
        for pad in 0..70 {
            let mut bytes = head(&format!(
                "X-Pad: {}\r\nContent-Length: 2\r\n\r\n",
                "p".repeat(pad)
            ))
            .into_bytes();
            bytes.extend_from_slice(&[0xff, 0xfe]);
            let m = Message::parse(Bytes::from(bytes)).unwrap();
            assert_eq!(&m.body()[..], &[0xff, 0xfe], "{pad}");
        }
    }

    #[test]
    fn single_line_lookups_follow_edits() {
        let mut m = msg("INVITE sip:a@b SIP/2.0").unwrap();
        assert_eq!(m.call_id().unwrap(), "x");
        m.set_header(HeaderName::CallId, "y@z").unwrap();
        assert_eq!(m.call_id().unwrap(), "y@z");
        m.append_header("Call-ID", "y@z").unwrap();
        assert_eq!(m.call_id().unwrap(), "y@z");
        m.append_header("i", "other").unwrap();
        assert!(matches!(m.call_id(), Err(Error::Duplicate("Call-ID"))));
        assert_eq!(m.remove_header(HeaderName::CallId), 3);
        assert!(matches!(m.call_id(), Err(Error::Missing("Call-ID"))));
    }
}
#[cfg(test)]
mod size {
    /// A message is moved several times on its way through a server: its
    /// typed-value cells stay behind one pointer.
    #[test]
    fn a_message_is_small_to_move() {
        let size = std::mem::size_of::<super::Message>();
        assert!(size <= 384, "Message is {size} bytes");
    }
}
