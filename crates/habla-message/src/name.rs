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

            /// [`HeaderName::parse_bytes`] on `data[start..end]`, comparing
            /// eight octets at a time when `data` holds enough octets
            /// after the name (a header line always does).
            #[inline]
            pub(crate) fn parse_at(data: &[u8], start: usize, end: usize) -> HeaderName {
                let len = end.wrapping_sub(start);
                if !(2..=24).contains(&len) || data.len() < start + 24 {
                    return HeaderName::parse_bytes(data.get(start..end).unwrap_or(&[]));
                }
                let word = |k: usize| -> u64 {
                    data.get(start + 8 * k..start + 8 * k + 8)
                        .and_then(|c| <[u8; 8]>::try_from(c).ok())
                        .map_or(0, u64::from_le_bytes)
                };
                let first = data.get(start).map_or(0, u8::to_ascii_lowercase);
                let last = data.get(end - 1).map_or(0, u8::to_ascii_lowercase);
                let w0 = word(0);
                for &slot in &NAME_TABLE[bucket(len, first, last)] {
                    if slot == 0 {
                        break;
                    }
                    let k = &NAME_WORDS[slot as usize - 1];
                    if k.len as usize != len || (w0 & k.keep[0]) | k.case[0] != k.lower[0] {
                        continue;
                    }
                    if len <= 8 {
                        return KNOWN[slot as usize - 1].1;
                    }
                    if (word(1) & k.keep[1]) | k.case[1] != k.lower[1] {
                        continue;
                    }
                    if len <= 16 || (word(2) & k.keep[2]) | k.case[2] == k.lower[2] {
                        return KNOWN[slot as usize - 1].1;
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

/// A known name as three little-endian words: a received name `w` matches
/// when `(w & keep) | case == lower` for each word (`case` folds the case
/// of letters only, so that `-` matches nothing but itself).
struct NameWords {
    len: u8,
    keep: [u64; 3],
    case: [u64; 3],
    lower: [u64; 3],
}

const fn build_words() -> [NameWords; KNOWN.len()] {
    let mut out = [const {
        NameWords {
            len: 0,
            keep: [0; 3],
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
        let mut j = 0;
        while j < n.len() {
            let c = n[j];
            let (w, sh) = (j / 8, (j % 8) * 8);
            out[i].keep[w] |= 0xff << sh;
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
                assert_eq!(HeaderName::parse_at(&buf, 0, end), name, "{spelled}");
                // A '-' never matches CR, nor a letter its neighbour.
                let bad: String = spelled.replace('-', "\r");
                if bad != spelled {
                    assert_eq!(HeaderName::parse(&bad), HeaderName::Other);
                    let mut buf = bad.into_bytes();
                    buf.extend_from_slice(b": value and more octets after the name\r\n");
                    assert_eq!(HeaderName::parse_at(&buf, 0, end), HeaderName::Other);
                }
            }
        }
        let buf = b"X-Custom-Header: 1\r\nVia: x\r\nCall-IE: y\r\n                    ";
        assert_eq!(HeaderName::parse_at(buf, 0, 15), HeaderName::Other);
        assert_eq!(HeaderName::parse_at(buf, 20, 23), HeaderName::Via);
        assert_eq!(HeaderName::parse_at(buf, 28, 35), HeaderName::Other);
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
}
