//! Header names: case-insensitive, compact forms understood (RFC 3261 §7.3.3,
//! §20, and the compact forms registered since).

use std::fmt;

macro_rules! header_names {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ; )*) => {
        /// A header name. Known names are variants; everything else is
        /// [`HeaderName::Other`], whose spelling stays in the message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canonical, "`")]
                $variant,
            )*
            /// A header this crate has no name for.
            Other,
        }

        const KNOWN: &[(&str, HeaderName)] = &[ $( ($canonical, HeaderName::$variant), )* ];

        impl HeaderName {
            /// The canonical spelling (long form).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form (RFC 3261 §7.3.3), if the header has one.
            pub const fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Recognises a name as written on the wire (any case, long or
            /// compact form).
            pub fn parse(name: &str) -> HeaderName {
                HeaderName::parse_bytes(name.as_bytes())
            }

            /// [`HeaderName::parse`] on bytes.
            #[inline]
            pub fn parse_bytes(b: &[u8]) -> HeaderName {
                if b.len() == 1 {
                    return match b[0].to_ascii_lowercase() {
                        $( $( c if u32::from(c) == $compact as u32 => HeaderName::$variant, )? )*
                        _ => HeaderName::Other,
                    };
                }
                // Long names: one hashed bucket of at most two candidates.
                let first = b.first().map_or(0, u8::to_ascii_lowercase);
                let last = b.last().map_or(0, u8::to_ascii_lowercase);
                for &slot in &NAME_TABLE[bucket(b.len(), first, last)] {
                    if slot == 0 {
                        break;
                    }
                    let (canonical, name) = KNOWN[slot as usize - 1];
                    if canonical.len() == b.len()
                        && canonical
                            .bytes()
                            .zip(b)
                            .all(|(c, &x)| x == c || (x | 0x20 == c | 0x20 && c.is_ascii_alphabetic()))
                    {
                        return name;
                    }
                }
                HeaderName::Other
            }
        }
    };
}

header_names! {
    Via => "Via", 'v';
    From => "From", 'f';
    To => "To", 't';
    CallId => "Call-ID", 'i';
    CSeq => "CSeq";
    Contact => "Contact", 'm';
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentLength => "Content-Length", 'l';
    ContentType => "Content-Type", 'c';
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", 'u';
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallInfo => "Call-Info";
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", 'e';
    ContentLanguage => "Content-Language";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", 'o';
    Expires => "Expires";
    Identity => "Identity", 'y';
    InReplyTo => "In-Reply-To";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Organization => "Organization";
    Path => "Path";
    Priority => "Priority";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    Reason => "Reason";
    ReferTo => "Refer-To", 'r';
    ReferredBy => "Referred-By", 'b';
    ReplyTo => "Reply-To";
    Require => "Require";
    RetryAfter => "Retry-After";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", 'x';
    Subject => "Subject", 's';
    SubscriptionState => "Subscription-State";
    Supported => "Supported", 'k';
    Timestamp => "Timestamp";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

const BUCKETS: usize = 256;

const fn bucket(len: usize, first: u8, last: u8) -> usize {
    (len ^ first as usize ^ (last as usize).wrapping_mul(4)) % BUCKETS
}

const fn build_table() -> [[u8; 2]; BUCKETS] {
    let mut t = [[0u8; 2]; BUCKETS];
    let mut i = 0;
    while i < KNOWN.len() {
        let n = KNOWN[i].0.as_bytes();
        let b = bucket(
            n.len(),
            n[0].to_ascii_lowercase(),
            n[n.len() - 1].to_ascii_lowercase(),
        );
        if t[b][0] == 0 {
            t[b][0] = (i + 1) as u8;
        } else if t[b][1] == 0 {
            t[b][1] = (i + 1) as u8;
        } else {
            panic!("header name hash: more than two names in one bucket; change `bucket`");
        }
        i += 1;
    }
    t
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each octet of `w` that is an ASCII letter or `-` (the
/// octets of every known name).
#[inline]
fn letters_or_dash(w: u64) -> u64 {
    let low = w & !HIGH;
    let folded = low | (0x20 * ONES);
    // Each sum stays below 0x100 per octet: no carry crosses octets.
    let at_least_a = folded + (0x80 - u64::from(b'a')) * ONES;
    let above_z = folded + (0x80 - u64::from(b'z') - 1) * ONES;
    let letter = at_least_a & !above_z;
    let dash = !((low ^ (u64::from(b'-') * ONES)) + 0x7f * ONES);
    (letter | dash) & !w & HIGH
}

/// The index of the first ':' in the eight octets of `w` (little-endian),
/// 8 if there is none. The lowest flagged octet of the zero-octet test is
/// exact (a borrow only ever flags octets above a true zero).
#[inline(always)]
fn colon_index(w: u64) -> usize {
    let x = w ^ (u64::from(b':') * ONES);
    (((x.wrapping_sub(ONES) & !x & HIGH).trailing_zeros()) / 8) as usize
}

/// The low `k` octets of a word (`k` < 8).
#[inline(always)]
fn low_octets(k: usize) -> u64 {
    (1u64 << (8 * (k & 7))) - 1
}

/// The multiplier of [`colon_bucket`]: the first `(k * 0x9E37_79B9_7F4A_7C15)
/// | 1`, for k = 1, 2, ..., that gives every known long name a bucket of
/// its own (k = 223; `colon_multiplier_is_the_first_that_separates` checks
/// it, and the table's build fails if a name added later shares a bucket).
const COLON_M: u64 = 0xd253_0895_e1e2_164b;

/// The bucket of a name whose words, folded to lower case (`| 0x20` on
/// each octet of the name, zero past it), are `f`.
#[inline(always)]
const fn colon_bucket(f: [u64; 3]) -> usize {
    let x = f[0] ^ f[1].rotate_left(17) ^ f[2].rotate_left(37);
    (x.wrapping_mul(COLON_M) >> 56) as usize
}

/// The index + 1 in [`NAME_WORDS`] of the long name of each bucket of
/// [`colon_bucket`], 0 for none.
static COLON_TABLE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < KNOWN.len() {
        let n = KNOWN[i].0.as_bytes();
        if n.len() > 1 {
            let mut f = [0u64; 3];
            let mut j = 0;
            while j < n.len() {
                f[j / 8] |= ((n[j] | 0x20) as u64) << ((j % 8) * 8);
                j += 1;
            }
            let b = colon_bucket(f);
            assert!(
                t[b] == 0,
                "two header names share a bucket: choose another COLON_M"
            );
            t[b] = (i + 1) as u8;
        }
        i += 1;
    }
    t
};

/// The known long name of `len` octets (two or more) whose first `N` words
/// (zero past the name) are `words` in any case, `Other` if none: the one
/// name of its bucket, compared.
#[inline(always)]
fn known_at<const N: usize>(len: usize, words: [u64; N]) -> HeaderName {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    // The octets of the name folded, zeros past it: the last word holds
    // `len - 8 * (N - 1)` octets of it, fewer than eight.
    let mut f = [0u64; 3];
    for (k, (fk, &w)) in f.iter_mut().zip(&words).enumerate() {
        let in_name = if k + 1 < N {
            u64::MAX
        } else {
            low_octets(len - 8 * k)
        };
        *fk = (w | FOLD) & in_name;
    }
    let slot = COLON_TABLE[colon_bucket(f)];
    match (slot as usize)
        .checked_sub(1)
        .and_then(|i| NAME_WORDS.get(i))
    {
        Some(known)
            if known.len as usize == len
                && words
                    .iter()
                    .zip(&known.case)
                    .zip(&known.lower)
                    .all(|((w, c), l)| w | c == *l) =>
        {
            known.name
        }
        _ => HeaderName::Other,
    }
}

/// The compact forms (RFC 3261 §7.3.3), by octet, in both cases; `Other`
/// for every other octet.
static COMPACT: [HeaderName; 256] = {
    let mut t = [HeaderName::Other; 256];
    let mut i = 0;
    while i < KNOWN.len() {
        let name = KNOWN[i].1;
        if let Some(c) = name.compact() {
            t[c as usize] = name;
            t[(c as u8).to_ascii_uppercase() as usize] = name;
        }
        i += 1;
    }
    t
};

impl HeaderName {
    /// The header name at the start of the line `data[start..end]`: the end
    /// of its token (`field-name`) and the name it spells. Reads eight
    /// octets at a time while the line has them; the same answer as
    /// scanning token characters one by one and [`HeaderName::parse_bytes`].
    #[inline]
    pub(crate) fn scan_at(data: &[u8], start: usize, end: usize) -> (usize, HeaderName) {
        let word = |at: usize| -> Option<u64> {
            data.get(at..at + 8)
                .and_then(|c| <[u8; 8]>::try_from(c).ok())
                .map(u64::from_le_bytes)
        };
        let mut words = [0u64; 3];
        let mut len = 0;
        let mut k = 0;
        loop {
            let Some(w) = word(start + len) else {
                return HeaderName::scan_slow(data, start, end);
            };
            let run = ((!letters_or_dash(w) & HIGH).trailing_zeros() / 8) as usize;
            if let Some(slot) = words.get_mut(k) {
                *slot = if run == 8 {
                    w
                } else {
                    w & ((1u64 << (8 * run)) - 1)
                };
            }
            len += run;
            if run < 8 {
                break;
            }
            k += 1;
            if k == 3 {
                return HeaderName::scan_slow(data, start, end);
            }
        }
        let name_end = start + len;
        // Another token character (a digit, '.', '!'...) after the letters:
        // not a known name; let the octet loop find the end.
        if name_end > end
            || data
                .get(name_end)
                .is_some_and(|&c| crate::scan::is_token(c))
        {
            return HeaderName::scan_slow(data, start, end);
        }
        if len < 2 {
            return (
                name_end,
                HeaderName::parse_bytes(data.get(start..name_end).unwrap_or(&[])),
            );
        }
        let first = (words[0] as u8).to_ascii_lowercase();
        let last = data.get(name_end - 1).map_or(0, u8::to_ascii_lowercase);
        for &slot in &NAME_TABLE[bucket(len, first, last)] {
            if slot == 0 {
                break;
            }
            let Some(known) = NAME_WORDS.get(slot as usize - 1) else {
                break;
            };
            if known.len as usize == len
                && words[0] | known.case[0] == known.lower[0]
                && words[1] | known.case[1] == known.lower[1]
                && words[2] | known.case[2] == known.lower[2]
            {
                return (name_end, KNOWN[slot as usize - 1].1);
            }
        }
        (name_end, HeaderName::Other)
    }

    /// The usual header line start, a known name (any case, long or
    /// compact form) followed at once by ':' (RFC 3261 §7.3.1 allows white
    /// space before the colon, but nobody sends it): the colon's position
    /// and the name. The first ':' of the line is found by word arithmetic
    /// and the octets before it compared with the one or two known names of
    /// their hash bucket. `None` for anything else (white space before the
    /// colon, an unknown or malformed name, no colon in the first 24
    /// octets), which [`HeaderName::scan_at`] then handles. When this gives
    /// `Some((colon, name))`, `scan_at` gives `(colon, name)` as well: a
    /// known name is made of letters and '-' only, so its token ends at the
    /// colon, and it is on the line (no CR or LF in it).
    #[inline]
    pub(crate) fn known_before_colon(data: &[u8], start: usize) -> Option<(usize, HeaderName)> {
        // One branch per word the name spans, so that each compares only
        // the words it loaded (the words of a known name past its length
        // are zero, like the masked words here).
        let w0 = crate::scan::load8(data, start)?;
        let k = colon_index(w0);
        let (len, name) = if k < 8 {
            let name = match k {
                0 => return None,
                1 => COMPACT[(w0 & 0xff) as usize],
                _ => known_at(k, [w0 & low_octets(k)]),
            };
            (k, name)
        } else {
            let w1 = crate::scan::load8(data, start + 8)?;
            let k = colon_index(w1);
            if k < 8 {
                let len = 8 + k;
                (len, known_at(len, [w0, w1 & low_octets(k)]))
            } else {
                let w2 = crate::scan::load8(data, start + 16)?;
                let k = colon_index(w2);
                if k == 8 {
                    return None;
                }
                let len = 16 + k;
                (len, known_at(len, [w0, w1, w2 & low_octets(k)]))
            }
        };
        (name != HeaderName::Other).then_some((start + len, name))
    }

    fn scan_slow(data: &[u8], start: usize, end: usize) -> (usize, HeaderName) {
        let line = data.get(start..end).unwrap_or(&[]);
        let len = line
            .iter()
            .position(|&c| !crate::scan::is_token(c))
            .unwrap_or(line.len());
        (
            start + len,
            HeaderName::parse_bytes(line.get(..len).unwrap_or(&[])),
        )
    }
}

/// A known name as three little-endian words: a received name `w` matches
/// when `w | case == lower` for each word, octets past the name zeroed (`case` folds the case
/// of letters only, so that `-` matches nothing but itself).
struct NameWords {
    len: u8,
    name: HeaderName,
    case: [u64; 3],
    lower: [u64; 3],
}

// Known names are numbered from 1 in `u8` tables (0: empty).
const _: () = assert!(KNOWN.len() < 255);

const fn build_words() -> [NameWords; KNOWN.len()] {
    let mut out = [const {
        NameWords {
            len: 0,
            name: HeaderName::Other,
            case: [0; 3],
            lower: [0; 3],
        }
    }; KNOWN.len()];
    let mut i = 0;
    while i < KNOWN.len() {
        let n = KNOWN[i].0.as_bytes();
        assert!(
            n.len() <= 24,
            "header names longer than 24 octets need a fourth word"
        );
        out[i].len = n.len() as u8;
        out[i].name = KNOWN[i].1;
        let mut j = 0;
        while j < n.len() {
            let c = n[j];
            let (w, sh) = (j / 8, (j % 8) * 8);
            if c.is_ascii_alphabetic() {
                out[i].case[w] |= 0x20 << sh;
                out[i].lower[w] |= (c.to_ascii_lowercase() as u64) << sh;
            } else {
                out[i].lower[w] |= (c as u64) << sh;
            }
            j += 1;
        }
        i += 1;
    }
    out
}

static NAME_WORDS: [NameWords; KNOWN.len()] = build_words();

/// Known long names hashed by (length, first, last) into buckets of two:
/// recognising a name costs one hash and at most two comparisons.
static NAME_TABLE: [[u8; 2]; BUCKETS] = build_table();

impl HeaderName {
    /// Whether the header may appear only once (RFC 3261 §7.3.1: only headers
    /// whose grammar is a comma-separated list may repeat).
    pub const fn is_single(self) -> bool {
        matches!(
            self,
            HeaderName::From
                | HeaderName::To
                | HeaderName::CallId
                | HeaderName::CSeq
                | HeaderName::MaxForwards
                | HeaderName::ContentLength
                | HeaderName::ContentType
                | HeaderName::Expires
                | HeaderName::MinExpires
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive_and_compact_forms_known() {
        assert_eq!(HeaderName::parse("via"), HeaderName::Via);
        assert_eq!(HeaderName::parse("V"), HeaderName::Via);
        assert_eq!(HeaderName::parse("cALL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("CSEQ"), HeaderName::CSeq);
        assert_eq!(HeaderName::parse("x-custom"), HeaderName::Other);
        assert_eq!(HeaderName::parse(""), HeaderName::Other);
        assert_eq!(
            HeaderName::parse("a-very-long-header-name-indeed"),
            HeaderName::Other
        );
        for &(canonical, name) in KNOWN {
            assert_eq!(HeaderName::parse(canonical), name);
            assert_eq!(HeaderName::parse(&canonical.to_ascii_lowercase()), name);
            assert_eq!(HeaderName::parse(&canonical.to_ascii_uppercase()), name);
            assert_eq!(name.as_str(), canonical);
            for spelled in [
                canonical.to_string(),
                canonical.to_ascii_lowercase(),
                canonical.to_ascii_uppercase(),
            ] {
                let mut buf = spelled.clone().into_bytes();
                let end = buf.len();
                buf.extend_from_slice(b": value and more octets after the name\r\n");
                assert_eq!(
                    HeaderName::scan_at(&buf, 0, buf.len()),
                    (end, name),
                    "{spelled}"
                );
                // A '-' never matches CR, nor a letter its neighbour.
                let bad: String = spelled.replace('-', "\r");
                if bad != spelled {
                    assert_eq!(HeaderName::parse(&bad), HeaderName::Other);
                    let mut buf = bad.into_bytes();
                    buf.extend_from_slice(b": value and more octets after the name\r\n");
                    // The token ends at the CR: the name is what precedes it.
                    let (end, n) = HeaderName::scan_at(&buf, 0, buf.len());
                    assert_eq!(n, HeaderName::parse_bytes(&buf[..end]));
                    assert_eq!(buf[end], b'\r');
                }
            }
        }
        // Against the octet-by-octet scan, on every prefix of lines that
        // mix known names, near misses and other token characters.
        let lines: &[&[u8]] = &[
            b"X-Custom-Header: 1\r\n",
            b"Via: x\r\n",
            b"Call-IE: y\r\n",
            b"v : y\r\n",
            b"Content-Length2: 0\r\n",
            b"content-length\t: 0\r\n",
            b"Proxy-Authorization: x\r\n",
            b"Proxy-AuthorizationX: x\r\n",
            b"Subscription-State: x\r\n",
            b"A-very-long-header-name-beyond-24: x\r\n",
            b"Max-Forwards\xc3\xa9: 1\r\n",
            b"M\x80x: 1\r\n",
            b"To\r\n",
            b"WWW-Authenticate:",
            b"i:",
            b"Call_ID: 1\r\n",
        ];
        for line in lines {
            for cut in 0..=line.len() {
                let data = &line[..cut];
                for end in 0..=data.len() {
                    let len = data[..end]
                        .iter()
                        .position(|&c| !crate::scan::is_token(c))
                        .unwrap_or(end);
                    let want = (len, HeaderName::parse_bytes(&data[..len]));
                    assert_eq!(
                        HeaderName::scan_at(data, 0, end),
                        want,
                        "{:?} {end}",
                        String::from_utf8_lossy(data)
                    );
                }
            }
        }
        for c in 0..=255u8 {
            let w = u64::from_le_bytes([c; 8]);
            let want = c.is_ascii_alphabetic() || c == b'-';
            assert_eq!(letters_or_dash(w) == HIGH, want, "{c}");
            assert_eq!(letters_or_dash(w) == 0, !want, "{c}");
        }
        for (c, n) in [
            ('i', HeaderName::CallId),
            ('m', HeaderName::Contact),
            ('f', HeaderName::From),
            ('t', HeaderName::To),
            ('v', HeaderName::Via),
            ('l', HeaderName::ContentLength),
            ('c', HeaderName::ContentType),
            ('k', HeaderName::Supported),
            ('s', HeaderName::Subject),
            ('e', HeaderName::ContentEncoding),
            ('o', HeaderName::Event),
            ('u', HeaderName::AllowEvents),
            ('r', HeaderName::ReferTo),
            ('b', HeaderName::ReferredBy),
            ('x', HeaderName::SessionExpires),
            ('y', HeaderName::Identity),
        ] {
            assert_eq!(HeaderName::parse(&c.to_string()), n);
            assert_eq!(n.compact(), Some(c));
        }
    }

    /// `known_before_colon` against `scan_at`: whenever it answers, the
    /// line scan's general path gives the same name and name end with the
    /// colon right after; it answers for every known name so written.
    #[test]
    fn known_before_colon_agrees_with_scan_at() {
        let check = |data: &[u8]| {
            let general = HeaderName::scan_at(data, 0, data.len());
            let fast = HeaderName::known_before_colon(data, 0);
            if let Some((colon, name)) = fast {
                assert_eq!(
                    general,
                    (colon, name),
                    "{:?}",
                    String::from_utf8_lossy(data)
                );
                assert_eq!(data[colon], b':');
                assert_ne!(name, HeaderName::Other);
            } else {
                // Not missed: a known name before ':' whose words (the
                // name and the colon) are all in the buffer.
                assert!(
                    general.1 == HeaderName::Other
                        || data.get(general.0) != Some(&b':')
                        || general.0 >= 24
                        || data.len() < (general.0 / 8 + 1) * 8,
                    "missed {:?}",
                    String::from_utf8_lossy(data)
                );
            }
            fast
        };
        let tail = b": value and more octets after the name\r\n";
        for &(canonical, name) in KNOWN {
            let mut spellings = vec![
                canonical.to_string(),
                canonical.to_ascii_lowercase(),
                canonical.to_ascii_uppercase(),
            ];
            if let Some(c) = name.compact() {
                spellings.push(c.to_string());
                spellings.push(c.to_ascii_uppercase().to_string());
            }
            for spelled in spellings {
                let mut buf = spelled.clone().into_bytes();
                buf.extend_from_slice(tail);
                assert_eq!(check(&buf), Some((spelled.len(), name)), "{spelled}");
                // Near misses: white space before the colon, one octet
                // changed or added, '-' for CR.
                for variant in [
                    format!("{spelled} "),
                    format!("{spelled}\t"),
                    format!("{spelled}x"),
                    format!("x{spelled}"),
                    format!("{spelled}1"),
                    format!("{spelled}_"),
                    spelled.replace('-', "\r"),
                    spelled.replace('-', "_"),
                    spelled.replace('-', "\r\n"),
                ] {
                    let mut buf = variant.into_bytes();
                    buf.extend_from_slice(tail);
                    check(&buf);
                    // Cut short: no word to load past the end.
                    for cut in 0..buf.len().min(30) {
                        check(&buf[..cut]);
                    }
                }
                for k in 0..spelled.len() {
                    for c in [
                        0u8,
                        b'\n',
                        b'\r',
                        b' ',
                        b':',
                        b'@',
                        0x80,
                        0xc3,
                        b'A' - 1,
                        b'Z' + 1,
                        b'a' - 1,
                        b'z' + 1,
                        b'-' ^ 0x20,
                    ] {
                        let mut buf = spelled.clone().into_bytes();
                        buf[k] = c;
                        buf.extend_from_slice(tail);
                        check(&buf);
                        let mut buf = spelled.clone().into_bytes();
                        buf[k] ^= 0x20;
                        buf.extend_from_slice(tail);
                        check(&buf);
                    }
                }
            }
        }
        // Every single octet before ':' (compact forms and the rest).
        for c in 0..=255u8 {
            let mut buf = vec![c];
            buf.extend_from_slice(tail);
            let fast = check(&buf);
            assert_eq!(
                fast.is_some(),
                HeaderName::parse_bytes(&[c]) != HeaderName::Other && is_token_octet(c),
                "{c}"
            );
        }
        // No colon within the first three words, or none at all.
        check(b"Proxy-Authorization-And-More: x\r\n");
        check(b"Via");
        check(b"Via\r\nX: y\r\n\r\n");
        check(b"To\r\n: y\r\n\r\n");
    }

    #[test]
    fn colon_multiplier_is_the_first_that_separates() {
        let separates = |m: u64| {
            let mut seen = [false; 256];
            KNOWN.iter().filter(|(n, _)| n.len() > 1).all(|(n, _)| {
                let mut f = [0u64; 3];
                for (j, c) in n.bytes().enumerate() {
                    f[j / 8] |= u64::from(c | 0x20) << ((j % 8) * 8);
                }
                let x = f[0] ^ f[1].rotate_left(17) ^ f[2].rotate_left(37);
                let b = (x.wrapping_mul(m) >> 56) as usize;
                !std::mem::replace(&mut seen[b], true)
            })
        };
        let first = (1u64..)
            .map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
            .find(|&m| separates(m));
        assert_eq!(first, Some(COLON_M));
    }

    fn is_token_octet(c: u8) -> bool {
        crate::scan::is_token(c)
    }
}
