//! One dialog (RFC 3261 §12): its state, how it is created from the
//! messages that establish it, how requests inside it are built and how
//! requests and responses inside it update it.

use crate::error::DialogError;
use habla_message::{Message, Method, NameAddr, RequestBuilder, SipStr, SipUri, Uri};

/// The Max-Forwards of every request built here (RFC 3261 §8.1.1.6).
const MAX_FORWARDS: u8 = 70;

/// A dialog identifier (RFC 3261 §12): Call-ID, local tag and remote tag,
/// as seen from this user agent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    /// The Call-ID.
    pub call_id: String,
    /// This UA's tag (From tag for the UAC, To tag for the UAS).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

impl DialogId {
    /// The id of the dialog a message belongs to as seen by the UAS of its
    /// transaction: a request it received or a response it sends. The To
    /// tag is local, the From tag remote (RFC 3261 §12.2.2).
    pub fn at_uas(msg: &Message) -> Result<DialogId, DialogError> {
        Ok(DialogId {
            call_id: call_id(msg)?,
            local_tag: tag(msg.to().map_err(DialogError::malformed("To"))?, "To")?,
            remote_tag: tag(msg.from().map_err(DialogError::malformed("From"))?, "From")?,
        })
    }

    /// The id of the dialog a message belongs to as seen by the UAC of its
    /// transaction: a request it sends or a response it received. The From
    /// tag is local, the To tag remote (RFC 3261 §12.1.2).
    pub fn at_uac(msg: &Message) -> Result<DialogId, DialogError> {
        Ok(DialogId {
            call_id: call_id(msg)?,
            local_tag: tag(msg.from().map_err(DialogError::malformed("From"))?, "From")?,
            remote_tag: tag(msg.to().map_err(DialogError::malformed("To"))?, "To")?,
        })
    }
}

/// The state of a dialog (RFC 3261 §12, §12.3), named as the RFC does.
///
/// ```text
///   1xx with To tag           2xx
///  ───────────────► Early ───────────► Confirmed
///                     │                    │
///                     │ non-2xx final,     │ BYE sent or received,
///                     │ 481/408            │ 481/408 to a request in it
///                     ▼                    ▼
///                  Terminated ◄────────────┘
/// ```
///
/// A 2xx that creates the dialog starts it directly in `Confirmed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DialogState {
    /// Created by a provisional response with a To tag (RFC 3261 §12.1).
    Early,
    /// Created or confirmed by a 2xx (RFC 3261 §12.1, §13.2.2.4).
    Confirmed,
    /// Ended (RFC 3261 §12.3, §15): nothing but an ACK is sent in it.
    Terminated,
}

/// Which side of the dialog-creating transaction this UA was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// It sent the request (RFC 3261 §12.1.2).
    Uac,
    /// It received the request and sent the response (RFC 3261 §12.1.1).
    Uas,
}

/// What a UAS does with a request received inside a dialog
/// (RFC 3261 §12.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum InDialogDecision {
    /// The request belongs to the dialog and is in order: pass it to the
    /// dialog's usage (the dialog state has been updated: remote CSeq,
    /// remote target on a target refresh, termination on BYE).
    Accept,
    /// Answer with this status instead: 481 (no such dialog, RFC 3261
    /// §12.2.2), 500 (CSeq lower than the last one, §12.2.2), 400 (a header
    /// the dialog needs is malformed). An ACK is never answered: drop it.
    Reject(u16),
}

/// The Via a request built here is sent with: the caller draws the branch
/// (RFC 3261 §8.1.1.7, a fresh `z9hG4bK...` per transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalVia<'a> {
    /// Transport token: `UDP`, `TCP`, `TLS`...
    pub transport: &'a str,
    /// `host[:port]` this UA receives responses on.
    pub sent_by: &'a str,
    /// The branch parameter.
    pub branch: &'a str,
    /// Whether to add `;rport` (RFC 3581).
    pub rport: bool,
}

impl<'a> LocalVia<'a> {
    /// A Via without `rport`.
    pub fn new(transport: &'a str, sent_by: &'a str, branch: &'a str) -> Self {
        LocalVia {
            transport,
            sent_by,
            branch,
            rport: false,
        }
    }
}

/// A dialog: the state RFC 3261 §12 keeps between two user agents.
///
/// Created from the response that establishes it, on either side:
/// [`Dialog::from_uac_response`] and [`Dialog::from_uas_response`]. Builds
/// the requests sent in it ([`Dialog::request`], [`Dialog::bye`],
/// [`Dialog::ack`]...) and checks those received in it
/// ([`Dialog::handle_request`]). Holds no reference to the messages it was
/// made from.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    role: Role,
    local_seq: Option<u32>,
    remote_seq: Option<u32>,
    /// The From (UAC) or To (UAS) value, tag included: written as the From
    /// of requests sent in the dialog.
    local: NameAddr,
    /// The To (UAC) or From (UAS) value, tag included.
    remote: NameAddr,
    remote_target: Uri,
    route_set: Vec<NameAddr>,
    secure: bool,
    /// Method and CSeq of the request that created the dialog, to tell the
    /// responses that establish it from those to later requests.
    creating_method: Method,
    creating_seq: u32,
    /// Whether a 2xx ever confirmed it (for forking, RFC 3261 §13.2.2.4).
    established: bool,
}

impl Dialog {
    /// The UAC's dialog, from a request it sent and a response it received
    /// with a To tag: a 101-199 creates an early dialog, a 2xx a confirmed
    /// one (RFC 3261 §12.1.2).
    ///
    /// The route set is the response's Record-Route in reverse order, the
    /// remote target its Contact, the local CSeq the request's, the remote
    /// CSeq empty; the dialog is secure when the request went over TLS (its
    /// top Via says `TLS`) to a SIPS Request-URI.
    pub fn from_uac_response(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let (method, seq, status) = check_answer(request, response)?;
        if !(101..=299).contains(&status) {
            return Err(DialogError::NotDialogCreating(status));
        }
        if request.to().is_ok_and(|t| t.tag().is_some()) {
            return Err(DialogError::Mismatch(
                "a request with a To tag is inside a dialog already",
            ));
        }
        let id = DialogId::at_uac(response)?;
        // RFC 3261 §12.1.2: local URI and tag from the From, remote URI and
        // tag from the To (the response's: it carries the remote tag).
        let local = own(
            request.from().map_err(DialogError::malformed("From"))?,
            "From",
        )?;
        let remote = own(response.to().map_err(DialogError::malformed("To"))?, "To")?;
        Ok(Dialog {
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            role: Role::Uac,
            local_seq: Some(seq),
            remote_seq: None,
            local,
            remote,
            // RFC 3261 §12.1.2: remote target from the response's Contact,
            // route set from its Record-Route, reversed.
            remote_target: remote_target(response)?,
            route_set: route_set(response, true)?,
            secure: sent_securely(request),
            creating_method: method,
            creating_seq: seq,
            established: status >= 200,
            id,
        })
    }

    /// The UAS's dialog, from a request it received and the 101-199 (with
    /// a To tag) or 2xx it sends (RFC 3261 §12.1.1).
    ///
    /// The route set is the request's Record-Route in order, the remote
    /// target its Contact, the remote CSeq the request's, the local CSeq
    /// empty; the dialog is secure when the request came over TLS (its top
    /// Via says `TLS`) to a SIPS Request-URI.
    pub fn from_uas_response(request: &Message, response: &Message) -> Result<Dialog, DialogError> {
        let (method, seq, status) = check_answer(request, response)?;
        if !(101..=299).contains(&status) {
            return Err(DialogError::NotDialogCreating(status));
        }
        if request.to().is_ok_and(|t| t.tag().is_some()) {
            return Err(DialogError::Mismatch(
                "a request with a To tag is inside a dialog already",
            ));
        }
        let id = DialogId::at_uas(response)?;
        // RFC 3261 §12.1.1: local URI and tag from the To (the response's,
        // with the tag just added), remote from the request's From.
        let local = own(response.to().map_err(DialogError::malformed("To"))?, "To")?;
        let remote = own(
            request.from().map_err(DialogError::malformed("From"))?,
            "From",
        )?;
        Ok(Dialog {
            state: if status < 200 {
                DialogState::Early
            } else {
                DialogState::Confirmed
            },
            role: Role::Uas,
            local_seq: None,
            remote_seq: Some(seq),
            local,
            remote,
            // RFC 3261 §12.1.1: remote target from the request's Contact,
            // route set from its Record-Route, in order.
            remote_target: remote_target(request)?,
            route_set: route_set(request, false)?,
            secure: sent_securely(request),
            creating_method: method,
            creating_seq: seq,
            established: status >= 200,
            id,
        })
    }

    // ----- state ----------------------------------------------------------

    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }
    /// Early, Confirmed or Terminated.
    pub fn state(&self) -> DialogState {
        self.state
    }
    /// Which side of the creating transaction this UA was.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The CSeq of the last request sent in the dialog (empty for a UAS
    /// that has sent none, RFC 3261 §12.1.1).
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }
    /// The CSeq of the last request received in the dialog (empty for a
    /// UAC that has received none, RFC 3261 §12.1.2).
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }
    /// The local URI (RFC 3261 §12.1).
    pub fn local_uri(&self) -> &Uri {
        self.local.uri()
    }
    /// The remote URI (RFC 3261 §12.1).
    pub fn remote_uri(&self) -> &Uri {
        self.remote.uri()
    }
    /// The local party as written in From of requests sent in the dialog.
    pub fn local_party(&self) -> &NameAddr {
        &self.local
    }
    /// The remote party as written in To of requests sent in the dialog.
    pub fn remote_party(&self) -> &NameAddr {
        &self.remote
    }
    /// Where requests in the dialog go (the peer's Contact, RFC 3261 §12.1).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }
    /// The route set, in the order requests carry it (RFC 3261 §12.1).
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }
    /// The secure flag (RFC 3261 §12.1.1, §12.1.2).
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// Marks the dialog secure or not, for drivers that know the transport
    /// better than the top Via tells.
    pub fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
    }
    /// Ends the dialog (RFC 3261 §12.3), e.g. when the usage gives up on it.
    pub fn terminate(&mut self) {
        self.state = DialogState::Terminated;
    }
    /// The method and CSeq number of the request that created the dialog.
    pub fn creating_request(&self) -> (&Method, u32) {
        (&self.creating_method, self.creating_seq)
    }
    /// Whether a 2xx ever confirmed this dialog.
    pub fn was_confirmed(&self) -> bool {
        self.established
    }

    // ----- requests sent in the dialog (RFC 3261 §12.2.1.1) ----------------

    /// Builds a request inside the dialog (RFC 3261 §12.2.1.1): To, From,
    /// Call-ID, the next local CSeq, Request-URI and Route from the route
    /// set and remote target, Max-Forwards 70 and the given Via. The caller
    /// adds what the method needs (Contact for a target refresh, a body...)
    /// and calls `build()`.
    ///
    /// ACK and CANCEL are refused: they reuse the INVITE's CSeq (use
    /// [`Dialog::ack`] and [`cancel_request`]). A BYE terminates the dialog
    /// once built (RFC 3261 §15.1.1).
    pub fn request(
        &mut self,
        method: Method,
        via: &LocalVia<'_>,
    ) -> Result<RequestBuilder, DialogError> {
        match method {
            Method::Ack | Method::Cancel => {
                return Err(DialogError::MethodNotAllowed {
                    method: method.to_string(),
                    reason: "ACK and CANCEL reuse the INVITE's CSeq: use ack() or cancel_request()",
                })
            }
            Method::Invite if self.state == DialogState::Early => {
                // RFC 3261 §14.1: no re-INVITE before the dialog is confirmed.
                return Err(DialogError::MethodNotAllowed {
                    method: method.to_string(),
                    reason: "no re-INVITE in an early dialog (RFC 3261 §14.1); use UPDATE",
                });
            }
            _ => {}
        }
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        let (uri, routes) = self.destination()?;
        let seq = self.next_local_seq()?;
        let is_bye = method == Method::Bye;
        let b = self.build(method, &uri, &routes, seq, via);
        if is_bye {
            // RFC 3261 §15.1.1: the session and the dialog end once the BYE is sent.
            self.state = DialogState::Terminated;
        }
        Ok(b)
    }

    /// A target refresh request (re-INVITE or UPDATE, RFC 3261 §12.2.1.1,
    /// §14.1; RFC 3311) carrying this UA's Contact.
    pub fn target_refresh(
        &mut self,
        method: Method,
        via: &LocalVia<'_>,
        contact: &str,
    ) -> Result<RequestBuilder, DialogError> {
        Ok(self.request(method, via)?.header("Contact", contact))
    }

    /// BYE (RFC 3261 §15.1.1); the dialog is terminated once it is built.
    pub fn bye(&mut self, via: &LocalVia<'_>) -> Result<RequestBuilder, DialogError> {
        self.request(Method::Bye, via)
    }

    /// re-INVITE (RFC 3261 §14.1) with this UA's Contact; the caller adds
    /// the offer.
    pub fn reinvite(
        &mut self,
        via: &LocalVia<'_>,
        contact: &str,
    ) -> Result<RequestBuilder, DialogError> {
        self.target_refresh(Method::Invite, via, contact)
    }

    /// UPDATE (RFC 3311) with this UA's Contact; allowed in early dialogs.
    pub fn update(
        &mut self,
        via: &LocalVia<'_>,
        contact: &str,
    ) -> Result<RequestBuilder, DialogError> {
        self.target_refresh(Method::Update, via, contact)
    }

    /// INFO (RFC 6086).
    pub fn info(&mut self, via: &LocalVia<'_>) -> Result<RequestBuilder, DialogError> {
        self.request(Method::Info, via)
    }

    /// MESSAGE inside the dialog (RFC 3428 §4).
    pub fn message(&mut self, via: &LocalVia<'_>) -> Result<RequestBuilder, DialogError> {
        self.request(Method::Message, via)
    }

    /// NOTIFY (RFC 6665); the caller adds Event and Subscription-State.
    pub fn notify(&mut self, via: &LocalVia<'_>) -> Result<RequestBuilder, DialogError> {
        self.request(Method::Notify, via)
    }

    /// The ACK for a 2xx to an INVITE sent in (or creating) this dialog
    /// (RFC 3261 §13.2.2.4): built like any request in the dialog
    /// (§12.2.1.1, route set included) but with the INVITE's CSeq number
    /// and method ACK; the local CSeq does not move. Allowed in every state,
    /// so that a 2xx retransmitted after a BYE is still acknowledged.
    pub fn ack(
        &self,
        response: &Message,
        via: &LocalVia<'_>,
    ) -> Result<RequestBuilder, DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongKind("response"))?;
        if !(200..=299).contains(&status) {
            return Err(DialogError::Mismatch(
                "the UA core ACKs only 2xx; the transaction ACKs the rest (RFC 3261 §17.1.1.3)",
            ));
        }
        let cseq = response.cseq().map_err(DialogError::malformed("CSeq"))?;
        if cseq.method != Method::Invite {
            return Err(DialogError::Mismatch(
                "only a 2xx to an INVITE is acknowledged",
            ));
        }
        if DialogId::at_uac(response)? != self.id {
            return Err(DialogError::Mismatch("response belongs to another dialog"));
        }
        let (uri, routes) = self.destination()?;
        Ok(self.build(Method::Ack, &uri, &routes, cseq.seq, via))
    }

    /// RFC 3261 §12.2.1.1: the Request-URI and the Route values.
    fn destination(&self) -> Result<(Uri, Vec<String>), DialogError> {
        match self.route_set.first() {
            // No route set: straight to the remote target.
            None => Ok((request_uri_form(&self.remote_target)?, Vec::new())),
            // Loose routing: Request-URI is the remote target, Route the
            // whole route set.
            Some(first) if is_loose(first) => Ok((
                request_uri_form(&self.remote_target)?,
                self.route_set
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
            )),
            // Strict routing (RFC 2543 proxies): the first route becomes the
            // Request-URI (parameters a Request-URI may not carry removed),
            // the rest follow, then the remote target as the last Route.
            Some(first) => {
                let uri = request_uri_form(first.uri())?;
                let mut routes: Vec<String> = self.route_set[1..]
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect();
                routes.push(format!("<{}>", self.remote_target.as_str()));
                Ok((uri, routes))
            }
        }
    }

    fn build(
        &self,
        method: Method,
        uri: &Uri,
        routes: &[String],
        seq: u32,
        via: &LocalVia<'_>,
    ) -> RequestBuilder {
        let mut b = RequestBuilder::new(method, uri)
            .via(via.transport, via.sent_by, via.branch, via.rport)
            .max_forwards(MAX_FORWARDS)
            // RFC 3261 §12.2.1.1: To = remote URI and tag, From = local URI
            // and tag, Call-ID of the dialog.
            .from(self.local.as_str())
            .to(self.remote.as_str())
            .call_id(&self.id.call_id)
            .cseq(seq);
        for r in routes {
            b = b.header("Route", r);
        }
        b
    }

    /// RFC 3261 §12.2.1.1: the local CSeq goes up by one per request; an
    /// empty one starts at 1 (any value below 2**31 would do, §8.1.1.5).
    fn next_local_seq(&mut self) -> Result<u32, DialogError> {
        let next = match self.local_seq {
            None => 1,
            Some(s) => s.checked_add(1).ok_or(DialogError::CSeqExhausted)?,
        };
        self.local_seq = Some(next);
        Ok(next)
    }

    // ----- responses received by the UAC (RFC 3261 §12.2.1.2, §13.2.2.4) ---

    /// Applies a response the UAC received to a request it sent in (or to
    /// the request that created) this dialog:
    ///
    /// - a 2xx to the creating INVITE confirms an early dialog, its
    ///   Record-Route and Contact recomputing route set and remote target
    ///   (RFC 3261 §13.2.2.4); a non-2xx final terminates it;
    /// - a 2xx to a target refresh (re-INVITE, UPDATE) replaces the remote
    ///   target with its Contact, if any (RFC 3261 §12.2.1.2);
    /// - a 481 or 408 terminates the dialog (RFC 3261 §12.2.1.2).
    pub fn handle_response(&mut self, response: &Message) -> Result<(), DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongKind("response"))?;
        if DialogId::at_uac(response)? != self.id {
            return Err(DialogError::Mismatch("response belongs to another dialog"));
        }
        let cseq = response.cseq().map_err(DialogError::malformed("CSeq"))?;
        if self.state == DialogState::Terminated {
            return Ok(());
        }
        if self.state == DialogState::Early
            && cseq.seq == self.creating_seq
            && cseq.method == self.creating_method
        {
            if (200..=299).contains(&status) {
                // RFC 3261 §13.2.2.4: the early dialog becomes confirmed and
                // its route set and remote target come from the 2xx.
                let target = remote_target(response)?;
                let routes = route_set(response, true)?;
                self.remote_target = target;
                self.route_set = routes;
                self.state = DialogState::Confirmed;
                self.established = true;
            } else if status >= 300 {
                // RFC 3261 §12.3, §13.2.2.3: a non-2xx final ends early dialogs.
                self.state = DialogState::Terminated;
            }
            return Ok(());
        }
        match status {
            // RFC 3261 §12.2.1.2: 481 or 408 to a request in the dialog ends it.
            481 | 408 => self.state = DialogState::Terminated,
            200..=299 if is_target_refresh(&cseq.method) => {
                // RFC 3261 §12.2.1.2: a 2xx to a target refresh replaces the
                // remote target with its Contact, when it has one.
                if let Some(t) = optional_remote_target(response)? {
                    self.remote_target = t;
                }
            }
            _ => {}
        }
        Ok(())
    }

    // ----- requests received by the UAS (RFC 3261 §12.2.2) -----------------

    /// Checks a request received in this dialog and updates the dialog
    /// (RFC 3261 §12.2.2):
    ///
    /// - a request for another dialog, or for a terminated one, gets 481;
    /// - a CSeq lower than the remote CSeq gets 500; otherwise the remote
    ///   CSeq becomes the request's (ACK and CANCEL, which carry the
    ///   INVITE's number, are not checked and change nothing);
    /// - a target refresh (re-INVITE, UPDATE) with a Contact replaces the
    ///   remote target (a Contact that cannot be one gets 400);
    /// - a BYE terminates the dialog (RFC 3261 §15.1.2).
    pub fn handle_request(&mut self, request: &Message) -> InDialogDecision {
        let Some(method) = request.method() else {
            return InDialogDecision::Reject(400);
        };
        match DialogId::at_uas(request) {
            Ok(id) if id == self.id => {}
            Ok(_) | Err(DialogError::MissingTag(_)) => return InDialogDecision::Reject(481),
            Err(_) => return InDialogDecision::Reject(400),
        }
        if self.state == DialogState::Terminated {
            return InDialogDecision::Reject(481);
        }
        let Ok(cseq) = request.cseq() else {
            return InDialogDecision::Reject(400);
        };
        if matches!(method, Method::Ack | Method::Cancel) {
            // RFC 3261 §13.2.2.4, §9.1: they reuse the INVITE's CSeq.
            return InDialogDecision::Accept;
        }
        if self.remote_seq.is_some_and(|r| cseq.seq < r) {
            // RFC 3261 §12.2.2: out of order.
            return InDialogDecision::Reject(500);
        }
        let mut target = None;
        if is_target_refresh(method) {
            match optional_remote_target(request) {
                Ok(t) => target = t,
                Err(_) => return InDialogDecision::Reject(400),
            }
        }
        self.remote_seq = Some(cseq.seq);
        if let Some(t) = target {
            // RFC 3261 §12.2.2: a target refresh replaces the remote target.
            self.remote_target = t;
        }
        if *method == Method::Bye {
            self.state = DialogState::Terminated;
        }
        InDialogDecision::Accept
    }

    /// Applies a response this UAS sends in (or to the request that
    /// created) the dialog: a 2xx to the creating request confirms an early
    /// dialog, a non-2xx final terminates it (RFC 3261 §12.1.1, §12.3).
    pub fn handle_sent_response(&mut self, response: &Message) -> Result<(), DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongKind("response"))?;
        if DialogId::at_uas(response)? != self.id {
            return Err(DialogError::Mismatch("response belongs to another dialog"));
        }
        let cseq = response.cseq().map_err(DialogError::malformed("CSeq"))?;
        if self.state == DialogState::Early
            && cseq.seq == self.creating_seq
            && cseq.method == self.creating_method
        {
            if (200..=299).contains(&status) {
                self.state = DialogState::Confirmed;
                self.established = true;
            } else if status >= 300 {
                self.state = DialogState::Terminated;
            }
        }
        Ok(())
    }
}

/// A CANCEL for a request (RFC 3261 §9.1): same Request-URI, Call-ID, From,
/// To and CSeq number, method CANCEL, the request's top Via only (so that
/// it reaches the same transaction) and its Route values.
pub fn cancel_request(request: &Message) -> Result<RequestBuilder, DialogError> {
    let method = request.method().ok_or(DialogError::WrongKind("request"))?;
    if matches!(method, Method::Ack | Method::Cancel) {
        return Err(DialogError::MethodNotAllowed {
            method: method.to_string(),
            reason: "ACK and CANCEL cannot be cancelled (RFC 3261 §9.1)",
        });
    }
    let uri = request
        .request_uri()
        .map_err(DialogError::malformed("Request-URI"))?;
    let via = request.top_via().map_err(DialogError::malformed("Via"))?;
    let from = request.from().map_err(DialogError::malformed("From"))?;
    let to = request.to().map_err(DialogError::malformed("To"))?;
    let cseq = request.cseq().map_err(DialogError::malformed("CSeq"))?;
    let mut b = RequestBuilder::new(Method::Cancel, uri)
        .header("Via", via.as_str())
        .max_forwards(MAX_FORWARDS)
        .from(from.as_str())
        .to(to.as_str())
        .call_id(&call_id(request)?)
        .cseq(cseq.seq);
    for r in request.routes().map_err(DialogError::malformed("Route"))? {
        b = b.header("Route", r.as_str());
    }
    Ok(b)
}

// ----- helpers ---------------------------------------------------------------

/// Checks that `response` answers `request` (Call-ID, CSeq, From tag) and
/// returns the request's method, CSeq number and the response's status.
fn check_answer(request: &Message, response: &Message) -> Result<(Method, u32, u16), DialogError> {
    let method = request
        .method()
        .ok_or(DialogError::WrongKind("request"))?
        .clone();
    let status = response
        .status()
        .ok_or(DialogError::WrongKind("response"))?;
    let rq = request.cseq().map_err(DialogError::malformed("CSeq"))?;
    let rs = response.cseq().map_err(DialogError::malformed("CSeq"))?;
    if rq != rs {
        return Err(DialogError::Mismatch(
            "CSeq of the response differs from the request's",
        ));
    }
    if call_id(request)? != call_id(response)? {
        return Err(DialogError::Mismatch(
            "Call-ID of the response differs from the request's",
        ));
    }
    let ft = |m: &Message| m.from().ok().and_then(|f| f.tag().map(str::to_owned));
    if ft(request) != ft(response) {
        return Err(DialogError::Mismatch(
            "From tag of the response differs from the request's",
        ));
    }
    Ok((method, rq.seq, status))
}

fn call_id(msg: &Message) -> Result<String, DialogError> {
    Ok(msg
        .call_id()
        .map_err(DialogError::malformed("Call-ID"))?
        .as_str()
        .to_owned())
}

fn tag(na: &NameAddr, header: &'static str) -> Result<String, DialogError> {
    match na.tag() {
        Some(t) if !t.is_empty() => Ok(t.to_owned()),
        _ => Err(DialogError::MissingTag(header)),
    }
}

/// A copy of a name-addr that no longer shares the received message's buffer.
fn own(na: &NameAddr, header: &'static str) -> Result<NameAddr, DialogError> {
    NameAddr::parse(&SipStr::from(na.as_str()), header).map_err(DialogError::malformed(header))
}

fn own_uri(uri: &Uri, header: &'static str) -> Result<Uri, DialogError> {
    Uri::parse(uri.as_str()).map_err(DialogError::malformed(header))
}

/// The remote target from a message's only Contact (RFC 3261 §12.1.1, §12.1.2).
fn remote_target(msg: &Message) -> Result<Uri, DialogError> {
    optional_remote_target(msg)?.ok_or(DialogError::MissingContact)
}

/// Like [`remote_target`], `None` when there is no Contact (target
/// refreshes keep the old one then, RFC 3261 §12.2.1.2, §12.2.2).
fn optional_remote_target(msg: &Message) -> Result<Option<Uri>, DialogError> {
    let contacts = msg.contacts().map_err(DialogError::malformed("Contact"))?;
    match contacts {
        [] => Ok(None),
        [c] => {
            let addr = c
                .addr()
                .ok_or(DialogError::BadContact("'*' is not a target"))?;
            if addr.uri().as_sip().is_none() {
                return Err(DialogError::BadContact("not a SIP or SIPS URI"));
            }
            Ok(Some(own_uri(addr.uri(), "Contact")?))
        }
        _ => Err(DialogError::BadContact("more than one value")),
    }
}

/// The route set from Record-Route, reversed for the UAC (RFC 3261
/// §12.1.2), in order for the UAS (§12.1.1).
fn route_set(msg: &Message, reverse: bool) -> Result<Vec<NameAddr>, DialogError> {
    let rr = msg
        .record_routes()
        .map_err(DialogError::malformed("Record-Route"))?;
    let mut out = Vec::with_capacity(rr.len());
    for r in rr {
        if r.uri().as_sip().is_none() {
            return Err(DialogError::BadRecordRoute(
                r.as_str().chars().take(100).collect(),
            ));
        }
        out.push(own(r, "Record-Route")?);
    }
    if reverse {
        out.reverse();
    }
    Ok(out)
}

/// RFC 3261 §12.1.1/§12.1.2: secure when the request went over TLS (top Via)
/// to a SIPS Request-URI.
fn sent_securely(request: &Message) -> bool {
    request
        .request_uri()
        .ok()
        .and_then(Uri::as_sip)
        .is_some_and(SipUri::is_secure)
        && request
            .top_via()
            .is_ok_and(|v| v.transport().eq_ignore_ascii_case("TLS"))
}

fn is_loose(route: &NameAddr) -> bool {
    route.uri().as_sip().is_some_and(SipUri::is_loose_route)
}

/// Target refresh requests (RFC 3261 §12.2: re-INVITE; RFC 3311: UPDATE).
fn is_target_refresh(method: &Method) -> bool {
    matches!(method, Method::Invite | Method::Update)
}

/// A URI as a Request-URI may carry it (RFC 3261 §19.1.1 table): without
/// URI headers and without the `method` parameter (§12.2.1.1).
fn request_uri_form(uri: &Uri) -> Result<Uri, DialogError> {
    match uri.as_sip() {
        Some(s) if !s.headers().is_empty() || s.params().contains("method") => {
            let mut t = s.without_params();
            for (name, value) in s.params().iter() {
                if name.eq_ignore_ascii_case("method") {
                    continue;
                }
                t.push(';');
                t.push_str(name);
                if let Some(v) = value {
                    t.push('=');
                    t.push_str(v);
                }
            }
            Uri::parse(&t).map_err(DialogError::malformed("Request-URI"))
        }
        _ => Ok(uri.clone()),
    }
}
