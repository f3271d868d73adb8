//! Classifying 16 or 64 octets at once: the only `unsafe` code of the
//! parser besides [`crate::SipStr::as_str`].
//!
//! On x86_64 the masks come from SSE2, which every x86_64 CPU has (it is
//! part of the architecture's baseline, so no run-time detection is
//! needed): an unaligned 16-octet load, byte compares and `pmovmskb`, which
//! gathers one bit per octet. The `unsafe` blocks below only call these
//! intrinsics on the octets of an array reference of the right length; the
//! load has no alignment requirement. Other targets get the same masks from
//! portable code, compiled and tested on every target; their parser does
//! not call these functions, though (without a cheap movemask the octet
//! searches of `lines.rs` and `scan.rs` are faster there).

/// Bit `i` set when octet `i` is LF; and non-zero when some octet is not
/// ASCII (0x80 or above), without saying which ([`high_mask`] does).
#[inline(always)]
pub(crate) fn lf_any_high(c: &[u8; 64]) -> (u64, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8, _mm_setzero_si128,
        };
        let mut lf = 0u64;
        // SAFETY: SSE2 is in the x86_64 baseline; register arithmetic.
        let mut any = unsafe { _mm_setzero_si128() };
        for (k, chunk) in c.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is in the x86_64 baseline; `_mm_loadu_si128`
            // reads the 16 octets of `chunk` (`chunks_exact(16)`), unaligned
            // loads being allowed. The rest is register arithmetic.
            let l = unsafe {
                let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
                // The high bits of the OR of the chunks: some octet is high.
                any = _mm_or_si128(any, v);
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)))
            };
            // `pmovmskb` sets only the low 16 bits.
            lf |= u64::from(l as u16) << (16 * k);
        }
        // SAFETY: SSE2 is in the x86_64 baseline; register arithmetic.
        let h = unsafe { _mm_movemask_epi8(any) };
        (lf, h as u32)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let (lf, high) = lf_high_masks_portable(c);
        (lf, u32::from(high != 0))
    }
}

/// Bit `i` set when octet `i` is not ASCII (0x80 or above).
#[inline]
pub(crate) fn high_mask(c: &[u8; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8};
        let mut high = 0u64;
        for (k, chunk) in c.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is in the x86_64 baseline; `_mm_loadu_si128`
            // reads the 16 octets of `chunk` (`chunks_exact(16)`), unaligned
            // loads being allowed.
            let h = unsafe { _mm_movemask_epi8(_mm_loadu_si128(chunk.as_ptr().cast::<__m128i>())) };
            high |= u64::from(h as u16) << (16 * k);
        }
        high
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        lf_high_masks_portable(c).1
    }
}

/// The LF and non-ASCII masks (as [`lf_any_high`] and [`high_mask`]) eight
/// octets at a time without SIMD instructions: the
/// exact zero-octet test on `w ^ LF` (no borrow crosses octets), then the
/// high bit of each octet gathered into eight bits by one multiplication.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn lf_high_masks_portable(c: &[u8; 64]) -> (u64, u64) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Moves bit 0 of octet k to bit 56 + k (no two partial products meet).
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

/// Bit `i` set when octet `i` is a host name character (RFC 3261 §25.1
/// `hostname`: alphanumeric, '-', '.', '_'), and bit `i` set when it is
/// '.'.
#[inline(always)]
pub(crate) fn host_masks(c: &[u8; 16]) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
            _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86_64 baseline; `_mm_loadu_si128` reads
        // the 16 octets of `c`, unaligned loads being allowed. The rest is
        // register arithmetic.
        let (host, dots) = unsafe {
            let v = _mm_loadu_si128(c.as_ptr().cast::<__m128i>());
            // `lo..=hi` as a signed compare: x - lo + 0x80 maps the range
            // onto -128..=-128 + (hi - lo), one to one on all 256 octets.
            let in_range = |x: __m128i, lo: u8, hi: u8| {
                let t = _mm_add_epi8(x, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
                _mm_cmplt_epi8(t, _mm_set1_epi8((0x80u8 + (hi - lo) + 1) as i8))
            };
            // Setting 0x20 lowers a letter's case, and makes a letter of no
            // other octet.
            let letter = in_range(_mm_or_si128(v, _mm_set1_epi8(0x20)), b'a', b'z');
            let digit = in_range(v, b'0', b'9');
            let dash_dot = in_range(v, b'-', b'.');
            let dot = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8));
            let underscore = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'_' as i8));
            let host = _mm_or_si128(
                _mm_or_si128(letter, digit),
                _mm_or_si128(dash_dot, underscore),
            );
            (_mm_movemask_epi8(host), _mm_movemask_epi8(dot))
        };
        (u32::from(host as u16), u32::from(dots as u16))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        host_masks_portable(c)
    }
}

/// [`host_masks`] one octet at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn host_masks_portable(c: &[u8; 16]) -> (u32, u32) {
    let mut host = 0u32;
    let mut dots = 0u32;
    for (i, &x) in c.iter().enumerate() {
        host |= u32::from(x.is_ascii_alphanumeric() || matches!(x, b'-' | b'.' | b'_')) << i;
        dots |= u32::from(x == b'.') << i;
    }
    (host, dots)
}

/// Bit `i` set when octet `i` is a `word` character (RFC 3261 §25.1, the
/// Call-ID's), and bit `i` set when it is '@'.
#[inline(always)]
pub(crate) fn word_at_masks(c: &[u8; 16]) -> (u32, u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_add_epi8, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8,
            _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86_64 baseline; `_mm_loadu_si128` reads
        // the 16 octets of `c`, unaligned loads being allowed. The rest is
        // register arithmetic.
        let (word, at) = unsafe {
            let v = _mm_loadu_si128(c.as_ptr().cast::<__m128i>());
            let eq = |x: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(x as i8));
            // `word` is every visible character (0x21 to 0x7e) but these
            // nine: x - 0x21 + 0x80 maps 0x21..=0x7e onto -128..=-35.
            let visible = _mm_cmplt_epi8(_mm_add_epi8(v, _mm_set1_epi8(0x5f)), _mm_set1_epi8(-34));
            let not_word = _mm_or_si128(
                _mm_or_si128(
                    _mm_or_si128(eq(b'#'), eq(b'$')),
                    _mm_or_si128(eq(b'&'), eq(b',')),
                ),
                _mm_or_si128(
                    _mm_or_si128(eq(b';'), eq(b'=')),
                    _mm_or_si128(_mm_or_si128(eq(b'@'), eq(b'^')), eq(b'|')),
                ),
            );
            (
                _mm_movemask_epi8(_mm_andnot_si128(not_word, visible)),
                _mm_movemask_epi8(eq(b'@')),
            )
        };
        (u32::from(word as u16), u32::from(at as u16))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        word_at_masks_portable(c)
    }
}

/// [`word_at_masks`] one octet at a time.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
pub(crate) fn word_at_masks_portable(c: &[u8; 16]) -> (u32, u32) {
    let mut word = 0u32;
    let mut at = 0u32;
    for (i, &x) in c.iter().enumerate() {
        word |= u32::from(crate::scan::is_word(x)) << i;
        at |= u32::from(x == b'@') << i;
    }
    (word, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lf_reference(c: &[u8; 64]) -> (u64, u64) {
        let mut lf = 0;
        let mut high = 0;
        for (i, &b) in c.iter().enumerate() {
            lf |= u64::from(b == b'\n') << i;
            high |= u64::from(b >= 0x80) << i;
        }
        (lf, high)
    }

    fn host_reference(c: &[u8; 16]) -> (u32, u32) {
        let mut host = 0;
        let mut dots = 0;
        for (i, &b) in c.iter().enumerate() {
            host |= u32::from(crate::scan::is(b, crate::scan::class::HOSTNAME)) << i;
            dots |= u32::from(b == b'.') << i;
        }
        (host, dots)
    }

    /// `word` from its definition in RFC 3261 §25.1, not from the table.
    fn word_at_reference(c: &[u8; 16]) -> (u32, u32) {
        let mut word = 0;
        let mut at = 0;
        for (i, &b) in c.iter().enumerate() {
            let w = b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b);
            word |= u32::from(w) << i;
            at |= u32::from(b == b'@') << i;
        }
        (word, at)
    }

    #[test]
    fn masks_match_the_octets() {
        let mut seed = 7u64;
        let alphabet = [
            b'\n', b'\r', b'a', b'z', b'A', b'Z', b'0', b'9', b'-', b'.', b'_', b'/', b'@', b'[',
            b'`', b'{', b':', b',', 0x0b, 0x09, 0x00, 0x80, 0xff, 0x8a, 0x7f, 0xc1, 0xe1, 0xad,
        ];
        for round in 0..20000 {
            let mut c = [0u8; 64];
            for b in c.iter_mut() {
                crate::scan::test_lcg::step(&mut seed);
                *b = if round % 2 == 0 {
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                } else {
                    (seed >> 56) as u8
                };
            }
            let (lf, high) = lf_reference(&c);
            assert_eq!(lf_any_high(&c).0, lf, "{c:?}");
            assert_eq!(lf_any_high(&c).1 != 0, high != 0, "{c:?}");
            assert_eq!(high_mask(&c), high, "{c:?}");
            assert_eq!(lf_high_masks_portable(&c), (lf, high), "{c:?}");
            let h: &[u8; 16] = c[..16].try_into().unwrap();
            assert_eq!(host_masks(h), host_reference(h), "{h:?}");
            assert_eq!(host_masks_portable(h), host_reference(h), "{h:?}");
            assert_eq!(word_at_masks(h), word_at_reference(h), "{h:?}");
            assert_eq!(word_at_masks_portable(h), word_at_reference(h), "{h:?}");
        }
        for v in 0..=255u8 {
            let c = [v; 64];
            let (lf, high) = lf_reference(&c);
            assert_eq!(lf_any_high(&c).0, lf, "{v}");
            assert_eq!(lf_any_high(&c).1 != 0, high != 0, "{v}");
            assert_eq!(high_mask(&c), high, "{v}");
            assert_eq!(lf_high_masks_portable(&c), (lf, high), "{v}");
            let h = [v; 16];
            assert_eq!(host_masks(&h), host_reference(&h), "{v}");
            assert_eq!(host_masks_portable(&h), host_reference(&h), "{v}");
            assert_eq!(word_at_masks(&h), word_at_reference(&h), "{v}");
            assert_eq!(word_at_masks_portable(&h), word_at_reference(&h), "{v}");
        }
    }
}
