//! RTCP (RFC 3550 §6): sender reports (SR, §6.4.1), receiver reports
//! (RR, §6.4.2), source descriptions (SDES, §6.5, CNAME) and BYE (§6.6),
//! parsed from and built into compound packets (§6.1).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::RtcpError;

/// Packet type of a sender report (RFC 3550 §12.1).
pub const RTCP_SR: u8 = 200;
/// Packet type of a receiver report.
pub const RTCP_RR: u8 = 201;
/// Packet type of a source description.
pub const RTCP_SDES: u8 = 202;
/// Packet type of a BYE.
pub const RTCP_BYE: u8 = 203;

/// SDES item type CNAME (RFC 3550 §6.5.1).
const SDES_CNAME: u8 = 1;
/// Upper bound on packets in one compound packet we parse.
const MAX_COMPOUND_PACKETS: usize = 64;

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high
/// word, fraction in the low word. The caller reads the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The middle 32 bits, as carried in "last SR timestamp (LSR)"
    /// (RFC 3550 §6.4.1).
    pub fn middle_32(self) -> u32 {
        (self.0 >> 16) as u32
    }
}

/// One reception report block (RFC 3550 §6.4.1), about source `ssrc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// SSRC_n, the source this block reports on.
    pub ssrc: u32,
    /// Fraction lost since the previous report, as a fixed-point number with
    /// the binary point at the left edge (loss fraction × 256).
    pub fraction_lost: u8,
    /// Cumulative number of packets lost (24-bit signed: duplicates can make
    /// it negative). Clamped to the 24-bit range when written.
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (cycles << 16 | max_seq).
    pub extended_highest_sequence: u32,
    /// Interarrival jitter, in timestamp units (RFC 3550 §6.4.1, §A.8).
    pub jitter: u32,
    /// Last SR timestamp (LSR): middle 32 bits of the last SR's NTP time.
    pub last_sr: u32,
    /// Delay since last SR (DLSR), in units of 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// NTP timestamp of the report.
    pub ntp_timestamp: NtpTimestamp,
    /// The same instant in RTP timestamp units.
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's octet count (payload octets).
    pub octet_count: u32,
}

/// A sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Sender information.
    pub sender_info: SenderInfo,
    /// Reception report blocks (at most 31 are written).
    pub reports: Vec<ReportBlock>,
}

/// A receiver report (RFC 3550 §6.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// SSRC of the packet sender.
    pub ssrc: u32,
    /// Reception report blocks (at most 31 are written).
    pub reports: Vec<ReportBlock>,
}

/// One RTCP packet of a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RtcpPacket {
    /// SR, packet type 200.
    SenderReport(SenderReport),
    /// RR, packet type 201.
    ReceiverReport(ReceiverReport),
    /// SDES, packet type 202: the CNAME of each chunk's source (other items
    /// are skipped). `None` when a chunk carries no CNAME.
    SourceDescription(Vec<(u32, Option<String>)>),
    /// BYE, packet type 203: the sources leaving (the reason is skipped).
    Bye(Vec<u32>),
    /// Any other packet type, kept as its body (after the 4-octet header).
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count/subtype field.
        count: u8,
        /// Body octets.
        body: Bytes,
    },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn parse_report_blocks(body: &[u8], count: usize) -> Vec<ReportBlock> {
    body.chunks_exact(24)
        .take(count)
        .map(|b| {
            // 24-bit two's complement cumulative loss, sign-extended.
            let raw = u32::from_be_bytes([0, b[5], b[6], b[7]]);
            let cumulative_lost = ((raw << 8) as i32) >> 8;
            ReportBlock {
                ssrc: be32(&b[0..4]),
                fraction_lost: b[4],
                cumulative_lost,
                extended_highest_sequence: be32(&b[8..12]),
                jitter: be32(&b[12..16]),
                last_sr: be32(&b[16..20]),
                delay_since_last_sr: be32(&b[20..24]),
            }
        })
        .collect()
}

fn write_report_block(out: &mut BytesMut, r: &ReportBlock) {
    out.put_u32(r.ssrc);
    out.put_u8(r.fraction_lost);
    let lost = r.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
    out.put_slice(&lost.to_be_bytes()[1..]);
    out.put_u32(r.extended_highest_sequence);
    out.put_u32(r.jitter);
    out.put_u32(r.last_sr);
    out.put_u32(r.delay_since_last_sr);
}

impl RtcpPacket {
    /// Parses a compound RTCP packet (RFC 3550 §6.1) into its packets.
    ///
    /// Each packet's header is checked as §A.2 suggests: version 2, a length
    /// that fits, padding only on the last packet. Unknown packet types are
    /// kept as [`RtcpPacket::Other`].
    pub fn parse_compound(buf: &Bytes) -> Result<Vec<RtcpPacket>, RtcpError> {
        let mut packets = Vec::new();
        let mut offset = 0;
        while offset < buf.len() {
            if packets.len() >= MAX_COMPOUND_PACKETS {
                return Err(RtcpError::TooManyPackets(MAX_COMPOUND_PACKETS));
            }
            let rest = &buf[offset..];
            if rest.len() < 4 {
                return Err(RtcpError::TooShort {
                    len: rest.len(),
                    needed: 4,
                });
            }
            let version = rest[0] >> 6;
            if version != 2 {
                return Err(RtcpError::BadVersion(version));
            }
            let padding = rest[0] & 0x20 != 0;
            let count = rest[0] & 0x1F;
            let packet_type = rest[1];
            let len = 4 * (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1);
            if rest.len() < len {
                return Err(RtcpError::TooShort {
                    len: rest.len(),
                    needed: len,
                });
            }
            let mut body_end = offset + len;
            if padding {
                // Padding only on the last packet of a compound (§A.2).
                if offset + len != buf.len() {
                    return Err(RtcpError::BadPadding);
                }
                let pad = usize::from(buf[body_end - 1]);
                if pad == 0 || pad > len - 4 {
                    return Err(RtcpError::BadPadding);
                }
                body_end -= pad;
            }
            let body = buf.slice(offset + 4..body_end);
            packets.push(Self::parse_one(packet_type, count, body)?);
            offset += len;
        }
        Ok(packets)
    }

    fn parse_one(packet_type: u8, count: u8, body: Bytes) -> Result<RtcpPacket, RtcpError> {
        let n = usize::from(count);
        let bad_count = || RtcpError::BadReportCount {
            count,
            len: body.len() + 4,
        };
        Ok(match packet_type {
            RTCP_SR => {
                if body.len() < 24 + 24 * n {
                    return Err(bad_count());
                }
                let ntp = u64::from(be32(&body[4..8])) << 32 | u64::from(be32(&body[8..12]));
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: be32(&body[0..4]),
                    sender_info: SenderInfo {
                        ntp_timestamp: NtpTimestamp(ntp),
                        rtp_timestamp: be32(&body[12..16]),
                        packet_count: be32(&body[16..20]),
                        octet_count: be32(&body[20..24]),
                    },
                    reports: parse_report_blocks(&body[24..], n),
                })
            }
            RTCP_RR => {
                if body.len() < 4 + 24 * n {
                    return Err(bad_count());
                }
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: be32(&body[0..4]),
                    reports: parse_report_blocks(&body[4..], n),
                })
            }
            RTCP_SDES => RtcpPacket::SourceDescription(parse_sdes(&body, n)?),
            RTCP_BYE => {
                if body.len() < 4 * n {
                    return Err(bad_count());
                }
                RtcpPacket::Bye(body[..4 * n].chunks_exact(4).map(be32).collect())
            }
            _ => RtcpPacket::Other {
                packet_type,
                count,
                body,
            },
        })
    }

    /// Appends this packet to `out` (no padding).
    pub fn write(&self, out: &mut BytesMut) {
        let start = out.len();
        match self {
            RtcpPacket::SenderReport(sr) => {
                let reports = &sr.reports[..sr.reports.len().min(31)];
                header(out, reports.len() as u8, RTCP_SR);
                out.put_u32(sr.ssrc);
                out.put_u64(sr.sender_info.ntp_timestamp.0);
                out.put_u32(sr.sender_info.rtp_timestamp);
                out.put_u32(sr.sender_info.packet_count);
                out.put_u32(sr.sender_info.octet_count);
                reports.iter().for_each(|r| write_report_block(out, r));
            }
            RtcpPacket::ReceiverReport(rr) => {
                let reports = &rr.reports[..rr.reports.len().min(31)];
                header(out, reports.len() as u8, RTCP_RR);
                out.put_u32(rr.ssrc);
                reports.iter().for_each(|r| write_report_block(out, r));
            }
            RtcpPacket::SourceDescription(chunks) => {
                let chunks = &chunks[..chunks.len().min(31)];
                header(out, chunks.len() as u8, RTCP_SDES);
                for (ssrc, cname) in chunks {
                    let chunk_start = out.len();
                    out.put_u32(*ssrc);
                    if let Some(cname) = cname {
                        let text = &cname.as_bytes()[..cname.len().min(255)];
                        out.put_u8(SDES_CNAME);
                        out.put_u8(text.len() as u8);
                        out.put_slice(text);
                    }
                    // END item, then pad the chunk to a 32-bit boundary (§6.5).
                    out.put_u8(0);
                    while (out.len() - chunk_start) % 4 != 0 {
                        out.put_u8(0);
                    }
                }
            }
            RtcpPacket::Bye(sources) => {
                let sources = &sources[..sources.len().min(31)];
                header(out, sources.len() as u8, RTCP_BYE);
                sources.iter().for_each(|s| out.put_u32(*s));
            }
            RtcpPacket::Other {
                packet_type,
                count,
                body,
            } => {
                header(out, *count & 0x1F, *packet_type);
                out.put_slice(body);
                while (out.len() - start) % 4 != 0 {
                    out.put_u8(0);
                }
            }
        }
        // Length in 32-bit words minus one (RFC 3550 §6.4.1 "length").
        let words = ((out.len() - start) / 4 - 1) as u16;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
    }

    /// Serializes packets into one compound packet (RFC 3550 §6.1: the
    /// caller puts an SR or RR first and an SDES with CNAME in it).
    pub fn build_compound(packets: &[RtcpPacket]) -> Bytes {
        let mut out = BytesMut::new();
        for p in packets {
            p.write(&mut out);
        }
        out.freeze()
    }
}

fn header(out: &mut BytesMut, count: u8, packet_type: u8) {
    out.put_u8(2 << 6 | (count & 0x1F));
    out.put_u8(packet_type);
    out.put_u16(0); // patched by `write`
}

fn parse_sdes(body: &[u8], chunks: usize) -> Result<Vec<(u32, Option<String>)>, RtcpError> {
    let mut out = Vec::with_capacity(chunks.min(31));
    let mut offset = 0;
    for _ in 0..chunks {
        if body.len() < offset + 4 {
            return Err(RtcpError::BadSdes);
        }
        let ssrc = be32(&body[offset..]);
        let chunk_start = offset;
        offset += 4;
        let mut cname = None;
        loop {
            let Some(&item) = body.get(offset) else {
                return Err(RtcpError::BadSdes);
            };
            if item == 0 {
                offset += 1;
                // Skip to the next 32-bit boundary of the chunk.
                while (offset - chunk_start) % 4 != 0 {
                    offset += 1;
                }
                break;
            }
            let Some(&len) = body.get(offset + 1) else {
                return Err(RtcpError::BadSdes);
            };
            let end = offset + 2 + usize::from(len);
            let Some(text) = body.get(offset + 2..end) else {
                return Err(RtcpError::BadSdes);
            };
            if item == SDES_CNAME {
                cname = Some(String::from_utf8_lossy(text).into_owned());
            }
            offset = end;
        }
        out.push((ssrc, cname));
    }
    Ok(out)
}
