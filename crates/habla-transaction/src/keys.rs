//! A hasher for the numbers this layer hands out as keys.
//!
//! Transaction keys (and the proxy's context numbers) are counters a layer
//! draws itself, not values a peer chooses, so a table keyed by them needs
//! no protection against chosen collisions: one multiplication spreads
//! them over a table's buckets and control bits (std's SipHash, meant for
//! keys from the network, cost ~90 instructions per lookup, and a request
//! looks its transaction up several times).

use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a number a layer drew itself (see the module documentation);
/// use only for such keys: it offers no resistance to chosen collisions.
#[derive(Debug, Default, Clone, Copy)]
pub struct CounterHasher(u64);

impl Hasher for CounterHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing: an odd multiplier close to 2^64/φ moves every
        // input bit into the high bits (the table's control bytes) while
        // consecutive counters still land in distinct low bits (buckets).
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` hasher for counter keys: `HashMap<TransactionKey, V,
/// CounterHash>`.
pub type CounterHash = BuildHasherDefault<CounterHasher>;
