//! The bindings of one address-of-record as one value: the `bindings`
//! column of the `registrations` table.
//!
//! One row per AOR, its bindings encoded together, costs SQLite less than
//! a row per binding: a REGISTER writes one row of three columns instead
//! of one row of nine (~4.5k instructions less per write, callgrind, with
//! 10,000 AORs). The encoding is versioned and read defensively: a value
//! that does not decode (a damaged file, a newer version) is skipped, never
//! a panic.
//!
//! Version 1, integers little-endian:
//!
//! ```text
//! u8  version (1)
//! u32 number of bindings, then for each:
//!     text contact, u16 q, u64 expires_at, text call_id, u32 cseq,
//!     u32 number of Path values, each a text,
//!     option source, option user_agent
//! text   = u32 length, UTF-8 octets
//! option = u8 0 (none) | u8 1, text
//! ```

use habla_registrar::Binding;
use std::sync::Arc;

const VERSION: u8 = 1;

/// Appends the encoding of `bindings` to `out`.
pub(crate) fn encode(bindings: &[Binding], out: &mut Vec<u8>) {
    out.push(VERSION);
    put_count(out, bindings.len());
    for b in bindings {
        put_text(out, &b.contact);
        out.extend_from_slice(&b.q.to_le_bytes());
        out.extend_from_slice(&b.expires_at.to_le_bytes());
        put_text(out, &b.call_id);
        out.extend_from_slice(&b.cseq.to_le_bytes());
        put_count(out, b.path.len());
        for p in b.path.iter() {
            put_text(out, p);
        }
        put_option(out, b.source.as_deref());
        put_option(out, b.user_agent.as_deref());
    }
}

/// The bindings `encode` wrote, or `None` if `data` is not such a value.
pub(crate) fn decode(data: &[u8]) -> Option<Vec<Binding>> {
    let mut r = Reader { data };
    if r.u8()? != VERSION {
        return None;
    }
    let count = r.u32()?;
    // Each binding takes at least 28 octets: no allocation beyond what
    // the value can hold.
    let mut bindings = Vec::with_capacity(count.min(data.len() / 28));
    for _ in 0..count {
        let contact = r.text()?;
        let q = u16::from_le_bytes(r.array()?);
        let expires_at = u64::from_le_bytes(r.array()?);
        let call_id = r.text()?;
        let cseq = u32::from_le_bytes(r.array()?);
        let paths = r.u32()?;
        let mut path = Vec::with_capacity(paths.min(r.data.len() / 4));
        for _ in 0..paths {
            path.push(r.text()?);
        }
        let source = r.option()?;
        let user_agent = r.option()?;
        bindings.push(Binding {
            contact,
            q: q.min(1000),
            expires_at,
            call_id,
            cseq,
            path: path.into(),
            source,
            user_agent,
        });
    }
    r.data.is_empty().then_some(bindings)
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    // Bounded by the registrar's limits, far below u32::MAX.
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_option(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            put_text(out, t);
        }
    }
}

struct Reader<'a> {
    data: &'a [u8],
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    fn text(&mut self) -> Option<Arc<str>> {
        let len = self.u32()?;
        std::str::from_utf8(self.take(len)?).ok().map(Arc::from)
    }

    fn option(&mut self) -> Option<Option<Arc<str>>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.text().map(Some),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Binding> {
        vec![
            Binding {
                contact: "sip:alice@192.0.2.4:5060;ob".into(),
                q: 1000,
                expires_at: 1_800_003_600,
                call_id: "a84b4c76e66710@pc33".into(),
                cseq: 314_159,
                path: Arc::from(vec![
                    Arc::from("<sip:edge1.example.org;lr>"),
                    Arc::from("<sip:edge2.example.org;lr>"),
                ]),
                source: Some("udp:192.0.2.1:5060->198.51.100.7:40000".into()),
                user_agent: Some("phone/1.0 (é)".into()),
            },
            Binding {
                contact: "sip:alice@[2001:db8::1]".into(),
                q: 500,
                expires_at: 1_800_000_060,
                call_id: "x".into(),
                cseq: u32::MAX,
                path: Arc::from(Vec::new()),
                source: None,
                user_agent: None,
            },
        ]
    }

    #[test]
    fn bindings_come_back_as_they_were_written() {
        for set in [sample(), Vec::new()] {
            let mut value = Vec::new();
            encode(&set, &mut value);
            assert_eq!(decode(&value), Some(set));
        }
    }

    /// A damaged value is refused, whatever the damage: cut anywhere,
    /// grown, or any one octet changed (checked not to panic).
    #[test]
    fn a_damaged_value_is_refused_without_panic() {
        let mut value = Vec::new();
        encode(&sample(), &mut value);
        for cut in 0..value.len() {
            assert_eq!(decode(&value[..cut]), None, "cut at {cut}");
        }
        let mut longer = value.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        let mut other = value.clone();
        other[0] = 2;
        assert_eq!(decode(&other), None, "unknown version");
        for at in 0..value.len() {
            for x in [0x01, 0x80, 0xff] {
                let mut v = value.clone();
                v[at] ^= x;
                let _ = decode(&v);
            }
        }
    }
}
