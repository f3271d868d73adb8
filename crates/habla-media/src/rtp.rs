//! RTP data packets (RFC 3550 §5.1) and a packetizer for fixed audio frames.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::RtpError;

/// The only RTP version (RFC 3550 §5.1, "V").
pub const RTP_VERSION: u8 = 2;
/// Fixed header length in octets (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;

/// `a` precedes `b` in the 16-bit sequence number space, modulo wrap
/// (RFC 3550 §A.1 compares within half the space, RFC 1982 style).
#[inline]
pub fn sequence_precedes(a: u16, b: u16) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000
}

/// `a` precedes `b` in the 32-bit timestamp space, modulo wrap.
#[inline]
pub fn timestamp_precedes(a: u32, b: u32) -> bool {
    a != b && b.wrapping_sub(a) < 0x8000_0000
}

/// A header extension (RFC 3550 §5.3.1): a profile-defined 16-bit value and
/// data whose length is a multiple of four octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderExtension {
    /// "defined by profile" field.
    pub profile: u16,
    /// Extension data, a multiple of 4 octets long.
    pub data: Bytes,
}

/// An RTP data packet (RFC 3550 §5.1).
///
/// `parse` is zero-copy: the payload and extension are slices of the
/// received buffer. `to_bytes` writes the fixed header, the CSRC list, the
/// extension, the payload and, if `padding` is non-zero, that many padding
/// octets with the count in the last one (RFC 3550 §5.1, "P").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Marker bit "M" (RFC 3551 §4.1: first packet of a talkspurt for audio).
    pub marker: bool,
    /// Payload type "PT" (7 bits; RFC 3551 §6 for the static values).
    pub payload_type: u8,
    /// Sequence number, increments by one per packet sent (RFC 3550 §5.1).
    pub sequence_number: u16,
    /// Sampling instant of the first octet of the payload (RFC 3550 §5.1).
    pub timestamp: u32,
    /// Synchronization source identifier.
    pub ssrc: u32,
    /// Contributing sources (at most 15, RFC 3550 §5.1 "CC").
    pub csrc: Vec<u32>,
    /// Header extension "X" (RFC 3550 §5.3.1).
    pub extension: Option<HeaderExtension>,
    /// Payload octets (padding excluded).
    pub payload: Bytes,
    /// Number of padding octets, including the count octet (0 = no padding).
    pub padding: u8,
}

impl RtpPacket {
    /// A packet with no CSRC, extension or padding.
    pub fn new(
        payload_type: u8,
        sequence_number: u16,
        timestamp: u32,
        ssrc: u32,
        payload: Bytes,
    ) -> Self {
        RtpPacket {
            marker: false,
            payload_type: payload_type & 0x7F,
            sequence_number,
            timestamp,
            ssrc,
            csrc: Vec::new(),
            extension: None,
            payload,
            padding: 0,
        }
    }

    /// Parses one RTP packet (RFC 3550 §5.1), validating what §A.1 asks of a
    /// packet before it is counted: version 2, a padding count that fits,
    /// a CSRC list and extension that fit in the packet.
    pub fn parse(buf: Bytes) -> Result<RtpPacket, RtpError> {
        if buf.len() < RTP_HEADER_LEN {
            return Err(RtpError::TooShort {
                len: buf.len(),
                needed: RTP_HEADER_LEN,
            });
        }
        let b0 = buf[0];
        let version = b0 >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = usize::from(b0 & 0x0F);
        let b1 = buf[1];
        let marker = b1 & 0x80 != 0;
        let payload_type = b1 & 0x7F;
        let sequence_number = u16::from_be_bytes([buf[2], buf[3]]);
        let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);

        let mut offset = RTP_HEADER_LEN;
        let csrc_end = offset + 4 * csrc_count;
        if buf.len() < csrc_end {
            return Err(RtpError::TooShort {
                len: buf.len(),
                needed: csrc_end,
            });
        }
        let csrc = buf[offset..csrc_end]
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        offset = csrc_end;

        let extension = if has_extension {
            let needed = offset + 4;
            if buf.len() < needed {
                return Err(RtpError::TooShort {
                    len: buf.len(),
                    needed,
                });
            }
            let profile = u16::from_be_bytes([buf[offset], buf[offset + 1]]);
            let words = usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
            let end = needed + 4 * words;
            if buf.len() < end {
                return Err(RtpError::TooShort {
                    len: buf.len(),
                    needed: end,
                });
            }
            let data = buf.slice(needed..end);
            offset = end;
            Some(HeaderExtension { profile, data })
        } else {
            None
        };

        let mut end = buf.len();
        let mut padding = 0;
        if has_padding {
            // RFC 3550 §5.1: the last octet counts the padding, itself included.
            padding = buf[buf.len() - 1];
            if padding == 0 || usize::from(padding) > end - offset {
                return Err(RtpError::BadPadding(padding));
            }
            end -= usize::from(padding);
        }
        Ok(RtpPacket {
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrc,
            extension,
            payload: buf.slice(offset..end),
            padding,
        })
    }

    /// Serialized length in octets.
    pub fn len(&self) -> usize {
        RTP_HEADER_LEN
            + 4 * self.csrc.len().min(15)
            + self
                .extension
                .as_ref()
                .map_or(0, |e| 4 + (e.data.len() / 4) * 4)
            + self.payload.len()
            + usize::from(self.padding)
    }

    /// Always false: a packet has at least its fixed header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Serializes the packet. At most 15 CSRCs are written; extension data is
    /// truncated to a multiple of four octets (and 65 535 words).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        self.write(&mut out);
        out.freeze()
    }

    /// Appends the serialized packet to `out`.
    pub fn write(&self, out: &mut BytesMut) {
        let csrc = &self.csrc[..self.csrc.len().min(15)];
        let mut b0 = RTP_VERSION << 6 | csrc.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.put_u8(b0);
        out.put_u8(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.put_u16(self.sequence_number);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        for c in csrc {
            out.put_u32(*c);
        }
        if let Some(ext) = &self.extension {
            let words = (ext.data.len() / 4).min(usize::from(u16::MAX));
            out.put_u16(ext.profile);
            out.put_u16(words as u16);
            out.put_slice(&ext.data[..words * 4]);
        }
        out.put_slice(&self.payload);
        if self.padding > 0 {
            for _ in 1..self.padding {
                out.put_u8(0);
            }
            out.put_u8(self.padding);
        }
    }
}

/// Builds the packets of one outgoing RTP stream: fixed SSRC, sequence
/// numbers incrementing by one per packet and timestamps by the samples per
/// frame (RFC 3550 §5.1), both wrapping. The initial sequence number and
/// timestamp SHOULD be random (RFC 3550 §5.1); the caller supplies them.
///
/// For 20 ms G.711 frames at 8 kHz a frame is 160 samples
/// (RFC 3551 §4.5.14, `SAMPLES_PER_20MS_AT_8KHZ`).
#[derive(Debug, Clone)]
pub struct Packetizer {
    ssrc: u32,
    payload_type: u8,
    next_sequence: u16,
    next_timestamp: u32,
    samples_per_frame: u32,
    talkspurt_start: bool,
    packets_sent: u32,
    octets_sent: u32,
}

/// Samples in 20 ms at 8000 Hz (RFC 3551 §4.5: default packetization).
pub const SAMPLES_PER_20MS_AT_8KHZ: u32 = 160;

impl Packetizer {
    /// A packetizer. The first packet carries the marker bit (RFC 3551 §4.1:
    /// first packet after silence).
    pub fn new(
        ssrc: u32,
        payload_type: u8,
        initial_sequence: u16,
        initial_timestamp: u32,
        samples_per_frame: u32,
    ) -> Self {
        Packetizer {
            ssrc,
            payload_type: payload_type & 0x7F,
            next_sequence: initial_sequence,
            next_timestamp: initial_timestamp,
            samples_per_frame,
            talkspurt_start: true,
            packets_sent: 0,
            octets_sent: 0,
        }
    }

    /// The SSRC of the stream.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.next_sequence
    }

    /// The timestamp the next audio frame will carry.
    pub fn next_timestamp(&self) -> u32 {
        self.next_timestamp
    }

    /// Sender's packet count for RTCP SR (RFC 3550 §6.4.1), wrapping.
    pub fn packets_sent(&self) -> u32 {
        self.packets_sent
    }

    /// Sender's octet count (payload octets) for RTCP SR, wrapping.
    pub fn octets_sent(&self) -> u32 {
        self.octets_sent
    }

    /// Packetizes one audio frame: the packet gets the next sequence number
    /// and the current timestamp, then the timestamp advances by one frame.
    pub fn packetize(&mut self, payload: Bytes) -> RtpPacket {
        let timestamp = self.next_timestamp;
        self.next_timestamp = self.next_timestamp.wrapping_add(self.samples_per_frame);
        let marker = std::mem::take(&mut self.talkspurt_start);
        self.packet(self.payload_type, marker, timestamp, payload)
    }

    /// Builds a packet of another payload type in the same stream (for
    /// RFC 4733 telephone-events): takes the next sequence number, leaves the
    /// audio timestamp alone.
    pub fn packet(
        &mut self,
        payload_type: u8,
        marker: bool,
        timestamp: u32,
        payload: Bytes,
    ) -> RtpPacket {
        let mut p = RtpPacket::new(
            payload_type,
            self.next_sequence,
            timestamp,
            self.ssrc,
            payload,
        );
        p.marker = marker;
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(p.payload.len() as u32);
        p
    }

    /// Advances the timestamp without sending (silence not transmitted, or
    /// time covered by a telephone-event); the next audio packet starts a
    /// new talkspurt and carries the marker bit (RFC 3551 §4.1).
    pub fn skip(&mut self, samples: u32) {
        self.next_timestamp = self.next_timestamp.wrapping_add(samples);
        self.talkspurt_start = true;
    }
}
