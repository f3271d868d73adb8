//! Reading one `Authorization`/`Proxy-Authorization` value into typed
//! digest credentials (RFC 3261 §22.4 and §25.1 `dig-resp`; RFC 7616
//! §3.4). Every value is checked for its grammar and bounded in length;
//! nothing here panics on any input.

use crate::digest::Algorithm;
use crate::error::CredentialsError;
use habla_message::AuthParams;
use std::borrow::Cow;

/// Longest value accepted for most parameters (bytes, as written).
const MAX_PARAM: usize = 1024;
/// Longest `uri` accepted (the message layer bounds the line anyway).
const MAX_URI: usize = 4096;

/// Digest credentials from one header value, each parameter unquoted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DigestCredentials<'a> {
    /// `username` (RFC 7616 §3.4: the user's name in the realm).
    pub username: Cow<'a, str>,
    /// `realm`.
    pub realm: Cow<'a, str>,
    /// `nonce`, as the server issued it.
    pub nonce: Cow<'a, str>,
    /// `uri` (`digest-uri`), the Request-URI the client signed.
    pub uri: Cow<'a, str>,
    /// `response`, decoded from hex (16 or 32 bytes).
    pub response: Vec<u8>,
    /// `algorithm` (`MD5` when absent, RFC 7616 §3.4).
    pub algorithm: Algorithm,
    /// `cnonce`.
    pub cnonce: Cow<'a, str>,
    /// `nc` as written (8 hex digits), used in the hash.
    pub nc_text: Cow<'a, str>,
    /// `nc` as a number.
    pub nc: u32,
    /// `qop` as written (`auth`).
    pub qop: Cow<'a, str>,
    /// `opaque`, if sent.
    pub opaque: Option<Cow<'a, str>>,
}

/// Removes the quotes and `\` escapes of a quoted-string (RFC 3261 §25.1
/// `quoted-pair`); a token is returned as is.
fn unquote(v: &str) -> Cow<'_, str> {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return Cow::Borrowed(v);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut esc = false;
    for c in inner.chars() {
        if esc || c != '\\' {
            out.push(c);
            esc = false;
        } else {
            esc = true;
        }
    }
    Cow::Owned(out)
}

/// The realm named by a credentials value, if any (to pick, among several
/// credentials, the one for this server: RFC 3261 §22.3).
pub(crate) fn realm_of(p: &AuthParams) -> Option<Cow<'_, str>> {
    p.get("realm")
}

impl<'a> DigestCredentials<'a> {
    /// Reads and checks digest credentials. `offered` lists the algorithms
    /// the server offers; any other is [`CredentialsError::UnsupportedAlgorithm`].
    pub fn parse(p: &'a AuthParams, offered: &[Algorithm]) -> Result<Self, CredentialsError> {
        if !p.scheme().eq_ignore_ascii_case("Digest") {
            return Err(CredentialsError::UnsupportedScheme(
                p.scheme().chars().take(32).collect(),
            ));
        }
        #[derive(Default)]
        struct Raw<'a> {
            username: Option<&'a str>,
            realm: Option<&'a str>,
            nonce: Option<&'a str>,
            uri: Option<&'a str>,
            response: Option<&'a str>,
            algorithm: Option<&'a str>,
            cnonce: Option<&'a str>,
            nc: Option<&'a str>,
            qop: Option<&'a str>,
            opaque: Option<&'a str>,
            userhash: Option<&'a str>,
        }
        let mut r = Raw::default();
        for (name, value) in p.params() {
            let (slot, label, max) = match name.to_ascii_lowercase().as_str() {
                "username" => (&mut r.username, "username", MAX_PARAM),
                "realm" => (&mut r.realm, "realm", MAX_PARAM),
                "nonce" => (&mut r.nonce, "nonce", MAX_PARAM),
                "uri" => (&mut r.uri, "uri", MAX_URI),
                "response" => (&mut r.response, "response", MAX_PARAM),
                "algorithm" => (&mut r.algorithm, "algorithm", MAX_PARAM),
                "cnonce" => (&mut r.cnonce, "cnonce", MAX_PARAM),
                "nc" => (&mut r.nc, "nc", MAX_PARAM),
                "qop" => (&mut r.qop, "qop", MAX_PARAM),
                "opaque" => (&mut r.opaque, "opaque", MAX_PARAM),
                "userhash" => (&mut r.userhash, "userhash", MAX_PARAM),
                // RFC 7616 §3.4.4: `username*` carries a non-ASCII name in
                // RFC 5987 encoding. SIP user names are URI user parts
                // (RFC 8760 does not use it); refuse rather than guess.
                "username*" => return Err(CredentialsError::Invalid("username*")),
                // Unknown parameters are ignored (RFC 7616 §3.4 `auth-param`).
                _ => continue,
            };
            if value.len() > max {
                return Err(CredentialsError::TooLong(label));
            }
            if slot.replace(value).is_some() {
                return Err(CredentialsError::Duplicate(label));
            }
        }
        let need = |v: Option<&'a str>, label| {
            v.map(unquote)
                .filter(|v| !v.is_empty())
                .ok_or(CredentialsError::Missing(label))
        };
        let username = need(r.username, "username")?;
        let realm = need(r.realm, "realm")?;
        let nonce = need(r.nonce, "nonce")?;
        let uri = need(r.uri, "uri")?;
        let response_text = need(r.response, "response")?;
        // RFC 7616 §3.4: algorithm absent means MD5.
        let alg_text = r.algorithm.map(unquote);
        let algorithm = match &alg_text {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| {
                CredentialsError::UnsupportedAlgorithm(a.chars().take(32).collect())
            })?,
        };
        if !offered.contains(&algorithm) {
            return Err(CredentialsError::UnsupportedAlgorithm(
                algorithm.to_string(),
            ));
        }
        // RFC 7616 §3.4.4: userhash=true means `username` is a hash; this
        // server never offers it (§3.3: only when the challenge says so).
        if let Some(u) = r.userhash.map(unquote) {
            if !u.eq_ignore_ascii_case("false") {
                return Err(CredentialsError::Invalid("userhash"));
            }
        }
        // The challenge always carries qop="auth" so the client MUST answer
        // with qop, cnonce and nc (RFC 7616 §3.4; RFC 2617 §3.2.2). The
        // RFC 2069 form without them is refused: it has no replay defence.
        let qop = need(r.qop, "qop")?;
        if !qop.eq_ignore_ascii_case("auth") {
            return Err(CredentialsError::UnsupportedQop(
                qop.chars().take(32).collect(),
            ));
        }
        let cnonce = need(r.cnonce, "cnonce")?;
        let nc_text = need(r.nc, "nc")?;
        // nc-value = 8LHEX (RFC 7616 §3.4; upper case tolerated).
        let nc = (nc_text.len() == 8 && nc_text.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(&nc_text, 16).ok())
            .flatten()
            .filter(|&n| n > 0)
            .ok_or(CredentialsError::Invalid("nc"))?;
        let mut response = vec![0u8; algorithm.hash_len()];
        if !crate::digest::decode_hex(&response_text, &mut response) {
            return Err(CredentialsError::Invalid("response"));
        }
        Ok(DigestCredentials {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            nc_text,
            nc,
            qop,
            opaque: r.opaque.map(unquote),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use habla_message::SipStr;

    const ALL: [Algorithm; 4] = [
        Algorithm::Sha256,
        Algorithm::Md5,
        Algorithm::Md5Sess,
        Algorithm::Sha256Sess,
    ];

    fn parse(v: &str) -> Result<(), CredentialsError> {
        let p = AuthParams::parse(&SipStr::from(v), "Authorization")
            .map_err(|e| CredentialsError::Syntax(e.to_string()))?;
        DigestCredentials::parse(&p, &ALL).map(|_| ())
    }

    const GOOD: &str = "Digest username=\"a\\\"b\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", \
        response=\"0123456789abcdef0123456789ABCDEF\", qop=auth, nc=0000000a, cnonce=\"c\"";

    #[test]
    fn reads_a_good_value() {
        let p = AuthParams::parse(&SipStr::from(GOOD), "Authorization").unwrap();
        let c = DigestCredentials::parse(&p, &ALL).unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.nc, 10);
        assert_eq!(c.response.len(), 16);
        assert!(c.opaque.is_none());
        assert!(matches!(
            DigestCredentials::parse(&p, &[Algorithm::Sha256]),
            Err(CredentialsError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn refuses_bad_values() {
        let cases: &[(&str, &str)] = &[
            ("username=\"a\\\"b\", ", ""),
            ("Digest username", "Basic username"),
            ("nc=0000000a", "nc=0000000"),
            ("nc=0000000a", "nc=00000000"),
            ("nc=0000000a", "nc=0000000g"),
            ("nc=0000000a", "nc=+0000001"),
            ("qop=auth", "qop=auth-int"),
            ("qop=auth, ", ""),
            ("cnonce=\"c\"", "cnonce=\"\""),
            (
                "response=\"0123456789abcdef0123456789ABCDEF\"",
                "response=\"0123\"",
            ),
            (
                "response=\"0123456789abcdef0123456789ABCDEF\"",
                "response=\"0123456789abcdef0123456789ABCDEZ\"",
            ),
            ("uri=\"sip:x\"", "uri=\"sip:x\", uri=\"sip:y\""),
            ("realm=\"r\"", "realm=\"r\", algorithm=SHA-512-256"),
            ("realm=\"r\"", "realm=\"r\", algorithm=\"\""),
            ("realm=\"r\"", "realm=\"r\", userhash=true"),
            ("realm=\"r\"", "realm=\"r\", username*=UTF-8''a"),
            ("realm=\"r\"", "realm=\"r\", algorithm=SHA-256"),
        ];
        for (from, to) in cases {
            let v = GOOD.replacen(from, to, 1);
            assert_ne!(v, GOOD, "{from}");
            assert!(parse(&v).is_err(), "{v}");
        }
        let long = GOOD.replacen(
            "cnonce=\"c\"",
            &format!("cnonce=\"{}\"", "c".repeat(5000)),
            1,
        );
        assert_eq!(parse(&long), Err(CredentialsError::TooLong("cnonce")));
    }
}
