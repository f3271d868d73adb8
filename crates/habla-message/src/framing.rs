//! Finding message boundaries in a stream (RFC 3261 §18.3) and the RFC 5626
//! §3.5.1 CRLF keep-alives between messages.

use crate::error::{Error, LimitKind};
use crate::scan::parse_u32;
use crate::{HeaderName, Limits};
use bytes::{Bytes, BytesMut};

/// What the framer found at the front of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message (header section and Content-Length octets of
    /// body), ready for [`crate::Message::parse`].
    Message(Bytes),
    /// A double-CRLF keep-alive "ping" (RFC 5626 §3.5.1); answer with CRLF.
    Ping,
    /// A single-CRLF "pong" answering our ping.
    Pong,
}

/// Splits a byte stream (TCP, TLS) into messages.
///
/// Push what the socket delivered, then call [`StreamFramer::next_frame`]
/// until it returns `Ok(None)`. An error means the framing is lost (no or
/// conflicting Content-Length, a limit hit): the connection must be closed,
/// and every later call repeats the error.
#[derive(Debug)]
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    failed: Option<Error>,
}

impl StreamFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: BytesMut::new(),
            limits,
            failed: None,
        }
    }

    /// Octets received and not yet returned as a frame. A connection that
    /// keeps a partial message here too long is a slow-loris candidate.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received octets. Refuses them once more than one maximal
    /// message is buffered (the caller did not drain frames, or the peer is
    /// sending an oversized message).
    pub fn push(&mut self, data: &[u8]) -> Result<(), Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.buf.len() + data.len() > self.limits.max_message_size.saturating_mul(2) {
            return Err(self.fail(Error::Limit {
                what: LimitKind::MessageSize,
                limit: self.limits.max_message_size,
            }));
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn fail(&mut self, e: Error) -> Error {
        self.failed = Some(e.clone());
        self.buf.clear();
        e
    }

    /// The next complete frame, `Ok(None)` if more octets are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, Error> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        // Keep-alives and stray line ends between messages (§7.5).
        loop {
            match self.buf.first() {
                Some(b'\r') => match (self.buf.get(1), self.buf.get(2), self.buf.get(3)) {
                    (Some(b'\n'), Some(b'\r'), Some(b'\n')) => {
                        let _ = self.buf.split_to(4);
                        return Ok(Some(Frame::Ping));
                    }
                    (Some(b'\n'), Some(b'\r'), None) | (None, _, _) => return Ok(None),
                    (Some(b'\n'), _, _) => {
                        let _ = self.buf.split_to(2);
                        return Ok(Some(Frame::Pong));
                    }
                    _ => {
                        let _ = self.buf.split_to(1);
                    }
                },
                Some(b'\n') => {
                    let _ = self.buf.split_to(1);
                }
                Some(_) => break,
                None => return Ok(None),
            }
        }
        let search_len = self.buf.len().min(self.limits.max_header_size + 4);
        let Some(end) = memchr::memmem::find(&self.buf[..search_len], b"\r\n\r\n") else {
            // Fail only once the whole window has arrived: a terminator
            // split across reads just past the limit must still be found
            // (the same answer whatever the chunking).
            if self.buf.len() >= self.limits.max_header_size + 4 {
                return Err(self.fail(Error::Limit {
                    what: LimitKind::HeaderSize,
                    limit: self.limits.max_header_size,
                }));
            }
            return Ok(None);
        };
        let body_start = end + 4;
        let len = match content_length(&self.buf[..end + 2]) {
            Ok(Some(n)) => n,
            Ok(None) => return Err(self.fail(Error::ContentLengthRequired)),
            Err(e) => return Err(self.fail(e)),
        };
        if len > self.limits.max_body_size {
            return Err(self.fail(Error::Limit {
                what: LimitKind::BodySize,
                limit: self.limits.max_body_size,
            }));
        }
        if self.buf.len() < body_start + len {
            return Ok(None);
        }
        Ok(Some(Frame::Message(
            self.buf.split_to(body_start + len).freeze(),
        )))
    }
}

/// Finds Content-Length (or `l`) in a header section; several lines must
/// agree.
fn content_length(head: &[u8]) -> Result<Option<usize>, Error> {
    let mut found: Option<usize> = None;
    for line in head.split(|&c| c == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue;
        }
        let name = std::str::from_utf8(&line[..colon]).unwrap_or("").trim_end();
        if HeaderName::parse(name) != HeaderName::ContentLength {
            continue;
        }
        let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or("").trim();
        let n = parse_u32(value, u32::MAX)
            .ok_or_else(|| Error::header("Content-Length", "not a non-negative number"))?
            as usize;
        if found.is_some_and(|f| f != n) {
            return Err(Error::Duplicate("Content-Length"));
        }
        found = Some(n);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:x SIP/2.0\r\nl: 4\r\n\r\nbody";

    fn frames(f: &mut StreamFramer) -> Vec<Frame> {
        let mut v = Vec::new();
        while let Some(fr) = f.next_frame().unwrap() {
            v.push(fr);
        }
        v
    }

    #[test]
    fn messages_and_keepalives_in_any_chunking() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(MSG);
        stream.extend_from_slice(b"\r\n\r\n");
        for chunk in 1..stream.len() {
            let mut f = StreamFramer::new(Limits::default());
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                f.push(c).unwrap();
                got.extend(frames(&mut f));
            }
            let msgs: Vec<_> = got
                .iter()
                .filter(|f| matches!(f, Frame::Message(_)))
                .collect();
            assert_eq!(msgs.len(), 2, "chunk {chunk}");
            assert_eq!(msgs[0], &Frame::Message(Bytes::from_static(MSG)));
        }
    }

    #[test]
    fn missing_or_conflicting_length_loses_framing() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n").unwrap();
        assert_eq!(f.next_frame(), Err(Error::ContentLengthRequired));
        assert!(f.push(b"more").is_err(), "stays failed");
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 13\r\nl: 5\r\n\r\n")
            .unwrap();
        assert!(f.next_frame().is_err());
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -999\r\n\r\n")
            .unwrap();
        assert!(f.next_frame().is_err());
    }

    #[test]
    fn a_terminator_split_just_past_the_header_limit_is_found() {
        // Regression (fuzz/regressions/framing): the end of the header
        // section straddles the limit; a read that stops inside it must
        // not fail the stream.
        let limits = Limits {
            max_header_size: 40,
            ..Limits::default()
        };
        let mut head = b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\nX: ".to_vec();
        head.resize(38, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        let mut f = StreamFramer::new(limits);
        f.push(&head[..41]).unwrap();
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&head[41..]).unwrap();
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Message(_)))));
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits {
            max_header_size: 64,
            max_body_size: 10,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(&[b'a'; 100]).unwrap();
        assert!(matches!(f.next_frame(), Err(Error::Limit { .. })));
        let mut f = StreamFramer::new(limits);
        f.push(b"OPTIONS sip:x SIP/2.0\r\nl: 11\r\n\r\n").unwrap();
        assert!(matches!(f.next_frame(), Err(Error::Limit { .. })));
    }
}
