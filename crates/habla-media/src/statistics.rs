//! Receiver statistics of one RTP source: sequence number validation
//! (RFC 3550 §A.1), loss for reception reports (§A.3, §6.4.1) and
//! interarrival jitter (§A.8, §6.4.1).
//!
//! Time is an input: each packet comes with the `Instant` it arrived, read
//! by the driver.

use std::time::{Duration, Instant};

use crate::rtcp::{NtpTimestamp, ReportBlock};

/// A source is declared valid after this many packets in sequence (§A.1).
pub const MIN_SEQUENTIAL: u16 = 2;
/// Largest forward jump still treated as the same sequence (§A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// Largest backward jump treated as reordering rather than a restart (§A.1).
pub const MAX_MISORDER: u16 = 100;
const RTP_SEQ_MOD: u32 = 1 << 16;

/// What [`SourceStatistics::handle_packet`] decided about a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketVerdict {
    /// Counted: the source is valid and the sequence number is plausible.
    Valid,
    /// The source is still on probation (§A.1): not yet counted.
    Probation,
    /// A very large jump: dropped unless the next packet follows it, in
    /// which case the sequence is re-synchronised (§A.1 "bad_seq").
    BadSequence,
}

/// Per-source reception state, the `source` structure of RFC 3550 §A.1.
#[derive(Debug, Clone)]
pub struct SourceStatistics {
    clock_rate: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u16,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Relative transit time of the previous packet, timestamp units.
    transit: Option<i64>,
    /// Jitter × 16 (§A.8 integer form).
    jitter_q4: u64,
    epoch: Option<Instant>,
    last_sr: Option<(u32, Instant)>,
}

impl SourceStatistics {
    /// State for a source whose first packet carries `sequence`, with the
    /// RFC's probation of [`MIN_SEQUENTIAL`] packets. `clock_rate` is the RTP
    /// clock in Hz (8000 for G.711).
    pub fn new(sequence: u16, clock_rate: u32) -> Self {
        Self::with_probation(sequence, clock_rate, MIN_SEQUENTIAL)
    }

    /// Like [`SourceStatistics::new`] with another probation; 0 accepts the
    /// source at once (for a source already validated by signalling).
    pub fn with_probation(sequence: u16, clock_rate: u32, probation: u16) -> Self {
        let mut s = SourceStatistics {
            clock_rate: clock_rate.max(1),
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            epoch: None,
            last_sr: None,
        };
        s.init_seq(sequence);
        if probation > 0 {
            // §A.1: "s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL;"
            s.max_seq = sequence.wrapping_sub(1);
            s.probation = probation;
        }
        // Without probation max_seq stays at `sequence`: the first packet is
        // then an in-order delta of 0 and is counted, with no false wrap.
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1; // so seq == bad_seq is false
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// `update_seq` of §A.1.
    fn update_seq(&mut self, seq: u16) -> PacketVerdict {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // Source is not valid until MIN_SEQUENTIAL packets in sequence.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return PacketVerdict::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return PacketVerdict::Probation;
        } else if udelta < MAX_DROPOUT {
            // In order, with a permissible gap.
            if seq < self.max_seq {
                // Sequence number wrapped: count another 64K cycle.
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted
                // without telling us, so just re-sync.
                self.init_seq(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return PacketVerdict::BadSequence;
            }
        } else {
            // Duplicate or reordered packet: counted, max_seq unchanged.
        }
        self.received = self.received.wrapping_add(1);
        PacketVerdict::Valid
    }

    /// Handles one received RTP packet of this source: validates the
    /// sequence number (§A.1) and, for counted packets, updates the
    /// interarrival jitter (§A.8) from the arrival instant and RTP timestamp.
    pub fn handle_packet(&mut self, now: Instant, sequence: u16, timestamp: u32) -> PacketVerdict {
        let verdict = self.update_seq(sequence);
        if verdict == PacketVerdict::Valid {
            self.update_jitter(now, timestamp);
        }
        verdict
    }

    /// Arrival time in timestamp units relative to the first packet.
    fn arrival_units(&mut self, now: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert(now);
        let elapsed = now.saturating_duration_since(epoch);
        (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as i64
    }

    /// §A.8: `D(i-1,i) = (Rj - Ri) - (Sj - Si)`, `J += (|D| - J) / 16`,
    /// kept ×16 in integer form.
    fn update_jitter(&mut self, now: Instant, timestamp: u32) {
        let arrival = self.arrival_units(now);
        // Transit time modulo 2^32, in timestamp units, as a signed value so
        // a wrapped RTP timestamp gives the right difference.
        let transit = i64::from((arrival as u32).wrapping_sub(timestamp) as i32);
        if let Some(previous) = self.transit {
            let d = i64::from((transit - previous) as i32).unsigned_abs();
            // d < 2^31, so jitter×16 stays below 2^35: no overflow in u64.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.transit = Some(transit);
    }

    /// Packets counted as received (§A.3 "received").
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Extended highest sequence number received (§A.3 "extended_max").
    pub fn extended_highest_sequence(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected (§A.3: `extended_max - base_seq + 1`).
    pub fn expected(&self) -> u32 {
        self.extended_highest_sequence()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Cumulative number of packets lost (§A.3), clamped to the 24-bit
    /// signed range of the report block.
    pub fn cumulative_lost(&self) -> i32 {
        if self.probation > 0 {
            return 0;
        }
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7F_FFFF) as i32
    }

    /// Interarrival jitter in timestamp units (§A.8: `jitter >> 4`).
    pub fn jitter(&self) -> u32 {
        (self.jitter_q4 >> 4).min(u64::from(u32::MAX)) as u32
    }

    /// Interarrival jitter as a duration.
    pub fn jitter_duration(&self) -> Duration {
        Duration::from_nanos(u64::from(self.jitter()) * 1_000_000_000 / u64::from(self.clock_rate))
    }

    /// Records a sender report received from this source at `now`, for the
    /// LSR and DLSR fields of the next report block (§6.4.1).
    pub fn handle_sender_report(&mut self, now: Instant, ntp_timestamp: NtpTimestamp) {
        self.last_sr = Some((ntp_timestamp.middle_32(), now));
    }

    /// Builds the report block about this source (`ssrc`) at `now` and starts
    /// a new reporting interval: the fraction lost covers the packets since
    /// the previous call (§A.3).
    pub fn report_block(&mut self, now: Instant, ssrc: u32) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if self.probation > 0 || expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at);
                // DLSR in units of 1/65536 seconds.
                let units = delay.as_nanos() * 65_536 / 1_000_000_000;
                (lsr, units.min(u128::from(u32::MAX)) as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            extended_highest_sequence: self.extended_highest_sequence(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}
