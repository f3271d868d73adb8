//! SDP parsing and serialization (RFC 8866) and offer/answer (RFC 3264).

use std::net::IpAddr;

use habla_sdp::{
    AddressType, AudioCodec, Direction, Limits, LocalAudio, OfferAnswer, OfferAnswerError,
    SdpError, SessionDescription,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn crlf(s: &str) -> String {
    s.lines().map(|l| format!("{l}\r\n")).collect()
}

fn parse(s: &str) -> SessionDescription {
    SessionDescription::parse(crlf(s).as_bytes()).unwrap()
}

/// RFC 3264 §10.1, Alice's offer: audio and two video streams.
const RFC3264_10_1_OFFER: &str = "v=0
o=alice 2890844526 2890844526 IN IP4 host.anywhere.com
s=
c=IN IP4 host.anywhere.com
t=0 0
m=audio 49170 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 51372 RTP/AVP 31
a=rtpmap:31 H261/90000
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000";

/// RFC 3264 §10.1, Bob's answer (first video stream rejected).
const RFC3264_10_1_ANSWER: &str = "v=0
o=bob 2890844730 2890844730 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 49920 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000";

/// RFC 3264 §10.1, Bob's re-offer: new audio port, an added recvonly
/// telephone-events stream, version incremented.
const RFC3264_10_1_REOFFER: &str = "v=0
o=bob 2890844730 2890844731 IN IP4 host.example.com
s=
c=IN IP4 host.example.com
t=0 0
m=audio 65422 RTP/AVP 0
a=rtpmap:0 PCMU/8000
m=video 0 RTP/AVP 31
m=video 53000 RTP/AVP 32
a=rtpmap:32 MPV/90000
m=audio 51434 RTP/AVP 110
a=rtpmap:110 telephone-events/8000
a=recvonly";

#[test]
fn rfc3264_examples_parse_and_serialize_byte_for_byte() {
    for text in [
        RFC3264_10_1_OFFER,
        RFC3264_10_1_ANSWER,
        RFC3264_10_1_REOFFER,
    ] {
        let wire = crlf(text);
        let sd = SessionDescription::parse(wire.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(sd.to_bytes()).unwrap(), wire);
        assert_eq!(SessionDescription::parse(&sd.to_bytes()).unwrap(), sd);
    }
    let offer = parse(RFC3264_10_1_OFFER);
    assert_eq!(offer.origin.username, "alice");
    assert_eq!(offer.origin.session_id, 2890844526);
    assert_eq!(offer.session_name, "");
    assert_eq!(
        offer.connection.as_ref().unwrap().address,
        "host.anywhere.com"
    );
    assert_eq!(offer.connection.as_ref().unwrap().ip(), None);
    assert_eq!(offer.media.len(), 3);
    assert_eq!(offer.media[1].media, "video");
    assert_eq!(offer.media[1].rtpmap(31).unwrap().encoding_name, "H261");
    assert_eq!(offer.media[1].rtpmap(31).unwrap().clock_rate, 90000);
    let reoffer = parse(RFC3264_10_1_REOFFER);
    assert_eq!(reoffer.origin.session_version, 2890844731);
    assert_eq!(reoffer.media_direction(3), Direction::RecvOnly);
    assert_eq!(reoffer.media_direction(0), Direction::SendRecv);
    assert!(reoffer.media[1].is_rejected());
}

#[test]
fn answering_rfc3264_10_1_offer_rejects_both_video_streams_and_accepts_audio() {
    let offer = parse(RFC3264_10_1_OFFER);
    let mut bob = OfferAnswer::new("bob", 2890844730, 2890844730, ip("192.0.2.2"));
    let (answer, audio) = bob
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.2"), 49920))
        .unwrap();
    // One m-line per offered m-line, in order, same media types (§6).
    assert_eq!(answer.media.len(), 3);
    assert_eq!(answer.media[0].media, "audio");
    assert_eq!(answer.media[0].port, 49920);
    assert_eq!(answer.media[0].formats, ["0"]);
    for i in [1, 2] {
        assert_eq!(answer.media[i].media, "video");
        assert_eq!(
            answer.media[i].port, 0,
            "video m-line {i} rejected with port 0"
        );
        assert_eq!(answer.media[i].protocol, "RTP/AVP");
        assert!(!answer.media[i].formats.is_empty());
    }
    let audio = audio.unwrap();
    assert_eq!(audio.codec, AudioCodec::Pcmu);
    assert_eq!(audio.payload_type, 0);
    assert_eq!(audio.remote_address, "host.anywhere.com");
    assert_eq!(audio.remote_port, 49170);
    assert_eq!(
        audio.remote_rtp(),
        None,
        "a domain name is left to the caller to resolve"
    );
    assert_eq!(audio.telephone_event, None, "not offered");
    assert_eq!(audio.direction, Direction::SendRecv);
    assert_eq!(audio.ptime, 20);
    // The answer parses back.
    assert_eq!(
        SessionDescription::parse(&answer.to_bytes()).unwrap(),
        answer
    );
}

#[test]
fn answering_rfc3264_10_1_reoffer_keeps_layout_and_answers_recvonly_with_sendonly() {
    // Alice answers Bob's re-offer; she supports only one audio stream, so
    // the added telephone-events stream is rejected (no PCMU/PCMA in it),
    // while the first audio stream follows the new port.
    let mut alice = OfferAnswer::new("alice", 2890844526, 2890844526, ip("192.0.2.1"));
    let reoffer = parse(RFC3264_10_1_REOFFER);
    let (answer, audio) = alice
        .create_answer(&reoffer, &LocalAudio::new(ip("192.0.2.1"), 49170))
        .unwrap();
    assert_eq!(answer.media.len(), 4);
    assert_eq!(audio.unwrap().remote_port, 65422);
    assert_eq!(answer.media[3].port, 0);
    assert_eq!(answer.media[1].port, 0);

    // A recvonly audio stream we accept is answered sendonly (§6.1).
    let offer = parse(
        "v=0
o=bob 1 1 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 51434 RTP/AVP 0
a=recvonly",
    );
    let mut carol = OfferAnswer::new("carol", 3, 3, ip("192.0.2.3"));
    let (answer, audio) = carol
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.3"), 6000))
        .unwrap();
    assert_eq!(answer.media_direction(0), Direction::SendOnly);
    assert_eq!(audio.unwrap().direction, Direction::SendOnly);
}

#[test]
fn codec_choice_follows_the_offerers_order_and_skips_unknown_codecs() {
    let offer = parse(
        "v=0
o=- 1 1 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=audio 7000 RTP/AVP 18 96 8 0 101
a=rtpmap:18 G729/8000
a=rtpmap:96 opus/48000/2
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:30",
    );
    let mut oa = OfferAnswer::new("-", 5, 5, ip("192.0.2.1"));
    let (answer, audio) = oa
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    let audio = audio.unwrap();
    assert_eq!(
        audio.codec,
        AudioCodec::Pcma,
        "first supported in the offerer's order"
    );
    assert_eq!(audio.payload_type, 8);
    assert_eq!(
        audio.telephone_event,
        Some(101),
        "the offerer's dynamic number is kept"
    );
    assert_eq!(audio.ptime, 30, "we send with the peer's ptime");
    assert_eq!(audio.remote_rtp(), Some("192.0.2.9:7000".parse().unwrap()));
    assert_eq!(audio.remote_rtcp_port(), 7001);
    let m = &answer.media[0];
    assert_eq!(m.formats, ["8", "101"]);
    assert_eq!(
        m.fmtp(101),
        Some("0-15"),
        "events: intersection of 0-15 with our 0-16"
    );
    assert_eq!(m.rtpmap(8).unwrap().encoding_name, "PCMA");
    assert_eq!(m.ptime(), Some(20));

    // A dynamic payload type mapped to PCMU is recognised by its rtpmap.
    let offer = parse(
        "v=0
o=- 1 1 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=audio 7000 RTP/AVP 97
a=rtpmap:97 pcmu/8000",
    );
    let (_, audio) = OfferAnswer::new("-", 5, 5, ip("192.0.2.1"))
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    let audio = audio.unwrap();
    assert_eq!((audio.codec, audio.payload_type), (AudioCodec::Pcmu, 97));
}

#[test]
fn offers_with_only_unknown_codecs_or_video_are_answered_with_port_zero_not_failed() {
    let offer = parse(
        "v=0
o=- 1 1 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=audio 7000 RTP/AVP 18 9
a=rtpmap:18 G729/8000
a=rtpmap:9 G722/8000
m=video 7002 RTP/AVP 96
a=rtpmap:96 H264/90000
m=audio 7004 RTP/SAVP 0",
    );
    let mut oa = OfferAnswer::new("-", 1, 1, ip("192.0.2.1"));
    let (answer, audio) = oa
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    assert!(audio.is_none());
    assert_eq!(answer.media.len(), 3);
    assert!(answer.media.iter().all(|m| m.port == 0));
    assert_eq!(answer.media[1].media, "video");
    assert_eq!(answer.media[2].protocol, "RTP/SAVP");

    // Audio and video: audio accepted, video rejected.
    let offer = parse(
        "v=0
o=- 1 1 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=video 7002 RTP/AVP 96
a=rtpmap:96 VP8/90000
m=audio 7000 RTP/AVP 0",
    );
    let (answer, audio) = OfferAnswer::new("-", 1, 1, ip("192.0.2.1"))
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    assert_eq!(audio.unwrap().media_index, 1);
    assert_eq!(answer.media[0].port, 0);
    assert_eq!(answer.media[1].port, 4000);
}

#[test]
fn an_offered_stream_with_port_zero_is_rejected_and_a_rejected_answer_gives_no_audio() {
    let offer = parse(
        "v=0
o=- 1 1 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
m=audio 0 RTP/AVP 0",
    );
    let (answer, audio) = OfferAnswer::new("-", 1, 1, ip("192.0.2.1"))
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    assert!(audio.is_none());
    assert_eq!(answer.media[0].port, 0);

    // Our offer answered with port 0: no audio, not an error.
    let mut alice = OfferAnswer::new("alice", 1, 1, ip("192.0.2.1"));
    alice
        .create_offer(&LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    let answer = parse(
        "v=0
o=bob 1 1 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 0 RTP/AVP 0",
    );
    assert_eq!(alice.handle_answer(&answer).unwrap(), None);
    assert!(!alice.has_pending_offer());
}

#[test]
fn full_exchange_hold_and_resume_with_version_increments() {
    let a_ip = ip("192.0.2.1");
    let b_ip = ip("192.0.2.2");
    let mut alice = OfferAnswer::new("alice", 100, 7, a_ip);
    let mut bob = OfferAnswer::new("bob", 200, 9, b_ip);
    let mut alice_local = LocalAudio::new(a_ip, 4000);
    let bob_local = LocalAudio::new(b_ip, 5000);

    let offer = alice.create_offer(&alice_local).unwrap();
    assert_eq!(offer.origin.session_version, 7);
    assert_eq!(offer.media[0].formats, ["0", "8", "101"]);
    assert_eq!(offer.media[0].fmtp(101), Some("0-16"));
    let (answer, bob_audio) = bob.create_answer(&offer, &bob_local).unwrap();
    let bob_audio = bob_audio.unwrap();
    assert_eq!(
        (bob_audio.codec, bob_audio.direction),
        (AudioCodec::Pcmu, Direction::SendRecv)
    );
    let alice_audio = alice.handle_answer(&answer).unwrap().unwrap();
    assert_eq!(
        alice_audio.remote_rtp(),
        Some("192.0.2.2:5000".parse().unwrap())
    );
    assert_eq!(alice_audio.telephone_event, Some(101));
    assert_eq!(alice_audio.direction, Direction::SendRecv);

    // Hold (RFC 3264 §8.4): Alice re-offers sendonly; Bob answers recvonly.
    alice_local.direction = Direction::SendOnly;
    let hold = alice.create_offer(&alice_local).unwrap();
    assert_eq!(hold.origin.session_version, 8, "changed SDP, version + 1");
    assert_eq!(hold.origin.session_id, 100);
    assert_eq!(hold.media_direction(0), Direction::SendOnly);
    let (answer, bob_audio) = bob.create_answer(&hold, &bob_local).unwrap();
    assert_eq!(answer.media_direction(0), Direction::RecvOnly);
    assert_eq!(
        answer.origin.session_version, 10,
        "Bob's answer changed too"
    );
    assert_eq!(bob_audio.unwrap().direction, Direction::RecvOnly);
    assert_eq!(
        alice.handle_answer(&answer).unwrap().unwrap().direction,
        Direction::SendOnly
    );

    // Peer holds with inactive: answered inactive.
    alice_local.direction = Direction::Inactive;
    let inactive = alice.create_offer(&alice_local).unwrap();
    let (answer, _) = bob.create_answer(&inactive, &bob_local).unwrap();
    assert_eq!(answer.media_direction(0), Direction::Inactive);
    alice.handle_answer(&answer).unwrap();

    // Resume: sendrecv again.
    alice_local.direction = Direction::SendRecv;
    let resume = alice.create_offer(&alice_local).unwrap();
    assert_eq!(resume.origin.session_version, 10);
    let (answer, bob_audio) = bob.create_answer(&resume, &bob_local).unwrap();
    assert_eq!(bob_audio.unwrap().direction, Direction::SendRecv);
    assert_eq!(
        alice.handle_answer(&answer).unwrap().unwrap().direction,
        Direction::SendRecv
    );

    // An identical re-offer (session refresh) keeps the version (§8).
    let same = alice.create_offer(&alice_local).unwrap();
    assert_eq!(same.origin.session_version, 10);
    let (same_answer, _) = bob.create_answer(&same, &bob_local).unwrap();
    assert_eq!(
        same_answer.origin.session_version,
        answer.origin.session_version
    );
    alice.handle_answer(&same_answer).unwrap();
}

#[test]
fn old_style_hold_with_zero_address_means_do_not_send() {
    let offer = parse(
        "v=0
o=- 1 2 IN IP4 192.0.2.9
s=-
c=IN IP4 0.0.0.0
t=0 0
m=audio 7000 RTP/AVP 0",
    );
    let (answer, audio) = OfferAnswer::new("-", 1, 1, ip("192.0.2.1"))
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    assert_eq!(audio.unwrap().direction, Direction::RecvOnly);
    assert_eq!(answer.media_direction(0), Direction::RecvOnly);
}

#[test]
fn session_level_direction_applies_to_media_without_their_own() {
    let offer = parse(
        "v=0
o=- 1 2 IN IP4 192.0.2.9
s=-
c=IN IP4 192.0.2.9
t=0 0
a=sendonly
m=audio 7000 RTP/AVP 0",
    );
    assert_eq!(offer.media_direction(0), Direction::SendOnly);
    let (_, audio) = OfferAnswer::new("-", 1, 1, ip("192.0.2.1"))
        .create_answer(&offer, &LocalAudio::new(ip("192.0.2.1"), 4000))
        .unwrap();
    assert_eq!(audio.unwrap().direction, Direction::RecvOnly);
}

#[test]
fn ipv6_offer_and_answer() {
    let a_ip = ip("2001:db8::1");
    let mut alice = OfferAnswer::new("alice", 1, 1, a_ip);
    let offer = alice.create_offer(&LocalAudio::new(a_ip, 4000)).unwrap();
    let text = String::from_utf8(offer.to_bytes()).unwrap();
    assert!(
        text.contains("o=alice 1 1 IN IP6 2001:db8::1\r\n"),
        "{text}"
    );
    assert!(text.contains("c=IN IP6 2001:db8::1\r\n"), "{text}");
    let parsed = SessionDescription::parse(text.as_bytes()).unwrap();
    assert_eq!(
        parsed.connection.as_ref().unwrap().address_type,
        AddressType::Ip6
    );

    // Media-level c= overrides the session-level one.
    let offer = parse(
        "v=0
o=- 1 2 IN IP6 2001:db8::9
s=-
c=IN IP6 2001:db8::9
t=0 0
m=audio 7000 RTP/AVP 0
c=IN IP6 2001:db8::a",
    );
    let (_, audio) = OfferAnswer::new("-", 1, 1, ip("2001:db8::2"))
        .create_answer(&offer, &LocalAudio::new(ip("2001:db8::2"), 4000))
        .unwrap();
    assert_eq!(
        audio.unwrap().remote_rtp(),
        Some("[2001:db8::a]:7000".parse().unwrap())
    );
}

#[test]
fn offer_answer_state_errors() {
    let a_ip = ip("192.0.2.1");
    let mut alice = OfferAnswer::new("alice", 1, 1, a_ip);
    let offer = alice.create_offer(&LocalAudio::new(a_ip, 4000)).unwrap();
    assert_eq!(
        alice.create_offer(&LocalAudio::new(a_ip, 4000)),
        Err(OfferAnswerError::OfferPending)
    );
    assert_eq!(
        alice
            .create_answer(&offer, &LocalAudio::new(a_ip, 4000))
            .unwrap_err(),
        OfferAnswerError::OfferPending,
        "glare: the UA answers 491"
    );
    let two = parse(
        "v=0
o=bob 1 1 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 5000 RTP/AVP 0
m=video 0 RTP/AVP 31",
    );
    assert_eq!(
        alice.handle_answer(&two),
        Err(OfferAnswerError::MediaCountMismatch {
            offer: 1,
            answer: 2
        })
    );
    let foreign = parse(
        "v=0
o=bob 1 1 IN IP4 192.0.2.2
s=-
c=IN IP4 192.0.2.2
t=0 0
m=audio 5000 RTP/AVP 18
a=rtpmap:18 G729/8000",
    );
    assert_eq!(
        alice.handle_answer(&foreign),
        Err(OfferAnswerError::NoCommonCodec)
    );
    let no_c = parse(
        "v=0
o=bob 1 1 IN IP4 192.0.2.2
s=-
t=0 0
m=audio 5000 RTP/AVP 0",
    );
    assert_eq!(
        alice.handle_answer(&no_c),
        Err(OfferAnswerError::MissingConnection(0))
    );
    alice.cancel_offer();
    assert_eq!(
        alice.handle_answer(&no_c),
        Err(OfferAnswerError::NoOfferPending)
    );
}

#[test]
fn reoffer_after_answering_a_multi_stream_offer_keeps_every_m_line() {
    let offer = parse(RFC3264_10_1_OFFER);
    let b_ip = ip("192.0.2.2");
    let mut bob = OfferAnswer::new("bob", 1, 1, b_ip);
    bob.create_answer(&offer, &LocalAudio::new(b_ip, 49920))
        .unwrap();
    let mut local = LocalAudio::new(b_ip, 65422);
    local.direction = Direction::SendOnly;
    let reoffer = bob.create_offer(&local).unwrap();
    assert_eq!(
        reoffer.media.len(),
        3,
        "RFC 3264 §8: m-lines are never removed"
    );
    assert_eq!(reoffer.media[0].port, 65422);
    assert_eq!(reoffer.media[1].media, "video");
    assert_eq!(reoffer.media[1].port, 0);
    assert_eq!(reoffer.media[2].port, 0);
    assert_eq!(reoffer.origin.session_version, 2);
}

#[test]
fn parse_details_and_round_trip_of_every_line_type() {
    let text = "v=0
o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5
s=SDP Seminar
i=A Seminar on the session description protocol
u=http://www.example.com/seminars/sdp.pdf
e=j.doe@example.com (Jane Doe)
p=+1 617 555-6011
c=IN IP4 224.2.17.12/127
b=CT:128
t=2873397496 2873404696
r=604800 3600 0 90000
z=2882844526 -1h 2898848070 0
a=recvonly
m=audio 49170 RTP/AVP 0
i=voice
b=AS:64
a=ptime:20
m=video 51372/2 RTP/AVP 99
c=IN IP4 10.47.16.9
a=rtpmap:99 h263-1998/90000
a=fmtp:99 profile=0;level=10";
    let sd = parse(text);
    assert_eq!(String::from_utf8(sd.to_bytes()).unwrap(), crlf(text));
    assert_eq!(
        sd.information.as_deref(),
        Some("A Seminar on the session description protocol")
    );
    assert_eq!(sd.bandwidths[0].bwtype, "CT");
    assert_eq!(sd.timing[0].repeats.len(), 1);
    assert_eq!(sd.media[0].ptime(), Some(20));
    assert_eq!(sd.media[1].port_count, Some(2));
    assert_eq!(sd.media[1].fmtp(99), Some("profile=0;level=10"));
    assert_eq!(sd.media_connection(1).unwrap().address, "10.47.16.9");
    assert_eq!(sd.media_connection(0).unwrap().address, "224.2.17.12/127");
    assert_eq!(sd.direction_attribute(), Some(Direction::RecvOnly));

    // LF-only line ends parse the same.
    assert_eq!(SessionDescription::parse(text.as_bytes()).unwrap(), sd);
}

#[test]
fn malformed_input_gives_typed_errors() {
    let cases: &[(&str, SdpError)] = &[
        ("", SdpError::Missing('v')),
        ("o=- 1 1 IN IP4 1.2.3.4\n", SdpError::Missing('v')),
        (
            "v=1\n",
            SdpError::InvalidField {
                line: 1,
                field: "version",
            },
        ),
        ("v=0\ns=x\n", SdpError::Missing('o')),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\nt=0 0\n",
            SdpError::Missing('s'),
        ),
        (
            "v=0\no=- x 1 IN IP4 1.2.3.4\ns=x\n",
            SdpError::InvalidField {
                line: 2,
                field: "origin",
            },
        ),
        (
            "v=0\no=- 1 1 IN IPX 1.2.3.4\ns=x\n",
            SdpError::InvalidField {
                line: 2,
                field: "origin",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nc=IN IP6 1.2.3.4\n",
            SdpError::InvalidField {
                line: 4,
                field: "connection",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nm=audio 70000 RTP/AVP 0\n",
            SdpError::InvalidField {
                line: 4,
                field: "port",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nm=audio 7000\n",
            SdpError::InvalidField {
                line: 4,
                field: "protocol",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nx=1\n",
            SdpError::UnexpectedLine { line: 4, kind: 'x' },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nm=audio 1 RTP/AVP 0\nt=0 0\n",
            SdpError::UnexpectedLine { line: 5, kind: 't' },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nhello\n",
            SdpError::MalformedLine { line: 4 },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\na=\n",
            SdpError::InvalidField {
                line: 4,
                field: "attribute name",
            },
        ),
        (
            "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nb=AS:lots\n",
            SdpError::InvalidField {
                line: 4,
                field: "bandwidth",
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            SessionDescription::parse(input.as_bytes()).as_ref(),
            Err(expected),
            "{input:?}"
        );
    }
    assert_eq!(
        SessionDescription::parse(b"v=0\n\xff\xfe"),
        Err(SdpError::NotUtf8)
    );
}

#[test]
fn limits_bound_hostile_sizes() {
    let limits = Limits {
        max_size: 200,
        max_media: 2,
        max_attributes: 3,
        max_formats: 4,
    };
    let head = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\n";
    let big = format!("{head}{}", "a=x\n".repeat(100));
    assert!(matches!(
        SessionDescription::parse_with_limits(big.as_bytes(), &limits),
        Err(SdpError::TooLarge { .. })
    ));
    let attrs = format!("{head}a=a\na=b\na=c\na=d\n");
    assert_eq!(
        SessionDescription::parse_with_limits(attrs.as_bytes(), &limits),
        Err(SdpError::TooMany {
            what: "attributes",
            limit: 3
        })
    );
    let media = format!("{head}m=audio 1 RTP/AVP 0\nm=audio 2 RTP/AVP 0\nm=audio 3 RTP/AVP 0\n");
    assert_eq!(
        SessionDescription::parse_with_limits(media.as_bytes(), &limits),
        Err(SdpError::TooMany {
            what: "media descriptions",
            limit: 2
        })
    );
    let formats = format!("{head}m=audio 1 RTP/AVP 0 1 2 3 4\n");
    assert_eq!(
        SessionDescription::parse_with_limits(formats.as_bytes(), &limits),
        Err(SdpError::TooMany {
            what: "formats",
            limit: 4
        })
    );
    // The default limit rejects a megabyte.
    let huge = vec![b'a'; 1 << 20];
    assert!(matches!(
        SessionDescription::parse(&huge),
        Err(SdpError::TooLarge { .. })
    ));
}

#[test]
fn garbage_never_panics() {
    // Deterministic pseudo-random inputs, plus mutations of a valid offer.
    let base = crlf(RFC3264_10_1_REOFFER).into_bytes();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"vosmcatb=: /\r\n0123456789IPN46-audioRTP/AVP";
    for _ in 0..3000 {
        let mut input = base.clone();
        for _ in 0..(next() % 8 + 1) {
            let at = (next() as usize) % input.len();
            match next() % 3 {
                0 => input[at] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    input.remove(at);
                }
                _ => input.insert(at, (next() & 0xFF) as u8),
            }
        }
        if let Ok(sd) = SessionDescription::parse(&input) {
            // Whatever parses serializes and parses back to the same value.
            assert_eq!(SessionDescription::parse(&sd.to_bytes()).as_ref(), Ok(&sd));
            let mut oa = OfferAnswer::new("-", 1, 1, ip("192.0.2.1"));
            let _ = oa.create_answer(&sd, &LocalAudio::new(ip("192.0.2.1"), 4000));
        }
        let random: Vec<u8> = (0..(next() % 200))
            .map(|_| alphabet[(next() as usize) % alphabet.len()])
            .collect();
        let _ = SessionDescription::parse(&random);
    }
}

#[test]
fn serialization_drops_line_breaks_from_text_fields() {
    let mut sd = parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=x\nt=0 0");
    sd.session_name = "evil\r\na=injected".into();
    let text = String::from_utf8(sd.to_bytes()).unwrap();
    assert!(text.contains("s=evila=injected\r\n"));
    assert_eq!(
        SessionDescription::parse(text.as_bytes())
            .unwrap()
            .attributes
            .len(),
        0
    );
}
