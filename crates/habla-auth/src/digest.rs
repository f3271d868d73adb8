//! The digest computations themselves (RFC 7616 §3.4.1–§3.4.3, RFC 8760
//! §2 for SIP): `H`, `KD`, `A1`, `A2` and the `response` value, shared by
//! the server ([`crate::DigestServer`]) and the client helpers
//! ([`crate::client`]).

use md5::Md5;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A digest algorithm (RFC 7616 §3.3 `algorithm`, registered for SIP by
/// RFC 8760 §2). SHA-512-256 is registered too but not implemented: no
/// HA1 is stored for it ([`Ha1`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the default when `algorithm` is absent, RFC 7616
    /// §3.3).
    Md5,
    /// `MD5-sess` (RFC 7616 §3.4.2).
    Md5Sess,
    /// `SHA-256` (RFC 7616 §3.3, RFC 8760 §2.1).
    Sha256,
    /// `SHA-256-sess` (RFC 7616 §3.4.2).
    Sha256Sess,
}

impl Algorithm {
    /// Recognises an `algorithm` token (case-insensitive, RFC 7616 §3.3);
    /// `None` for anything this crate does not implement.
    pub fn parse(s: &str) -> Option<Algorithm> {
        [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
        ]
        .into_iter()
        .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }

    /// The token as written in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
        }
    }

    /// A `-sess` variant (A1 includes the nonce and cnonce, RFC 7616
    /// §3.4.2).
    pub fn is_session(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess)
    }

    /// The size of a hash, in bytes (16 for MD5, 32 for SHA-256).
    pub fn hash_len(self) -> usize {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 16,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 32,
        }
    }

    /// `H(p1:p2:...)`: the parts joined by colons, hashed (RFC 7616 §3.4:
    /// `KD(secret, data) = H(concat(secret, ":", data))`).
    pub(crate) fn h(self, parts: &[&[u8]]) -> HashOut {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&[u8]]) -> D {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            d
        }
        let mut out = HashOut {
            bytes: [0; 32],
            len: self.hash_len(),
        };
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => {
                out.bytes[..16].copy_from_slice(&run(Md5::new(), parts).finalize());
            }
            Algorithm::Sha256 | Algorithm::Sha256Sess => {
                out.bytes
                    .copy_from_slice(&run(Sha256::new(), parts).finalize());
            }
        }
        out
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hash value of up to 32 bytes (no allocation on the hot path).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashOut {
    bytes: [u8; 32],
    len: usize,
}

impl HashOut {
    pub(crate) fn from_slice(b: &[u8]) -> HashOut {
        let mut out = HashOut {
            bytes: [0; 32],
            len: b.len().min(32),
        };
        out.bytes[..out.len].copy_from_slice(&b[..out.len]);
        out
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    /// Lower-case hex (RFC 7616 §3.4: `LHEX`).
    pub(crate) fn hex(&self) -> Hex {
        let mut h = Hex {
            bytes: [0; 64],
            len: self.len * 2,
        };
        encode_hex(self.as_bytes(), &mut h.bytes);
        h
    }
}

/// Lower-case hex text of a [`HashOut`], on the stack.
pub(crate) struct Hex {
    bytes: [u8; 64],
    len: usize,
}

impl Hex {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn encode_hex(src: &[u8], dst: &mut [u8]) {
    for (i, b) in src.iter().enumerate() {
        if let Some(pair) = dst.get_mut(2 * i..2 * i + 2) {
            pair[0] = HEX[usize::from(b >> 4)];
            pair[1] = HEX[usize::from(b & 15)];
        }
    }
}

pub(crate) fn to_hex(src: &[u8]) -> String {
    src.iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// Decodes hex (either case) into `out`; `false` unless `s` is exactly
/// `2 * out.len()` hex digits.
pub(crate) fn decode_hex(s: &str, out: &mut [u8]) -> bool {
    let s = s.as_bytes();
    if s.len() != out.len() * 2 {
        return false;
    }
    fn nib(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (nib(pair[0]), nib(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
}

/// What a user's account stores instead of a password: `H(username ":"
/// realm ":" password)` for each algorithm this crate implements (RFC 7616
/// §3.4.2 `A1`; RFC 3261 §22.4 lets a server store this "HA1" so that a
/// password is never kept). Changing the realm invalidates it.
///
/// `Debug` does not print the hashes (they are password equivalents for
/// this realm).
#[derive(Clone, PartialEq, Eq)]
pub struct Ha1 {
    /// `MD5(username:realm:password)`.
    pub md5: [u8; 16],
    /// `SHA-256(username:realm:password)`.
    pub sha256: [u8; 32],
}

impl Ha1 {
    /// Computes both hashes, for `habla user add` and `user passwd`.
    pub fn compute(username: &str, realm: &str, password: &str) -> Ha1 {
        let parts: [&[u8]; 3] = [username.as_bytes(), realm.as_bytes(), password.as_bytes()];
        let mut md5 = [0; 16];
        md5.copy_from_slice(Algorithm::Md5.h(&parts).as_bytes());
        let mut sha256 = [0; 32];
        sha256.copy_from_slice(Algorithm::Sha256.h(&parts).as_bytes());
        Ha1 { md5, sha256 }
    }

    /// Loads stored hex values (either case); `None` if either is not hex of
    /// the right length.
    pub fn from_hex(md5: &str, sha256: &str) -> Option<Ha1> {
        let mut h = Ha1 {
            md5: [0; 16],
            sha256: [0; 32],
        };
        (decode_hex(md5, &mut h.md5) && decode_hex(sha256, &mut h.sha256)).then_some(h)
    }

    /// The MD5 HA1 as lower-case hex (32 characters), for storage.
    pub fn md5_hex(&self) -> String {
        to_hex(&self.md5)
    }

    /// The SHA-256 HA1 as lower-case hex (64 characters), for storage.
    pub fn sha256_hex(&self) -> String {
        to_hex(&self.sha256)
    }

    /// The stored hash an algorithm starts from (before `-sess` folding).
    pub(crate) fn for_algorithm(&self, alg: Algorithm) -> &[u8] {
        match alg {
            Algorithm::Md5 | Algorithm::Md5Sess => &self.md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => &self.sha256,
        }
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ha1 { .. }")
    }
}

/// The inputs of one `response` computation with `qop=auth` (RFC 7616
/// §3.4.1), everything as it appears (unquoted) in the credentials.
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The server's nonce.
    pub nonce: &'a str,
    /// The nonce count, 8 hex digits as sent (`00000001`).
    pub nc: &'a str,
    /// The client nonce.
    pub cnonce: &'a str,
    /// The qop (`auth`).
    pub qop: &'a str,
    /// The request method (RFC 3261 §22.4: the method of the request line;
    /// for ACK and CANCEL, that of the request they acknowledge/cancel,
    /// which is INVITE's: it is still the request line's method).
    pub method: &'a str,
    /// The `uri` parameter as sent.
    pub uri: &'a str,
}

impl ResponseInput<'_> {
    /// `response` from the stored HA1 bytes `H(username:realm:password)`:
    ///
    /// ```text
    /// HA1'     = HA1                          (MD5, SHA-256)
    ///          = H(hex(HA1):nonce:cnonce)     (-sess, RFC 7616 §3.4.2)
    /// HA2      = H(method:uri)                (qop=auth, RFC 7616 §3.4.3)
    /// response = H(hex(HA1'):nonce:nc:cnonce:qop:hex(HA2))   (§3.4.1)
    /// ```
    pub(crate) fn response(&self, ha1: &[u8]) -> HashOut {
        let alg = self.algorithm;
        let ha1 = HashOut::from_slice(ha1);
        let ha1 = if alg.is_session() {
            alg.h(&[
                ha1.hex().as_bytes(),
                self.nonce.as_bytes(),
                self.cnonce.as_bytes(),
            ])
        } else {
            ha1
        };
        let ha2 = alg.h(&[self.method.as_bytes(), self.uri.as_bytes()]);
        alg.h(&[
            ha1.hex().as_bytes(),
            self.nonce.as_bytes(),
            self.nc.as_bytes(),
            self.cnonce.as_bytes(),
            self.qop.as_bytes(),
            ha2.hex().as_bytes(),
        ])
    }

    /// `response` as lower-case hex, from a password (the client's side).
    pub fn response_hex(&self, username: &str, realm: &str, password: &str) -> String {
        let ha1 = self
            .algorithm
            .h(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]);
        self.response(ha1.as_bytes()).hex().as_str().to_owned()
    }

    /// `response` as lower-case hex, from a stored [`Ha1`].
    pub fn response_hex_from_ha1(&self, ha1: &Ha1) -> String {
        self.response(ha1.for_algorithm(self.algorithm))
            .hex()
            .as_str()
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects() {
        let mut b = [0u8; 2];
        assert!(decode_hex("aBcD", &mut b));
        assert_eq!(b, [0xab, 0xcd]);
        assert_eq!(to_hex(&b), "abcd");
        for bad in ["abc", "abcde", "zzzz", "ab d", "éé"] {
            assert!(!decode_hex(bad, &mut b), "{bad}");
        }
    }

    #[test]
    fn algorithm_tokens() {
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::parse("md5-SESS"), Some(Algorithm::Md5Sess));
        assert_eq!(Algorithm::parse("SHA-512-256"), None);
        assert_eq!(Algorithm::parse(""), None);
    }

    #[test]
    fn ha1_storage_round_trip() {
        let h = Ha1::compute("alice", "example.org", "secret");
        let back = Ha1::from_hex(&h.md5_hex(), &h.sha256_hex().to_uppercase()).unwrap();
        assert_eq!(h, back);
        assert_eq!(format!("{h:?}"), "Ha1 { .. }");
        assert!(Ha1::from_hex("00", &h.sha256_hex()).is_none());
    }
}
