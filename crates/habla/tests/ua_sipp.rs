//! Edge cases the habla user agent must survive, with SIPp as the peer
//! talking to `habla call` / `habla answer` directly (no server):
//!
//! - a 183 with an SDP answer before the 200: early media flows (SIPp
//!   echoes our RTP) before the answer, and the call goes on;
//! - the 200 retransmitted after our ACK (as if the ACK was lost): we ACK
//!   it again;
//! - session timers (RFC 4028): the callee makes us the refresher with a
//!   2 s interval and expects our refreshing re-INVITE;
//! - re-INVITEs from the peer that hold and resume us and move its media:
//!   we answer recvonly then sendrecv, send nothing to the hold address
//!   and our RTP to the resume address;
//! - a BYE crossing a re-INVITE, both ways: the peer's BYE before its ACK
//!   of our 2xx to its re-INVITE; the peer's BYE while our hold re-INVITE
//!   is unanswered (then 487 to it): the BYE is answered, the call ends;
//! - 491 to our hold re-INVITE: retried after the RFC 3261 §14.1 delay;
//! - the peer's session refreshes answered with Session-Expires, and BYE
//!   when they stop (RFC 4028 §10).
//!
//! SIPp's scenario must pass (exit 0) and habla must print the right
//! outcome. A missing `sipp` (Debian `sip-tester`) skips these tests with a
//! message, unless `HABLA_REQUIRE_PEERS=1`, which makes them fail. Every
//! wait is bounded and waits for a line or an exit; processes are killed by
//! handle on drop.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "support/habla_proc.rs"]
mod habla_proc;
use habla_proc::Proc;

fn sipp() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("sipp"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg = "`sipp` not found (Debian package `sip-tester`; scripts/test installs it)";
        assert!(
            std::env::var("HABLA_REQUIRE_PEERS").as_deref() != Ok("1"),
            "HABLA_REQUIRE_PEERS=1 but {msg}"
        );
        eprintln!("SKIP: {msg}");
    }
    found
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("habla-ua-sipp-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[path = "support/ports.rs"]
mod ports;
use ports::free_ports;

/// A SIPp run; killed on drop.
struct Sipp {
    child: Child,
    what: String,
    dir: PathBuf,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
    fn spawn(bin: &Path, scenario: &Path, extra: &[String], dir: &Path, what: &str) -> Sipp {
        let child = Command::new(bin)
            .arg("-sf")
            .arg(scenario)
            .args(extra)
            .args([
                "-nostdin",
                // SIPp binds its control socket to 0.0.0.0 unless told: loopback only.
                "-ci",
                "127.0.0.1",
                "-timeout",
                "20s",
                "-timeout_error",
                "-m",
                "1",
                "-i",
                "127.0.0.1",
                "-trace_err",
                "-error_file",
            ])
            .arg(dir.join(format!("{what}-errors.log")))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Sipp {
            child,
            what: what.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    /// A UAS on `port`: waits (bounded) until it has bound the port.
    fn uas(bin: &Path, name: &str, dir: &Path, extra: &[String]) -> (Sipp, u16) {
        let port = free_ports(1);
        let mut args = vec!["-p".to_string(), port.to_string()];
        args.extend_from_slice(extra);
        let s = Sipp::spawn(bin, &scenario(name), &args, dir, name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < deadline, "SIPp never bound port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        (s, port)
    }

    /// Waits (bounded) and asserts that the scenario passed.
    fn passes(mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut out = String::new();
                let mut err = String::new();
                use std::io::Read;
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let errors =
                    std::fs::read_to_string(self.dir.join(format!("{}-errors.log", self.what)))
                        .unwrap_or_default();
                assert!(
                    status.success(),
                    "SIPp {} failed ({status}):\n{}\n{err}\n{errors}",
                    self.what,
                    out.lines().rev().take(40).collect::<Vec<_>>().join("\n"),
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "SIPp {} did not finish",
                self.what
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp_ua")
        .join(name)
}

/// SIPp's media port arguments: a free block for -mp (SIPp binds several).
fn media_args(echo: bool) -> Vec<String> {
    let mut a = vec!["-mp".to_string(), free_ports(4).to_string()];
    if echo {
        a.push("-rtp_echo".into());
    }
    a
}

fn call_sipp(port: u16, args: &[&str]) -> Proc {
    let target = format!("sip:test@127.0.0.1:{port}");
    let mut all = vec!["call", &target, "--local", "127.0.0.1:0"];
    all.extend_from_slice(args);
    Proc::spawn(&all)
}

fn has(lines: &[String], prefix: &str) -> bool {
    lines.iter().any(|l| l.starts_with(prefix))
}

#[test]
fn a_183_with_sdp_starts_early_media_before_the_200() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("early");
    let (uas, port) = Sipp::uas(&bin, "uas_early_media.xml", &dir, &media_args(true));
    let call = call_sipp(port, &["--tone", "1000", "--duration", "1s"]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    uas.passes();
    assert_eq!(code, 0, "{lines:?}");
    assert!(has(&lines, "progress 183 Session Progress"), "{lines:?}");
    assert!(has(&lines, "early media (183)"), "{lines:?}");
    // SIPp echoed what we sent during the 1.5 s of early media.
    let answered = lines
        .iter()
        .find(|l| l.starts_with("answered (early media: rtp sent "))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let received: u64 = answered
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    assert!(received >= 25, "{answered}");
    assert!(has(&lines, "call 200 OK: hung up"), "{lines:?}");
}

#[test]
fn a_200_retransmitted_after_the_ack_is_acked_again() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("reack");
    // -nr: otherwise SIPp takes our second ACK (identical to the first, as
    // it must be) for a retransmission of the first and answers it again.
    let mut ma = media_args(false);
    ma.push("-nr".into());
    let (uas, port) = Sipp::uas(&bin, "uas_2xx_retransmit.xml", &dir, &ma);
    let call = call_sipp(port, &["--duration", "2s"]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    // SIPp's scenario waits for the second ACK before the BYE.
    uas.passes();
    assert_eq!(code, 0, "{lines:?}");
    assert!(has(&lines, "call 200 OK: hung up"), "{lines:?}");
}

#[test]
fn we_refresh_the_session_when_the_callee_makes_us_the_refresher() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("timer");
    let (uas, port) = Sipp::uas(&bin, "uas_session_timer.xml", &dir, &media_args(false));
    let call = call_sipp(port, &["--duration", "1800ms"]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    uas.passes();
    assert_eq!(code, 0, "{lines:?}");
    assert!(has(&lines, "session refreshed"), "{lines:?}");
    assert!(has(&lines, "call 200 OK: hung up"), "{lines:?}");
}

/// `habla answer` without registration; returns it and its SIP port.
fn answer_locally(args: &[&str]) -> (Proc, u16) {
    let mut all = vec![
        "answer",
        "sip:bob@127.0.0.1",
        "--no-register",
        "--local",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    let mut p = Proc::spawn(&all);
    let line = p.wait_for("listening on ", Duration::from_secs(10));
    let port = line.rsplit(':').next().unwrap().parse().unwrap();
    (p, port)
}

/// Counts UDP datagrams arriving on a socket until the flag is set.
fn count_packets(
    socket: UdpSocket,
    done: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let n = Arc::new(AtomicU64::new(0));
    let count = n.clone();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !done.load(Ordering::Relaxed) {
            if socket.recv_from(&mut buf).is_ok() {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (n, t)
}

#[test]
fn the_peer_holds_resumes_and_moves_our_media_with_reinvites() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("hold");
    let (mut answer, port) = answer_locally(&["--tone", "1000"]);
    let hold_port = free_ports(2);
    let resume_port = free_ports(2);
    let hold_sock = UdpSocket::bind(("127.0.0.1", hold_port)).unwrap();
    let resume_sock = UdpSocket::bind(("127.0.0.1", resume_port)).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let (on_hold, t1) = count_packets(hold_sock, done.clone());
    let (on_resume, t2) = count_packets(resume_sock, done.clone());
    let text = std::fs::read_to_string(scenario("uac_reinvite_hold.xml"))
        .unwrap()
        .replace("HOLD_PORT", &hold_port.to_string())
        .replace("RESUME_PORT", &resume_port.to_string());
    let sf = dir.join("uac_reinvite_hold.xml");
    std::fs::write(&sf, text).unwrap();
    let mut args = vec![
        format!("127.0.0.1:{port}"),
        "-s".into(),
        "bob".into(),
        "-p".into(),
        free_ports(1).to_string(),
    ];
    args.extend(media_args(false));
    Sipp::spawn(&bin, &sf, &args, &dir, "uac-hold").passes();
    answer.wait_for("held by peer", Duration::from_secs(5));
    answer.wait_for("resumed by peer", Duration::from_secs(5));
    let ended = answer.wait_for("call 1 ended", Duration::from_secs(10));
    done.store(true, Ordering::Relaxed);
    t1.join().unwrap();
    t2.join().unwrap();
    assert!(ended.contains("200 OK (peer hung up)"), "{ended}");
    let (held, resumed) = (
        on_hold.load(Ordering::Relaxed),
        on_resume.load(Ordering::Relaxed),
    );
    assert_eq!(
        held, 0,
        "RTP sent to the hold address (a=sendonly from the peer)"
    );
    // About 1 s of 20 ms packets at the address of the resume offer.
    assert!(resumed >= 25, "only {resumed} RTP packets after the resume");
}

#[test]
fn a_bye_crossing_the_peers_reinvite_ends_the_call_cleanly() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("crossing");
    let (mut answer, port) = answer_locally(&[]);
    let mut args = vec![
        format!("127.0.0.1:{port}"),
        "-s".into(),
        "bob".into(),
        "-p".into(),
        free_ports(1).to_string(),
    ];
    args.extend(media_args(false));
    Sipp::spawn(
        &bin,
        &scenario("uac_bye_crossing.xml"),
        &args,
        &dir,
        "uac-crossing",
    )
    .passes();
    let ended = answer.wait_for("call 1 ended", Duration::from_secs(10));
    assert!(ended.contains("200 OK (peer hung up)"), "{ended}");
}

#[test]
fn a_491_to_our_hold_is_retried_after_the_glare_delay() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("glare");
    let (uas, port) = Sipp::uas(&bin, "uas_glare_491.xml", &dir, &media_args(false));
    let call = call_sipp(port, &["--hold-after", "300ms", "--duration", "6s"]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    uas.passes();
    assert_eq!(code, 0, "{lines:?}");
    assert!(has(&lines, "held"), "{lines:?}");
    assert!(!has(&lines, "re-INVITE failed"), "{lines:?}");
    assert!(has(&lines, "call 200 OK: hung up"), "{lines:?}");
}

#[test]
fn the_peers_bye_crossing_our_reinvite_ends_the_call_cleanly() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("our-crossing");
    let (uas, port) = Sipp::uas(&bin, "uas_bye_crossing.xml", &dir, &media_args(false));
    let call = call_sipp(port, &["--hold-after", "300ms", "--duration", "10s"]);
    let (code, lines) = call.finish(Duration::from_secs(20));
    uas.passes();
    assert_eq!(code, 0, "{lines:?}");
    assert!(!has(&lines, "held"), "{lines:?}");
    assert!(has(&lines, "call 200 OK: peer hung up"), "{lines:?}");
}

#[test]
fn we_answer_the_peers_session_refreshes_and_hang_up_when_they_stop() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("peer-timer");
    let (mut answer, port) = answer_locally(&[]);
    let mut args = vec![
        format!("127.0.0.1:{port}"),
        "-s".into(),
        "bob".into(),
        "-p".into(),
        free_ports(1).to_string(),
    ];
    args.extend(media_args(false));
    Sipp::spawn(
        &bin,
        &scenario("uac_session_timer.xml"),
        &args,
        &dir,
        "uac-timer",
    )
    .passes();
    answer.wait_for("session refreshed by peer", Duration::from_secs(5));
    // RFC 4028 §10: no refresh in time, we end the session.
    let ended = answer.wait_for("call 1 ended", Duration::from_secs(10));
    assert!(ended.contains("200 OK (timeout)"), "{ended}");
}
