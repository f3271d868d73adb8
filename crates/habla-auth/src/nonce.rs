//! Stateless, signed nonces.
//!
//! RFC 7616 §3.3 leaves the nonce's content to the server and suggests
//! `time-stamp H(time-stamp ":" ETag ":" secret-data)`; RFC 3261 §22.4 asks
//! nothing more than uniqueness. habla's nonce is
//!
//! ```text
//! base64url( ts(8, big-endian unix seconds) || entropy(16) || tag(16) )
//! tag = first 16 bytes of HMAC-SHA256(secret, "habla-nonce-v1" || ts || entropy || realm)
//! ```
//!
//! 40 bytes, 54 characters, no padding (RFC 4648 §5 alphabet: no quoting
//! issues in a quoted-string). Verifying it needs only the secret: no table
//! of issued nonces, so any node sharing the secret accepts it and a restart
//! does not invalidate clients. Binding the realm keeps a nonce from one
//! realm out of another. Truncating HMAC-SHA256 to 128 bits is within RFC
//! 2104 §5's advice (at least half the output, at least 80 bits).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"habla-nonce-v1";
const TAG_LEN: usize = 16;
const RAW_LEN: usize = 8 + 16 + TAG_LEN;
/// Length of an encoded nonce.
pub(crate) const NONCE_LEN: usize = 54;

/// What a verified nonce says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NonceInfo {
    /// When it was issued (unix seconds).
    pub issued: u64,
    /// Its signature: unique per nonce, unforgeable, the key of the
    /// nonce-count table.
    pub tag: [u8; TAG_LEN],
}

/// The keyed signer (HMAC state prepared once).
#[derive(Clone)]
pub(crate) struct NonceKey {
    mac: HmacSha256,
}

impl NonceKey {
    pub(crate) fn new(secret: &[u8]) -> NonceKey {
        NonceKey {
            // HMAC accepts keys of any length (RFC 2104 §2).
            mac: HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!()),
        }
    }

    fn tag(&self, ts: &[u8; 8], entropy: &[u8], realm: &str) -> HmacSha256 {
        let mut m = self.mac.clone();
        m.update(LABEL);
        m.update(ts);
        m.update(entropy);
        m.update(realm.as_bytes());
        m
    }

    /// A new nonce for `realm`, issued at `now` (unix seconds), from
    /// caller-supplied entropy.
    pub(crate) fn issue(&self, realm: &str, now: u64, entropy: &[u8; 16]) -> String {
        let ts = now.to_be_bytes();
        let tag = self.tag(&ts, entropy, realm).finalize().into_bytes();
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&ts);
        raw[8..24].copy_from_slice(entropy);
        raw[24..].copy_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a nonce's signature (constant time, `Mac::verify_truncated_left`);
    /// `None` if it was not issued by this secret for this realm. Its age is
    /// the caller's business.
    pub(crate) fn verify(&self, realm: &str, nonce: &str) -> Option<NonceInfo> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN];
        let n = URL_SAFE_NO_PAD
            .decode_slice(nonce.as_bytes(), &mut raw)
            .ok()?;
        if n != RAW_LEN {
            return None;
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        self.tag(&ts, &raw[8..24], realm)
            .verify_truncated_left(&raw[24..])
            .ok()?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&raw[24..]);
        Some(NonceInfo {
            issued: u64::from_be_bytes(ts),
            tag,
        })
    }

    /// Derives secret, per-server bytes for another purpose (the dummy HA1
    /// of unknown users), domain-separated from nonce tags by `label`.
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut m = self.mac.clone();
        m.update(label);
        m.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_verify() {
        let k = NonceKey::new(b"0123456789abcdef");
        let n = k.issue("example.org", 1_700_000_000, &[7; 16]);
        assert_eq!(n.len(), NONCE_LEN);
        assert!(n
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let info = k.verify("example.org", &n).unwrap();
        assert_eq!(info.issued, 1_700_000_000);
        // Another realm, another secret, a flipped character: refused.
        assert!(k.verify("example.com", &n).is_none());
        assert!(NonceKey::new(b"0123456789abcdeX")
            .verify("example.org", &n)
            .is_none());
        let mut b = n.clone().into_bytes();
        b[3] = if b[3] == b'A' { b'B' } else { b'A' };
        assert!(k
            .verify("example.org", std::str::from_utf8(&b).unwrap())
            .is_none());
        // Wrong lengths and alphabets never panic.
        for bad in ["", "x", &"A".repeat(54), &"=".repeat(54), &"é".repeat(27)] {
            assert!(k.verify("example.org", bad).is_none(), "{bad}");
        }
        // Different entropy, different nonce and tag.
        let m = k.issue("example.org", 1_700_000_000, &[8; 16]);
        assert_ne!(n, m);
        assert_ne!(info.tag, k.verify("example.org", &m).unwrap().tag);
    }
}
