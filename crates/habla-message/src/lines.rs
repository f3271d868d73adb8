//! The line feeds of a header section, found 64 octets at a time.
//!
//! The parser needs every line end of the start line and header section
//! (RFC 3261 §7: lines end in CRLF; a lone LF is accepted too) and needs to
//! know whether the section is ASCII (so that it is a `str` without a UTF-8
//! check). One pass over blocks of 64 octets gives both as bit masks: bit
//! `i` of `lf` is set when octet `i` of the block is LF, bit `i` of `high`
//! when it is 0x80 or above. The lines are then found from the masks by bit
//! arithmetic instead of a search per line, and the ASCII check is an OR of
//! masks instead of a second pass.

/// Octets per block: one bit of a `u64` each.
const BLOCK: usize = 64;

/// The masks of the block at `data[at..]`: LF positions and non-ASCII
/// positions. Octets past the end of `data` count as neither.
#[inline]
fn block_masks(data: &[u8], at: usize) -> (u64, u64) {
    match data
        .get(at..at.saturating_add(BLOCK))
        .and_then(|b| <&[u8; BLOCK]>::try_from(b).ok())
    {
        Some(c) => masks(c),
        None => {
            // The last, partial block: zeros are neither LF nor high.
            let mut c = [0u8; BLOCK];
            let rest = data.get(at..).unwrap_or(&[]);
            if let Some(head) = c.get_mut(..rest.len()) {
                head.copy_from_slice(rest);
            }
            masks(&c)
        }
    }
}

/// The LF and high-bit masks of 64 octets, with SSE2 (part of every
/// x86_64 CPU): a compare and two `pmovmskb` per 16 octets.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn masks(c: &[u8; BLOCK]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    let mut lf = 0u64;
    let mut high = 0u64;
    for (k, chunk) in c.chunks_exact(16).enumerate() {
        // SAFETY: SSE2 is in the x86_64 baseline, so these instructions
        // exist on every CPU this code is compiled for; `_mm_loadu_si128`
        // reads the 16 octets of `chunk` (`chunks_exact(16)` gives exactly
        // 16) and has no alignment requirement. Nothing else is unsafe.
        let (l, h) = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let nl = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
            (_mm_movemask_epi8(nl), _mm_movemask_epi8(v))
        };
        // `pmovmskb` sets only the low 16 bits.
        lf |= u64::from(l as u16) << (16 * k);
        high |= u64::from(h as u16) << (16 * k);
    }
    (lf, high)
}

/// The same masks by word arithmetic, for other targets.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn masks(c: &[u8; BLOCK]) -> (u64, u64) {
    masks_swar(c)
}

/// [`masks`] eight octets at a time without SIMD instructions: the exact
/// zero-octet test on `w ^ LF` (no borrow crosses octets), then the high
/// bit of each octet gathered into eight bits by one multiplication.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn masks_swar(c: &[u8; BLOCK]) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Moves bit 7 of octet k to bit 56 + k (no two partial products meet).
    const GATHER: u64 = 0x0102_0408_1020_4080;
    let gather = |m: u64| ((m >> 7) & ONES).wrapping_mul(GATHER) >> 56;
    let mut lf = 0u64;
    let mut high = 0u64;
    for (k, chunk) in c.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let w = u64::from_le_bytes(b);
        let x = w ^ (u64::from(b'\n') * ONES);
        let zero = !(((x & !HIGH) + !HIGH) | x) & HIGH;
        lf |= gather(zero) << (8 * k);
        high |= gather(w & HIGH) << (8 * k);
    }
    (lf, high)
}

/// Finds line feeds in order, from a starting position on.
pub(crate) struct LineFeeds<'a> {
    data: &'a [u8],
    /// Start of the current block.
    base: usize,
    lf: u64,
    high: u64,
    /// OR of the `high` masks of the blocks already passed.
    passed_high: u64,
}

impl<'a> LineFeeds<'a> {
    /// A scanner whose first block starts at `start`.
    #[inline]
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        let (lf, high) = block_masks(data, start);
        LineFeeds {
            data,
            base: start,
            lf,
            high,
            passed_high: 0,
        }
    }

    /// The first LF at or after `pos`, which is at least one past the
    /// previous answer (lines are taken in order): in the current block or a
    /// later one.
    #[inline]
    pub(crate) fn next_lf(&mut self, pos: usize) -> Option<usize> {
        loop {
            // Positions before the block count from its start.
            let off = pos.saturating_sub(self.base);
            if off < BLOCK {
                let m = self.lf & (u64::MAX << off);
                if m != 0 {
                    return Some(self.base + m.trailing_zeros() as usize);
                }
            }
            // The current block reaches the end of the data: no more LF.
            if self.data.len().saturating_sub(self.base) <= BLOCK {
                return None;
            }
            self.passed_high |= self.high;
            self.base += BLOCK;
            (self.lf, self.high) = block_masks(self.data, self.base);
        }
    }

    /// Whether every octet from the start to `end` (exclusive) is ASCII, as
    /// far as the blocks seen tell: `None` when `end` is before the current
    /// block (a passed block may then hold octets past `end`).
    #[inline]
    pub(crate) fn ascii_until(&self, end: usize) -> Option<bool> {
        let n = end.checked_sub(self.base)?;
        let in_block = match n {
            0 => 0,
            1..BLOCK => self.high & (u64::MAX >> (BLOCK - n)),
            _ => self.high,
        };
        Some(self.passed_high | in_block == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(c: &[u8; BLOCK]) -> (u64, u64) {
        let mut lf = 0;
        let mut high = 0;
        for (i, &b) in c.iter().enumerate() {
            lf |= u64::from(b == b'\n') << i;
            high |= u64::from(b >= 0x80) << i;
        }
        (lf, high)
    }

    #[test]
    fn masks_match_the_octets() {
        let mut seed = 7u64;
        let alphabet = [b'\n', b'\r', b'a', 0x0b, 0x09, 0x00, 0x80, 0xff, 0x8a, 0x7f];
        for round in 0..5000 {
            let mut c = [0u8; BLOCK];
            for b in c.iter_mut() {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = if round % 2 == 0 {
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                } else {
                    (seed >> 56) as u8
                };
            }
            assert_eq!(masks(&c), reference(&c), "{c:?}");
            assert_eq!(masks_swar(&c), reference(&c), "{c:?}");
        }
        for v in 0..=255u8 {
            let c = [v; BLOCK];
            assert_eq!(masks(&c), reference(&c), "{v}");
            assert_eq!(masks_swar(&c), reference(&c), "{v}");
        }
    }

    #[test]
    fn line_feeds_in_order_and_ascii() {
        let mut seed = 11u64;
        for _ in 0..3000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = (seed >> 40) as usize % 300;
            let mut data = Vec::with_capacity(len);
            for _ in 0..len {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let r = (seed >> 33) as usize % 40;
                data.push(match r {
                    0..=2 => b'\n',
                    3 => 0xc3,
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
            let mut pos = start;
            loop {
                let want = data[pos.min(data.len())..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map(|i| pos + i);
                assert_eq!(lines.next_lf(pos), want);
                let Some(nl) = want else { break };
                pos = nl + 1;
                for end in [pos, pos.saturating_sub(1), nl.saturating_sub(3)] {
                    if let Some(ascii) = lines.ascii_until(end) {
                        assert_eq!(ascii, data[start..end.max(start)].is_ascii());
                    }
                }
            }
            if let Some(ascii) = lines.ascii_until(data.len()) {
                assert_eq!(ascii, data[start..].is_ascii());
            }
        }
    }
}
