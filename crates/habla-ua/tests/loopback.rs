//! Two user agents talking directly on loopback (no server): an answered
//! call with media, a call cancelled while ringing, a rejected call, and
//! 481 for a request in an unknown dialog.

use habla_message::{Method, Uri};
use habla_tokio::Destination;
use habla_transaction::Transport;
use habla_ua::{
    AnswerOptions, AudioSource, CallEvent, CallOptions, Ending, Identity, Incoming, MediaConfig,
    UaConfig, UserAgent,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc::Receiver;

async fn agent(user: &str) -> (UserAgent, Receiver<Incoming>) {
    UserAgent::bind(UaConfig {
        local: "127.0.0.1:0".parse().unwrap(),
        transport: Transport::Udp,
        identity: Identity {
            aor: Uri::parse(&format!("sip:{user}@127.0.0.1")).unwrap(),
            display_name: None,
            credentials: None,
        },
        user_agent: "habla-ua-test".into(),
        transactions: Default::default(),
    })
    .await
    .unwrap()
}

fn target(ua: &UserAgent) -> Uri {
    Uri::parse(&format!("sip:bob@{}", ua.local_addr())).unwrap()
}

async fn next_call(rx: &mut Receiver<Incoming>) -> habla_ua::IncomingCall {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Incoming::Invite(c))) => return c,
            Ok(Some(_)) => {}
            other => panic!("no INVITE: {other:?}"),
        }
    }
}

fn answer_options(after: Duration, reject: Option<u16>) -> AnswerOptions {
    AnswerOptions {
        after,
        reject,
        duration: None,
        media: MediaConfig {
            record: true,
            ..MediaConfig::default()
        },
        control: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_call_carries_audio_both_ways_and_ends_with_bye() {
    let (alice, _a_in) = agent("alice").await;
    let (bob, mut b_in) = agent("bob").await;
    let bob_side = {
        let bob = bob.clone();
        tokio::spawn(async move {
            let call = next_call(&mut b_in).await;
            habla_ua::answer(
                &bob,
                call,
                answer_options(Duration::from_millis(100), None),
                habla_ua::ignore_events(),
                std::future::pending(),
            )
            .await
            .unwrap()
        })
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let events = events.clone();
        Arc::new(move |e: CallEvent| events.lock().unwrap().push(e))
    };
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        habla_ua::place_call(
            &alice,
            CallOptions {
                target: target(&bob),
                duration: Some(Duration::from_millis(1200)),
                media: MediaConfig {
                    source: AudioSource::Tone {
                        frequency: 1000.0,
                        amplitude: 8000,
                    },
                    ..MediaConfig::default()
                },
                control: Default::default(),
            },
            sink,
            std::future::pending(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.status, 200);
    assert_eq!(report.ending, Ending::Local);
    let events = events.lock().unwrap().clone();
    assert!(events.contains(&CallEvent::Progress(180, "Ringing".into())));
    assert!(events.contains(&CallEvent::Answered));
    let media = report.media.unwrap();
    assert!(media.stats.packets_sent >= 40, "{:?}", media.stats);

    let bob_report = tokio::time::timeout(Duration::from_secs(10), bob_side)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob_report.ending, Ending::Remote);
    let m = bob_report.media.unwrap();
    assert!(m.stats.packets_received >= 40, "{:?}", m.stats);
    assert_eq!(m.stats.lost, 0);
    let toned = m
        .recording
        .chunks_exact(160)
        .filter(|f| habla_media::tone::tone_fraction(f, 1000.0, 8000) > 0.5)
        .count();
    assert!(toned >= 40, "{toned} frames of tone");
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_while_ringing_sends_cancel_and_the_callee_sees_it() {
    let (alice, _a_in) = agent("alice").await;
    let (bob, mut b_in) = agent("bob").await;
    let bob_side = {
        let bob = bob.clone();
        tokio::spawn(async move {
            let call = next_call(&mut b_in).await;
            habla_ua::answer(
                &bob,
                call,
                answer_options(Duration::from_secs(30), None),
                habla_ua::ignore_events(),
                std::future::pending(),
            )
            .await
            .unwrap()
        })
    };
    // Hang up as soon as it rings.
    let (ring_tx, ring_rx) = tokio::sync::oneshot::channel::<()>();
    let ring_tx = Mutex::new(Some(ring_tx));
    let sink = Arc::new(move |e: CallEvent| {
        if matches!(e, CallEvent::Progress(180, _)) {
            if let Some(t) = ring_tx.lock().unwrap().take() {
                let _ = t.send(());
            }
        }
    });
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        habla_ua::place_call(
            &alice,
            CallOptions {
                target: target(&bob),
                duration: None,
                media: MediaConfig::default(),
                control: Default::default(),
            },
            sink,
            async {
                let _ = ring_rx.await;
            },
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(report.status, 487);
    assert_eq!(report.ending, Ending::Cancelled);
    let bob_report = tokio::time::timeout(Duration::from_secs(10), bob_side)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob_report.ending, Ending::CancelledByPeer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_call_reports_the_code_and_unknown_dialogs_get_481() {
    let (alice, _a_in) = agent("alice").await;
    let (bob, mut b_in) = agent("bob").await;
    let bob_side = {
        let bob = bob.clone();
        tokio::spawn(async move {
            let call = next_call(&mut b_in).await;
            habla_ua::answer(
                &bob,
                call,
                answer_options(Duration::ZERO, Some(486)),
                habla_ua::ignore_events(),
                std::future::pending(),
            )
            .await
            .unwrap()
        })
    };
    let report = habla_ua::place_call(
        &alice,
        CallOptions {
            target: target(&bob),
            duration: None,
            media: MediaConfig::default(),
            control: Default::default(),
        },
        habla_ua::ignore_events(),
        std::future::pending(),
    )
    .await
    .unwrap();
    assert_eq!(report.status, 486);
    assert_eq!(report.ending, Ending::Rejected);
    assert_eq!(bob_side.await.unwrap().status, 486);

    // A BYE in a dialog bob never had.
    let uri = target(&bob);
    let bye = alice
        .out_of_dialog(
            Method::Bye,
            &uri,
            &format!("<{}>;tag=nosuchdialog", uri.as_str()),
            "t1",
            "no-such-call@127.0.0.1",
            2,
        )
        .build()
        .unwrap();
    let mut tx = alice
        .start(bye, Destination::Address(Transport::Udp, bob.local_addr()))
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), tx.final_response())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), Some(481));
}

/// Waits (bounded) for `want` on an event channel.
async fn event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<CallEvent>, want: CallEvent) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = rx.recv().await {
            if e == want {
                return;
            }
        }
        panic!("event channel closed before {want:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?} within 5 s"));
}

fn channel_sink() -> (
    habla_ua::EventSink,
    tokio::sync::mpsc::UnboundedReceiver<CallEvent>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (
        Arc::new(move |e: CallEvent| {
            let _ = tx.send(e);
        }),
        rx,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_stops_the_audio_both_ways_and_resume_brings_it_back() {
    let (alice, _a_in) = agent("alice").await;
    let (bob, mut b_in) = agent("bob").await;
    let tone = AudioSource::Tone {
        frequency: 1000.0,
        amplitude: 8000,
    };
    let bob_control = habla_ua::CallControl::new();
    let (bob_sink, mut bob_events) = channel_sink();
    let bob_side = {
        let bob = bob.clone();
        let control = bob_control.clone();
        let source = tone.clone();
        tokio::spawn(async move {
            let call = next_call(&mut b_in).await;
            habla_ua::answer(
                &bob,
                call,
                AnswerOptions {
                    media: MediaConfig {
                        source,
                        ..MediaConfig::default()
                    },
                    control,
                    ..answer_options(Duration::ZERO, None)
                },
                bob_sink,
                std::future::pending(),
            )
            .await
            .unwrap()
        })
    };
    let alice_control = habla_ua::CallControl::new();
    let (alice_sink, mut alice_events) = channel_sink();
    let (hang_tx, hang_rx) = tokio::sync::oneshot::channel::<()>();
    let alice_side = {
        let alice = alice.clone();
        let target = target(&bob);
        let control = alice_control.clone();
        tokio::spawn(async move {
            habla_ua::place_call(
                &alice,
                CallOptions {
                    target,
                    duration: None,
                    media: MediaConfig {
                        source: tone,
                        ..MediaConfig::default()
                    },
                    control,
                },
                alice_sink,
                async {
                    let _ = hang_rx.await;
                },
            )
            .await
            .unwrap()
        })
    };
    event(&mut alice_events, CallEvent::Answered).await;
    let (a, b) = (alice_control.live(), bob_control.live());
    // Audio flows both ways.
    let t = tokio::time::Instant::now();
    while a.received() < 10 || b.received() < 10 {
        assert!(t.elapsed() < Duration::from_secs(5), "no audio before hold");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Alice holds (re-INVITE a=sendonly): bob is told, neither side sends.
    alice_control.hold();
    event(&mut alice_events, CallEvent::Held).await;
    event(&mut bob_events, CallEvent::HeldByPeer).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // packets in flight
    let (a_held, b_held) = (a.received(), b.received());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(b.received(), b_held, "bob (held) still receives audio");
    assert_eq!(a.received(), a_held, "alice (holding) still receives audio");

    // Alice resumes: audio flows again both ways.
    alice_control.resume();
    event(&mut alice_events, CallEvent::Resumed).await;
    event(&mut bob_events, CallEvent::ResumedByPeer).await;
    let t = tokio::time::Instant::now();
    while a.received() < a_held + 25 || b.received() < b_held + 25 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "audio did not come back: alice {} bob {}",
            a.received() - a_held,
            b.received() - b_held
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = hang_tx.send(());
    let report = tokio::time::timeout(Duration::from_secs(10), alice_side)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.ending, Ending::Local);
    let bob_report = tokio::time::timeout(Duration::from_secs(10), bob_side)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob_report.ending, Ending::Remote);
    alice.shutdown().await;
    bob.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_reports_reach_the_peer_and_fill_the_summary() {
    let (alice, _a_in) = agent("alice").await;
    let (bob, mut b_in) = agent("bob").await;
    let fast = |m: MediaConfig| MediaConfig {
        rtcp_first: Duration::from_millis(300),
        ..m
    };
    let bob_side = {
        let bob = bob.clone();
        tokio::spawn(async move {
            let call = next_call(&mut b_in).await;
            let mut o = answer_options(Duration::ZERO, None);
            o.media = fast(o.media);
            habla_ua::answer(
                &bob,
                call,
                o,
                habla_ua::ignore_events(),
                std::future::pending(),
            )
            .await
            .unwrap()
        })
    };
    let report = habla_ua::place_call(
        &alice,
        CallOptions {
            target: target(&bob),
            duration: Some(Duration::from_millis(1500)),
            media: fast(MediaConfig::default()),
            control: Default::default(),
        },
        habla_ua::ignore_events(),
        std::future::pending(),
    )
    .await
    .unwrap();
    let m = report.media.unwrap();
    assert!(
        m.stats.rtcp_sent >= 1 && m.stats.rtcp_received >= 1,
        "{:?}",
        m.stats
    );
    let peer = m.peer.expect("bob's report block about alice's stream");
    assert_eq!(peer.cumulative_lost, 0);
    assert!(peer.jitter_ms < 50.0, "{peer:?}");
    let b = tokio::time::timeout(Duration::from_secs(10), bob_side)
        .await
        .unwrap()
        .unwrap();
    assert!(b.media.unwrap().peer.is_some());
    alice.shutdown().await;
    bob.shutdown().await;
}
