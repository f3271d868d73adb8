//! The four RFC 3261 §17 state machines, one enum each, as amended by
//! RFC 6026. States are named as the RFCs name them.

/// Client INVITE transaction (RFC 3261 §17.1.1.2, Figure 5, with the
/// Accepted state of RFC 6026 §7.2, Figure 5).
///
/// ```text
///                                |INVITE from TU
///              Timer A fires     |INVITE sent      Timer B fires
///              Reset A,          V                 or Transport Err.
///              INVITE sent +-----------+           inform TU
///                +---------|           |---------------------------+
///                |         |  Calling  |                           |
///                +-------->|           |-----------+               |
///   300-699                +-----------+ 2xx       |               |
///   ACK sent                  |  |       2xx to TU |               |
///   resp. to TU               |  |1xx              |               |
///   +-------------------------+  |1xx to TU        |               |
///   |                            |                 |               |
///   |                1xx         V                 |               |
///   |                1xx to TU +-----------+       |               |
///   |                +---------|           |       |               |
///   |                |         |Proceeding |       |               |
///   |                +-------->|           |       |               |
///   |                          +-----------+ 2xx   |               |
///   |         300-699             |          2xx to TU             |
///   |         ACK sent,  +--------+                +---+           |
///   |         resp. to TU|                             |           |
///   |                    |                             V           |
///   |                    |                       +-----------+     |
///   |                    |                       |           |     |
///   |                    |                       | Accepted  |---+ 2xx
///   |                    |                       |           |   | 2xx to TU
///   |                    |                       +-----------+<--+
///   |                    |                          |              |
///   |                    |                          | Timer M fires|
///   |  300-699           V                          | -            |
///   |  ACK sent    +-----------+Transport Err.      |              |
///   |  +-----------|           |Inform TU           |              |
///   |  |           | Completed |------------------->+<-------------+
///   |  +---------->|           |                    |
///   |              +-----------+                    |
///   |                ^   |                          |
///   |                |   | Timer D fires            |
///   +----------------+   | -                        |
///                        |                          V
///                        +------------------>+-----------+
///                                            |Terminated |
///                                            +-----------+
/// ```
///
/// Proceeding additionally ends on [`crate::Timer::C`] when configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientInviteState {
    /// INVITE sent, nothing heard (Timers A and B run).
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A 2xx arrived; further 2xx go to the TU (Timer M runs, RFC 6026).
    Accepted,
    /// A 300-699 arrived and was ACKed; absorbing retransmissions (Timer D).
    Completed,
    /// Gone (reported once, in [`crate::Event::Terminated`]).
    Terminated,
}

/// Client non-INVITE transaction (RFC 3261 §17.1.2.2, Figure 6).
///
/// ```text
///                                    |Request from TU
///                                    |send request
///                Timer E             V
///                send request  +-----------+
///                    +---------|           |-------------------+
///                    |         |  Trying   |  Timer F          |
///                    +-------->|           |  or Transport Err.|
///                              +-----------+  inform TU        |
///                 200-699         |  |                         |
///                 resp. to TU     |  |1xx                      |
///                 +---------------+  |resp. to TU              |
///                 |                  |                         |
///                 |   Timer E        V       Timer F           |
///                 |   send req +-----------+ or Transport Err. |
///                 |  +---------|           | inform TU         |
///                 |  |         |Proceeding |------------------>|
///                 |  +-------->|           |-----+             |
///                 |            +-----------+     |1xx          |
///                 |              |      ^        |resp to TU   |
///                 | 200-699      |      +--------+             |
///                 | resp. to TU  |                             |
///                 |              |                             |
///                 |              V                             |
///                 |            +-----------+                   |
///                 |            |           |                   |
///                 |            | Completed |                   |
///                 |            |           |                   |
///                 |            +-----------+                   |
///                 |              ^   |                         |
///                 |              |   | Timer K                 |
///                 +--------------+   | -                       |
///                                    |                         |
///                                    V                         |
///              NOTE:           +-----------+                   |
///                              |           |                   |
///          transitions         | Terminated|<------------------+
///          labeled with        |           |
///          the event           +-----------+
///          over the action
///          to take
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientNonInviteState {
    /// Request sent (Timers E and F run).
    Trying,
    /// A provisional response arrived (Timer E now fires every T2).
    Proceeding,
    /// A final response arrived; absorbing retransmissions (Timer K).
    Completed,
    /// Gone.
    Terminated,
}

/// Server INVITE transaction (RFC 3261 §17.2.1, Figure 7, as replaced by
/// RFC 6026 §7.1, Figure 7).
///
/// ```text
///                                     |INVITE
///                                     |pass INV to TU
///                  INVITE             V send 100 if TU won't in 200 ms
///                  send response+------------+
///                      +--------|            |--------+ 101-199 from TU
///                      |        |            |        | send response
///                      +------->|            |<-------+
///                               | Proceeding |
///                               |            |--------+ Transport Err.
///                               |            |        | Inform TU
///                               |            |<-------+
///                               +------------+
///                  300-699 from TU |    |2xx from TU
///                  send response   |    |send response
///                   +--------------+    +------------+
///                   |                                |
///  INVITE           V          Timer G fires         |
///  send response +-----------+ send response         |
///       +--------|           |--------+              |
///       |        |           |        |              |
///       +------->| Completed |<-------+      INVITE  |  Transport Err.
///                |           |               -       |  Inform TU
///       +--------|           |----+          +-----+ |  +---+
///       |        +-----------+    | ACK      |     v v  |   v
///       |          ^   |          | -        |  +------------+
///       |          |   |          |          |  |            |---+ ACK
///       +----------+   |          |          +--|  Accepted  |   | to TU
///       Transport Err. |          |             |            |<--+
///       Inform TU      |          V             +------------+
///                      |      +-----------+        |  ^     |
///                      |      |           |        |  |     |
///                      |      | Confirmed |        |  +-----+
///                      |      |           |        |  2xx from TU
///        Timer H fires |      +-----------+        |  send response
///        -             |          |                |
///                      |          | Timer I fires  |
///                      |          | -              | Timer L fires
///                      |          V                | -
///                      |        +------------+     |
///                      |        |            |<----+
///                      +------->| Terminated |
///                               |            |
///                               +------------+
/// ```
///
/// Proceeding additionally ends on [`crate::Timer::TuGuard`] when
/// [`crate::TimerConfig::timer_c`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerInviteState {
    /// INVITE passed to the TU; provisional responses may have been sent.
    Proceeding,
    /// A 300-699 was sent; waiting for the ACK (Timers G and H).
    Completed,
    /// The ACK arrived; absorbing ACK retransmissions (Timer I).
    Confirmed,
    /// A 2xx was sent; INVITE retransmissions absorbed, ACKs to the TU,
    /// 2xx retransmissions from the TU sent (Timer L, RFC 6026).
    Accepted,
    /// Gone.
    Terminated,
}

/// Server non-INVITE transaction (RFC 3261 §17.2.2, Figure 8).
///
/// ```text
///                                   |Request received
///                                   |pass to TU
///                                   V
///                             +-----------+
///                             |           |
///                             | Trying    |-------------+
///                             |           |             |
///                             +-----------+             |200-699 from TU
///                                   |                   |send response
///                                   |1xx from TU        |
///                                   |send response      |
///                                   |                   |
///                Request            V      1xx from TU  |
///                send response+-----------+send response|
///                    +--------|           |--------+    |
///                    |        | Proceeding|        |    |
///                    +------->|           |<-------+    |
///             +<--------------|           |             |
///             |Trnsprt Err    +-----------+             |
///             |Inform TU            |                   |
///             |                     |                   |
///             |                     |200-699 from TU    |
///             |                     |send response      |
///             |  Request            V                   |
///             |  send response+-----------+             |
///             |      +--------|           |             |
///             |      |        | Completed |<------------+
///             |      +------->|           |
///             +<--------------|           |
///             |Trnsprt Err    +-----------+
///             |Inform TU            |
///             |                     |Timer J fires
///             |                     |-
///             |                     |
///             |                     V
///             |               +-----------+
///             |               |           |
///             +-------------->| Terminated|
///                             |           |
///                             +-----------+
/// ```
///
/// Trying and Proceeding additionally end on [`crate::Timer::TuGuard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerNonInviteState {
    /// Request passed to the TU; retransmissions absorbed silently.
    Trying,
    /// A provisional response was sent; retransmissions get it again.
    Proceeding,
    /// A final response was sent; retransmissions get it again (Timer J).
    Completed,
    /// Gone.
    Terminated,
}

/// The state of any transaction, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// A client INVITE transaction.
    ClientInvite(ClientInviteState),
    /// A client non-INVITE transaction.
    ClientNonInvite(ClientNonInviteState),
    /// A server INVITE transaction.
    ServerInvite(ServerInviteState),
    /// A server non-INVITE transaction.
    ServerNonInvite(ServerNonInviteState),
}

impl State {
    /// Whether this is a client transaction.
    pub fn is_client(&self) -> bool {
        matches!(self, State::ClientInvite(_) | State::ClientNonInvite(_))
    }
}
