//! DTMF as RTP telephone-events (RFC 4733): the payload format (§2.3), a
//! sender that produces the packets of each event (§2.5.1) and a receiver
//! that reports each event once (§2.5.2).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::TelephoneEventError;
use crate::rtp::timestamp_precedes;

/// Event code of the hook flash (RFC 4733 §3.2, Table 7).
pub const EVENT_FLASH: u8 = 16;

/// The DTMF event code of a keypad character (RFC 4733 §3.2, Table 7):
/// `0`-`9` are 0-9, `*` is 10, `#` is 11, `A`-`D` are 12-15.
pub fn event_from_char(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// The keypad character of a DTMF event code 0-15 (RFC 4733 Table 7).
pub fn event_to_char(event: u8) -> Option<char> {
    match event {
        0..=9 => Some((b'0' + event) as char),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some((b'A' + event - 12) as char),
        _ => None,
    }
}

/// One telephone-event payload block (RFC 4733 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (§2.3.1; 0-16 for DTMF and flash, Table 7).
    pub event: u8,
    /// "E" bit: this packet ends the event (§2.3.2).
    pub end: bool,
    /// Power level as dBm0 below zero, 0-63 (§2.3.4; only 6 bits are sent).
    pub volume: u8,
    /// Duration so far in timestamp units, from the event's timestamp
    /// (§2.3.5).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload (the reserved bit is
    /// ignored, as §2.3.3 asks of receivers). Further blocks (§2.5.1.5
    /// redundancy) are not used.
    pub fn parse(payload: &[u8]) -> Result<TelephoneEvent, TelephoneEventError> {
        if payload.len() < 4 {
            return Err(TelephoneEventError::TooShort(payload.len()));
        }
        Ok(TelephoneEvent {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    /// The 4-octet payload (R bit zero, §2.3.3).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            u8::from(self.end) << 7 | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Settings of a [`DtmfSender`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmfSenderConfig {
    /// Negotiated telephone-event payload type (dynamic, from SDP).
    pub payload_type: u8,
    /// RTP clock rate of the stream (8000 for telephone-event/8000).
    pub clock_rate: u32,
    /// Interval between packets of an event (§2.5.1.2; 20 ms by default,
    /// matching the audio packetization).
    pub packet_interval: Duration,
    /// Tone duration of each digit (default 100 ms).
    pub event_duration: Duration,
    /// Pause between two digits before the next event starts (default 50 ms).
    pub inter_event_gap: Duration,
    /// Volume in -dBm0 (default 10).
    pub volume: u8,
    /// Times the end packet is sent (§2.5.1.4: three).
    pub end_packets: u8,
}

impl Default for DtmfSenderConfig {
    fn default() -> Self {
        DtmfSenderConfig {
            payload_type: 101,
            clock_rate: 8000,
            packet_interval: Duration::from_millis(20),
            event_duration: Duration::from_millis(100),
            inter_event_gap: Duration::from_millis(50),
            volume: 10,
            end_packets: 3,
        }
    }
}

/// A telephone-event packet to send: the caller wraps it into RTP with
/// [`crate::rtp::Packetizer::packet`], which assigns the sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DtmfPacket {
    /// Payload type to use.
    pub payload_type: u8,
    /// Marker bit: set on the first packet of an event (§2.5.1.1).
    pub marker: bool,
    /// RTP timestamp of the event's beginning; the same in every packet of
    /// the event, retransmissions included (§2.5.1.2).
    pub timestamp: u32,
    /// The event block.
    pub event: TelephoneEvent,
}

impl DtmfPacket {
    /// The RTP payload.
    pub fn payload(&self) -> Bytes {
        Bytes::copy_from_slice(&self.event.to_bytes())
    }
}

/// Where the sender is, per RFC 4733 §2.5.1.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SenderState {
    /// Nothing to send.
    Idle,
    /// Between events until `until`.
    Gap { until: Instant },
    /// An event is on: one update every packet interval (§2.5.1.2).
    Sending {
        event: u8,
        timestamp: u32,
        sent: u32,
        total: u16,
        next_at: Instant,
    },
    /// The event ended: `remaining` end packets still to send (§2.5.1.4).
    /// `marker` is set when the event is no longer than one interval, so its
    /// first packet is already the end packet.
    Ending {
        event: u8,
        timestamp: u32,
        total: u16,
        remaining: u8,
        next_at: Instant,
        marker: bool,
    },
}

/// Produces the packets of queued DTMF events (RFC 4733 §2.5.1).
///
/// Drive it with [`DtmfSender::poll`] at or after [`DtmfSender::poll_timeout`].
/// For each event of duration D and packet interval P (in timestamp units)
/// it emits, one per interval: a first packet with the marker bit and
/// duration P, updates with durations 2P, 3P, ... below D, then the end
/// packet (E bit, duration D) `end_packets` times. Every packet carries the
/// timestamp of the event's beginning. While [`DtmfSender::is_sending`] is
/// true the caller sends no audio and advances the audio timestamp instead.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    config: DtmfSenderConfig,
    queue: VecDeque<u8>,
    state: SenderState,
}

/// Most events queued at once.
pub const MAX_QUEUED_EVENTS: usize = 256;

impl DtmfSender {
    /// A sender with nothing queued.
    pub fn new(config: DtmfSenderConfig) -> Self {
        DtmfSender {
            config,
            queue: VecDeque::new(),
            state: SenderState::Idle,
        }
    }

    /// Queues an event code (0-16 for DTMF and flash; others are allowed by
    /// §2.3.1 but not sent by this stack). Returns false when the queue is full.
    pub fn queue_event(&mut self, event: u8) -> bool {
        if self.queue.len() >= MAX_QUEUED_EVENTS {
            return false;
        }
        self.queue.push_back(event);
        true
    }

    /// Queues the digits of a string (`0-9*#A-D`). Returns the first
    /// character that is not a DTMF digit, queuing nothing in that case.
    pub fn queue_digits(&mut self, digits: &str) -> Result<(), char> {
        if let Some(bad) = digits.chars().find(|&c| event_from_char(c).is_none()) {
            return Err(bad);
        }
        for c in digits.chars() {
            let _ = self.queue_event(event_from_char(c).unwrap_or(0));
        }
        Ok(())
    }

    /// True while an event is being sent (audio must pause).
    pub fn is_sending(&self) -> bool {
        matches!(
            self.state,
            SenderState::Sending { .. } | SenderState::Ending { .. }
        )
    }

    /// True when nothing is queued or in progress.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && matches!(self.state, SenderState::Idle)
    }

    fn units(&self, d: Duration) -> u32 {
        (d.as_nanos() * u128::from(self.config.clock_rate) / 1_000_000_000)
            .min(u128::from(u16::MAX)) as u32
    }

    /// When `poll` has something to do next, if anything.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            SenderState::Idle => None,
            SenderState::Gap { until } => Some(*until),
            SenderState::Sending { next_at, .. } | SenderState::Ending { next_at, .. } => {
                Some(*next_at)
            }
        }
    }

    /// Returns the packet due at `now`, if any. `media_timestamp` is the
    /// stream's current RTP timestamp, used as the timestamp of an event
    /// that starts now. Call again until it returns `None`.
    pub fn poll(&mut self, now: Instant, media_timestamp: u32) -> Option<DtmfPacket> {
        let interval = self.config.packet_interval.max(Duration::from_millis(1));
        let step = self.units(interval).max(1);
        loop {
            match self.state.clone() {
                SenderState::Idle => {
                    let event = self.queue.pop_front()?;
                    let total = self.units(self.config.event_duration).max(step) as u16;
                    self.state = SenderState::Sending {
                        event,
                        timestamp: media_timestamp,
                        sent: 0,
                        total,
                        next_at: now,
                    };
                }
                SenderState::Gap { until } => {
                    if now < until {
                        return None;
                    }
                    self.state = SenderState::Idle;
                }
                SenderState::Sending {
                    event,
                    timestamp,
                    sent,
                    total,
                    next_at,
                } => {
                    if now < next_at {
                        return None;
                    }
                    let duration = (sent + 1) * step;
                    if duration >= u32::from(total) {
                        self.state = SenderState::Ending {
                            event,
                            timestamp,
                            total,
                            remaining: self.config.end_packets.max(1),
                            next_at,
                            marker: sent == 0,
                        };
                        continue;
                    }
                    self.state = SenderState::Sending {
                        event,
                        timestamp,
                        sent: sent + 1,
                        total,
                        next_at: next_at + interval,
                    };
                    return Some(self.packet(sent == 0, timestamp, event, false, duration as u16));
                }
                SenderState::Ending {
                    event,
                    timestamp,
                    total,
                    remaining,
                    next_at,
                    marker,
                } => {
                    if now < next_at {
                        return None;
                    }
                    self.state = if remaining > 1 {
                        SenderState::Ending {
                            event,
                            timestamp,
                            total,
                            remaining: remaining - 1,
                            next_at: next_at + interval,
                            marker: false,
                        }
                    } else {
                        SenderState::Gap {
                            until: next_at + interval + self.config.inter_event_gap,
                        }
                    };
                    return Some(self.packet(marker, timestamp, event, true, total));
                }
            }
        }
    }

    fn packet(
        &self,
        marker: bool,
        timestamp: u32,
        event: u8,
        end: bool,
        duration: u16,
    ) -> DtmfPacket {
        DtmfPacket {
            payload_type: self.config.payload_type,
            marker,
            timestamp,
            event: TelephoneEvent {
                event,
                end,
                volume: self.config.volume,
                duration,
            },
        }
    }
}

/// An event reported by the [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedEvent {
    /// Event code.
    pub event: u8,
    /// RTP timestamp of the event's beginning.
    pub timestamp: u32,
    /// Last duration seen, in timestamp units.
    pub duration: u16,
    /// Whether an end packet was seen (false when the end packets were lost
    /// and a later event revealed that this one was over).
    pub ended: bool,
}

impl ReceivedEvent {
    /// The keypad character, for events 0-15.
    pub fn digit(&self) -> Option<char> {
        event_to_char(self.event)
    }
}

/// Reports each received telephone-event once, in order (RFC 4733 §2.5.2).
///
/// An event is identified by its RTP timestamp (§2.5.2.1). It is reported
/// on its first end packet; retransmitted end packets and late updates of an
/// event already reported are ignored. If an event's end packets are all
/// lost, the event is reported when a newer event begins (§2.5.2.2).
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    /// The event in progress (not yet reported).
    current: Option<ReceivedEvent>,
    /// Timestamp of the last reported event.
    last_reported: Option<u32>,
}

impl DtmfReceiver {
    /// A receiver that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles the payload of one telephone-event packet with its RTP
    /// timestamp. Returns up to two events now known to be complete (an
    /// unended older event, then this one), in order.
    pub fn handle_packet(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Vec<ReceivedEvent>, TelephoneEventError> {
        let te = TelephoneEvent::parse(payload)?;
        let mut out = Vec::new();
        if let Some(last) = self.last_reported {
            if last == timestamp || timestamp_precedes(timestamp, last) {
                // A retransmitted end, or a late packet of a reported event.
                return Ok(out);
            }
        }
        match &mut self.current {
            Some(cur) if cur.timestamp == timestamp => {
                cur.duration = cur.duration.max(te.duration);
                cur.event = te.event;
            }
            Some(cur) if timestamp_precedes(timestamp, cur.timestamp) => {
                // A late packet of an even older event: ignore.
                return Ok(out);
            }
            _ => {
                // A new event; an unended previous one is over (§2.5.2.2).
                if let Some(prev) = self.current.take() {
                    self.last_reported = Some(prev.timestamp);
                    out.push(prev);
                }
                self.current = Some(ReceivedEvent {
                    event: te.event,
                    timestamp,
                    duration: te.duration,
                    ended: false,
                });
            }
        }
        if te.end {
            if let Some(mut cur) = self.current.take() {
                cur.ended = true;
                self.last_reported = Some(cur.timestamp);
                out.push(cur);
            }
        }
        Ok(out)
    }

    /// Reports the event in progress, if any, as over (for example when the
    /// stream stops).
    pub fn finish(&mut self) -> Option<ReceivedEvent> {
        let cur = self.current.take()?;
        self.last_reported = Some(cur.timestamp);
        Some(cur)
    }
}
