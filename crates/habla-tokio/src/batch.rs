//! Batches: what one thread sends together.
//!
//! A UDP receive thread takes every datagram waiting on its socket at once
//! (`recvmmsg`), runs each on its shard, and only then — the batch closed
//! — sends every datagram the batch produced (`sendmmsg`). Under load a
//! batch holds many messages, so the system calls are shared; at rest it
//! holds one, and nothing waits. Any other thread that runs a shard (a
//! connection task, a timer, a [`crate::Handle`] call) gets a batch of its
//! own around that run, and a caller may open a wider one with [`batch`]
//! (habla serve acknowledges a commit group's registrations in one).

use crate::core::Inbound;
use bytes::Bytes;
use habla_transaction::TransactionKey;
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use std::cell::RefCell;
use std::io::IoSlice;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Weak};

/// A datagram to send when the batch closes.
pub(crate) struct Datagram {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) to: SocketAddr,
    pub(crate) bytes: Bytes,
    /// Whom to tell if it cannot be sent: the shard holding the
    /// transaction it belongs to.
    pub(crate) failed: Option<(Weak<dyn Inbound>, usize, TransactionKey)>,
}

#[derive(Default)]
struct Batch {
    open: bool,
    out: Vec<Datagram>,
}

thread_local! {
    static BATCH: RefCell<Batch> = RefCell::new(Batch::default());
}

/// Runs `f` inside this thread's batch: every datagram the shards of any
/// element send while it runs goes out when it returns, several per system
/// call (`sendmmsg`). Opens a batch if none is open on this thread (else
/// `f` joins the open one).
pub fn batch<R>(f: impl FnOnce() -> R) -> R {
    let opened = BATCH.with(|b| {
        let mut b = b.borrow_mut();
        !std::mem::replace(&mut b.open, true)
    });
    let r = f();
    if opened {
        close();
    }
    r
}

/// Adds what a shard sent to the open batch.
pub(crate) fn add(out: &mut Vec<Datagram>) {
    BATCH.with(|b| b.borrow_mut().out.append(out));
}

/// Closes the batch: every datagram goes out; repeated until nothing is
/// left (a failed send is a transport error, which may send more).
fn close() {
    let mut out = Vec::new();
    loop {
        BATCH.with(|b| std::mem::swap(&mut b.borrow_mut().out, &mut out));
        if out.is_empty() {
            break;
        }
        for (inbound, shard, key) in send(&mut out) {
            if let Some(i) = inbound.upgrade() {
                i.transport_error(shard, key);
            }
        }
    }
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        b.open = false;
        // Keep the larger buffer for the next batch.
        if b.out.capacity() < out.capacity() {
            b.out = out;
        }
    });
}

/// Most datagrams given to one `sendmmsg`.
const MAX_SEND: usize = 64;

/// Sends `out` (emptied), several datagrams per system call where they
/// share a socket. Returns the senders of those that failed.
fn send(out: &mut Vec<Datagram>) -> Vec<(Weak<dyn Inbound>, usize, TransactionKey)> {
    let mut failed = Vec::new();
    let mut fail = |d: &mut Datagram, e: &dyn std::fmt::Display| {
        tracing::debug!(to = %d.to, "udp send: {e}");
        if let Some(f) = d.failed.take() {
            failed.push(f);
        }
    };
    let mut start = 0;
    while start < out.len() {
        // A run of datagrams on the same socket.
        let socket = out[start].socket.clone();
        let mut end = start + 1;
        while end < out.len() && end - start < MAX_SEND && Arc::ptr_eq(&out[end].socket, &socket) {
            end += 1;
        }
        if end - start == 1 {
            let d = &mut out[start];
            if let Err(e) = socket.send_to(&d.bytes, d.to) {
                fail(d, &e);
            }
            start = end;
            continue;
        }
        let mut at = start;
        while at < end {
            match send_many(&socket, &out[at..end]) {
                Ok(0) => {
                    fail(&mut out[at], &"not sent");
                    at += 1;
                }
                Ok(n) => at += n,
                // The first of them could not be sent: skip it, go on.
                Err(e) => {
                    fail(&mut out[at], &e);
                    at += 1;
                }
            }
        }
        start = end;
    }
    out.clear();
    failed
}

/// One `sendmmsg` for `list` (all on `socket`): how many went out.
fn send_many(socket: &UdpSocket, list: &[Datagram]) -> nix::Result<usize> {
    let slices: Vec<[IoSlice<'_>; 1]> = list.iter().map(|d| [IoSlice::new(&d.bytes)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = list
        .iter()
        .map(|d| Some(SockaddrStorage::from(d.to)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(list.len(), None);
    let sent = sendmmsg(
        socket.as_raw_fd(),
        &mut headers,
        &slices,
        &addrs,
        [],
        MsgFlags::empty(),
    )?;
    Ok(sent.count())
}
