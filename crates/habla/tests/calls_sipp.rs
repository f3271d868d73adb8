//! Calls through `habla serve` between real SIPp user agents, over UDP and
//! TCP: answered calls with the route set, busy callee, unknown and
//! unregistered callees, CANCEL before answer, and a call forked to two
//! registered contacts.
//!
//! A missing `sipp` (Debian `sip-tester`) skips these tests with a message,
//! unless `HABLA_REQUIRE_PEERS=1` (set by `.ci/run`), which makes it fail.

use bytes::Bytes;
use habla_message::{Message, Method, RequestBuilder, Uri};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("habla-calls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A port free for both UDP and TCP on 127.0.0.1 (for SIPp's -p).
fn free_port() -> u16 {
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_server(dir: &Path) -> Server {
    start_server_with(dir, &[])
}

fn start_server_with(dir: &Path, extra: &[&str]) -> Server {
    let db = dir.join("habla.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_habla"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-auth",
            "--database",
        ])
        .arg(&db)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut port = None;
    for line in lines.by_ref().take(4) {
        let line = line.unwrap();
        if let Some(a) = line.strip_prefix("listening on udp:") {
            port = a.rsplit(':').next().and_then(|p| p.parse().ok());
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        port: port.expect("habla printed its port"),
    }
}

/// Registers `user`'s contact at `port` over UDP (with `transport` in the
/// contact URI so that the proxy reaches it over that transport).
fn register(server: &Server, user: &str, port: u16, transport: &str, n: u32) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let req = RequestBuilder::new(Method::Register, &Uri::parse("sip:127.0.0.1").unwrap())
        .via(
            "UDP",
            &local.to_string(),
            &format!("z9hG4bKr{user}{port}{n}"),
            true,
        )
        .max_forwards(70)
        .to(&format!("<sip:{user}@127.0.0.1>"))
        .from(&format!("<sip:{user}@127.0.0.1>;tag=r{n}"))
        .call_id(&format!("reg-{user}-{port}"))
        .cseq(n)
        .header(
            "Contact",
            &format!("<sip:{user}@127.0.0.1:{port};transport={transport}>;expires=600"),
        )
        .to_bytes()
        .unwrap();
    sock.send_to(&req, ("127.0.0.1", server.port)).unwrap();
    let mut buf = [0u8; 8192];
    let (n, _) = sock.recv_from(&mut buf).expect("REGISTER answered");
    let resp = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
    assert_eq!(resp.status(), Some(200), "REGISTER {user}");
}

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

fn final_scenario(dir: &Path, code: u16) -> PathBuf {
    let text = std::fs::read_to_string(scenario("uac_final.xml")).unwrap();
    let p = dir.join(format!("uac_{code}.xml"));
    std::fs::write(&p, text.replace("CODE", &code.to_string())).unwrap();
    p
}

struct Sipp {
    child: Child,
    what: String,
}

fn spawn_sipp(bin: &Path, args: &[String], what: &str) -> Sipp {
    let child = Command::new(bin)
        .args(args)
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
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Sipp {
        child,
        what: what.to_string(),
    }
}

impl Sipp {
    /// Waits (bounded) and asserts that SIPp's scenario passed.
    fn passes(mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = self.child.wait_with_output().unwrap();
                assert!(
                    status.success(),
                    "SIPp {} failed ({status}):\n{}\n{}",
                    self.what,
                    String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .rev()
                        .take(40)
                        .collect::<Vec<_>>()
                        .join("\n"),
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("SIPp {} did not finish", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn uas(bin: &Path, sf: &Path, port: u16, t: &str, dir: &Path, name: &str) -> Sipp {
    spawn_sipp(
        bin,
        &[
            "-sf".into(),
            sf.to_string_lossy().into(),
            "-p".into(),
            port.to_string(),
            "-t".into(),
            t.into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.join(format!("{name}-errors.log"))
                .to_string_lossy()
                .into(),
        ],
        name,
    )
}

fn uac(
    bin: &Path,
    sf: &Path,
    service: &str,
    server: &Server,
    t: &str,
    dir: &Path,
    name: &str,
) -> Sipp {
    spawn_sipp(
        bin,
        &[
            "-sf".into(),
            sf.to_string_lossy().into(),
            "-s".into(),
            service.into(),
            format!("127.0.0.1:{}", server.port),
            "-p".into(),
            free_port().to_string(),
            "-t".into(),
            t.into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.join(format!("{name}-errors.log"))
                .to_string_lossy()
                .into(),
        ],
        name,
    )
}

fn sipp_transport(t: &str) -> (&'static str, &'static str) {
    if t == "tcp" {
        ("t1", "tcp")
    } else {
        ("u1", "udp")
    }
}

fn answered_call(t: &str) {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir(&format!("answered-{t}"));
    let server = start_server(&dir);
    let (mode, transport) = sipp_transport(t);
    let port = free_port();
    let callee = uas(&bin, &scenario("uas.xml"), port, mode, &dir, "uas");
    register(&server, "bob", port, transport, 1);
    uac(
        &bin,
        &scenario("uac.xml"),
        "bob",
        &server,
        mode,
        &dir,
        "uac",
    )
    .passes();
    callee.passes();
}

#[test]
fn answered_call_over_udp() {
    answered_call("udp");
}

#[test]
fn answered_call_over_tcp() {
    answered_call("tcp");
}

fn busy_callee(t: &str) {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir(&format!("busy-{t}"));
    let server = start_server(&dir);
    let (mode, transport) = sipp_transport(t);
    let port = free_port();
    let callee = uas(&bin, &scenario("uas_busy.xml"), port, mode, &dir, "uas");
    register(&server, "carol", port, transport, 1);
    uac(
        &bin,
        &final_scenario(&dir, 486),
        "carol",
        &server,
        mode,
        &dir,
        "uac",
    )
    .passes();
    callee.passes();
}

#[test]
fn busy_callee_over_udp() {
    busy_callee("udp");
}

#[test]
fn busy_callee_over_tcp() {
    busy_callee("tcp");
}

#[test]
fn unregistered_callee_gets_480() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("unregistered");
    let server = start_server(&dir);
    // Without authentication every user of a local domain may exist: a
    // user with no binding is temporarily unavailable.
    uac(
        &bin,
        &final_scenario(&dir, 480),
        "nobody",
        &server,
        "u1",
        &dir,
        "uac",
    )
    .passes();
}

fn cancel_before_answer(t: &str) {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir(&format!("cancel-{t}"));
    let server = start_server(&dir);
    let (mode, transport) = sipp_transport(t);
    let port = free_port();
    let callee = uas(&bin, &scenario("uas_ring.xml"), port, mode, &dir, "uas");
    register(&server, "dave", port, transport, 1);
    uac(
        &bin,
        &scenario("uac_cancel.xml"),
        "dave",
        &server,
        mode,
        &dir,
        "uac",
    )
    .passes();
    callee.passes();
}

#[test]
fn cancel_before_answer_over_udp() {
    cancel_before_answer("udp");
}

#[test]
fn cancel_before_answer_over_tcp() {
    cancel_before_answer("tcp");
}

#[test]
fn forked_call_to_two_contacts_is_answered_by_one_and_cancelled_at_the_other() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("fork");
    let server = start_server(&dir);
    let (p1, p2) = (free_port(), free_port());
    let answers = uas(&bin, &scenario("uas.xml"), p1, "u1", &dir, "uas-answers");
    let rings = uas(&bin, &scenario("uas_ring.xml"), p2, "u1", &dir, "uas-rings");
    register(&server, "erin", p1, "udp", 1);
    register(&server, "erin", p2, "udp", 2);
    uac(
        &bin,
        &scenario("uac.xml"),
        "erin",
        &server,
        "u1",
        &dir,
        "uac",
    )
    .passes();
    answers.passes();
    rings.passes();
}

/// `habla serve --workers 4`: concurrent REGISTERs from many sources (each
/// lands on the worker its branch hashes to; the bindings are shared), then
/// calls over UDP and TCP, a busy callee and a CANCEL, all at once, through
/// whichever workers their transactions hash to.
#[test]
fn four_workers_carry_concurrent_registrations_and_calls() {
    let Some(bin) = sipp() else { return };
    let dir = temp_dir("workers");
    let server = start_server_with(&dir, &["--workers", "4"]);
    std::thread::scope(|s| {
        for t in 0..8u16 {
            let server = &server;
            s.spawn(move || {
                for n in 1..=10u32 {
                    register(server, &format!("load{t}"), 20_000 + t, "udp", n);
                }
            });
        }
    });
    let cases = [
        ("uas.xml", "u1", "udp", "fay", None),
        ("uas.xml", "t1", "tcp", "gus", None),
        ("uas_busy.xml", "u1", "udp", "hal", Some(486)),
        ("uas_ring.xml", "t1", "tcp", "ivy", Some(0)),
    ];
    let mut running = Vec::new();
    for (uas_sf, mode, transport, user, outcome) in cases {
        let port = free_port();
        let callee = uas(
            &bin,
            &scenario(uas_sf),
            port,
            mode,
            &dir,
            &format!("uas-{user}"),
        );
        register(&server, user, port, transport, 1);
        let sf = match outcome {
            None => scenario("uac.xml"),
            Some(0) => scenario("uac_cancel.xml"),
            Some(code) => final_scenario(&dir, code),
        };
        let caller = uac(&bin, &sf, user, &server, mode, &dir, &format!("uac-{user}"));
        running.push((caller, callee));
    }
    for (caller, callee) in running {
        caller.passes();
        callee.passes();
    }
}
