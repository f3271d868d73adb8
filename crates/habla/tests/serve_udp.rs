//! `habla serve` over real UDP sockets on loopback.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_habla"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("habla starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on udp:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Server { child, addr }
}

fn exchange(server: &Server, request: &[u8]) -> Option<String> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    sock.send_to(request, &server.addr).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv_from(&mut buf) {
        Ok((n, _)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        Err(_) => None,
    }
}

fn request(method: &str, cseq_method: &str) -> Vec<u8> {
    format!(
        "{method} sip:ping@127.0.0.1 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKtest1\r\n\
         From: <sip:t@127.0.0.1>;tag=a\r\nTo: <sip:ping@127.0.0.1>\r\n\
         Call-ID: serve-test\r\nCSeq: 1 {cseq_method}\r\nMax-Forwards: 70\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn options_gets_200_with_capabilities() {
    let s = start();
    let r = exchange(&s, &request("OPTIONS", "OPTIONS")).expect("an answer");
    assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
    assert!(r.contains("\r\nAllow: OPTIONS\r\n"), "{r}");
    assert!(r.contains("branch=z9hG4bKtest1"), "{r}");
    assert!(r.contains("To: <sip:ping@127.0.0.1>;tag="), "{r}");
}

#[test]
fn malformed_request_gets_400_with_reason_and_garbage_is_dropped() {
    let s = start();
    let r = exchange(&s, &request("OPTIONS", "INVITE")).expect("an answer");
    assert!(r.starts_with("SIP/2.0 400 Bad Request\r\n"), "{r}");
    assert!(
        r.contains("CSeq method INVITE does not match request method OPTIONS"),
        "{r}"
    );
    assert_eq!(exchange(&s, b"\x00\x01garbage\r\n\r\n"), None);
    // Still alive after garbage.
    assert!(exchange(&s, &request("OPTIONS", "OPTIONS")).is_some());
}

#[test]
fn other_methods_are_not_implemented_yet() {
    let s = start();
    let r = exchange(&s, &request("INVITE", "INVITE")).expect("an answer");
    assert!(r.starts_with("SIP/2.0 501 Not Implemented\r\n"), "{r}");
}
