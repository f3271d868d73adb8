//! A playout (jitter) buffer for fixed-size audio frames (RFC 3550 §6.4.1
//! explains why arrival times vary; RFC 3551 §4.1 fixes audio framing).
//!
//! Packets go in with [`JitterBuffer::handle_packet`] as they arrive, in any
//! order; frames come out with [`JitterBuffer::poll_frame`] at a steady pace
//! of one frame per `frame_duration`, starting `target_delay` after the first
//! packet arrived. A frame whose packet is missing at its playout time is
//! concealed (the caller plays silence); a packet that arrives after its
//! frame was played, or twice, is dropped. Capacity is bounded.
//!
//! Ordering is by RTP sequence number (extended past wrap), and each packet
//! is assumed to carry one frame: this is how habla sends G.711 (20 ms per
//! packet) and how most peers do.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::rtp::RtpPacket;

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JitterBufferConfig {
    /// Delay between the first packet's arrival and its playout.
    pub target_delay: Duration,
    /// Playout time of one frame (one packet).
    pub frame_duration: Duration,
    /// Most packets held; packets further ahead are dropped.
    pub capacity: usize,
}

impl Default for JitterBufferConfig {
    fn default() -> Self {
        JitterBufferConfig {
            target_delay: Duration::from_millis(60),
            frame_duration: Duration::from_millis(20),
            capacity: 50,
        }
    }
}

/// What happened to a packet given to [`JitterBuffer::handle_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Stored for playout.
    Buffered,
    /// Its frame was already played (or concealed): dropped.
    Late,
    /// The same sequence number is already buffered: dropped.
    Duplicate,
    /// Too far ahead of the playout point for the capacity: dropped.
    Overflow,
}

/// One frame for playout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The packet for this slot arrived in time.
    Audio {
        /// Its sequence number.
        sequence_number: u16,
        /// Its RTP timestamp.
        timestamp: u32,
        /// Its payload type.
        payload_type: u8,
        /// Its payload.
        payload: Bytes,
    },
    /// The packet for this slot is missing: play silence (or conceal).
    Missing {
        /// The sequence number that was expected.
        sequence_number: u16,
    },
}

/// Counters of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStatistics {
    /// Frames played from packets.
    pub played: u64,
    /// Frames concealed because their packet was missing.
    pub concealed: u64,
    /// Packets dropped as late.
    pub late: u64,
    /// Packets dropped as duplicates.
    pub duplicates: u64,
    /// Packets dropped for capacity.
    pub overflow: u64,
}

/// The playout buffer. See the module documentation.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterBufferConfig,
    /// Extended sequence number of the next frame to play.
    next_sequence: u64,
    /// When that frame plays; `None` until the first packet.
    next_playout: Option<Instant>,
    packets: BTreeMap<u64, RtpPacket>,
    statistics: JitterStatistics,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new(config: JitterBufferConfig) -> Self {
        JitterBuffer {
            config,
            next_sequence: 0,
            next_playout: None,
            packets: BTreeMap::new(),
            statistics: JitterStatistics::default(),
        }
    }

    /// Counters so far.
    pub fn statistics(&self) -> JitterStatistics {
        self.statistics
    }

    /// Packets currently held.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// True when no packet is held.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Extends a 16-bit sequence number to the 64-bit one closest to the
    /// playout point (RFC 3550 §A.1 style wrap handling).
    fn extend(&self, sequence: u16) -> u64 {
        let reference = self.next_sequence;
        let delta = sequence.wrapping_sub(reference as u16) as i16;
        // 2^32 offset in `new_for_first` keeps this from going below zero.
        reference.wrapping_add_signed(i64::from(delta))
    }

    /// Takes one received packet at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: RtpPacket) -> Admission {
        if self.next_playout.is_none() {
            // First packet: its frame plays after the target delay. Start the
            // extended space high so earlier packets do not underflow.
            self.next_sequence = (1 << 32) + u64::from(packet.sequence_number);
            self.next_playout = Some(now + self.config.target_delay);
        }
        let mut ext = self.extend(packet.sequence_number);
        let capacity = self.config.capacity.max(1) as u64;
        if self.packets.is_empty() && ext.abs_diff(self.next_sequence) >= capacity {
            // Nothing buffered and a jump larger than the buffer: the peer
            // restarted its sequence (or resumed after a long pause), so
            // re-synchronise playout on this packet.
            self.next_sequence = (1 << 32) + u64::from(packet.sequence_number);
            self.next_playout = Some(now + self.config.target_delay);
            ext = self.next_sequence;
        }
        if ext < self.next_sequence {
            self.statistics.late += 1;
            return Admission::Late;
        }
        if self.packets.contains_key(&ext) {
            self.statistics.duplicates += 1;
            return Admission::Duplicate;
        }
        if ext - self.next_sequence >= capacity {
            self.statistics.overflow += 1;
            return Admission::Overflow;
        }
        self.packets.insert(ext, packet);
        Admission::Buffered
    }

    /// When the next frame is due, once a packet has arrived.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_playout
    }

    /// Returns the next frame if its playout time has come by `now`. Call
    /// again until `None`: after a stall every overdue frame comes out.
    pub fn poll_frame(&mut self, now: Instant) -> Option<Frame> {
        let due = self.next_playout?;
        if now < due {
            return None;
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.next_playout = Some(due + self.config.frame_duration);
        Some(match self.packets.remove(&sequence) {
            Some(p) => {
                self.statistics.played += 1;
                Frame::Audio {
                    sequence_number: p.sequence_number,
                    timestamp: p.timestamp,
                    payload_type: p.payload_type,
                    payload: p.payload,
                }
            }
            None => {
                self.statistics.concealed += 1;
                Frame::Missing {
                    sequence_number: sequence as u16,
                }
            }
        })
    }
}
