//! [`SipStr`]: a cheaply clonable, zero-copy UTF-8 string that shares the
//! buffer a message was received in.

use bytes::Bytes;
use std::fmt;
use std::ops::{Deref, Range};

/// An immutable UTF-8 string backed by [`Bytes`].
///
/// Values handed out by the parser are slices of the received datagram or
/// stream frame: cloning one is a reference-count increment, never a copy.
///
/// Invariant: the bytes are valid UTF-8. Every constructor checks it, and
/// [`SipStr::slice`] only cuts at character boundaries.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SipStr(Bytes);

impl SipStr {
    /// An empty string.
    pub const fn new() -> Self {
        SipStr(Bytes::new())
    }

    /// Wraps a static string without copying.
    pub const fn from_static(s: &'static str) -> Self {
        SipStr(Bytes::from_static(s.as_bytes()))
    }

    /// Checks `bytes` for UTF-8 and wraps it.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(SipStr(bytes))
    }

    /// Wraps `bytes` that the caller has checked to be ASCII (every octet
    /// below 0x80), hence valid UTF-8: the type's invariant rests on that
    /// check, which debug builds (tests, fuzz replays) repeat here.
    #[inline]
    pub(crate) fn from_ascii(bytes: Bytes) -> Self {
        debug_assert!(bytes.is_ascii(), "SipStr::from_ascii on non-ASCII octets");
        SipStr(bytes)
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: the invariant of this type: every constructor validates
        // UTF-8 and `slice` only cuts at char boundaries.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying shared bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// A sub-string sharing the same buffer. Out-of-range or non-boundary
    /// ranges give an empty string instead of panicking.
    #[inline]
    pub fn slice(&self, range: Range<usize>) -> SipStr {
        if self.as_str().get(range.clone()).is_some() {
            SipStr(self.0.slice(range))
        } else {
            SipStr::new()
        }
    }

    /// The sub-string `sub`, which must point into `self`, as a shared slice;
    /// a copy when it does not.
    pub fn slice_ref(&self, sub: &str) -> SipStr {
        let base = self.0.as_ptr() as usize;
        let p = sub.as_ptr() as usize;
        if p >= base && p + sub.len() <= base + self.0.len() {
            self.slice(p - base..p - base + sub.len())
        } else {
            SipStr::from(sub)
        }
    }
}

impl Deref for SipStr {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SipStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<[u8]> for SipStr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for SipStr {
    fn from(s: &str) -> Self {
        SipStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for SipStr {
    fn from(s: String) -> Self {
        SipStr(Bytes::from(s.into_bytes()))
    }
}

impl From<SipStr> for Bytes {
    fn from(s: SipStr) -> Bytes {
        s.0
    }
}

impl PartialEq<str> for SipStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SipStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for SipStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SipStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_refuses_to_split_a_character() {
        let s = SipStr::from("a\u{e9}b");
        assert_eq!(s.slice(0..1), "a");
        assert_eq!(s.slice(1..2), ""); // would cut é in half
        assert_eq!(s.slice(1..3), "\u{e9}");
        assert_eq!(s.slice(5..9), "");
    }

    #[test]
    fn slice_ref_shares_the_buffer() {
        let s = SipStr::from("hello world");
        let w = s.slice_ref(&s.as_str()[6..]);
        assert_eq!(w, "world");
        assert_eq!(w.as_bytes().as_ptr(), s.as_bytes()[6..].as_ptr());
        assert_eq!(s.slice_ref("elsewhere"), "elsewhere");
    }
}

/// A byte range inside a string that a typed value holds once: typed values
/// keep one [`SipStr`] and spans into it, so that parsing a header costs one
/// reference-count increment however many parts it has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct Sub {
    start: u32,
    end: u32,
}

impl Sub {
    /// The span of `part`, which must be a sub-slice of `base` (an empty span
    /// otherwise).
    #[inline]
    pub(crate) fn of(base: &str, part: &str) -> Sub {
        let b = base.as_ptr() as usize;
        let p = part.as_ptr() as usize;
        if p >= b && p + part.len() <= b + base.len() {
            Sub {
                start: (p - b) as u32,
                end: (p - b + part.len()) as u32,
            }
        } else {
            Sub::default()
        }
    }

    /// The span `start..end`.
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Sub {
        Sub {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The text of this span in `s` (empty if out of range).
    #[inline]
    pub(crate) fn get(self, s: &str) -> &str {
        s.get(self.start as usize..self.end as usize).unwrap_or("")
    }

    pub(crate) fn start(self) -> usize {
        self.start as usize
    }

    pub(crate) fn end(self) -> usize {
        self.end as usize
    }
}

/// A cheap hash for choosing among locks or shards (FNV-1a, 64 bits): the
/// same input always picks the same stripe. Unkeyed, so never for a table
/// keyed by what the network sends (use a keyed hasher there: crafted
/// collisions would make it quadratic); a crafted input can at worst crowd
/// one stripe. `Fnv1a::default().write(a).write(b).finish()` hashes several
/// parts.
#[derive(Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    /// `bytes` hashed in.
    pub fn write(self, bytes: &[u8]) -> Self {
        Fnv1a(bytes.iter().fold(self.0, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        }))
    }

    /// The hash, its high bits folded into the low ones (FNV's low bits
    /// alone are weak for short keys, and callers reduce modulo a small
    /// count).
    pub fn finish(self) -> u64 {
        let h = self.0;
        h ^ (h >> 29) ^ (h >> 47)
    }
}

/// A number written in decimal without the formatting machinery (for the
/// numbers written on every message: Content-Length, ports, `rport`).
#[derive(Clone, Copy)]
pub struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    /// `n` in decimal.
    pub fn new(mut n: u64) -> Decimal {
        let mut d = Decimal {
            digits: [b'0'; 20],
            start: 20,
        };
        // u64::MAX has 20 digits: `start` never goes below 0.
        loop {
            d.start -= 1;
            d.digits[d.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return d;
            }
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // ASCII digits only.
        std::str::from_utf8(&self.digits[self.start..]).unwrap_or("0")
    }
}

#[cfg(test)]
mod decimal_tests {
    use super::Decimal;

    #[test]
    fn decimal_writes_what_display_writes() {
        for n in [0, 7, 10, 99, 5060, 65_535, 1 << 40, u64::MAX] {
            assert_eq!(Decimal::new(n).as_str(), n.to_string());
        }
    }
}
