//! SRV ordering (RFC 2782 "Usage rules"): priority, then weighted random
//! choice, with the randomness supplied by the caller.

use crate::dns::Srv;

/// Orders `records` as RFC 2782 says: ascending priority; within one
/// priority, repeatedly pick a record at random with probability
/// proportional to its weight (records of weight 0 placed first, so they
/// are chosen only when the draw is 0 or they are all that is left).
///
/// `random(n)` must return a number in `0..=n`; it is the only source of
/// randomness.
pub fn order_srv(records: &mut Vec<Srv>, random: &mut dyn FnMut(u32) -> u32) {
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = std::mem::take(records);
    while !rest.is_empty() {
        let priority = rest[0].priority;
        let end = rest.iter().take_while(|r| r.priority == priority).count();
        let mut group: Vec<Srv> = rest.drain(..end).collect();
        // Weight 0 first (stable, so ties keep the DNS order).
        group.sort_by_key(|r| r.weight != 0);
        while !group.is_empty() {
            let total = group
                .iter()
                .fold(0u32, |a, r| a.saturating_add(u32::from(r.weight)));
            let pick = random(total).min(total);
            let mut sum = 0u32;
            let mut chosen = group.len() - 1;
            for (i, r) in group.iter().enumerate() {
                sum = sum.saturating_add(u32::from(r.weight));
                if sum >= pick {
                    chosen = i;
                    break;
                }
            }
            out.push(group.remove(chosen));
        }
    }
    *records = out;
}

/// A small deterministic generator (SplitMix64) for the weighted choice:
/// seeded by the caller, so a resolution is reproducible in tests and the
/// crate draws no randomness of its own.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..=n`.
    pub fn below_or_equal(&mut self, n: u32) -> u32 {
        (self.next_u64() % (u64::from(n) + 1)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn targets(v: &[Srv]) -> Vec<&str> {
        v.iter().map(|r| r.target.as_str()).collect()
    }

    #[test]
    fn priority_comes_first_whatever_the_weights() {
        let mut v = vec![srv(20, 100, "c"), srv(10, 0, "a"), srv(15, 1, "b")];
        order_srv(&mut v, &mut |n| n);
        assert_eq!(targets(&v), ["a", "b", "c"]);
    }

    #[test]
    fn the_draw_selects_by_running_sum_of_weights() {
        // Weights 10, 30, 60: running sums 10, 40, 100.
        let base = || vec![srv(1, 10, "a"), srv(1, 30, "b"), srv(1, 60, "c")];
        for (draw, first) in [
            (0, "a"),
            (10, "a"),
            (11, "b"),
            (40, "b"),
            (41, "c"),
            (100, "c"),
        ] {
            let mut v = base();
            let mut first_draw = Some(draw);
            order_srv(&mut v, &mut |n| first_draw.take().unwrap_or(n));
            assert_eq!(v[0].target, first, "draw {draw}");
            assert_eq!(v.len(), 3);
        }
    }

    #[test]
    fn weight_zero_is_chosen_only_on_a_zero_draw_or_last() {
        let mut v = vec![srv(1, 50, "a"), srv(1, 0, "z")];
        order_srv(&mut v, &mut |_| 0);
        assert_eq!(targets(&v), ["z", "a"]);
        let mut v = vec![srv(1, 50, "a"), srv(1, 0, "z")];
        order_srv(&mut v, &mut |n| n);
        assert_eq!(targets(&v), ["a", "z"]);
    }

    #[test]
    fn weights_shape_the_distribution() {
        let mut rng = SplitMix64::new(42);
        let mut firsts = [0u32; 2];
        for _ in 0..10_000 {
            let mut v = vec![srv(1, 10, "light"), srv(1, 90, "heavy")];
            order_srv(&mut v, &mut |n| rng.below_or_equal(n));
            firsts[usize::from(v[0].target == "heavy")] += 1;
        }
        // Expect about 9 in 10 heavy first.
        assert!((8_500..9_500).contains(&firsts[1]), "{firsts:?}");
    }

    #[test]
    fn a_misbehaving_random_source_cannot_break_the_order() {
        let mut v = vec![srv(1, 1, "a"), srv(1, 1, "b"), srv(2, 0, "c")];
        order_srv(&mut v, &mut |_| u32::MAX);
        assert_eq!(v.len(), 3);
        assert_eq!(v[2].target, "c");
    }
}
