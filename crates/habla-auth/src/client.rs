//! The client side, small on purpose (for `habla call`, `habla register`
//! and the tests): pick a challenge, compute the response, write the
//! `Authorization`/`Proxy-Authorization` value (RFC 3261 §22.2–§22.4,
//! RFC 7616 §3.4, RFC 8760 §2.4: use the first supported challenge, SHA-256
//! before MD5).

use crate::digest::{Algorithm, ResponseInput};
use crate::error::CredentialsError;
use habla_message::AuthParams;

/// `response` (lower-case hex) for `qop=auth` from a password (RFC 7616
/// §3.4.1). `nc` is written as 8 hex digits.
#[allow(clippy::too_many_arguments)]
pub fn compute_response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let nc = format!("{nc:08x}");
    ResponseInput {
        algorithm,
        nonce,
        nc: &nc,
        cnonce,
        qop: "auth",
        method,
        uri,
    }
    .response_hex(username, realm, password)
}

/// The algorithm and usability of one challenge: `Digest`, a realm and a
/// nonce, an algorithm this crate implements, and `auth` among the qop
/// options.
fn usable(c: &AuthParams) -> Option<Algorithm> {
    if !c.scheme().eq_ignore_ascii_case("Digest") {
        return None;
    }
    c.get("realm")?;
    c.get("nonce").filter(|n| !n.is_empty())?;
    let qop = c.get("qop")?;
    if !qop
        .split(',')
        .any(|q| q.trim().eq_ignore_ascii_case("auth"))
    {
        return None;
    }
    match c.get("algorithm") {
        None => Some(Algorithm::Md5),
        Some(a) => Algorithm::parse(&a),
    }
}

fn rank(a: Algorithm) -> u8 {
    match a {
        Algorithm::Sha256 => 0,
        Algorithm::Sha256Sess => 1,
        Algorithm::Md5 => 2,
        Algorithm::Md5Sess => 3,
    }
}

/// The strongest usable challenge among those of one response (RFC 8760
/// §2.4: the client uses the first it supports from the server's order;
/// habla ranks SHA-256 first whatever the order, which is the same for a
/// server following RFC 8760).
pub fn select_challenge<'a, I>(challenges: I) -> Option<&'a AuthParams>
where
    I: IntoIterator<Item = &'a AuthParams>,
{
    challenges
        .into_iter()
        .filter_map(|c| usable(c).map(|a| (rank(a), c)))
        .min_by_key(|(r, _)| *r)
        .map(|(_, c)| c)
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// What the client answers with.
#[derive(Debug, Clone, Copy)]
pub struct ClientRequest<'a> {
    /// The user name in the realm.
    pub username: &'a str,
    /// The password.
    pub password: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The request's Request-URI (signed as `uri`).
    pub uri: &'a str,
    /// Fresh client nonce (the caller's randomness).
    pub cnonce: &'a str,
    /// The nonce count: 1 for a new nonce, then incremented per request.
    pub nc: u32,
}

/// The credentials value answering `challenge` (a parsed
/// `WWW-Authenticate`/`Proxy-Authenticate` value) for `req`.
pub fn authorization(
    challenge: &AuthParams,
    req: &ClientRequest<'_>,
) -> Result<String, CredentialsError> {
    let alg = usable(challenge).ok_or(CredentialsError::NoUsableChallenge)?;
    let realm = challenge.get("realm").unwrap_or_default();
    let nonce = challenge.get("nonce").unwrap_or_default();
    let response = compute_response(
        alg,
        req.username,
        &realm,
        req.password,
        req.method,
        req.uri,
        &nonce,
        req.nc,
        req.cnonce,
    );
    let mut v = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{response}\", algorithm={alg}, cnonce={}, qop=auth, nc={:08x}",
        quote(req.username),
        quote(&realm),
        quote(&nonce),
        quote(req.uri),
        quote(req.cnonce),
        req.nc,
    );
    if let Some(o) = challenge.get("opaque") {
        v.push_str(", opaque=");
        v.push_str(&quote(&o));
    }
    Ok(v)
}
