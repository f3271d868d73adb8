//! G.711 against the published decode tables (the values of the ITU-T G.191
//! STL `g711.c` expanders, also CPython `audioop` and the classic Sun
//! tables), plus the properties the standard implies.

use habla_media::g711::{alaw_decode, alaw_encode, ulaw_decode, ulaw_encode, G711};

/// µ-law codes 0x00..=0x7F (negative half); 0x80..=0xFF are the negations.
const ULAW_NEGATIVE: [i16; 128] = [
    -32124, -31100, -30076, -29052, -28028, -27004, -25980, -24956, -23932, -22908, -21884, -20860,
    -19836, -18812, -17788, -16764, -15996, -15484, -14972, -14460, -13948, -13436, -12924, -12412,
    -11900, -11388, -10876, -10364, -9852, -9340, -8828, -8316, -7932, -7676, -7420, -7164, -6908,
    -6652, -6396, -6140, -5884, -5628, -5372, -5116, -4860, -4604, -4348, -4092, -3900, -3772,
    -3644, -3516, -3388, -3260, -3132, -3004, -2876, -2748, -2620, -2492, -2364, -2236, -2108,
    -1980, -1884, -1820, -1756, -1692, -1628, -1564, -1500, -1436, -1372, -1308, -1244, -1180,
    -1116, -1052, -988, -924, -876, -844, -812, -780, -748, -716, -684, -652, -620, -588, -556,
    -524, -492, -460, -428, -396, -372, -356, -340, -324, -308, -292, -276, -260, -244, -228, -212,
    -196, -180, -164, -148, -132, -120, -112, -104, -96, -88, -80, -72, -64, -56, -48, -40, -32,
    -24, -16, -8, 0,
];

/// A-law codes 0x00..=0x7F (negative half); 0x80..=0xFF are the negations.
const ALAW_NEGATIVE: [i16; 128] = [
    -5504, -5248, -6016, -5760, -4480, -4224, -4992, -4736, -7552, -7296, -8064, -7808, -6528,
    -6272, -7040, -6784, -2752, -2624, -3008, -2880, -2240, -2112, -2496, -2368, -3776, -3648,
    -4032, -3904, -3264, -3136, -3520, -3392, -22016, -20992, -24064, -23040, -17920, -16896,
    -19968, -18944, -30208, -29184, -32256, -31232, -26112, -25088, -28160, -27136, -11008, -10496,
    -12032, -11520, -8960, -8448, -9984, -9472, -15104, -14592, -16128, -15616, -13056, -12544,
    -14080, -13568, -344, -328, -376, -360, -280, -264, -312, -296, -472, -456, -504, -488, -408,
    -392, -440, -424, -88, -72, -120, -104, -24, -8, -56, -40, -216, -200, -248, -232, -152, -136,
    -184, -168, -1376, -1312, -1504, -1440, -1120, -1056, -1248, -1184, -1888, -1824, -2016, -1952,
    -1632, -1568, -1760, -1696, -688, -656, -752, -720, -560, -528, -624, -592, -944, -912, -1008,
    -976, -816, -784, -880, -848,
];

#[test]
fn ulaw_decode_matches_the_reference_table_for_all_256_codes() {
    for code in 0..=255u8 {
        let i = usize::from(code & 0x7F);
        let expected = if code < 0x80 {
            ULAW_NEGATIVE[i]
        } else {
            -ULAW_NEGATIVE[i]
        };
        assert_eq!(ulaw_decode(code), expected, "µ-law code {code:#04x}");
    }
    assert_eq!(ulaw_decode(0x00), -32124);
    assert_eq!(ulaw_decode(0x80), 32124);
    assert_eq!(ulaw_decode(0x7F), 0);
    assert_eq!(ulaw_decode(0xFF), 0);
}

#[test]
fn alaw_decode_matches_the_reference_table_for_all_256_codes() {
    for code in 0..=255u8 {
        let i = usize::from(code & 0x7F);
        let expected = if code < 0x80 {
            ALAW_NEGATIVE[i]
        } else {
            -ALAW_NEGATIVE[i]
        };
        assert_eq!(alaw_decode(code), expected, "A-law code {code:#04x}");
    }
    assert_eq!(alaw_decode(0xD5), 8);
    assert_eq!(alaw_decode(0x55), -8);
    assert_eq!(alaw_decode(0xAA), 32256);
    assert_eq!(alaw_decode(0x2A), -32256);
}

#[test]
fn encoding_a_decoded_value_gives_the_code_back() {
    for code in 0..=255u8 {
        // A-law has no negative zero: every code round-trips.
        assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        // µ-law 0x7F ("-0") decodes to 0, which encodes as 0xFF ("+0").
        let expected = if code == 0x7F { 0xFF } else { code };
        assert_eq!(
            ulaw_encode(ulaw_decode(code)),
            expected,
            "µ-law {code:#04x}"
        );
    }
}

#[test]
fn decoding_is_monotonic_in_the_quantisation_order() {
    // Order codes by their meaning: sign, then segment and step. For µ-law a
    // larger inverted magnitude is a smaller value; for A-law even bits are
    // inverted before the order is visible.
    let ulaw_order: Vec<i16> = (0..=0x7Fu8)
        .chain((0x80..=0xFFu8).rev())
        .map(ulaw_decode)
        .collect();
    assert!(
        ulaw_order.windows(2).all(|w| w[0] <= w[1]),
        "{ulaw_order:?}"
    );
    let alaw_order: Vec<i16> = (0..=0x7Fu8)
        .rev()
        .chain(0x80..=0xFFu8)
        .map(|m| alaw_decode(m ^ 0x55))
        .collect();
    assert!(alaw_order.windows(2).all(|w| w[0] < w[1]), "{alaw_order:?}");
    // Encoding is monotonic too: a larger input never decodes to less.
    let mut prev = (i16::MIN, i16::MIN);
    for x in i16::MIN..=i16::MAX {
        let now = (ulaw_decode(ulaw_encode(x)), alaw_decode(alaw_encode(x)));
        assert!(now.0 >= prev.0 && now.1 >= prev.1, "at {x}");
        prev = now;
    }
}

#[test]
fn quantisation_error_is_within_half_a_step() {
    for x in i16::MIN..=i16::MAX {
        let u = ulaw_decode(ulaw_encode(x));
        let a = alaw_decode(alaw_encode(x));
        let ax = i32::from(x);
        // µ-law steps reach 1024 in the top segment (G.711 Table 2a), A-law 1024 too.
        let clip_u = ax.clamp(-32124 - 512, 32124 + 512);
        assert!((i32::from(u) - clip_u).abs() <= 512, "µ-law {x} -> {u}");
        let clip_a = ax.clamp(-32256 - 512, 32256 + 512);
        assert!((i32::from(a) - clip_a).abs() <= 512, "A-law {x} -> {a}");
    }
}

#[test]
fn boundary_linear_values_encode_as_the_standard_says() {
    // Silence.
    assert_eq!(ulaw_encode(0), 0xFF);
    assert_eq!(ulaw_encode(-1), 0x7F);
    assert_eq!(alaw_encode(0), 0xD5);
    assert_eq!(alaw_encode(-1), 0x55);
    // Full scale clips to the outermost codes.
    assert_eq!(ulaw_encode(i16::MAX), 0x80);
    assert_eq!(ulaw_encode(i16::MIN), 0x00);
    assert_eq!(alaw_encode(i16::MAX), 0xAA);
    assert_eq!(alaw_encode(i16::MIN), 0x2A);
    // µ-law first segment boundary: 14-bit magnitude 31 (+33 bias = 64)
    // moves from segment 0 to 1 (G.711 Table 2a decision value 31).
    assert_eq!(ulaw_encode(30 * 4) & 0x70, 0x70);
    assert_eq!(ulaw_encode(31 * 4) & 0x70, 0x60);
    // A-law: 12-bit magnitude 31 is the top of segments 0/1 (step 2 in 13
    // bits), 32 starts segment 2 (G.711 Table 1a).
    assert_eq!((alaw_encode(31 * 16) ^ 0x55) & 0x70, 0x10);
    assert_eq!((alaw_encode(32 * 16) ^ 0x55) & 0x70, 0x20);
    assert_eq!((alaw_encode(15 * 16) ^ 0x55) & 0x70, 0x00);
}

#[test]
fn frame_helpers_and_payload_types() {
    let samples: Vec<i16> = (0..160).map(|i| (i * 200 - 16000) as i16).collect();
    for law in [G711::Pcmu, G711::Pcma] {
        let mut enc = Vec::new();
        law.encode(&samples, &mut enc);
        assert_eq!(enc.len(), 160);
        let mut dec = Vec::new();
        law.decode(&enc, &mut dec);
        assert_eq!(dec.len(), 160);
        assert_eq!(G711::from_payload_type(law.payload_type()), Some(law));
    }
    assert_eq!(G711::Pcmu.payload_type(), 0);
    assert_eq!(G711::Pcma.payload_type(), 8);
    assert_eq!(G711::Pcmu.silence_code(), 0xFF);
    assert_eq!(G711::Pcma.silence_code(), 0xD5);
    assert_eq!(G711::from_payload_type(3), None);
}
