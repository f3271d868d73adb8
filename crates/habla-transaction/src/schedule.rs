//! The timer schedule: one first-in first-out queue per delay.
//!
//! Every transaction timer is armed as "now + delay", with the delay taken
//! from a small set (T1 doubling up to T2 or to Timer B, 64·T1, T4, Timer C,
//! the 100 Trying delay, zero for reliable transports). Deadlines armed
//! with the same delay come in the order they were armed, so a queue per
//! delay is sorted by itself: arming is a push at the back, the next
//! deadline is the smallest front, firing pops fronts. A busy server holds
//! hundreds of thousands of timers (Timer J keeps every answered UDP
//! request 32 s), where an ordered tree paid a logarithmic search and a
//! node allocation per operation.
//!
//! Disarming leaves the entry where it is: the layer recognises a stale
//! entry (its transaction no longer holds that deadline for that timer)
//! when it comes out, and [`Schedule::prune`] drops stale entries from the
//! fronts so that [`Schedule::first`] names a live deadline. Stale entries
//! live at most their delay: their number is bounded by the arming rate
//! times the longest delay.

use crate::config::Timer;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// One armed (or formerly armed) timer.
pub(crate) type Entry = (Instant, u64, Timer);

#[derive(Debug, Default)]
pub(crate) struct Schedule {
    /// One queue per delay, sorted by deadline.
    queues: Vec<(Duration, VecDeque<Entry>)>,
    /// A timer was disarmed since the fronts were last pruned.
    stale: bool,
}

impl Schedule {
    /// Adds a timer armed `after` its deadline's origin.
    pub(crate) fn push(&mut self, after: Duration, entry: Entry) {
        let i = match self.queues.iter().position(|(d, _)| *d == after) {
            Some(i) => i,
            None => {
                self.queues.push((after, VecDeque::new()));
                self.queues.len() - 1
            }
        };
        let q = &mut self.queues[i].1;
        if q.back().is_none_or(|b| b.0 <= entry.0) {
            q.push_back(entry);
        } else {
            // Callers may hand in a `now` a little older than the last one
            // (threads read the clock before taking the lock): keep order.
            let at = q.partition_point(|e| e.0 <= entry.0);
            q.insert(at, entry);
        }
    }

    /// Notes that an armed timer was disarmed (its entry is now stale).
    pub(crate) fn disarmed(&mut self) {
        self.stale = true;
    }

    /// The earliest deadline at the queues' fronts.
    pub(crate) fn first(&self) -> Option<Instant> {
        self.queues
            .iter()
            .filter_map(|(_, q)| q.front().map(|e| e.0))
            .min()
    }

    /// Moves every entry due at `now` into `due`, in deadline order.
    pub(crate) fn take_due(&mut self, now: Instant, due: &mut Vec<Entry>) {
        for (_, q) in &mut self.queues {
            while let Some(&e) = q.front().filter(|e| e.0 <= now) {
                q.pop_front();
                due.push(e);
            }
        }
        due.sort_unstable();
    }

    /// Drops the stale entries at the fronts, `live` telling which entries
    /// are still armed.
    pub(crate) fn prune(&mut self, live: impl Fn(&Entry) -> bool) {
        if !std::mem::take(&mut self.stale) {
            return;
        }
        for (_, q) in &mut self.queues {
            while q.front().is_some_and(|e| !live(e)) {
                q.pop_front();
            }
        }
    }
}
