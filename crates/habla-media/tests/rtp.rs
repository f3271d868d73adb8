//! RTP packets and packetizer (RFC 3550 §5), RTCP (§6) and receiver
//! statistics (§A.1, §A.3, §A.8).

use std::time::{Duration, Instant};

use bytes::Bytes;
use habla_media::rtcp::{
    NtpTimestamp, ReceiverReport, ReportBlock, RtcpPacket, SenderInfo, SenderReport,
};
use habla_media::rtp::{
    sequence_precedes, HeaderExtension, Packetizer, RtpPacket, SAMPLES_PER_20MS_AT_8KHZ,
};
use habla_media::statistics::{PacketVerdict, SourceStatistics};
use habla_media::{RtcpError, RtpError};

#[test]
fn rtp_fixed_header_is_laid_out_as_rfc3550_5_1() {
    let mut p = RtpPacket::new(
        0,
        0x1234,
        0xDEADBEEF,
        0x01020304,
        Bytes::from_static(&[0xFF; 160]),
    );
    p.marker = true;
    let wire = p.to_bytes();
    assert_eq!(wire.len(), 172);
    assert_eq!(
        &wire[..12],
        &[0x80, 0x80, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4]
    );
    assert_eq!(RtpPacket::parse(wire).unwrap(), p);
}

#[test]
fn rtp_round_trip_with_csrc_extension_and_padding() {
    let p = RtpPacket {
        marker: false,
        payload_type: 101,
        sequence_number: 65535,
        timestamp: u32::MAX,
        ssrc: 7,
        csrc: vec![1, 2, 3],
        extension: Some(HeaderExtension {
            profile: 0xBEDE,
            data: Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
        }),
        payload: Bytes::from_static(b"abc"),
        padding: 5,
    };
    let wire = p.to_bytes();
    assert_eq!(wire[0], 0x80 | 0x20 | 0x10 | 3, "V=2 P X CC=3");
    assert_eq!(wire.len(), 12 + 12 + 4 + 8 + 3 + 5);
    assert_eq!(*wire.last().unwrap(), 5);
    assert_eq!(p.len(), wire.len());
    assert_eq!(RtpPacket::parse(wire).unwrap(), p);
}

#[test]
fn rtp_malformed_packets_are_errors() {
    assert_eq!(
        RtpPacket::parse(Bytes::from_static(&[0x80; 11])),
        Err(RtpError::TooShort {
            len: 11,
            needed: 12
        })
    );
    let mut v1 = [0u8; 12];
    v1[0] = 0x40;
    assert_eq!(
        RtpPacket::parse(Bytes::copy_from_slice(&v1)),
        Err(RtpError::BadVersion(1))
    );
    let mut cc = [0u8; 12];
    cc[0] = 0x82; // two CSRCs announced, none present
    assert!(matches!(
        RtpPacket::parse(Bytes::copy_from_slice(&cc)),
        Err(RtpError::TooShort { .. })
    ));
    let mut pad = [0u8; 13];
    pad[0] = 0xA0;
    pad[12] = 9; // padding longer than the payload
    assert_eq!(
        RtpPacket::parse(Bytes::copy_from_slice(&pad)),
        Err(RtpError::BadPadding(9))
    );
    pad[12] = 0;
    assert_eq!(
        RtpPacket::parse(Bytes::copy_from_slice(&pad)),
        Err(RtpError::BadPadding(0))
    );
    let mut ext = [0u8; 16];
    ext[0] = 0x90;
    ext[15] = 1; // one extension word announced, none present
    assert!(matches!(
        RtpPacket::parse(Bytes::copy_from_slice(&ext)),
        Err(RtpError::TooShort { .. })
    ));
}

#[test]
fn rtp_and_rtcp_parsers_never_panic_on_garbage() {
    let mut state: u32 = 12345;
    for _ in 0..20000 {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let len = (state >> 24) as usize % 80;
        let buf: Vec<u8> = (0..len)
            .map(|i| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if i == 0 {
                    0x80 | (state >> 16) as u8 & 0x3F
                } else {
                    (state >> 16) as u8
                }
            })
            .collect();
        let bytes = Bytes::from(buf);
        if let Ok(p) = RtpPacket::parse(bytes.clone()) {
            assert_eq!(RtpPacket::parse(p.to_bytes()).unwrap(), p);
        }
        let _ = RtcpPacket::parse_compound(&bytes);
    }
}

#[test]
fn packetizer_20ms_frames_wrap_sequence_and_timestamp() {
    let mut pk = Packetizer::new(0xCAFE, 0, 65534, u32::MAX - 159, SAMPLES_PER_20MS_AT_8KHZ);
    let frame = Bytes::from_static(&[0xFF; 160]);
    let p1 = pk.packetize(frame.clone());
    let p2 = pk.packetize(frame.clone());
    let p3 = pk.packetize(frame.clone());
    assert!(
        p1.marker && !p2.marker && !p3.marker,
        "marker on the first packet of a talkspurt"
    );
    assert_eq!(
        [p1.sequence_number, p2.sequence_number, p3.sequence_number],
        [65534, 65535, 0]
    );
    assert_eq!(
        [p1.timestamp, p2.timestamp, p3.timestamp],
        [u32::MAX - 159, 0, 160]
    );
    assert!(sequence_precedes(p2.sequence_number, p3.sequence_number));
    assert!(!sequence_precedes(p3.sequence_number, p2.sequence_number));
    assert_eq!(pk.packets_sent(), 3);
    assert_eq!(pk.octets_sent(), 480);
    // A telephone-event packet takes a sequence number, not audio time.
    let ev = pk.packet(101, true, 320, Bytes::from_static(&[1, 0, 0, 160]));
    assert_eq!(
        (ev.sequence_number, ev.timestamp, ev.payload_type),
        (1, 320, 101)
    );
    // Skipping time (silence, events) starts a new talkspurt.
    pk.skip(800);
    let p4 = pk.packetize(frame);
    assert!(p4.marker);
    assert_eq!((p4.sequence_number, p4.timestamp), (2, 320 + 800));
}

#[test]
fn rtcp_sr_rr_sdes_bye_compound_round_trip() {
    let block = ReportBlock {
        ssrc: 0x1111,
        fraction_lost: 64,
        cumulative_lost: -3,
        extended_highest_sequence: 0x0001_0005,
        jitter: 37,
        last_sr: 0xAABB_CCDD,
        delay_since_last_sr: 65536,
    };
    let packets = vec![
        RtcpPacket::SenderReport(SenderReport {
            ssrc: 0x2222,
            sender_info: SenderInfo {
                ntp_timestamp: NtpTimestamp(0x0123_4567_89AB_CDEF),
                rtp_timestamp: 160,
                packet_count: 50,
                octet_count: 8000,
            },
            reports: vec![block],
        }),
        RtcpPacket::SourceDescription(vec![(0x2222, Some("alice@example.com".into()))]),
        RtcpPacket::Bye(vec![0x2222]),
    ];
    let wire = RtcpPacket::build_compound(&packets);
    // SR: header 4 + sender 24 + block 24 = 52 octets, length field 12.
    assert_eq!(&wire[..4], &[0x81, 200, 0, 12]);
    assert_eq!(
        &wire[32..36],
        &[64, 0xFF, 0xFF, 0xFD],
        "fraction, then 24-bit -3"
    );
    assert_eq!(wire.len() % 4, 0);
    assert_eq!(RtcpPacket::parse_compound(&wire).unwrap(), packets);

    let rr = vec![RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: 9,
        reports: vec![block, block],
    })];
    let wire = RtcpPacket::build_compound(&rr);
    assert_eq!(&wire[..4], &[0x82, 201, 0, 13]);
    assert_eq!(RtcpPacket::parse_compound(&wire).unwrap(), rr);

    // Cumulative loss saturates at the 24-bit range.
    let big = ReportBlock {
        cumulative_lost: i32::MAX,
        ..block
    };
    let wire = RtcpPacket::build_compound(&[RtcpPacket::ReceiverReport(ReceiverReport {
        ssrc: 1,
        reports: vec![big],
    })]);
    match &RtcpPacket::parse_compound(&wire).unwrap()[0] {
        RtcpPacket::ReceiverReport(r) => assert_eq!(r.reports[0].cumulative_lost, 0x7F_FFFF),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rtcp_malformed_packets_are_errors() {
    assert!(matches!(
        RtcpPacket::parse_compound(&Bytes::from_static(&[0x80, 200, 0])),
        Err(RtcpError::TooShort { .. })
    ));
    assert_eq!(
        RtcpPacket::parse_compound(&Bytes::from_static(&[0x40, 200, 0, 0])),
        Err(RtcpError::BadVersion(1))
    );
    // RC = 1 but no room for the block.
    let mut sr = vec![0x81, 200, 0, 6];
    sr.extend([0u8; 24]);
    assert!(matches!(
        RtcpPacket::parse_compound(&Bytes::from(sr)),
        Err(RtcpError::BadReportCount { .. })
    ));
    // Length larger than the datagram.
    assert!(matches!(
        RtcpPacket::parse_compound(&Bytes::from_static(&[0x80, 201, 0, 9, 0, 0, 0, 1])),
        Err(RtcpError::TooShort { .. })
    ));
    // Unknown packet types are kept.
    let app = Bytes::from_static(&[0x80, 204, 0, 1, 1, 2, 3, 4]);
    assert!(matches!(
        &RtcpPacket::parse_compound(&app).unwrap()[0],
        RtcpPacket::Other {
            packet_type: 204,
            ..
        }
    ));
}

fn t(base: Instant, ms: u64) -> Instant {
    base + Duration::from_millis(ms)
}

#[test]
fn statistics_probation_then_counting_rfc3550_a1() {
    let base = Instant::now();
    let mut s = SourceStatistics::new(1000, 8000);
    assert_eq!(
        s.handle_packet(t(base, 0), 1000, 0),
        PacketVerdict::Probation
    );
    assert_eq!(
        s.handle_packet(t(base, 20), 1001, 160),
        PacketVerdict::Valid
    );
    assert_eq!(s.received(), 1);
    for i in 2..10u16 {
        assert_eq!(
            s.handle_packet(t(base, 20 * u64::from(i)), 1000 + i, 160 * u32::from(i)),
            PacketVerdict::Valid
        );
    }
    assert_eq!(s.received(), 9);
    assert_eq!(s.expected(), 9);
    assert_eq!(s.cumulative_lost(), 0);
    // Out-of-sequence during probation restarts it.
    let mut s = SourceStatistics::new(5, 8000);
    assert_eq!(s.handle_packet(base, 5, 0), PacketVerdict::Probation);
    assert_eq!(s.handle_packet(base, 9, 0), PacketVerdict::Probation);
    assert_eq!(s.handle_packet(base, 10, 0), PacketVerdict::Valid);
}

#[test]
fn statistics_sequence_wrap_loss_fraction_and_extended_highest_a3() {
    let base = Instant::now();
    let mut s = SourceStatistics::with_probation(65530, 8000, 0);
    // 65530..=65535, 0..=9 with 65534, 2, 3 lost: 16 expected, 13 received.
    let mut ms = 0;
    for seq in (65530u32..65546).map(|x| (x % 65536) as u16) {
        ms += 20;
        if [65534, 2, 3].contains(&seq) {
            continue;
        }
        assert_eq!(
            s.handle_packet(t(base, ms), seq, ms as u32 * 8),
            PacketVerdict::Valid
        );
    }
    assert_eq!(
        s.extended_highest_sequence(),
        65536 + 9,
        "one cycle counted"
    );
    assert_eq!(s.expected(), 16);
    assert_eq!(s.cumulative_lost(), 3);
    let block = s.report_block(t(base, ms), 0x42);
    assert_eq!(block.ssrc, 0x42);
    assert_eq!(block.fraction_lost, (3 * 256 / 16) as u8, "3/16 lost");
    assert_eq!(block.cumulative_lost, 3);
    assert_eq!(block.extended_highest_sequence, 65545);
    // Next interval: 4 received, none lost; a duplicate makes received exceed expected.
    for seq in 10..14u16 {
        ms += 20;
        s.handle_packet(t(base, ms), seq, ms as u32 * 8);
    }
    s.handle_packet(t(base, ms), 13, ms as u32 * 8);
    let block = s.report_block(t(base, ms), 0x42);
    assert_eq!(block.fraction_lost, 0, "lost_interval <= 0 reports 0");
    assert_eq!(
        block.cumulative_lost, 2,
        "duplicates reduce the cumulative count"
    );
}

#[test]
fn statistics_large_jump_needs_two_sequential_packets_a1() {
    let base = Instant::now();
    let mut s = SourceStatistics::with_probation(100, 8000, 0);
    assert_eq!(s.handle_packet(base, 100, 0), PacketVerdict::Valid);
    assert_eq!(s.handle_packet(base, 20000, 0), PacketVerdict::BadSequence);
    assert_eq!(
        s.handle_packet(base, 20001, 0),
        PacketVerdict::Valid,
        "re-synchronised"
    );
    assert_eq!(s.received(), 1, "counters restart at the new base");
    assert_eq!(s.expected(), 1);
    // Misordered within MAX_MISORDER is counted without moving max_seq.
    assert_eq!(s.handle_packet(base, 20000 - 5, 0), PacketVerdict::Valid);
    assert_eq!(s.extended_highest_sequence(), 20001);
}

#[test]
fn jitter_follows_rfc3550_a8() {
    let base = Instant::now();
    // Constant spacing: zero jitter.
    let mut s = SourceStatistics::with_probation(0, 8000, 0);
    for i in 0..50u16 {
        s.handle_packet(t(base, 20 * u64::from(i)), i, 160 * u32::from(i));
    }
    assert_eq!(s.jitter(), 0);
    assert_eq!(
        (s.received(), s.expected(), s.extended_highest_sequence()),
        (50, 50, 49)
    );
    // Alternating 10 ms early/late arrivals: |D| = 20 ms = 160 units each
    // packet, so J converges to 160 (J += (|D| - J)/16).
    let mut s = SourceStatistics::with_probation(0, 8000, 0);
    let mut expected = 0.0f64;
    for i in 0..400u16 {
        let jitter_ms = if i % 2 == 0 { 0 } else { 20 };
        s.handle_packet(
            t(base, 20 * u64::from(i) + jitter_ms),
            i,
            160 * u32::from(i),
        );
        if i > 0 {
            expected += (160.0 - expected) / 16.0;
        }
    }
    assert!(
        (i64::from(s.jitter()) - expected as i64).abs() <= 1,
        "{} vs {expected}",
        s.jitter()
    );
    assert_eq!(
        s.jitter_duration(),
        Duration::from_millis(20) - Duration::from_micros(125) * (160 - s.jitter())
    );
    // Timestamps that wrap do not disturb the estimate.
    let mut s = SourceStatistics::with_probation(0, 8000, 0);
    for i in 0..20u16 {
        s.handle_packet(
            t(base, 20 * u64::from(i)),
            i,
            (u32::MAX - 800).wrapping_add(160 * u32::from(i)),
        );
    }
    assert_eq!(s.jitter(), 0);
}

#[test]
fn report_block_carries_lsr_and_dlsr() {
    let base = Instant::now();
    let mut s = SourceStatistics::with_probation(0, 8000, 0);
    s.handle_packet(base, 0, 0);
    s.handle_sender_report(base, NtpTimestamp(0x1122_3344_5566_7788));
    let block = s.report_block(t(base, 500), 1);
    assert_eq!(block.last_sr, 0x3344_5566);
    assert_eq!(block.delay_since_last_sr, 32768, "0.5 s in 1/65536 s units");
}
