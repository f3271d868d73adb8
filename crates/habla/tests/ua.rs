//! habla's user agent against `habla serve` on loopback: `habla answer`
//! registers bob, `habla call` from alice (digest against the proxy) plays
//! a 1 kHz WAV and sends DTMF; bob's recording is checked with Goertzel and
//! the digits arrive in order; `habla message` reaches `habla answer`;
//! `habla options` prints the server's capabilities; calling a user who is
//! not registered fails with 480 and the "rejected" exit code.
//!
//! Every process is killed by handle on drop; every wait is bounded and
//! waits for an output line, not a fixed sleep.

use habla_media::tone::{dominant_frequency, tone_fraction, ToneGenerator};
use habla_media::wav::{read_wav, write_wav};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "support/habla_proc.rs"]
mod habla_proc;
use habla_proc::{Proc, BIN};

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("habla-ua-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Server {
    _proc: Proc,
    port: u16,
}

fn add_user(db: &Path, user: &str, password: &str) {
    let st = Command::new(BIN)
        .args(["user", "add", user, "--password", password, "--database"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "user add {user}");
}

fn start_server(dir: &Path) -> Server {
    let db = dir.join("habla.db");
    for (u, p) in [
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ] {
        add_user(&db, &format!("{u}@127.0.0.1"), p);
    }
    let db = db.to_str().unwrap().to_owned();
    let mut proc = Proc::spawn(&["serve", "--listen", "127.0.0.1:0", "--database", &db]);
    let line = proc.wait_for("listening on udp:", Duration::from_secs(10));
    let port = line.rsplit(':').next().unwrap().parse().unwrap();
    Server { _proc: proc, port }
}

fn uri(user: &str, port: u16) -> String {
    format!("sip:{user}@127.0.0.1:{port}")
}

#[test]
fn a_call_through_habla_serve_carries_the_tone_the_dtmf_and_messages() {
    let dir = temp_dir("call");
    let s = start_server(&dir);
    let bob = uri("bob", s.port);
    let alice = uri("alice", s.port);
    let record = dir.join("bob-%n.wav");
    let mut answer = Proc::spawn(&[
        "answer",
        &bob,
        "--password",
        "bob-pw",
        "--local",
        "127.0.0.1:0",
        "--record",
        record.to_str().unwrap(),
    ]);
    answer.wait_for("registered sip:bob@", Duration::from_secs(10));

    // A 3 s 1 kHz tone; DTMF takes about 0.8 s of it (no audio is sent
    // while an event is on), leaving about 2.2 s of tone.
    let wav = dir.join("tone.wav");
    let samples = ToneGenerator::new(1000.0, 8000, 8000).take(3 * 8000);
    write_wav(std::fs::File::create(&wav).unwrap(), &samples).unwrap();
    let call = Proc::spawn(&[
        "call",
        &bob,
        "--from",
        &alice,
        "--password",
        "alice-pw",
        "--local",
        "127.0.0.1:0",
        "--play",
        wav.to_str().unwrap(),
        "--duration",
        "3s",
        "--dtmf",
        "123#",
    ]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "habla call: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("call 200 OK")),
        "{lines:?}"
    );

    answer.wait_for("call 1 from sip:alice@127.0.0.1", Duration::from_secs(5));
    let ended = answer.wait_for("call 1 ended", Duration::from_secs(10));
    assert!(ended.contains("peer hung up"), "{ended}");
    assert!(ended.contains("dtmf \"123#\""), "{ended}");
    let digits: Vec<&str> = answer
        .seen()
        .iter()
        .filter_map(|l| l.strip_prefix("dtmf "))
        .collect();
    assert_eq!(digits, ["1", "2", "3", "#"], "DTMF in order");

    // The recording: at least 1.5 s of 20 ms frames dominated by 1 kHz.
    let rec = read_wav(std::fs::File::open(dir.join("bob-1.wav")).unwrap(), 3600).unwrap();
    let toned: Vec<&[i16]> = rec
        .chunks_exact(160)
        .filter(|f| tone_fraction(f, 1000.0, 8000) > 0.5)
        .collect();
    assert!(
        toned.len() >= 75,
        "only {} ms of 1 kHz tone in {} ms recorded",
        toned.len() * 20,
        rec.len() / 8
    );
    let heard: Vec<i16> = toned.concat();
    assert_eq!(
        dominant_frequency(
            &heard,
            &[440.0, 697.0, 941.0, 1000.0, 1209.0, 1633.0, 2000.0],
            8000
        ),
        Some(1000.0)
    );

    // A MESSAGE from alice (407 answered with her credentials) is printed.
    let msg = Proc::spawn(&[
        "message",
        &bob,
        "hello from alice",
        "--from",
        &alice,
        "--password",
        "alice-pw",
        "--local",
        "127.0.0.1:0",
    ]);
    let (code, lines) = msg.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "habla message: {lines:?}");
    assert!(lines.iter().any(|l| l == "message 200 OK"), "{lines:?}");
    answer.wait_for("message from sip:alice@127.0.0.1", Duration::from_secs(5));
    assert!(answer
        .seen()
        .last()
        .unwrap()
        .ends_with(": hello from alice"));
}

#[test]
fn options_prints_the_server_capabilities_and_an_unregistered_callee_gets_480() {
    let dir = temp_dir("options");
    let s = start_server(&dir);

    let opt = Proc::spawn(&[
        "options",
        &format!("sip:127.0.0.1:{}", s.port),
        "--local",
        "127.0.0.1:0",
    ]);
    let (code, lines) = opt.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "{lines:?}");
    let line = lines.iter().find(|l| l.starts_with("options ")).unwrap();
    assert!(line.starts_with("options 200 OK: rtt "), "{line}");
    assert!(line.contains("allow: INVITE"), "{line}");
    assert!(line.contains("supported: "), "{line}");

    // carol exists but has no binding: the proxy answers 480.
    let call = Proc::spawn(&[
        "call",
        &uri("carol", s.port),
        "--from",
        &uri("alice", s.port),
        "--password",
        "alice-pw",
        "--local",
        "127.0.0.1:0",
        "--duration",
        "1s",
    ]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    assert_eq!(code, 3, "exit code for a rejected call: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("call 480 ")),
        "{lines:?}"
    );
}
