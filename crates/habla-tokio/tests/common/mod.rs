//! Helpers shared by the integration tests: servers on loopback port 0,
//! raw clients, bounded waits.
#![allow(dead_code)]

use bytes::Bytes;
use habla_message::Message;
use habla_tokio::{options, Endpoint, Handle, Transport, TransportConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(10);

pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

pub fn loopback_config() -> TransportConfig {
    TransportConfig::udp_and_tcp("127.0.0.1:0".parse().unwrap())
}

/// The OPTIONS responder of `examples/options_server.rs`, in-process.
pub struct OptionsServer {
    pub udp: SocketAddr,
    pub tcp: SocketAddr,
    pub handle: Handle,
    task: JoinHandle<()>,
}

impl OptionsServer {
    pub async fn start(config: TransportConfig) -> OptionsServer {
        let ep = Endpoint::bind(config, Default::default()).await.unwrap();
        let udp = ep.local_addr(Transport::Udp).unwrap();
        let tcp = ep.local_addr(Transport::Tcp).unwrap();
        let handle = ep.handle();
        let task = tokio::spawn(options::serve(ep));
        OptionsServer {
            udp,
            tcp,
            handle,
            task,
        }
    }
}

impl Drop for OptionsServer {
    fn drop(&mut self) {
        // Dropping the endpoint (in the task) and the last handle stops the
        // driver, which closes every socket.
        self.task.abort();
    }
}

/// A request as a raw client would write it.
pub fn request(method: &str, seq: u32, via: &str, extra: &str) -> String {
    format!(
        "{method} sip:ping@127.0.0.1 SIP/2.0\r\n\
         Via: {via}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:test@127.0.0.1>;tag=t{seq}\r\n\
         To: <sip:ping@127.0.0.1>\r\n\
         Call-ID: call-{seq}-{method}@test\r\n\
         CSeq: {seq} {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

pub fn parse(bytes: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(bytes)).expect("a valid SIP message")
}

/// Receives one datagram (bounded wait).
pub async fn recv_datagram(sock: &tokio::net::UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let (n, _) = within("a datagram", sock.recv_from(&mut buf))
        .await
        .unwrap();
    buf.truncate(n);
    buf
}

/// Reads one whole message from a TCP stream (bounded wait).
pub async fn read_message(stream: &mut tokio::net::TcpStream) -> Message {
    use tokio::io::AsyncReadExt;
    let mut framer = habla_message::StreamFramer::new(Default::default());
    let mut buf = [0u8; 4096];
    loop {
        if let Some(habla_message::Frame::Message(b)) = framer.next_frame().unwrap() {
            // Lazily: a 400 copies the malformed header it complains about.
            return Message::parse_lazy(b, &Default::default()).unwrap();
        }
        let n = within("a TCP message", stream.read(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "connection closed before a message");
        framer.push(&buf[..n]).unwrap();
    }
}
