//! G.711 companding (ITU-T G.711, 11/1988): µ-law (PCMU, RTP payload type 0)
//! and A-law (PCMA, payload type 8), RFC 3551 §4.5.14.
//!
//! The arithmetic follows the ITU-T reference implementation shipped with the
//! Software Tool Library (ITU-T G.191, `g711.c`: `ulaw_compress`,
//! `ulaw_expand`, `alaw_compress`, `alaw_expand`) applied to 16-bit linear
//! samples: µ-law works on the 14 most significant bits, A-law on the 13 most
//! significant bits, and decoded values are returned left-justified in 16
//! bits. Decoding is exact to G.711 Tables 1a/2a (µ-law) and 1b/2b (A-law).
//!
//! Every function is total: all 65 536 linear inputs and all 256 codes are
//! valid, nothing panics.

/// Bias added to the µ-law magnitude before segment search (G.711 Table 2a:
/// the decision values are offset by 33 in 14-bit units, i.e. 132 in 16-bit).
const ULAW_BIAS: i32 = 33;
/// Largest biased 14-bit µ-law magnitude (G.191 `ulaw_compress` clip).
const ULAW_CLIP: i32 = 0x1FFF;

/// Encodes one 16-bit linear sample to a µ-law code (G.711 §3, Table 2a).
///
/// Negative samples use the one's complement (G.191 `ulaw_compress`), so
/// `-1` and `0` both fall into the smallest quantisation interval of their
/// sign. The returned code is already bit-inverted as transmitted on the
/// line (G.711 §3: "all bits inverted").
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    // Magnitude in 14-bit units plus the bias; one's complement for negatives.
    let magnitude = if s < 0 { (!s) >> 2 } else { s >> 2 } + ULAW_BIAS;
    let magnitude = magnitude.min(ULAW_CLIP);
    // Segment number 1..=8: position of the leading one above bit 5.
    let mut segment = 1;
    let mut i = magnitude >> 6;
    while i != 0 {
        segment += 1;
        i >>= 1;
    }
    let high_nibble = 0x08 - segment;
    let low_nibble = 0x0F - ((magnitude >> segment) & 0x0F);
    let mut code = (high_nibble << 4) | low_nibble;
    if s >= 0 {
        code |= 0x80;
    }
    code as u8
}

/// Decodes one µ-law code to a 16-bit linear sample (G.711 Table 2a, the
/// decoder output values, scaled to 16 bits as G.191 `ulaw_expand` does).
///
/// The extremes are ±32124; codes `0x7F` and `0xFF` both decode to 0.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    let sign = if code < 0x80 { -1 } else { 1 };
    let inverted = i32::from(!code);
    let exponent = (inverted >> 4) & 0x07;
    let mantissa = inverted & 0x0F;
    let step = 4 << (exponent + 1);
    let magnitude = (0x80 << exponent) + step * mantissa + step / 2 - 4 * ULAW_BIAS;
    (sign * magnitude) as i16
}

/// Encodes one 16-bit linear sample to an A-law code (G.711 §2, Table 1a),
/// with the even bits inverted as transmitted on the line (G.711 §2: "even
/// bits inverted", XOR 0x55).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    let s = i32::from(sample);
    // 12-bit magnitude; one's complement for negatives (G.191 `alaw_compress`).
    let mut ix = if s < 0 { (!s) >> 4 } else { s >> 4 };
    if ix > 15 {
        let mut exponent = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exponent += 1;
        }
        ix -= 16; // drop the implicit leading one
        ix += exponent << 4;
    }
    if s >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

/// Decodes one A-law code to a 16-bit linear sample (G.711 Table 1b decoder
/// output values, scaled to 16 bits as G.191 `alaw_expand` does).
///
/// The extremes are ±32256; the smallest magnitudes are ±8 (codes `0xD5`
/// and `0x55`). A-law has no zero code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    let ix = i32::from(code ^ 0x55) & 0x7F;
    let exponent = ix >> 4;
    let mut mantissa = ix & 0x0F;
    if exponent > 0 {
        mantissa += 16; // restore the implicit leading one
    }
    mantissa = (mantissa << 4) + 0x08; // middle of the interval
    if exponent > 1 {
        mantissa <<= exponent - 1;
    }
    if code > 127 {
        mantissa as i16
    } else {
        -mantissa as i16
    }
}

/// The G.711 law of a stream, as named by its RTP payload format
/// (RFC 3551 §4.5.14: PCMU is µ-law, PCMA is A-law).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// µ-law, RTP static payload type 0.
    Pcmu,
    /// A-law, RTP static payload type 8.
    Pcma,
}

impl G711 {
    /// The static RTP payload type (RFC 3551 Table 4).
    pub fn payload_type(self) -> u8 {
        match self {
            G711::Pcmu => 0,
            G711::Pcma => 8,
        }
    }

    /// The law for a static payload type, if it is 0 or 8.
    pub fn from_payload_type(pt: u8) -> Option<G711> {
        match pt {
            0 => Some(G711::Pcmu),
            8 => Some(G711::Pcma),
            _ => None,
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode_sample(self, sample: i16) -> u8 {
        match self {
            G711::Pcmu => ulaw_encode(sample),
            G711::Pcma => alaw_encode(sample),
        }
    }

    /// Decodes one code.
    #[inline]
    pub fn decode_sample(self, code: u8) -> i16 {
        match self {
            G711::Pcmu => ulaw_decode(code),
            G711::Pcma => alaw_decode(code),
        }
    }

    /// Encodes a frame of samples, appending one octet per sample to `out`.
    pub fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        out.reserve(samples.len());
        out.extend(samples.iter().map(|&s| self.encode_sample(s)));
    }

    /// Decodes a payload, appending one sample per octet to `out`.
    pub fn decode(self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len());
        out.extend(payload.iter().map(|&c| self.decode_sample(c)));
    }

    /// The code a silent sample (linear 0) encodes to: 0xFF for µ-law,
    /// 0xD5 for A-law.
    pub fn silence_code(self) -> u8 {
        self.encode_sample(0)
    }
}
