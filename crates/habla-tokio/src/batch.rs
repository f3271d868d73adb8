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

/// A response to send in a transaction of a shard when the batch closes
/// (see [`respond`]).
pub(crate) struct Response {
    pub(crate) shard: Arc<dyn Respond>,
    pub(crate) key: TransactionKey,
    pub(crate) code: u16,
    pub(crate) bytes: Bytes,
}

/// A shard that sends responses given from outside its lock.
pub(crate) trait Respond: Send + Sync {
    /// Locks the shard once and sends every response of `list` in its
    /// transaction (what they cause joins the open batch).
    fn respond_all(&self, list: &mut dyn Iterator<Item = Response>);
}

#[derive(Default)]
struct Batch {
    open: bool,
    out: Vec<Datagram>,
    responses: Vec<Response>,
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

/// Sends `response` when this thread's open batch closes, with the other
/// responses of the batch for the same shard under one lock of it (the
/// store's committer acknowledges a commit group this way: a lock per
/// shard, not per registration, so it seldom waits for a receive thread).
/// Returns it when no batch is open (the caller sends it itself).
pub(crate) fn respond(response: Response) -> Option<Response> {
    BATCH.with(|b| {
        let mut b = b.borrow_mut();
        if b.open {
            b.responses.push(response);
            None
        } else {
            Some(response)
        }
    })
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
        let responses = BATCH.with(|b| std::mem::take(&mut b.borrow_mut().responses));
        if !responses.is_empty() {
            // The batch is still open: what these send joins it.
            respond_by_shard(responses);
        }
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

/// Gives each shard its responses in one call, in the order they were
/// given within a shard.
fn respond_by_shard(mut responses: Vec<Response>) {
    let of = |r: &Response| Arc::as_ptr(&r.shard).cast::<()>() as usize;
    // Stable: a shard's responses keep their order.
    responses.sort_by_key(of);
    let mut rest = responses.into_iter().peekable();
    while let Some(first) = rest.next() {
        let shard = first.shard.clone();
        let at = of(&first);
        let mut group =
            std::iter::once(first).chain(std::iter::from_fn(|| rest.next_if(|r| of(r) == at)));
        shard.respond_all(&mut group);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A shard that records each `respond_all` call's responses.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<Vec<Bytes>>>,
    }

    impl Respond for Recorder {
        fn respond_all(&self, list: &mut dyn Iterator<Item = Response>) {
            let got = list.map(|r| r.bytes).collect();
            self.calls.lock().unwrap().push(got);
        }
    }

    fn some_key() -> TransactionKey {
        use habla_transaction::{Config, Event, Output, Target, TransactionLayer, Transport};
        let mut layer = TransactionLayer::<()>::new(Config::default());
        let req = habla_message::Message::parse(Bytes::from_static(
            b"OPTIONS sip:a@example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKk1\r\n\
Max-Forwards: 70\r\nFrom: <sip:b@example.org>;tag=1\r\nTo: <sip:a@example.org>\r\n\
Call-ID: k1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        layer
            .handle_message(
                std::time::Instant::now(),
                req,
                Target::new(Transport::Udp, ()),
            )
            .unwrap();
        loop {
            match layer.poll_output() {
                Some(Output::Event(Event::Request { key, .. })) => return key,
                Some(_) => {}
                None => panic!("no request event"),
            }
        }
    }

    /// Responses given inside a batch reach each shard in one call, in
    /// the order they were given; none is sent before the batch closes.
    #[test]
    fn a_batch_gives_each_shard_its_responses_at_once_and_in_order() {
        let key = some_key();
        let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let give = |shard: &Arc<Recorder>, text: &'static str| {
            let shard: Arc<dyn Respond> = shard.clone();
            let r = respond(Response {
                shard,
                key,
                code: 200,
                bytes: Bytes::from_static(text.as_bytes()),
            });
            assert!(r.is_none(), "a batch is open");
        };
        batch(|| {
            give(&a, "a1");
            give(&b, "b1");
            give(&a, "a2");
            give(&b, "b2");
            give(&a, "a3");
            assert!(a.calls.lock().unwrap().is_empty() && b.calls.lock().unwrap().is_empty());
        });
        assert_eq!(*a.calls.lock().unwrap(), vec![vec!["a1", "a2", "a3"]]);
        assert_eq!(*b.calls.lock().unwrap(), vec![vec!["b1", "b2"]]);
        // Outside a batch the response comes back to be sent at once.
        let shard: Arc<dyn Respond> = a.clone();
        assert!(respond(Response {
            shard,
            key,
            code: 200,
            bytes: Bytes::new(),
        })
        .is_some());
    }
}
