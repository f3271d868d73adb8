//! The `habla` binary: one command line over habla's crates.
//!
//! Today `habla serve` is a stateless SIP responder built on the message
//! layer: it answers OPTIONS (capabilities), answers malformed requests with
//! 400 and the reason, and answers every other method with 501 until the
//! transaction layer, registrar and proxy land.

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use habla_message::{Limits, Message, Method};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;

#[derive(Parser)]
#[command(name = "habla", version, about = "habla: a SIP server and user agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP server.
    Serve {
        /// Address to listen on (UDP); repeatable. Default: 0.0.0.0:5060 and [::]:5060.
        #[arg(long = "listen", value_name = "ADDR")]
        listen: Vec<SocketAddr>,
    },
}

const AGENT: &str = concat!("habla/", env!("CARGO_PKG_VERSION"));
const ALLOW: &str = "OPTIONS";

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    dropped_malformed: AtomicU64,
    answered_malformed: AtomicU64,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve { listen } => serve(listen).await,
    }
}

async fn serve(mut listen: Vec<SocketAddr>) -> Result<()> {
    if listen.is_empty() {
        listen.push("0.0.0.0:5060".parse()?);
        listen.push("[::]:5060".parse()?);
    }
    let counters = Arc::new(Counters::default());
    let mut tasks = Vec::new();
    for addr in listen {
        let socket = match UdpSocket::bind(addr).await {
            Ok(s) => s,
            // IPv6 may be absent on this host: run on what is there.
            Err(e) if addr.is_ipv6() && !tasks.is_empty() => {
                tracing::warn!("not listening on {addr}: {e}");
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot listen on udp:{addr}; pass --listen with a free address")
                })
            }
        };
        let local = socket.local_addr()?;
        // Tests read this line to learn the port when they bind port 0.
        println!("listening on udp:{local}");
        tasks.push(tokio::spawn(run_udp(socket, counters.clone())));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    tracing::info!(
        received = counters.received.load(Ordering::Relaxed),
        answered_malformed = counters.answered_malformed.load(Ordering::Relaxed),
        dropped_malformed = counters.dropped_malformed.load(Ordering::Relaxed),
        "stopping"
    );
    Ok(())
}

#[cfg(unix)]
async fn terminate() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    } else {
        std::future::pending::<()>().await;
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}

async fn run_udp(socket: UdpSocket, counters: Arc<Counters>) {
    let limits = Limits::default();
    let mut buf = vec![0u8; limits.max_message_size + 1];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("recv: {e}");
                continue;
            }
        };
        counters.received.fetch_add(1, Ordering::Relaxed);
        if let Some(reply) = answer(Bytes::copy_from_slice(&buf[..n]), &limits, &counters) {
            if let Err(e) = socket.send_to(&reply, peer).await {
                tracing::debug!("send to {peer}: {e}");
            }
        }
    }
}

/// The stateless answer to one datagram, if any.
fn answer(datagram: Bytes, limits: &Limits, counters: &Counters) -> Option<Bytes> {
    if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
        return None; // keep-alive
    }
    let msg = match Message::parse_with(datagram, limits) {
        Ok(m) => m,
        Err(e) => {
            let reply = e.response(AGENT);
            if reply.is_some() {
                counters.answered_malformed.fetch_add(1, Ordering::Relaxed);
            } else {
                counters.dropped_malformed.fetch_add(1, Ordering::Relaxed);
            }
            tracing::info!("malformed message: {e}");
            return reply;
        }
    };
    let method = msg.method()?; // responses are not ours to answer
    let builder = match method {
        Method::Ack => return None,
        Method::Options => msg
            .response(200)
            .to_tag(&msg, "habla")
            .header("Allow", ALLOW)
            .header("Accept", "application/sdp")
            .header("Supported", ""),
        _ => msg
            .response(501)
            .to_tag(&msg, "habla")
            .header("Allow", ALLOW),
    };
    builder.header("Server", AGENT).to_bytes().ok()
}
