//! The line feeds of a header section, found 64 octets at a time.
//!
//! The parser needs every line end of the start line and header section
//! (RFC 3261 §7: lines end in CRLF; a lone LF is accepted too) and needs to
//! know whether the section is ASCII (so that it is a `str` without a UTF-8
//! check). One pass over blocks of 64 octets gives both: bit `i` of `lf` is
//! set when octet `i` of the block is LF, and `high` is non-zero when some
//! octet of the block is 0x80 or above (the exact positions are worked out
//! only for a block that has such an octet and holds the end of the header
//! section, where the body may begin). The lines are then taken from the
//! masks by bit arithmetic instead of a search per line, and the ASCII check
//! is an OR instead of a second pass. That needs the masks of 16 octets in
//! a few instructions (SSE2 on x86_64); other targets search each line with
//! `memchr` and check the section's octets once at the end ([`LineSearch`]).

use crate::simd::{high_mask, lf_any_high};

/// Octets per block: one bit of a `u64` each.
const BLOCK: usize = 64;

/// The octets of the block at `data[at..]`, zero past the end of `data`
/// (a zero is neither LF nor high).
#[inline]
fn with_block<R>(data: &[u8], at: usize, f: impl FnOnce(&[u8; BLOCK]) -> R) -> R {
    match data.get(at..).and_then(|b| b.first_chunk::<BLOCK>()) {
        Some(c) => f(c),
        None => {
            let mut c = [0u8; BLOCK];
            let rest = data.get(at..).unwrap_or(&[]);
            if let Some(head) = c.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            f(&c)
        }
    }
}

/// The line finder of this target.
#[cfg(target_arch = "x86_64")]
pub(crate) type Lines<'a> = LineFeeds<'a>;
/// The line finder of this target.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) type Lines<'a> = LineSearch<'a>;

/// Gives the line feeds from a starting position on, in order, from the
/// masks of 64-octet blocks.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct LineFeeds<'a> {
    data: &'a [u8],
    /// Start of the current block.
    base: usize,
    /// The LFs of the current block not given yet.
    lf: u64,
    /// Non-zero when the current block holds an octet 0x80 or above.
    high: u32,
    /// OR of the `high` of the blocks already passed.
    passed_high: u32,
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl<'a> LineFeeds<'a> {
    /// A scanner whose first block starts at `start`.
    #[inline]
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        let (lf, high) = with_block(data, start, lf_any_high);
        LineFeeds {
            data,
            base: start,
            lf,
            high,
            passed_high: 0,
        }
    }

    /// The next LF: the first one after the previous answer (the first one
    /// from the start for the first call).
    #[inline(always)]
    pub(crate) fn next_lf(&mut self) -> Option<usize> {
        if self.lf != 0 {
            let at = self.base + self.lf.trailing_zeros() as usize;
            // Clear the lowest bit: that LF is given.
            self.lf &= self.lf - 1;
            return Some(at);
        }
        self.next_block_lf()
    }

    /// The first LF of the next blocks.
    #[inline]
    fn next_block_lf(&mut self) -> Option<usize> {
        loop {
            // The current block reaches the end of the data: no more LF.
            let next = self.base + BLOCK;
            if next >= self.data.len() {
                return None;
            }
            self.passed_high |= self.high;
            self.base = next;
            (self.lf, self.high) = with_block(self.data, self.base, lf_any_high);
            if self.lf != 0 {
                let at = self.base + self.lf.trailing_zeros() as usize;
                self.lf &= self.lf - 1;
                return Some(at);
            }
        }
    }

    /// Whether every octet from the start to `end` (exclusive) is ASCII, as
    /// far as the blocks seen tell: `None` when `end` is before the current
    /// block (a passed block may then hold octets past `end`).
    #[inline]
    pub(crate) fn ascii_until(&self, end: usize) -> Option<bool> {
        let n = end.checked_sub(self.base)?;
        if self.passed_high != 0 {
            return Some(false);
        }
        if self.high == 0 || n == 0 {
            return Some(true);
        }
        // A high octet in the current block: is it before `end`?
        let high = with_block(self.data, self.base, high_mask);
        let in_block = if n < BLOCK {
            high & (u64::MAX >> (BLOCK - n))
        } else {
            high
        };
        Some(in_block == 0)
    }
}

/// [`LineFeeds`] by a `memchr` search per line, for targets without a
/// cheap 16-octet movemask; the ASCII check is one pass at the end.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) struct LineSearch<'a> {
    data: &'a [u8],
    start: usize,
    /// Where the search for the next LF starts.
    pos: usize,
}

#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
impl<'a> LineSearch<'a> {
    /// A search from `start` on.
    #[inline]
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        LineSearch {
            data,
            start,
            pos: start,
        }
    }

    /// The next LF (see [`LineFeeds::next_lf`]).
    #[inline]
    pub(crate) fn next_lf(&mut self) -> Option<usize> {
        let rest = self.data.get(self.pos..)?;
        let nl = self.pos + memchr::memchr(b'\n', rest)?;
        self.pos = nl + 1;
        Some(nl)
    }

    /// Whether every octet from the start to `end` (exclusive) is ASCII.
    #[inline]
    pub(crate) fn ascii_until(&self, end: usize) -> Option<bool> {
        Some(
            self.data
                .get(self.start..end.max(self.start))
                .unwrap_or(&[])
                .iter()
                .fold(0u8, |acc, &c| acc | c)
                < 0x80,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_feeds_in_order_and_ascii() {
        let mut seed = 11u64;
        for round in 0..3000 {
            // No high octet, some, or rare ones.
            let high_rate = [0, 40, 400][round % 3];
            crate::scan::test_lcg::step(&mut seed);
            let len = (seed >> 40) as usize % 300;
            let mut data = Vec::with_capacity(len);
            for _ in 0..len {
                crate::scan::test_lcg::step(&mut seed);
                let r = (seed >> 33) as usize % 40;
                data.push(match r {
                    _ if high_rate > 0 && (seed >> 12) % high_rate == 0 => 0xc3,
                    0..=2 => b'\n',
                    4 => b'\r',
                    _ => b'a' + (r as u8 % 26),
                });
            }
            let start = if len > 0 {
                (seed >> 20) as usize % len
            } else {
                0
            };
            let mut lines = LineFeeds::new(&data, start);
            let mut search = LineSearch::new(&data, start);
            let mut pos = start;
            loop {
                let want = data[pos.min(data.len())..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map(|i| pos + i);
                assert_eq!(lines.next_lf(), want);
                assert_eq!(search.next_lf(), want);
                let Some(nl) = want else { break };
                pos = nl + 1;
                for end in [pos, pos.saturating_sub(1), nl.saturating_sub(3)] {
                    let expected = data[start..end.max(start)].is_ascii();
                    if let Some(ascii) = lines.ascii_until(end) {
                        assert_eq!(ascii, expected);
                    }
                    assert_eq!(search.ascii_until(end), Some(expected));
                }
            }
            if let Some(ascii) = lines.ascii_until(data.len()) {
                assert_eq!(ascii, data[start..].is_ascii());
            }
        }
    }
}
