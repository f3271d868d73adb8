//! Errors of the media layer, one enum per format, grouped by who is at
//! fault: the peer sent something malformed, or a local file/format is not
//! supported.

/// A received RTP packet that cannot be parsed (RFC 3550 §5.1, §A.1 checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Fewer octets than the headers announce.
    #[error("RTP packet too short: {len} octets, {needed} needed")]
    TooShort {
        /// Octets received.
        len: usize,
        /// Octets the header requires.
        needed: usize,
    },
    /// Version field other than 2.
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    /// Padding count of zero or larger than the payload.
    #[error("RTP padding count {0} does not fit the packet")]
    BadPadding(u8),
}

/// A received RTCP packet that cannot be parsed (RFC 3550 §6.4, §A.2 checks).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtcpError {
    /// Fewer octets than the header or length field announce.
    #[error("RTCP packet too short: {len} octets, {needed} needed")]
    TooShort {
        /// Octets available.
        len: usize,
        /// Octets required.
        needed: usize,
    },
    /// Version field other than 2.
    #[error("RTCP version {0}, expected 2")]
    BadVersion(u8),
    /// Padding count that does not fit the packet, or padding on a packet
    /// other than the last of a compound (RFC 3550 §A.2).
    #[error("RTCP padding is invalid")]
    BadPadding,
    /// Report count larger than the packet length allows.
    #[error("RTCP report count {count} does not fit {len} octets")]
    BadReportCount {
        /// Report count field.
        count: u8,
        /// Packet length in octets.
        len: usize,
    },
    /// An SDES item runs past its chunk, or a chunk is not terminated.
    #[error("RTCP SDES chunk is malformed")]
    BadSdes,
    /// More packets in one compound packet than the limit.
    #[error("RTCP compound packet has more than {0} packets")]
    TooManyPackets(usize),
}

/// A telephone-event payload that cannot be parsed (RFC 4733 §2.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TelephoneEventError {
    /// The payload is shorter than the 4-octet event block.
    #[error("telephone-event payload of {0} octets, at least 4 needed")]
    TooShort(usize),
}

/// A WAV file that cannot be read or written as 8 kHz mono audio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// The file's sample format cannot be converted (for example a
    /// compressed format, or samples wider than 32 bits).
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    /// The file is not a well-formed WAV file.
    #[error("malformed WAV file: {0}")]
    Malformed(String),
    /// The file has more samples than the configured limit.
    #[error("WAV file longer than the limit of {0} samples")]
    TooLong(usize),
    /// Reading or writing failed.
    #[error("WAV I/O error: {0}")]
    Io(#[from] std::io::Error),
}
