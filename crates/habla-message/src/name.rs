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
                    // Exact spelling first (the common case), then any case.
                    if canonical.as_bytes() == b || canonical.as_bytes().eq_ignore_ascii_case(b) {
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
}
