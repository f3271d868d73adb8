//! The playout buffer: reordering, late and duplicate drops, concealment,
//! capacity, sequence wrap — all in simulated time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use habla_media::jitter::{Admission, Frame, JitterBuffer, JitterBufferConfig};
use habla_media::RtpPacket;

fn pkt(seq: u16) -> RtpPacket {
    RtpPacket::new(
        0,
        seq,
        u32::from(seq) * 160,
        1,
        Bytes::from(vec![seq as u8; 160]),
    )
}

fn ms(base: Instant, n: u64) -> Instant {
    base + Duration::from_millis(n)
}

fn drain(jb: &mut JitterBuffer, now: Instant) -> Vec<Option<u16>> {
    let mut out = Vec::new();
    while let Some(f) = jb.poll_frame(now) {
        out.push(match f {
            Frame::Audio {
                sequence_number, ..
            } => Some(sequence_number),
            Frame::Missing { .. } => None,
        });
    }
    out
}

#[test]
fn reorders_within_the_target_delay_and_paces_frames() {
    let base = Instant::now();
    let mut jb = JitterBuffer::new(JitterBufferConfig::default()); // 60 ms delay
    assert_eq!(jb.poll_frame(base), None);
    assert_eq!(jb.poll_timeout(), None);
    assert_eq!(jb.handle_packet(ms(base, 0), pkt(10)), Admission::Buffered);
    assert_eq!(jb.handle_packet(ms(base, 25), pkt(12)), Admission::Buffered);
    assert_eq!(jb.handle_packet(ms(base, 30), pkt(11)), Admission::Buffered);
    assert_eq!(jb.poll_timeout(), Some(ms(base, 60)));
    assert!(
        drain(&mut jb, ms(base, 59)).is_empty(),
        "nothing before the target delay"
    );
    assert_eq!(drain(&mut jb, ms(base, 60)), vec![Some(10)]);
    assert_eq!(drain(&mut jb, ms(base, 100)), vec![Some(11), Some(12)]);
    assert_eq!(jb.poll_timeout(), Some(ms(base, 120)));
}

#[test]
fn conceals_gaps_and_drops_late_and_duplicate_packets() {
    let base = Instant::now();
    let mut jb = JitterBuffer::new(JitterBufferConfig {
        target_delay: Duration::from_millis(40),
        ..Default::default()
    });
    jb.handle_packet(ms(base, 0), pkt(1));
    assert_eq!(jb.handle_packet(ms(base, 1), pkt(1)), Admission::Duplicate);
    jb.handle_packet(ms(base, 40), pkt(3));
    // Frame 2 never arrives: concealed at its playout time.
    assert_eq!(drain(&mut jb, ms(base, 80)), vec![Some(1), None, Some(3)]);
    // It arrives afterwards: too late.
    assert_eq!(jb.handle_packet(ms(base, 85), pkt(2)), Admission::Late);
    let s = jb.statistics();
    assert_eq!((s.played, s.concealed, s.late, s.duplicates), (2, 1, 1, 1));
    // Underrun: frames keep coming as Missing, one per 20 ms.
    assert_eq!(drain(&mut jb, ms(base, 120)), vec![None, None]);
}

#[test]
fn capacity_is_bounded_and_a_restart_resynchronises() {
    let base = Instant::now();
    let mut jb = JitterBuffer::new(JitterBufferConfig {
        capacity: 4,
        ..Default::default()
    });
    jb.handle_packet(base, pkt(100));
    for s in 101..104 {
        assert_eq!(jb.handle_packet(base, pkt(s)), Admission::Buffered);
    }
    assert_eq!(jb.handle_packet(base, pkt(104)), Admission::Overflow);
    assert_eq!(jb.len(), 4);
    assert_eq!(
        drain(&mut jb, ms(base, 120)),
        vec![Some(100), Some(101), Some(102), Some(103)]
    );
    // Empty buffer and a jump far away: the peer restarted its sequence.
    assert_eq!(
        jb.handle_packet(ms(base, 130), pkt(30000)),
        Admission::Buffered
    );
    assert_eq!(jb.poll_timeout(), Some(ms(base, 190)));
    assert_eq!(drain(&mut jb, ms(base, 190)), vec![Some(30000)]);
}

#[test]
fn sequence_numbers_wrap() {
    let base = Instant::now();
    let mut jb = JitterBuffer::new(JitterBufferConfig::default());
    for (i, s) in [65534u16, 0, 65535, 1].into_iter().enumerate() {
        assert_eq!(
            jb.handle_packet(ms(base, i as u64 * 5), pkt(s)),
            Admission::Buffered
        );
    }
    assert_eq!(
        drain(&mut jb, ms(base, 120)),
        vec![Some(65534), Some(65535), Some(0), Some(1)]
    );
    match jb.poll_frame(ms(base, 140)) {
        Some(Frame::Missing { sequence_number }) => assert_eq!(sequence_number, 2),
        other => panic!("{other:?}"),
    }
}
