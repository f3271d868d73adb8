//! Request methods (RFC 3261 §7.1; method names are case-sensitive).

use crate::scan::is_token;
use crate::SipStr;
use std::fmt;

/// A request method. Unknown extension methods are carried as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// RFC 3261
    Invite,
    /// RFC 3261
    Ack,
    /// RFC 3261
    Bye,
    /// RFC 3261
    Cancel,
    /// RFC 3261
    Register,
    /// RFC 3261
    Options,
    /// RFC 6086
    Info,
    /// RFC 3311
    Update,
    /// RFC 3262
    Prack,
    /// RFC 6665
    Subscribe,
    /// RFC 6665
    Notify,
    /// RFC 3515
    Refer,
    /// RFC 3428
    Message,
    /// RFC 3903
    Publish,
    /// Any other token.
    Extension(SipStr),
}

impl Method {
    /// Recognises a method token; `None` if `s` is not a token.
    pub fn parse(s: &SipStr) -> Option<Method> {
        Method::parse_in(s, s)
    }

    /// Recognises the method `m`, a slice of `src`; only an extension method
    /// takes a (shared) copy of its text.
    pub(crate) fn parse_in(m: &str, src: &SipStr) -> Option<Method> {
        Method::parse_bytes(m.as_bytes(), src)
    }

    /// [`Method::parse_in`] on the octets `m` of `src`.
    #[inline]
    pub(crate) fn parse_bytes(m: &[u8], src: &SipStr) -> Option<Method> {
        Some(match m {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            other if !other.is_empty() && other.iter().all(|&c| is_token(c)) => {
                // A token is ASCII, hence a `str`.
                Method::Extension(src.slice_ref(std::str::from_utf8(other).ok()?))
            }
            _ => return None,
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s.as_str(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Method {
    /// Converts a method name; a string that is not a token becomes an
    /// extension method as written (only for locally built requests).
    fn from(s: &str) -> Method {
        let s = SipStr::from(s);
        Method::parse(&s).unwrap_or(Method::Extension(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octets_and_text_give_the_same_method() {
        let src = SipStr::from("x");
        for m in [
            "INVITE",
            "ACK",
            "BYE",
            "CANCEL",
            "REGISTER",
            "OPTIONS",
            "INFO",
            "UPDATE",
            "PRACK",
            "SUBSCRIBE",
            "NOTIFY",
            "REFER",
            "MESSAGE",
            "PUBLISH",
            "invite",
            "INVITEX",
            "INVIT",
            "FOO-BAR.x",
            "",
            " ",
            "A B",
            "\u{e9}",
            "@",
            "X",
        ] {
            assert_eq!(
                Method::parse_bytes(m.as_bytes(), &src),
                Method::parse_in(m, &src),
                "{m:?}"
            );
        }
    }
}
