//! Building requests and responses (RFC 3261 §8.1.1, §8.2.6).

use crate::error::{Error, ParseError};
use crate::{HeaderName, Message, Method, Uri};
use bytes::{BufMut, Bytes, BytesMut};

/// The reason phrase RFC 3261 §21 (and later RFCs) give a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        428 => "Use Identity Header",
        429 => "Provide Referrer Identity",
        430 => "Flow Failed",
        439 => "First Hop Lacks Outbound Support",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        494 => "Security Agreement Required",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        580 => "Precondition Failure",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => match code / 100 {
            1 => "Trying",
            2 => "OK",
            3 => "Redirect",
            4 => "Request Failure",
            5 => "Server Failure",
            _ => "Global Failure",
        },
    }
}

/// Writes header lines into a buffer, refusing CR/LF in names and values so
/// that no caller can inject a header.
#[derive(Debug, Default)]
struct Lines {
    buf: BytesMut,
    error: Option<Error>,
    has_content_length: bool,
}

impl Lines {
    /// A line copied from a parsed message under a known name: only the
    /// value is checked (no CR or LF, found with one vectorised search).
    fn copy(&mut self, name: &str, value: &str) {
        if self.error.is_some() {
            return;
        }
        if memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_some() {
            return self.line(name, &crate::scan::unfold(value));
        }
        self.buf.reserve(name.len() + value.len() + 4);
        self.buf.put_slice(name.as_bytes());
        self.buf.put_slice(b": ");
        self.buf.put_slice(value.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    fn line(&mut self, name: &str, value: &str) {
        if self.error.is_some() {
            return;
        }
        if name.is_empty()
            || !name.bytes().all(crate::scan::is_token)
            || memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_some()
        {
            self.error = Some(Error::HeaderLine {
                line: 0,
                reason: "header name is not a token or value holds CR/LF",
            });
            return;
        }
        if HeaderName::parse(name) == HeaderName::ContentLength {
            self.has_content_length = true;
        }
        self.buf.reserve(name.len() + value.len() + 4);
        self.buf.put_slice(name.as_bytes());
        self.buf.put_slice(b": ");
        self.buf.put_slice(value.as_bytes());
        self.buf.put_slice(b"\r\n");
    }

    fn finish(mut self, body: &[u8]) -> Result<Bytes, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.has_content_length {
            self.buf.put_slice(b"Content-Length: ");
            self.buf
                .put_slice(crate::Decimal::new(body.len() as u64).as_str().as_bytes());
            self.buf.put_slice(b"\r\n");
        }
        self.buf.put_slice(b"\r\n");
        self.buf.put_slice(body);
        Ok(self.buf.freeze())
    }
}

/// Builds a request (RFC 3261 §8.1.1). Via, From, To, Call-ID, CSeq and
/// Max-Forwards are the caller's to set; Content-Length is added.
#[derive(Debug)]
pub struct RequestBuilder {
    method: Method,
    lines: Lines,
    body: Bytes,
}

impl RequestBuilder {
    /// Starts `METHOD uri SIP/2.0`.
    pub fn new(method: Method, uri: &Uri) -> Self {
        let mut lines = Lines::default();
        lines.buf.reserve(512);
        if uri.as_str().bytes().any(|c| c <= b' ') {
            lines.error = Some(Error::uri(
                uri.as_str(),
                "whitespace or control octet in URI",
            ));
        }
        lines.buf.put_slice(method.as_str().as_bytes());
        lines.buf.put_u8(b' ');
        lines.buf.put_slice(uri.as_str().as_bytes());
        lines.buf.put_slice(b" SIP/2.0\r\n");
        RequestBuilder {
            method,
            lines,
            body: Bytes::new(),
        }
    }

    /// Adds a Via: `SIP/2.0/{transport} {sent_by};branch={branch}` plus
    /// `;rport` (RFC 3581) when asked.
    pub fn via(mut self, transport: &str, sent_by: &str, branch: &str, rport: bool) -> Self {
        let v = format!(
            "SIP/2.0/{transport} {sent_by};branch={branch}{}",
            if rport { ";rport" } else { "" }
        );
        self.lines.line("Via", &v);
        self
    }

    /// Adds `Max-Forwards` (70 is the RFC 3261 §8.1.1.6 default).
    pub fn max_forwards(mut self, n: u8) -> Self {
        self.lines.line("Max-Forwards", &n.to_string());
        self
    }

    /// Adds From (a name-addr value, with its tag).
    pub fn from(mut self, value: &str) -> Self {
        self.lines.line("From", value);
        self
    }

    /// Adds To.
    pub fn to(mut self, value: &str) -> Self {
        self.lines.line("To", value);
        self
    }

    /// Adds Call-ID.
    pub fn call_id(mut self, value: &str) -> Self {
        self.lines.line("Call-ID", value);
        self
    }

    /// Adds `CSeq: {seq} {method}` with this request's method.
    pub fn cseq(mut self, seq: u32) -> Self {
        let v = format!("{seq} {}", self.method);
        self.lines.line("CSeq", &v);
        self
    }

    /// Adds any header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.lines.line(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.lines.line("Content-Type", content_type);
        self.body = body.into();
        self
    }

    /// The request as bytes.
    pub fn to_bytes(self) -> Result<Bytes, Error> {
        self.lines.finish(&self.body)
    }

    /// The request, parsed and validated.
    pub fn build(self) -> Result<Message, ParseError> {
        let bytes = self.to_bytes().map_err(|e| ParseError::new(e, None))?;
        Message::parse(bytes)
    }
}

/// Builds a response to a request (RFC 3261 §8.2.6.2): Via, From, To,
/// Call-ID and CSeq are copied from it, a To tag added when asked.
#[derive(Debug)]
pub struct ResponseBuilder {
    lines: Lines,
    body: Bytes,
    /// Where the copied To line's CRLF starts, for [`ResponseBuilder::to_tag`].
    to_end: Option<usize>,
}

impl ResponseBuilder {
    /// Starts a response with the standard reason phrase.
    pub fn new(request: &Message, code: u16) -> Self {
        ResponseBuilder::with_reason(request, code, reason_phrase(code))
    }

    /// Starts a response with a given reason phrase (CR/LF are replaced).
    pub fn with_reason(request: &Message, code: u16, reason: &str) -> Self {
        let code = code.clamp(100, 699);
        const COPIED: [HeaderName; 5] = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ];
        // Room for the copied lines and what is usually added (a To tag,
        // Contact, Date, Server, Content-Length): a transaction keeps its
        // last response for up to 32 s (Timer J), and a buffer grown by
        // doubling would keep half of itself empty all that time.
        let copied: usize = COPIED
            .iter()
            .flat_map(|&n| {
                request
                    .values_str(n)
                    .map(move |v| n.as_str().len() + v.len() + 4)
            })
            .sum();
        let mut lines = Lines::default();
        lines.buf.reserve(copied + reason.len() + 256);
        lines.buf.put_slice(b"SIP/2.0 ");
        // Three digits (clamped above).
        lines.buf.put_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        if reason.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            lines.buf.put_slice(reason.as_bytes());
        } else {
            for c in reason.chars() {
                let c = if c.is_control() { ' ' } else { c };
                let mut b = [0u8; 4];
                lines.buf.put_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        lines.buf.put_slice(b"\r\n");
        let mut to_end = None;
        for name in COPIED {
            for v in request.values_str(name) {
                // Folded values are copied unfolded (same value, one line);
                // `copy` finds the CR/LF of a fold with one vectorised search.
                lines.copy(name.as_str(), v);
                if name == HeaderName::To {
                    to_end = Some(lines.buf.len() - 2);
                }
                if name.is_single() {
                    break;
                }
            }
        }
        ResponseBuilder {
            lines,
            body: Bytes::new(),
            to_end,
        }
    }

    /// Adds `;tag=` to To unless the request's To already has a tag
    /// (RFC 3261 §8.2.6.2). Call right after `new`.
    pub fn to_tag(mut self, request: &Message, tag: &str) -> Self {
        if request.to().is_ok_and(|t| t.tag().is_some()) {
            return self;
        }
        let Some(at) = self.to_end.take() else {
            return self;
        };
        if tag.is_empty() || !tag.bytes().all(crate::scan::is_token) {
            self.lines.error = Some(Error::header("To", "tag must be a token"));
            return self;
        }
        // Insert `;tag=...` before the To line's CRLF, in place (a split
        // and unsplit would turn the buffer into a shared one: an allocation).
        let buf = &mut self.lines.buf;
        let len = buf.len();
        if at > len {
            return self;
        }
        let add = 5 + tag.len();
        buf.resize(len + add, 0);
        buf.copy_within(at..len, at + add);
        buf[at..at + 5].copy_from_slice(b";tag=");
        buf[at + 5..at + add].copy_from_slice(tag.as_bytes());
        self
    }

    /// Adds any header line.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.lines.line(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &str, body: impl Into<Bytes>) -> Self {
        self.lines.line("Content-Type", content_type);
        self.body = body.into();
        self
    }

    /// The response as bytes.
    pub fn to_bytes(self) -> Result<Bytes, Error> {
        self.lines.finish(&self.body)
    }

    /// The response, parsed (lazily: a response to a malformed request may
    /// lack some headers).
    pub fn build(self) -> Result<Message, ParseError> {
        let bytes = self.to_bytes().map_err(|e| ParseError::new(e, None))?;
        Message::parse_lazy(bytes, &crate::Limits::default())
    }
}

impl Message {
    /// A builder for a response to this request.
    pub fn response(&self, code: u16) -> ResponseBuilder {
        ResponseBuilder::new(self, code)
    }
}

impl ParseError {
    /// The error response for a request that could not be parsed, when it
    /// can be answered ([`ParseError::can_answer`]): 400 (or 505, 513) with
    /// the reason in a `Warning: 399` header (RFC 3261 §20.43).
    pub fn response(&self, agent: &str) -> Option<Bytes> {
        if !self.can_answer() {
            return None;
        }
        let req = self.message()?;
        let text: String = self
            .to_string()
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        let warning = format!("399 {agent} \"{text}\"");
        ResponseBuilder::new(req, self.status_code())
            .header("Warning", &warning)
            .to_bytes()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> Message {
        RequestBuilder::new(Method::Invite, &Uri::parse("sip:bob@biloxi.com").unwrap())
            .via("UDP", "pc33.atlanta.com", "z9hG4bK776asdhds", true)
            .max_forwards(70)
            .to("Bob <sip:bob@biloxi.com>")
            .from("Alice <sip:alice@atlanta.com>;tag=1928301774")
            .call_id("a84b4c76e66710@pc33.atlanta.com")
            .cseq(314159)
            .header("Contact", "<sip:alice@pc33.atlanta.com>")
            .body("application/sdp", &b"v=0\r\n"[..])
            .build()
            .unwrap()
    }

    #[test]
    fn request_builder_makes_a_valid_request() {
        let m = invite();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.cseq().unwrap().seq, 314159);
        assert_eq!(m.top_via().unwrap().rport(), Some(None));
        assert_eq!(m.content_length().unwrap(), Some(5));
        assert_eq!(&m.body()[..], b"v=0\r\n");
    }

    #[test]
    fn response_copies_the_dialog_headers_and_adds_a_tag() {
        let req = invite();
        let resp = req.response(180).to_tag(&req, "a6c85cf").build().unwrap();
        assert_eq!(resp.status(), Some(180));
        assert_eq!(resp.reason(), Some("Ringing"));
        assert_eq!(resp.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(resp.to().unwrap().tag(), Some("a6c85cf"));
        assert_eq!(resp.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(resp.call_id().unwrap(), req.call_id().unwrap());
        assert_eq!(resp.cseq().unwrap(), req.cseq().unwrap());
        resp.validate().unwrap();
    }

    #[test]
    fn auth_headers_are_parameter_maps() {
        let m = RequestBuilder::new(Method::Register, &Uri::parse("sip:example.org").unwrap())
            .via("UDP", "192.0.2.1", "z9hG4bK1", false)
            .from("<sip:a@example.org>;tag=1")
            .to("<sip:a@example.org>")
            .call_id("c")
            .cseq(2)
            .header(
                "Authorization",
                "Digest username=\"a\", realm=\"example.org\", nonce=\"n\", uri=\"sip:example.org\", response=\"r\", algorithm=SHA-256, qop=auth, nc=00000001, cnonce=\"c\"",
            )
            .build()
            .unwrap();
        let creds: Vec<_> = m.auth_headers(HeaderName::Authorization).collect();
        assert_eq!(creds.len(), 1);
        let c = creds[0].as_ref().unwrap();
        assert_eq!(c.scheme(), "Digest");
        assert_eq!(c.get("algorithm").unwrap(), "SHA-256");
        assert_eq!(c.get("username").unwrap(), "a");
        assert_eq!(m.auth_headers(HeaderName::Via).count(), 0);
    }

    #[test]
    fn a_reason_phrase_is_written_without_control_characters() {
        let req = invite();
        for (reason, line) in [
            ("OK", "SIP/2.0 200 OK"),
            ("Fine \u{e9}t\u{e9}", "SIP/2.0 200 Fine \u{e9}t\u{e9}"),
            ("O\u{1}K\r\nX: y", "SIP/2.0 200 O K  X: y"),
        ] {
            let bytes = ResponseBuilder::with_reason(&req, 200, reason)
                .to_bytes()
                .unwrap();
            let text = std::str::from_utf8(&bytes).unwrap();
            assert_eq!(text.split("\r\n").next(), Some(line), "{reason:?}");
        }
    }

    #[test]
    fn responses_to_folded_requests_unfold_the_copied_values() {
        let raw = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1,\r\n SIP/2.0/UDP g;branch=z9hG4bK2\r\n\
From: <sip:a@b>\r\n ;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1\r\n\tOPTIONS\r\nContent-Length: 0\r\n\r\n";
        let req = Message::parse(Bytes::from_static(raw)).unwrap();
        let resp = req.response(200).to_tag(&req, "t").build().unwrap();
        resp.validate().unwrap();
        assert_eq!(resp.vias().unwrap().len(), 2);
        assert_eq!(resp.from().unwrap().tag(), Some("1"));
        assert_eq!(resp.cseq().unwrap().seq, 1);
    }

    #[test]
    fn builders_refuse_header_injection() {
        let r = RequestBuilder::new(Method::Options, &Uri::parse("sip:x").unwrap())
            .header("Subject", "hi\r\nVia: evil")
            .to_bytes();
        assert!(r.is_err());
        let req = invite();
        assert!(req.response(200).header("X\r\nY", "v").to_bytes().is_err());
    }

    #[test]
    fn malformed_request_gets_a_400_with_the_reason() {
        let raw = b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let err = Message::parse(Bytes::from_static(raw)).unwrap_err();
        assert!(err.can_answer());
        let resp =
            Message::parse_lazy(err.response("habla").unwrap(), &Default::default()).unwrap();
        assert_eq!(resp.status(), Some(400));
        assert!(resp
            .header("Warning")
            .unwrap()
            .contains("CSeq method INVITE does not match request method OPTIONS"));
    }
}
