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
