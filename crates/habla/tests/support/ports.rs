// Shared by several test crates.
#![allow(dead_code)]

//! Free loopback ports for peers that must be told their port (SIPp's -p,
//! baresip's sip_listen, RTP ranges), never handing one out twice within a
//! test process (tests run in parallel).

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Ports already handed out in this process.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// The first of `n` consecutive ports on 127.0.0.1, free for UDP and TCP
/// and not handed out before by this process.
pub fn free_ports(n: u16) -> u16 {
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    let taken = taken.get_or_insert_with(HashSet::new);
    loop {
        let base = UdpSocket::bind("127.0.0.1:0")
            .expect("a loopback port")
            .local_addr()
            .expect("its address")
            .port();
        if base.checked_add(n).is_none() {
            continue;
        }
        let free = (base..base + n).all(|p| {
            !taken.contains(&p)
                && UdpSocket::bind(("127.0.0.1", p)).is_ok()
                && TcpListener::bind(("127.0.0.1", p)).is_ok()
        });
        if free {
            taken.extend(base..base + n);
            return base;
        }
    }
}
