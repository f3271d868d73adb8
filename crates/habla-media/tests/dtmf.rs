//! Telephone-events (RFC 4733): payload, sender packet sequence, receiver.

use std::time::{Duration, Instant};

use habla_media::dtmf::{
    event_from_char, event_to_char, DtmfReceiver, DtmfSender, DtmfSenderConfig, TelephoneEvent,
};
use habla_media::rtp::Packetizer;
use habla_media::{RtpPacket, TelephoneEventError};

#[test]
fn payload_layout_rfc4733_2_3() {
    let e = TelephoneEvent {
        event: 11,
        end: true,
        volume: 10,
        duration: 800,
    };
    assert_eq!(e.to_bytes(), [11, 0x80 | 10, 0x03, 0x20]);
    assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
    // The reserved bit is ignored on receipt; volume is 6 bits.
    assert_eq!(
        TelephoneEvent::parse(&[5, 0x40 | 63, 0, 160]).unwrap(),
        TelephoneEvent {
            event: 5,
            end: false,
            volume: 63,
            duration: 160
        }
    );
    assert_eq!(
        TelephoneEvent::parse(&[1, 2, 3]),
        Err(TelephoneEventError::TooShort(3))
    );
    assert_eq!(event_from_char('#'), Some(11));
    assert_eq!(event_from_char('*'), Some(10));
    assert_eq!(event_from_char('D'), Some(15));
    assert_eq!(event_from_char('x'), None);
    for e in 0..16 {
        assert_eq!(event_from_char(event_to_char(e).unwrap()), Some(e));
    }
}

/// Runs the sender at 1 ms resolution and returns (ms, packet) pairs.
fn run_sender(sender: &mut DtmfSender, ms: u64) -> Vec<(u64, habla_media::dtmf::DtmfPacket)> {
    let base = Instant::now();
    let mut out = Vec::new();
    for now_ms in 0..ms {
        let now = base + Duration::from_millis(now_ms);
        // The stream's timestamp runs at 8 per ms.
        while let Some(p) = sender.poll(now, 1000 + now_ms as u32 * 8) {
            out.push((now_ms, p));
        }
    }
    out
}

#[test]
fn sender_produces_marker_updates_and_three_end_packets() {
    let mut sender = DtmfSender::new(DtmfSenderConfig::default());
    sender.queue_digits("5").unwrap();
    let packets = run_sender(&mut sender, 400);
    // 100 ms at 20 ms: updates at 160, 320, 480, 640, then end (800) × 3.
    let summary: Vec<(u64, bool, u32, bool, u16)> = packets
        .iter()
        .map(|(ms, p)| (*ms, p.marker, p.timestamp, p.event.end, p.event.duration))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, true, 1000, false, 160),
            (20, false, 1000, false, 320),
            (40, false, 1000, false, 480),
            (60, false, 1000, false, 640),
            (80, false, 1000, true, 800),
            (100, false, 1000, true, 800),
            (120, false, 1000, true, 800),
        ]
    );
    assert!(packets
        .iter()
        .all(|(_, p)| p.event.event == 5 && p.payload_type == 101 && p.event.volume == 10));
    assert!(sender.is_idle());
}

#[test]
fn sender_sends_digits_in_sequence_with_new_timestamps_and_pauses() {
    let mut sender = DtmfSender::new(DtmfSenderConfig::default());
    assert_eq!(sender.queue_digits("12x"), Err('x'));
    sender.queue_digits("1#").unwrap();
    let packets = run_sender(&mut sender, 1000);
    assert_eq!(packets.len(), 14);
    let (first, second) = packets.split_at(7);
    assert!(first
        .iter()
        .all(|(_, p)| p.event.event == 1 && p.timestamp == 1000));
    assert!(second.iter().all(|(_, p)| p.event.event == 11));
    // Second event starts after the last end packet + interval + 50 ms gap.
    assert_eq!(second[0].0, 120 + 20 + 50);
    assert_eq!(second[0].1.timestamp, 1000 + 190 * 8);
    assert!(second[0].1.marker);
    // Wrapped in RTP by the packetizer: consecutive sequence numbers, even
    // for retransmitted end packets.
    let mut pk = Packetizer::new(1, 0, 65535, 0, 160);
    let rtp: Vec<RtpPacket> = packets
        .iter()
        .map(|(_, p)| pk.packet(p.payload_type, p.marker, p.timestamp, p.payload()))
        .collect();
    assert_eq!(rtp[0].sequence_number, 65535);
    assert_eq!(rtp[1].sequence_number, 0);
    assert!(rtp
        .windows(2)
        .all(|w| w[1].sequence_number == w[0].sequence_number.wrapping_add(1)));
}

#[test]
fn short_event_starts_with_its_end_packet_and_marker() {
    let config = DtmfSenderConfig {
        event_duration: Duration::from_millis(20),
        ..DtmfSenderConfig::default()
    };
    let mut sender = DtmfSender::new(config);
    sender.queue_event(16);
    let packets = run_sender(&mut sender, 200);
    let flags: Vec<(bool, bool, u16)> = packets
        .iter()
        .map(|(_, p)| (p.marker, p.event.end, p.event.duration))
        .collect();
    assert_eq!(
        flags,
        vec![(true, true, 160), (false, true, 160), (false, true, 160)]
    );
}

#[test]
fn receiver_reports_each_digit_once_in_order_despite_retransmissions() {
    let mut sender = DtmfSender::new(DtmfSenderConfig::default());
    sender.queue_digits("123#").unwrap();
    let packets = run_sender(&mut sender, 2000);
    let mut receiver = DtmfReceiver::new();
    let mut digits = String::new();
    for (_, p) in &packets {
        for e in receiver.handle_packet(p.timestamp, &p.payload()).unwrap() {
            assert!(e.ended);
            assert_eq!(e.duration, 800);
            digits.push(e.digit().unwrap());
        }
    }
    assert_eq!(digits, "123#");
    // Replaying everything again (late duplicates) reports nothing new.
    for (_, p) in &packets {
        assert!(receiver
            .handle_packet(p.timestamp, &p.payload())
            .unwrap()
            .is_empty());
    }
}

#[test]
fn receiver_reports_an_event_whose_end_packets_were_lost() {
    let mut r = DtmfReceiver::new();
    let start = |e: u8, d: u16| {
        TelephoneEvent {
            event: e,
            end: false,
            volume: 10,
            duration: d,
        }
        .to_bytes()
    };
    let end = |e: u8, d: u16| {
        TelephoneEvent {
            event: e,
            end: true,
            volume: 10,
            duration: d,
        }
        .to_bytes()
    };
    assert!(r.handle_packet(100, &start(7, 160)).unwrap().is_empty());
    assert!(r.handle_packet(100, &start(7, 320)).unwrap().is_empty());
    // End packets of 7 lost; 8 begins.
    let out = r.handle_packet(2000, &start(8, 160)).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].event, out[0].duration, out[0].ended),
        (7, 320, false)
    );
    let out = r.handle_packet(2000, &end(8, 800)).unwrap();
    assert_eq!((out[0].event, out[0].ended), (8, true));
    // A late packet of 7 is ignored.
    assert!(r.handle_packet(100, &end(7, 800)).unwrap().is_empty());
    // An event that ends with only its first packets seen is flushed by finish().
    assert!(r.handle_packet(4000, &start(9, 160)).unwrap().is_empty());
    assert_eq!(r.finish().unwrap().event, 9);
    assert!(r.finish().is_none());
    assert!(r.handle_packet(5000, &[1]).is_err());
}
