//! Two real softphones (baresip) through `habla serve`, with digest
//! authentication, over UDP and TCP: both register, one calls the other
//! (auto-answer), the call is established on both sides (the 2xx ACK and
//! the BYE follow habla's Record-Route), the caller hangs up and both see
//! the call end (the BYE is answered 200); a MESSAGE from one reaches the
//! other. A wrong password never registers. habla's own user agent calls a
//! baresip that plays a 1 kHz file and records it, and a baresip calls
//! `habla answer`, which records baresip's tone until baresip hangs up at
//! the end of its file: each recording holds at least 1.5 s of 1 kHz
//! (Goertzel).
//!
//! A missing `baresip` (Debian `baresip-core`) skips these tests with a
//! message, unless `HABLA_REQUIRE_PEERS=1` (set by `.ci/run`), which makes
//! it fail. How baresip is driven headless: ../shared/design/TEST-PEERS.md.
//!
//! The server offers MD5 only here: baresip 1.0.0 (Debian 12; libre's
//! `sip/auth.c`) gives up on the whole 401/407 ("Function not implemented")
//! when any of its challenges names another algorithm, although RFC 8760
//! §2.4 tells a UAC to ignore the challenges it does not support. See
//! `algorithms` in habla.toml.

use bytes::Bytes;
use habla_auth::client::{authorization, select_challenge, ClientRequest};
use habla_message::{AuthParams, HeaderName, Message, Method, RequestBuilder, Uri};
use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

const MODULES: &str = "/usr/lib/baresip/modules";
/// How long any single awaited event may take.
const WAIT: Duration = Duration::from_secs(15);

fn baresip() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("baresip"))
                .find(|p| p.is_file())
        })
        .filter(|_| Path::new(MODULES).join("aufile.so").is_file());
    if found.is_none() {
        let msg = format!(
            "`baresip` or its modules in {MODULES} not found (Debian package `baresip-core`; \
             scripts/test installs it)"
        );
        assert!(
            std::env::var("HABLA_REQUIRE_PEERS").as_deref() != Ok("1"),
            "HABLA_REQUIRE_PEERS=1 but {msg}"
        );
        eprintln!("SKIP: {msg}");
    }
    found
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("habla-baresip-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // HABLA_KEEP_TEMP=1 keeps the logs of a failed run for a look.
        if std::env::var_os("HABLA_KEEP_TEMP").is_some() {
            eprintln!("kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[path = "support/ports.rs"]
mod ports;
use ports::free_ports;

struct Server {
    child: Child,
    udp: u16,
    tcp: u16,
    db: PathBuf,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        let db = dir.join("habla.db");
        let config = dir.join("habla.toml");
        // MD5 only: see the module comment.
        std::fs::write(&config, "[auth]\nalgorithms = [\"MD5\"]\n").unwrap();
        let log = dir.join("habla.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_habla"))
            .args(["-v", "serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--database")
            .arg(&db)
            .stdout(Stdio::piped())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut udp, mut tcp) = (None, None);
        for line in lines.by_ref().take(4) {
            let line = line.unwrap();
            let port = |a: &str| a.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            if let Some(a) = line.strip_prefix("listening on udp:") {
                udp = port(a);
            } else if let Some(a) = line.strip_prefix("listening on tcp:") {
                tcp = port(a);
            }
            if udp.is_some() && tcp.is_some() {
                break;
            }
        }
        // Keep draining stdout so that the server never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            udp: udp.expect("habla printed its UDP port"),
            tcp: tcp.expect("habla printed its TCP port"),
            db,
            log,
        }
    }

    fn add_user(&self, address: &str, password: &str) {
        let st = Command::new(env!("CARGO_BIN_EXE_habla"))
            .args(["user", "add", address, "--password", password, "--database"])
            .arg(&self.db)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "habla user add {address}");
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 30)
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes ANSI colour sequences (baresip colours its log lines).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters, then one final byte in @..~.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// A 1 kHz tone, 8 kHz mono S16LE WAV (what `aufile` feeds to G.711),
/// longer than any call here: baresip hangs up when its source ends.
fn write_tone(path: &Path, seconds: u32) {
    let samples = 8000 * seconds;
    let data = samples * 2;
    let mut out = Vec::with_capacity(44 + data as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes()); // sample rate
    out.extend_from_slice(&16000u32.to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for i in 0..samples {
        let phase = 2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / 8000.0;
        let s = (phase.sin() * 8000.0) as i16;
        out.extend_from_slice(&s.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// One message in baresip's SIP trace (`-s`): a line `UDP src -> dst`, the
/// start line, the headers.
#[derive(Debug)]
struct Traced {
    transport: String,
    src: String,
    start: String,
    cseq: String,
}

fn trace(log: &str) -> Vec<Traced> {
    let mut out = Vec::new();
    let lines: Vec<String> = log.lines().map(plain).collect();
    let mut i = 0;
    while i < lines.len() {
        let words: Vec<&str> = lines[i].split(' ').collect();
        if let [t @ ("UDP" | "TCP"), src, "->", _dst] = words[..] {
            let start = lines.get(i + 1).cloned().unwrap_or_default();
            let mut cseq = String::new();
            let mut j = i + 2;
            while j < lines.len() && !lines[j].is_empty() {
                if let Some(v) = lines[j].strip_prefix("CSeq:") {
                    cseq = v.trim().to_string();
                }
                j += 1;
            }
            out.push(Traced {
                transport: t.to_string(),
                src: src.to_string(),
                start,
                cseq,
            });
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

struct Account<'a> {
    user: &'a str,
    password: &'a str,
    /// Where `/message` sends to.
    contact: &'a str,
    tcp: bool,
}

struct Baresip {
    name: String,
    child: RefCell<Child>,
    /// The write end of baresip's stdin, held open for the whole run: like
    /// the FIFO held read-write in TEST-PEERS.md, baresip never sees EOF.
    stdin: ChildStdin,
    log: PathBuf,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Baresip {
    fn start(bin: &Path, dir: &Path, server: &Server, account: &Account, tone: &Path) -> Baresip {
        let home = dir.join(account.user);
        std::fs::create_dir_all(&home).unwrap();
        // Ports: SIP at base (baresip also binds base + 1), RTP/RTCP in
        // base + 10 .. base + 19.
        let base = free_ports(20);
        std::fs::write(
            home.join("config"),
            format!(
                "poll_method epoll\n\
                 sip_listen 127.0.0.1:{base}\n\
                 net_interface 127.0.0.1\n\
                 rtp_ports {}-{}\n\
                 statmode_default off\n\
                 module_path {MODULES}\n\
                 module stdio.so\n\
                 module g711.so\n\
                 module aufile.so\n\
                 module_app account.so\n\
                 module_app contact.so\n\
                 module_app menu.so\n\
                 audio_source aufile,{}\n\
                 audio_alert none\n",
                base + 10,
                base + 19,
                tone.display()
            ),
        )
        .unwrap();
        let aor = if account.tcp {
            format!(
                "sip:{}@127.0.0.1:{};transport=tcp",
                account.user, server.tcp
            )
        } else {
            format!("sip:{}@127.0.0.1:{}", account.user, server.udp)
        };
        // `/message` builds its Request-URI without the account's transport:
        // the outbound proxy keeps it on TCP (TEST-PEERS.md).
        let outbound = if account.tcp {
            format!(";outbound=\"sip:127.0.0.1:{};transport=tcp\"", server.tcp)
        } else {
            String::new()
        };
        std::fs::write(
            home.join("accounts"),
            format!(
                "<{aor}>;auth_user={};auth_pass={};answermode=auto;regint=600{outbound}\n",
                account.user, account.password
            ),
        )
        .unwrap();
        std::fs::write(home.join("contacts"), format!("<{}>\n", account.contact)).unwrap();
        let log = home.join("log");
        let out = File::create(&log).unwrap();
        let mut child = Command::new(bin)
            .arg("-f")
            .arg(&home)
            .arg("-s")
            .stdin(Stdio::piped())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        Baresip {
            name: account.user.to_string(),
            child: RefCell::new(child),
            stdin,
            log,
        }
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Log lines (colours removed), without the echo of typed commands.
    fn lines(&self) -> Vec<String> {
        self.text()
            .lines()
            .map(plain)
            .filter(|l| !l.starts_with('/'))
            .collect()
    }

    fn has_line(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        self.lines().into_iter().find(|l| pred(l))
    }

    /// Waits (bounded) for a log line matching `pred`; returns it.
    fn wait_line(&self, what: &str, server: &Server, pred: impl Fn(&str) -> bool) -> String {
        self.wait(what, server, || self.has_line(&pred))
    }

    fn wait<T>(&self, what: &str, server: &Server, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(v) = check() {
                return v;
            }
            if let Ok(Some(status)) = self.child.borrow_mut().try_wait() {
                panic!(
                    "{}: baresip exited ({status}) before {what}",
                    self.report(server)
                );
            }
            if Instant::now() > deadline {
                panic!("{}: no {what} within {WAIT:?}", self.report(server));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn report(&self, server: &Server) -> String {
        format!(
            "{}\n--- {} log (tail) ---\n{}\n--- habla log (tail) ---\n{}",
            self.name,
            self.name,
            tail(&self.lines().join("\n"), 60),
            server.log_tail()
        )
    }
}

fn registered(b: &Baresip, server: &Server) {
    b.wait_line("registration", server, |l| {
        l.contains("registered successfully") || l.starts_with("reg: ")
    });
    assert!(
        b.has_line(|l| l.contains("useragent registered successfully"))
            .is_some(),
        "{}: registration failed",
        b.report(server)
    );
}

fn call_and_message(tcp: bool) {
    let Some(bin) = baresip() else { return };
    let dir = TempDir::new(if tcp { "call-tcp" } else { "call-udp" });
    let tone = dir.0.join("tone.wav");
    write_tone(&tone, 60);
    let server = Server::start(&dir.0);
    server.add_user("alice@127.0.0.1", "wonderland");
    server.add_user("bob@127.0.0.1", "builder");
    let port = if tcp { server.tcp } else { server.udp };
    // What the phones' SIP traces show as the source of what habla sends.
    let habla = format!("127.0.0.1:{port}");
    let bob_uri = format!("sip:bob@127.0.0.1:{port}");
    let alice_uri = format!("sip:alice@127.0.0.1:{port}");
    let mut alice = Baresip::start(
        &bin,
        &dir.0,
        &server,
        &Account {
            user: "alice",
            password: "wonderland",
            contact: &bob_uri,
            tcp,
        },
        &tone,
    );
    let bob = Baresip::start(
        &bin,
        &dir.0,
        &server,
        &Account {
            user: "bob",
            password: "builder",
            contact: &alice_uri,
            tcp,
        },
        &tone,
    );
    registered(&alice, &server);
    registered(&bob, &server);

    // The call: INVITE (407, then with credentials) through habla.
    alice.command(&format!("/dial {bob_uri}"));
    alice.wait_line("call established at the caller", &server, |l| {
        l.contains("Call established: sip:bob@")
    });
    bob.wait_line("call established at the callee", &server, |l| {
        l.contains("Call established: sip:alice@")
    });
    // The SDP went through intact: RTP flows both ways (phone to phone).
    for b in [&alice, &bob] {
        b.wait_line("incoming RTP", &server, |l| {
            l.starts_with("stream: incoming rtp for 'audio' established")
        });
    }
    // The 2xx ACK reached bob (through habla, which record-routes).
    bob.wait("ACK at the callee", &server, || {
        trace(&bob.text())
            .into_iter()
            .find(|m| m.start.starts_with("ACK ") && m.src == habla)
    });

    // The caller hangs up: BYE through habla, answered 200 by bob.
    alice.command("/hangup");
    let bye = bob.wait("BYE at the callee", &server, || {
        trace(&bob.text())
            .into_iter()
            .find(|m| m.start.starts_with("BYE ") && m.src == habla)
    });
    assert!(bye.cseq.ends_with("BYE"));
    alice.wait("200 for the BYE at the caller", &server, || {
        trace(&alice.text())
            .into_iter()
            .find(|m| m.start.starts_with("SIP/2.0 200") && m.cseq == bye.cseq && m.src == habla)
    });
    // baresip's text for a BYE received; "Call with ... terminated" is
    // only printed for calls of a second or more.
    bob.wait_line("end of the call at the callee", &server, |l| {
        l.starts_with("sip:alice@") && l.ends_with("session closed: Connection reset by peer")
    });
    // Nothing failed on the caller's side ("session closed: 4xx/5xx ...").
    assert_eq!(
        alice.has_line(|l| l.contains("session closed")),
        None,
        "{}",
        alice.report(&server)
    );

    // A MESSAGE (407, then with credentials) through habla; bob prints it.
    alice.command("/message hello from alice");
    bob.wait_line("the MESSAGE at the receiver", &server, |l| {
        l.starts_with("sip:alice@") && l.ends_with(": \"hello from alice\"")
    });
    alice.wait("200 for the MESSAGE at the sender", &server, || {
        trace(&alice.text()).into_iter().find(|m| {
            m.start.starts_with("SIP/2.0 200") && m.cseq.ends_with("MESSAGE") && m.src == habla
        })
    });

    // Every SIP message of both phones went over the transport under test.
    let want = if tcp { "TCP" } else { "UDP" };
    for b in [&alice, &bob] {
        let all = trace(&b.text());
        assert!(!all.is_empty());
        if let Some(m) = all.iter().find(|m| m.transport != want) {
            panic!("{}: {m:?} not over {want}", b.report(&server));
        }
    }
}

#[test]
fn two_baresips_register_call_hang_up_and_message_over_udp() {
    call_and_message(false);
}

#[test]
fn two_baresips_register_call_hang_up_and_message_over_tcp() {
    call_and_message(true);
}

/// A REGISTER without Contact (a fetch, RFC 3261 §10.2.3) as `user` from
/// 127.0.0.2, answering the digest challenge; returns the final response.
fn fetch_bindings(server: &Server, user: &str, password: &str) -> Message {
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let ruri = format!("sip:127.0.0.1:{}", server.udp);
    let request = |cseq: u32, auth: Option<&str>| {
        let mut b = RequestBuilder::new(Method::Register, &Uri::parse(&ruri).unwrap())
            .via(
                "UDP",
                &local.to_string(),
                &format!("z9hG4bKfetch{cseq}"),
                true,
            )
            .max_forwards(70)
            .to(&format!("<sip:{user}@127.0.0.1>"))
            .from(&format!("<sip:{user}@127.0.0.1>;tag=fetch"))
            .call_id("fetch-bindings")
            .cseq(cseq);
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        b.to_bytes().unwrap()
    };
    let send = |bytes: &[u8]| -> Message {
        sock.send_to(bytes, ("127.0.0.1", server.udp)).unwrap();
        let mut buf = [0u8; 65536];
        loop {
            let (n, _) = sock.recv_from(&mut buf).expect("habla answers");
            let m = Message::parse(Bytes::copy_from_slice(&buf[..n])).unwrap();
            if m.status() != Some(100) {
                return m;
            }
        }
    };
    let first = send(&request(1, None));
    assert_eq!(first.status(), Some(401), "challenged first");
    let challenges: Vec<AuthParams> = first
        .auth_headers(HeaderName::WwwAuthenticate)
        .collect::<Result<_, _>>()
        .unwrap();
    let ch = select_challenge(&challenges).expect("a usable challenge");
    let auth = authorization(
        ch,
        &ClientRequest {
            username: user,
            password,
            method: "REGISTER",
            uri: &ruri,
            cnonce: "0b1e2f3a",
            nc: 1,
        },
    )
    .unwrap();
    send(&request(2, Some(&auth)))
}

#[test]
fn a_baresip_with_a_wrong_password_does_not_register() {
    let Some(bin) = baresip() else { return };
    let dir = TempDir::new("wrong-password");
    let tone = dir.0.join("tone.wav");
    write_tone(&tone, 10);
    let server = Server::start(&dir.0);
    server.add_user("carol@127.0.0.1", "right");
    let alice_uri = format!("sip:alice@127.0.0.1:{}", server.udp);
    let carol = Baresip::start(
        &bin,
        &dir.0,
        &server,
        &Account {
            user: "carol",
            password: "wrong",
            contact: &alice_uri,
            tcp: false,
        },
        &tone,
    );
    // baresip 1.0.0 answers every new challenge at once, so it fails with
    // 401 or, once habla's per-source failure limit is reached, 403.
    let failure = carol.wait_line("the registration failure", &server, |l| {
        l.starts_with("reg: sip:carol@")
    });
    assert!(
        failure.contains(" 401 ") || failure.contains(" 403 "),
        "{}: {failure}",
        carol.report(&server)
    );
    assert_eq!(
        carol.has_line(|l| l.contains("registered successfully")),
        None,
        "{}",
        carol.report(&server)
    );
    // habla holds no binding for carol. The fetch comes from 127.0.0.2: the
    // throttle may have blocked 127.0.0.1 after carol's failures.
    let fetched = fetch_bindings(&server, "carol", "right");
    assert_eq!(fetched.status(), Some(200), "{}", server.log_tail());
    assert!(
        fetched.contacts().map(|c| c.is_empty()).unwrap_or(true),
        "carol has a binding: {:?}",
        fetched.header("Contact")
    );
}

/// A habla UA command whose stdout lines arrive on a channel; killed on drop.
struct HablaUa {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for HablaUa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl HablaUa {
    fn spawn(args: &[&str]) -> HablaUa {
        let mut child = Command::new(env!("CARGO_BIN_EXE_habla"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        HablaUa {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a line containing `needle`.
    fn wait_for(&mut self, needle: &str, what: &dyn Fn() -> String) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => panic!(
                    "no habla line with {needle:?} within {WAIT:?}; saw {:?}\n{}",
                    self.seen,
                    what()
                ),
            }
        }
    }

    /// Waits (bounded) for the exit; returns the code.
    fn exit_code(&mut self, what: &dyn Fn() -> String) -> i32 {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
                    self.seen.push(l);
                }
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "habla did not exit; saw {:?}\n{}",
                self.seen,
                what()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The recording holds at least 1.5 s of 20 ms frames dominated by 1 kHz.
fn assert_tone(path: &Path) {
    use habla_media::tone::{dominant_frequency, tone_fraction};
    let rec = habla_media::wav::read_wav(File::open(path).unwrap(), 3600).unwrap();
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
    assert_eq!(
        dominant_frequency(
            &toned.concat(),
            &[440.0, 697.0, 941.0, 1000.0, 1209.0, 1633.0, 2000.0],
            8000
        ),
        Some(1000.0)
    );
}

#[test]
fn habla_call_reaches_a_baresip_and_records_its_tone() {
    let Some(bin) = baresip() else { return };
    let dir = TempDir::new("habla-calls");
    let tone = dir.0.join("tone.wav");
    write_tone(&tone, 60);
    let server = Server::start(&dir.0);
    server.add_user("alice@127.0.0.1", "wonderland");
    server.add_user("bob@127.0.0.1", "builder");
    let bob_uri = format!("sip:bob@127.0.0.1:{}", server.udp);
    let alice_uri = format!("sip:alice@127.0.0.1:{}", server.udp);
    let bob = Baresip::start(
        &bin,
        &dir.0,
        &server,
        &Account {
            user: "bob",
            password: "builder",
            contact: &alice_uri,
            tcp: false,
        },
        &tone,
    );
    registered(&bob, &server);
    let record = dir.0.join("heard.wav");
    let mut call = HablaUa::spawn(&[
        "call",
        &bob_uri,
        "--from",
        &alice_uri,
        "--password",
        "wonderland",
        "--local",
        "127.0.0.1:0",
        "--record",
        record.to_str().unwrap(),
        "--duration",
        "3s",
    ]);
    let report = || bob.report(&server);
    call.wait_for("answered", &report);
    let code = call.exit_code(&report);
    assert_eq!(code, 0, "{:?}\n{}", call.seen, report());
    // baresip's reason phrase is "Answering".
    let summary = call
        .seen
        .iter()
        .find(|l| l.starts_with("call 200 ") && l.contains(": hung up after "));
    assert!(summary.is_some(), "{:?}", call.seen);
    // baresip saw our BYE (its words for a BYE received).
    bob.wait_line("the end of the call at baresip", &server, |l| {
        l.starts_with("sip:alice@") && l.ends_with("session closed: Connection reset by peer")
    });
    assert_tone(&record);
}

#[test]
fn a_baresip_calls_habla_answer_which_records_its_tone() {
    let Some(bin) = baresip() else { return };
    let dir = TempDir::new("baresip-calls");
    // 3 s: baresip hangs up when its file ends.
    let tone = dir.0.join("tone.wav");
    write_tone(&tone, 3);
    let server = Server::start(&dir.0);
    server.add_user("alice@127.0.0.1", "wonderland");
    server.add_user("bob@127.0.0.1", "builder");
    let bob_uri = format!("sip:bob@127.0.0.1:{}", server.udp);
    let record = dir.0.join("bob-%n.wav");
    let mut answer = HablaUa::spawn(&[
        "answer",
        &bob_uri,
        "--password",
        "builder",
        "--local",
        "127.0.0.1:0",
        "--record",
        record.to_str().unwrap(),
    ]);
    let log = || server.log_tail();
    answer.wait_for("registered sip:bob@", &log);
    let mut alice = Baresip::start(
        &bin,
        &dir.0,
        &server,
        &Account {
            user: "alice",
            password: "wonderland",
            contact: &bob_uri,
            tcp: false,
        },
        &tone,
    );
    registered(&alice, &server);
    alice.command(&format!("/dial {bob_uri}"));
    let report = || alice.report(&server);
    answer.wait_for("call 1 from sip:alice@", &report);
    answer.wait_for("answered", &report);
    alice.wait_line("call established at baresip", &server, |l| {
        l.contains("Call established: sip:bob@")
    });
    // baresip hangs up at the end of its file: habla answers the BYE.
    let ended = answer.wait_for("call 1 ended", &report);
    assert!(ended.contains("200 OK (peer hung up)"), "{ended}");
    assert!(ended.contains("recorded "), "{ended}");
    assert_tone(&dir.0.join("bob-1.wav"));
    assert_eq!(
        alice.has_line(|l| l.contains("session closed: 4") || l.contains("session closed: 5")),
        None,
        "{}",
        alice.report(&server)
    );
}
