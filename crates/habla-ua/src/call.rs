//! INVITE sessions (RFC 3261 §13–15) on both sides, with their media.

use crate::agent::{
    random_hex, random_u32, CallMessage, CallRoute, ClientTransaction, IncomingCall, TxEvent,
    UserAgent,
};
use crate::error::UaError;
use crate::media::{LiveStats, MediaConfig, MediaReport, MediaSession, RtpSocket};
use habla_dialog::{cancel_request, Dialog, InDialogDecision, LocalVia, Role};
use habla_message::{Message, Method, Uri};
use habla_sdp::{Direction, LocalAudio, NegotiatedAudio, OfferAnswer, SessionDescription};
use habla_tokio::{Destination, TransactionKey};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How often a re-INVITE that met 491 (glare) is tried again.
const GLARE_RETRIES: u32 = 3;

/// Something a call reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallEvent {
    /// A provisional response (180, 183...).
    Progress(u16, String),
    /// The call is answered (2xx sent or received).
    Answered,
    /// A DTMF digit was received.
    Dtmf(char),
    /// A MESSAGE was received inside the call.
    Message(String),
    /// A provisional response carried an SDP answer: early media runs.
    EarlyMedia(u16),
    /// Our hold (re-INVITE with a=sendonly) was accepted.
    Held,
    /// Our resume (re-INVITE with a=sendrecv) was accepted.
    Resumed,
    /// The peer put us on hold (we stop sending).
    HeldByPeer,
    /// The peer took us off hold (we send again).
    ResumedByPeer,
    /// A re-INVITE of ours failed with this status (the call goes on).
    ReinviteFailed(u16),
    /// The session was refreshed (RFC 4028), by us (`true`) or the peer.
    SessionRefreshed(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Hold,
    Resume,
    Hangup,
}

/// A handle on a call while it runs: hold, resume, hang up, live packet
/// counters. Put a clone in [`CallOptions`] / [`AnswerOptions`]; commands
/// given before the call is answered run once it is.
#[derive(Debug, Clone)]
pub struct CallControl {
    inner: Arc<ControlInner>,
}

#[derive(Debug)]
struct ControlInner {
    tx: mpsc::UnboundedSender<Command>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    live: Arc<LiveStats>,
}

impl Default for CallControl {
    fn default() -> Self {
        CallControl::new()
    }
}

impl CallControl {
    /// A new handle.
    pub fn new() -> CallControl {
        let (tx, rx) = mpsc::unbounded_channel();
        CallControl {
            inner: Arc::new(ControlInner {
                tx,
                rx: Mutex::new(Some(rx)),
                live: Arc::default(),
            }),
        }
    }

    /// Puts the peer on hold: re-INVITE with `a=sendonly` (RFC 3264 §8.4);
    /// [`CallEvent::Held`] reports success.
    pub fn hold(&self) {
        let _ = self.inner.tx.send(Command::Hold);
    }

    /// Takes the peer off hold: re-INVITE with `a=sendrecv`;
    /// [`CallEvent::Resumed`] reports success.
    pub fn resume(&self) {
        let _ = self.inner.tx.send(Command::Resume);
    }

    /// Hangs up (BYE) once the call is answered.
    pub fn hangup(&self) {
        let _ = self.inner.tx.send(Command::Hangup);
    }

    /// RTP packets sent and received so far.
    pub fn live(&self) -> Arc<LiveStats> {
        self.inner.live.clone()
    }

    fn commands(&self) -> Option<mpsc::UnboundedReceiver<Command>> {
        self.inner.rx.lock().ok().and_then(|mut r| r.take())
    }
}

/// Where a call's events go.
pub type EventSink = Arc<dyn Fn(CallEvent) + Send + Sync>;

/// An event sink that ignores everything.
pub fn ignore_events() -> EventSink {
    Arc::new(|_| {})
}

/// Who ended a call, or why it did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// We hung up (BYE), or the duration elapsed.
    Local,
    /// The peer hung up (BYE).
    Remote,
    /// We cancelled before the answer (CANCEL).
    Cancelled,
    /// The peer cancelled before we answered.
    CancelledByPeer,
    /// A final non-2xx response (sent or received).
    Rejected,
    /// No final response, or no ACK for our 2xx.
    Timeout,
}

/// The outcome of a call.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The final status of the INVITE (sent or received).
    pub status: u16,
    /// Its reason phrase.
    pub reason: String,
    /// How it ended.
    pub ending: Ending,
    /// Time from answer to hang-up.
    pub talk_time: Duration,
    /// The media session's report (answered calls).
    pub media: Option<MediaReport>,
    /// The peer (From for incoming, To for outgoing).
    pub peer: String,
}

impl CallReport {
    fn failed(status: u16, reason: &str, ending: Ending, peer: &str) -> CallReport {
        CallReport {
            status,
            reason: reason.to_owned(),
            ending,
            talk_time: Duration::ZERO,
            media: None,
            peer: peer.to_owned(),
        }
    }

    /// Whether the call was answered.
    pub fn answered(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An outgoing call's settings.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// Whom to call.
    pub target: Uri,
    /// Hang up this long after the answer (`None`: wait for `hangup`).
    pub duration: Option<Duration>,
    /// Media behaviour.
    pub media: MediaConfig,
    /// Hold, resume, hang up, counters.
    pub control: CallControl,
}

/// How to answer an incoming call.
#[derive(Debug, Clone)]
pub struct AnswerOptions {
    /// Ring this long before answering.
    pub after: Duration,
    /// Reject with this status instead of answering.
    pub reject: Option<u16>,
    /// Hang up this long after the answer (`None`: wait for the peer).
    pub duration: Option<Duration>,
    /// Media behaviour.
    pub media: MediaConfig,
    /// Hold, resume, hang up, counters.
    pub control: CallControl,
}

fn via<'a>(ua: &'a UserAgent, sent_by: &'a str, branch: &'a str) -> LocalVia<'a> {
    LocalVia {
        transport: ua.via_transport(),
        sent_by,
        branch,
        rport: true,
    }
}

fn local_audio(ua: &UserAgent, rtp: &RtpSocket) -> LocalAudio {
    LocalAudio::new(ua.local_addr().ip(), rtp.local_addr().port())
}

fn parse_sdp(m: &Message) -> Option<SessionDescription> {
    let is_sdp = m
        .content_type()
        .ok()
        .flatten()
        .is_some_and(|c| c.is("application", "sdp"));
    (is_sdp && !m.body().is_empty())
        .then(|| SessionDescription::parse(m.body()).ok())
        .flatten()
}

fn reply_to(request: &Message, code: u16) -> Option<Message> {
    request
        .response(code)
        .header("Allow", crate::agent::ALLOW)
        .build()
        .ok()
}

fn final_reply(invite: &Message, tag: &str, agent: &str, code: u16) -> Result<Message, UaError> {
    invite
        .response(code)
        .to_tag(invite, tag)
        .header("Server", agent)
        .build()
        .map_err(local_error)
}

fn peer_error(e: impl std::fmt::Display) -> UaError {
    UaError::Peer(e.to_string())
}

fn local_error(e: impl std::fmt::Display) -> UaError {
    UaError::Local(e.to_string())
}

/// Session timer state (RFC 4028).
#[derive(Debug, Clone, Copy)]
struct SessionTimer {
    /// The session interval.
    interval: Duration,
    /// Whether we refresh (else the peer does, and we end the call when
    /// it does not).
    we_refresh: bool,
    /// Whether the peer said `Supported: timer`.
    peer_supports: bool,
}

/// `Session-Expires: N;refresher=uac|uas` of a message (or its compact
/// form `x`): the interval and the refresher parameter.
fn session_expires(m: &Message) -> Option<(u32, Option<String>)> {
    let v = m.header("Session-Expires").or_else(|| m.header("x"))?;
    let mut parts = v.split(';');
    let secs: u32 = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    (secs > 0).then_some((secs, refresher))
}

/// Whether `m` lists `timer` in Supported (or Require).
fn supports_timer(m: &Message) -> bool {
    ["Supported", "k", "Require"].iter().any(|h| {
        m.header(h)
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Hold,
    Resume,
    Refresh,
}

/// A re-INVITE of ours awaiting its final response.
struct Pending {
    tx: ClientTransaction,
    purpose: Purpose,
    /// Our direction before this offer (restored if it fails).
    previous: Direction,
}

/// Our 2xx to the peer's re-INVITE, retransmitted until its ACK.
struct Unacked {
    key: TransactionKey,
    response: Message,
    cseq: u32,
    next: Instant,
    interval: Duration,
    give_up: Instant,
    /// The 2xx carried our offer (the re-INVITE had none): the answer
    /// comes in the ACK.
    offered: bool,
}

/// Keeps a finished INVITE client transaction alive to re-ACK its
/// retransmitted 2xx (RFC 3261 §13.2.2.4) until the transaction ends.
fn absorb_retransmissions(
    ua: &UserAgent,
    mut tx: ClientTransaction,
    ack: Message,
    dest: Destination,
) -> JoinHandle<()> {
    let ua = ua.clone();
    tokio::spawn(async move {
        while let Some(ev) = tx.next().await {
            if let TxEvent::Response(r) = ev {
                if r.status().is_some_and(|s| (200..300).contains(&s)) {
                    let _ = ua.send_stateless(ack.clone(), dest).await;
                }
            }
        }
    })
}

/// A confirmed call: dialog, media, and the messages of its Call-ID.
struct Session<'a> {
    ua: &'a UserAgent,
    dialog: Dialog,
    route: CallRoute,
    media: Option<MediaSession>,
    /// The ACKs we sent for 2xx responses (CSeq number, ACK, where), re-sent
    /// on retransmitted 2xx.
    acks: Vec<(u32, Message, Destination)>,
    offer_answer: OfferAnswer,
    local: LocalAudio,
    events: EventSink,
    commands: Option<mpsc::UnboundedReceiver<Command>>,
    pending: Option<Pending>,
    /// A re-INVITE to send once the pending one is done.
    queued: Option<Purpose>,
    /// A re-INVITE to try again after 491 (when, what, tries so far).
    retry: Option<(Instant, Purpose, u32)>,
    glare_tries: u32,
    unacked: Option<Unacked>,
    /// Whether the peer has put us on hold.
    held_by_peer: bool,
    timer: Option<SessionTimer>,
    /// When the session was last refreshed.
    refreshed_at: Instant,
    /// Tasks re-ACKing retransmitted 2xx of our INVITEs.
    absorbers: Vec<JoinHandle<()>>,
}

impl<'a> Session<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ua: &'a UserAgent,
        dialog: Dialog,
        route: CallRoute,
        media: Option<MediaSession>,
        offer_answer: OfferAnswer,
        local: LocalAudio,
        events: EventSink,
        control: &CallControl,
    ) -> Session<'a> {
        Session {
            ua,
            dialog,
            route,
            media,
            acks: Vec::new(),
            offer_answer,
            local,
            events,
            commands: control.commands(),
            pending: None,
            queued: None,
            retry: None,
            glare_tries: 0,
            unacked: None,
            held_by_peer: false,
            timer: None,
            refreshed_at: Instant::now(),
            absorbers: Vec::new(),
        }
    }

    /// The next instant a timer of the session fires.
    fn next_wakeup(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut consider = |t: Instant| at = Some(at.map_or(t, |a| a.min(t)));
        if let Some((t, _, _)) = self.retry {
            consider(t);
        }
        if let Some(u) = &self.unacked {
            consider(u.next);
        }
        if let Some(t) = self.timer {
            if t.we_refresh {
                if self.pending.is_none() {
                    consider(self.refreshed_at + t.interval / 2);
                }
            } else {
                consider(self.expiry(t));
            }
        }
        at
    }

    /// RFC 4028 §10: BYE before the interval ends, min(32 s, interval/3)
    /// early, when the peer should have refreshed.
    fn expiry(&self, t: SessionTimer) -> Instant {
        self.refreshed_at + t.interval - (t.interval / 3).min(Duration::from_secs(32))
    }

    /// Runs what is due; `Some` ends the call.
    async fn on_timer(&mut self) -> Option<Ending> {
        let now = Instant::now();
        if let Some((t, purpose, _)) = self.retry {
            if t <= now {
                self.retry = None;
                self.start_reinvite(purpose).await;
            }
        }
        if let Some(u) = &mut self.unacked {
            if u.next <= now {
                if now >= u.give_up {
                    // No ACK for our 2xx (RFC 3261 §14.2): end the call.
                    self.unacked = None;
                    return Some(Ending::Timeout);
                }
                let _ = self.ua.respond(u.key, u.response.clone()).await;
                u.interval = (u.interval * 2).min(Duration::from_secs(4));
                u.next = now + u.interval;
            }
        }
        if let Some(t) = self.timer {
            if t.we_refresh {
                if self.pending.is_none() && self.refreshed_at + t.interval / 2 <= now {
                    // Mark it now so that a failing refresh does not spin.
                    self.refreshed_at = now;
                    self.start_reinvite(Purpose::Refresh).await;
                }
            } else if self.expiry(t) <= now {
                return Some(Ending::Timeout);
            }
        }
        None
    }

    /// Runs the confirmed call until the peer's BYE, `deadline` or
    /// `hangup`; sends BYE in the last two cases.
    async fn run(
        mut self,
        deadline: Option<Instant>,
        hangup: impl Future<Output = ()>,
        answered_at: Instant,
        status: u16,
        reason: String,
    ) -> CallReport {
        tokio::pin!(hangup);
        let ending = loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let wake = self.next_wakeup();
            let timer = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let command = async {
                match self.commands.as_mut() {
                    Some(c) => c.recv().await,
                    None => std::future::pending().await,
                }
            };
            let pending = async {
                match self.pending.as_mut() {
                    Some(p) => p.tx.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sleep => break Ending::Local,
                _ = &mut hangup => break Ending::Local,
                c = command => match c {
                    Some(Command::Hold) => self.start_reinvite(Purpose::Hold).await,
                    Some(Command::Resume) => self.start_reinvite(Purpose::Resume).await,
                    Some(Command::Hangup) => break Ending::Local,
                    None => self.commands = None,
                },
                ev = pending => {
                    if let Some(end) = self.on_reinvite_event(ev).await {
                        break end;
                    }
                }
                _ = timer => {
                    if let Some(end) = self.on_timer().await {
                        break end;
                    }
                }
                m = self.route.rx.recv() => match m {
                    Some(m) => if self.handle(m).await { break Ending::Remote },
                    None => break Ending::Local,
                },
            }
        };
        let talk_time = answered_at.elapsed();
        let media = self.stop_media().await;
        if matches!(ending, Ending::Local | Ending::Timeout) {
            self.bye().await;
        }
        self.finish_pending().await;
        self.refuse_queued().await;
        for a in self.absorbers.drain(..) {
            a.abort();
        }
        CallReport {
            status,
            reason,
            ending,
            talk_time,
            media: Some(media),
            peer: self.dialog.remote_uri().as_str().to_owned(),
        }
    }

    /// A re-INVITE of ours still open when the call ends (a BYE crossed
    /// it): wait, bounded, for its final response so that the process is
    /// still there to ACK it — the transaction ACKs a non-2xx such as the
    /// usual 487, and a late 2xx is ACKed here (the ACK is allowed in a
    /// terminated dialog). A CLI that exits at once would leave the peer
    /// retransmitting its final response.
    async fn finish_pending(&mut self) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let wait = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(ev) = p.tx.next().await {
                if let TxEvent::Response(r) = ev {
                    if r.status().is_some_and(|s| (200..300).contains(&s)) {
                        return Some(r);
                    }
                    if r.status().unwrap_or(0) >= 300 {
                        return None;
                    }
                } else {
                    return None;
                }
            }
            None
        });
        if let Ok(Some(ok)) = wait.await {
            let sent_by = self.ua.local_addr().to_string();
            let branch = crate::agent::new_branch();
            if let Ok(b) = self.dialog.ack(&ok, &via(self.ua, &sent_by, &branch)) {
                if let Ok(ack) = b.build() {
                    if let Ok(dest) = self.ua.next_hop(&ack).await {
                        let _ = self.ua.send_stateless(ack, dest).await;
                    }
                }
            }
        }
    }

    /// The call is over: requests still queued for it (a re-INVITE that
    /// crossed the BYE) get 481, and later ones get it from the dispatcher.
    async fn refuse_queued(&mut self) {
        self.route.rx.close();
        while let Ok(m) = self.route.rx.try_recv() {
            if let CallMessage::Request { key, request, .. } = m {
                self.respond(key, reply_to(&request, 481)).await;
            }
        }
    }

    async fn stop_media(&mut self) -> MediaReport {
        match self.media.take() {
            Some(m) => m.stop().await,
            None => MediaReport::default(),
        }
    }

    async fn respond(&mut self, key: TransactionKey, response: Option<Message>) {
        if let Some(r) = response {
            let _ = self.ua.respond(key, r).await;
        }
    }

    /// Applies a negotiated stream to the media and reports hold changes
    /// decided by the peer.
    fn apply(&mut self, audio: &NegotiatedAudio, peer_initiated: bool) {
        if let Some(m) = &self.media {
            let mut a = audio.clone();
            if self.local.direction == Direction::SendOnly {
                // We hold the peer: no music on hold, nothing is sent.
                a.direction = Direction::Inactive;
            }
            m.update(&a);
        }
        if peer_initiated {
            let held = !audio.direction.sends() && self.local.direction.sends();
            if held != self.held_by_peer {
                self.held_by_peer = held;
                (self.events)(if held {
                    CallEvent::HeldByPeer
                } else {
                    CallEvent::ResumedByPeer
                });
            }
        }
    }

    /// Sends a re-INVITE with a new offer (or queues it behind the pending one).
    async fn start_reinvite(&mut self, purpose: Purpose) {
        if self.pending.is_some() || self.unacked.is_some() {
            self.queued = Some(purpose);
            return;
        }
        let previous = self.local.direction;
        self.local.direction = match purpose {
            Purpose::Hold => Direction::SendOnly,
            Purpose::Resume => Direction::SendRecv,
            Purpose::Refresh => previous,
        };
        match self.send_reinvite().await {
            Ok(tx) => {
                self.pending = Some(Pending {
                    tx,
                    purpose,
                    previous,
                })
            }
            Err(e) => {
                tracing::warn!("re-INVITE not sent: {e}");
                self.offer_answer.cancel_offer();
                self.local.direction = previous;
                (self.events)(CallEvent::ReinviteFailed(503));
            }
        }
    }

    async fn send_reinvite(&mut self) -> Result<ClientTransaction, UaError> {
        let offer = self
            .offer_answer
            .create_offer(&self.local)
            .map_err(local_error)?;
        let sent_by = self.ua.local_addr().to_string();
        let branch = crate::agent::new_branch();
        let contact = self.ua.contact();
        let mut b = self
            .dialog
            .reinvite(&via(self.ua, &sent_by, &branch), &contact)
            .map_err(local_error)?
            .header("Allow", crate::agent::ALLOW)
            .header("Supported", "timer")
            .header("User-Agent", self.ua.user_agent());
        if let Some(t) = self.timer {
            // We refresh: we are this request's UAC (RFC 4028 §7.4).
            let who = if t.we_refresh { "uac" } else { "uas" };
            b = b.header(
                "Session-Expires",
                &format!("{};refresher={who}", t.interval.as_secs()),
            );
        }
        let req = b
            .body("application/sdp", offer.to_bytes())
            .build()
            .map_err(local_error)?;
        let dest = self.ua.next_hop(&req).await?;
        self.ua.start(req, dest).await
    }

    /// An event of our pending re-INVITE; `Some` ends the call.
    async fn on_reinvite_event(&mut self, ev: Option<TxEvent>) -> Option<Ending> {
        let resp = match ev {
            Some(TxEvent::Response(r)) => r,
            Some(TxEvent::Timeout) | Some(TxEvent::TransportError) | None => {
                let p = self.pending.take()?;
                self.offer_answer.cancel_offer();
                self.local.direction = p.previous;
                (self.events)(CallEvent::ReinviteFailed(408));
                // RFC 3261 §14.1 / RFC 4028 §10: no answer ends the session.
                return Some(Ending::Timeout);
            }
        };
        let code = resp.status().unwrap_or(0);
        if code < 200 {
            return None;
        }
        let p = self.pending.take()?;
        let _ = self.dialog.handle_response(&resp);
        if code >= 300 {
            self.offer_answer.cancel_offer();
            self.local.direction = p.previous;
            if code == 491 && self.glare_tries < GLARE_RETRIES {
                // RFC 3261 §14.1: the Call-ID owner waits 2.1–4 s, the other 0–2 s.
                self.glare_tries += 1;
                let ms = match self.dialog.role() {
                    Role::Uac => 2100 + random_u32() % 1900,
                    Role::Uas => random_u32() % 2000,
                };
                self.retry = Some((
                    Instant::now() + Duration::from_millis(u64::from(ms)),
                    p.purpose,
                    self.glare_tries,
                ));
                return None;
            }
            self.glare_tries = 0;
            (self.events)(CallEvent::ReinviteFailed(code));
            if matches!(code, 408 | 481) {
                return Some(Ending::Remote);
            }
            self.next_queued().await;
            return None;
        }
        self.glare_tries = 0;
        // 2xx: ACK it, keep re-ACKing its retransmissions.
        let sent_by = self.ua.local_addr().to_string();
        let branch = crate::agent::new_branch();
        let cseq = resp.cseq().map(|c| c.seq).unwrap_or(0);
        if let Ok(b) = self.dialog.ack(&resp, &via(self.ua, &sent_by, &branch)) {
            if let Ok(ack) = b.header("User-Agent", self.ua.user_agent()).build() {
                if let Ok(dest) = self.ua.next_hop(&ack).await {
                    let _ = self.ua.send_stateless(ack.clone(), dest).await;
                    self.acks.push((cseq, ack.clone(), dest));
                    self.absorbers
                        .push(absorb_retransmissions(self.ua, p.tx, ack, dest));
                }
            }
        }
        match parse_sdp(&resp).map(|a| self.offer_answer.handle_answer(&a)) {
            Some(Ok(Some(audio))) => self.apply(&audio, false),
            Some(Ok(None)) => {
                // The peer rejected the audio stream in the answer.
                tracing::warn!("re-INVITE answer rejected the audio stream");
            }
            Some(Err(e)) => tracing::warn!("bad answer to our re-INVITE: {e}"),
            None => self.offer_answer.cancel_offer(),
        }
        self.refreshed_at = Instant::now();
        if let Some(t) = self.timer.as_mut() {
            if let Some((secs, refresher)) = session_expires(&resp) {
                t.interval = Duration::from_secs(u64::from(secs));
                t.we_refresh = refresher.as_deref() != Some("uas");
            }
        }
        (self.events)(match p.purpose {
            Purpose::Hold => CallEvent::Held,
            Purpose::Resume => CallEvent::Resumed,
            Purpose::Refresh => CallEvent::SessionRefreshed(true),
        });
        self.next_queued().await;
        None
    }

    async fn next_queued(&mut self) {
        if let Some(q) = self.queued.take() {
            self.start_reinvite(q).await;
        }
    }

    /// Handles one in-call message; true when the peer ended the call.
    async fn handle(&mut self, m: CallMessage) -> bool {
        match m {
            CallMessage::Ack(ack) => {
                let cseq = ack.cseq().map(|c| c.seq).ok();
                if let Some(u) = self.unacked.take_if(|u| Some(u.cseq) == cseq) {
                    if u.offered {
                        if let Some(answer) = parse_sdp(&ack) {
                            if let Ok(Some(audio)) = self.offer_answer.handle_answer(&answer) {
                                self.apply(&audio, true);
                            }
                        } else {
                            self.offer_answer.cancel_offer();
                        }
                    }
                    self.next_queued().await;
                }
                false
            }
            CallMessage::Stray(resp) => {
                // A retransmitted 2xx: the ACK got lost (RFC 3261 §13.2.2.4).
                let cseq = resp.cseq().map(|c| c.seq).ok();
                if resp.status().is_some_and(|s| (200..300).contains(&s)) {
                    let found = self
                        .acks
                        .iter()
                        .rev()
                        .find(|(c, _, _)| Some(*c) == cseq)
                        .map(|(_, ack, dest)| (ack.clone(), *dest));
                    if let Some((ack, dest)) = found {
                        let _ = self.ua.send_stateless(ack, dest).await;
                    }
                }
                false
            }
            CallMessage::Request { key, request, .. } => {
                let decision = self.dialog.handle_request(&request);
                let method = request.method().cloned();
                if let InDialogDecision::Reject(code) = decision {
                    self.respond(key, reply_to(&request, code)).await;
                    return false;
                }
                match method {
                    Some(Method::Bye) => {
                        self.respond(key, reply_to(&request, 200)).await;
                        true
                    }
                    Some(Method::Invite) => {
                        self.offer_in_request(key, request, true).await;
                        false
                    }
                    Some(Method::Update) => {
                        self.offer_in_request(key, request, false).await;
                        false
                    }
                    Some(Method::Message) => {
                        self.respond(key, reply_to(&request, 200)).await;
                        (self.events)(CallEvent::Message(
                            String::from_utf8_lossy(request.body()).into_owned(),
                        ));
                        false
                    }
                    Some(Method::Options | Method::Info) => {
                        self.respond(key, reply_to(&request, 200)).await;
                        false
                    }
                    _ => {
                        self.respond(key, reply_to(&request, 405)).await;
                        false
                    }
                }
            }
        }
    }

    /// A re-INVITE or UPDATE from the peer: the new offer applied to the
    /// media (address, port, direction) and answered, session timers
    /// honoured; 491 while an offer of ours is open (RFC 3261 §14.2).
    async fn offer_in_request(&mut self, key: TransactionKey, request: Message, invite: bool) {
        let offer = parse_sdp(&request);
        // An UPDATE without an offer (a bare session refresh) never collides.
        let collides = (invite || offer.is_some()) && self.pending.is_some();
        if collides || (invite && self.unacked.is_some()) {
            self.respond(key, reply_to(&request, 491)).await;
            return;
        }
        let mut offered = false;
        let body = match &offer {
            Some(offer) => match self.offer_answer.create_answer(offer, &self.local) {
                Ok((sdp, Some(audio))) => {
                    self.apply(&audio, true);
                    Some(sdp)
                }
                Ok((_, None)) => {
                    self.respond(key, reply_to(&request, 488)).await;
                    return;
                }
                Err(_) => {
                    self.respond(key, reply_to(&request, 491)).await;
                    return;
                }
            },
            // A re-INVITE without SDP: we offer in the 2xx (answer in the ACK).
            None if invite => match self.offer_answer.create_offer(&self.local) {
                Ok(sdp) => {
                    offered = true;
                    Some(sdp)
                }
                Err(_) => {
                    self.respond(key, reply_to(&request, 491)).await;
                    return;
                }
            },
            None => None,
        };
        // Session timers (RFC 4028 §9): their refresh, our answer.
        self.refreshed_at = Instant::now();
        let peer_supports = supports_timer(&request);
        let mut b = request
            .response(200)
            .header("Contact", &self.ua.contact())
            .header("Allow", crate::agent::ALLOW)
            .header("Supported", "timer")
            .header("Server", self.ua.user_agent());
        if let Some((secs, refresher)) = session_expires(&request) {
            // Their refresher parameter speaks of this request's roles:
            // uac = the peer refreshes. Without it, the peer does if it can.
            let peer_refreshes = match refresher.as_deref() {
                Some("uas") => false,
                Some(_) => true,
                None => peer_supports,
            };
            self.timer = Some(SessionTimer {
                interval: Duration::from_secs(u64::from(secs)),
                we_refresh: !peer_refreshes,
                peer_supports,
            });
            let who = if peer_refreshes { "uac" } else { "uas" };
            b = b.header("Session-Expires", &format!("{secs};refresher={who}"));
            if peer_supports {
                b = b.header("Require", "timer");
            }
            (self.events)(CallEvent::SessionRefreshed(false));
        } else if let Some(t) = self.timer {
            if t.peer_supports && !t.we_refresh {
                (self.events)(CallEvent::SessionRefreshed(false));
            }
        }
        let response = match body {
            Some(sdp) => b.body("application/sdp", sdp.to_bytes()).build().ok(),
            None => b.build().ok(),
        };
        let Some(response) = response else {
            self.respond(key, reply_to(&request, 500)).await;
            return;
        };
        let _ = self.ua.respond(key, response.clone()).await;
        if invite {
            let now = Instant::now();
            self.unacked = Some(Unacked {
                key,
                response,
                cseq: request.cseq().map(|c| c.seq).unwrap_or(0),
                next: now + Duration::from_millis(500),
                interval: Duration::from_millis(500),
                give_up: now + Duration::from_secs(32),
                offered,
            });
        }
    }

    async fn bye(&mut self) {
        let sent_by = self.ua.local_addr().to_string();
        let branch = crate::agent::new_branch();
        let Ok(b) = self.dialog.bye(&via(self.ua, &sent_by, &branch)) else {
            return;
        };
        let Ok(bye) = b.header("User-Agent", self.ua.user_agent()).build() else {
            return;
        };
        let Ok(dest) = self.ua.next_hop(&bye).await else {
            return;
        };
        if let Ok(mut tx) = self.ua.start(bye, dest).await {
            let _ = tokio::time::timeout(Duration::from_secs(8), tx.final_response()).await;
        }
    }
}

/// Early media started by an SDP answer in a provisional response.
struct Early {
    media: MediaSession,
    /// The offer/answer state with that answer applied (used when the
    /// 2xx repeats no SDP).
    offer_answer: OfferAnswer,
    audio: NegotiatedAudio,
}

/// The media of a call being set up: a socket, or early media running.
enum MediaStart {
    Socket(RtpSocket),
    Early(Box<Early>),
}

/// Places a call: INVITE with an SDP offer (digest challenges answered
/// with a new CSeq), provisional responses reported (with early media when
/// one carries an SDP answer), the 2xx ACKed (and re-ACKed when
/// retransmitted), media until `options.duration` elapses, `hangup`
/// resolves or the peer hangs up; CANCEL if `hangup` resolves before the
/// answer. Session timers are honoured (RFC 4028).
pub async fn place_call(
    ua: &UserAgent,
    mut options: CallOptions,
    events: EventSink,
    hangup: impl Future<Output = ()>,
) -> Result<CallReport, UaError> {
    tokio::pin!(hangup);
    options
        .media
        .live
        .get_or_insert_with(|| options.control.live());
    let target = options.target.clone();
    let peer = target.as_str().to_owned();
    let dest = ua.resolve(&target).await?;
    let rtp = RtpSocket::bind(ua.local_addr().ip()).await?;
    let local = local_audio(ua, &rtp);
    let mut start = MediaStart::Socket(rtp);
    let mut oa = OfferAnswer::new("habla", u64::from(random_u32()), 1, ua.local_addr().ip());
    let offer = oa.create_offer(&local).map_err(local_error)?;
    let offer_bytes = offer.to_bytes();
    let call_id = ua.new_call_id();
    let tag = random_hex(8);
    let to = format!("<{}>", target.as_str());
    let route = ua.route_call(&call_id);
    let mut cseq = 1;
    let mut auth: Option<(&'static str, String)> = None;
    let mut attempts = 0;
    loop {
        let mut b = ua
            .out_of_dialog(Method::Invite, &target, &to, &tag, &call_id, cseq)
            .header("Allow", crate::agent::ALLOW)
            .header("Supported", "timer");
        if let Some((n, v)) = &auth {
            b = b.header(n, v);
        }
        let invite = b
            .body("application/sdp", offer_bytes.clone())
            .build()
            .map_err(local_error)?;
        let mut tx = ua.start(invite.clone(), dest).await?;
        // Wait for the final response (or hang-up before it).
        let mut hung_up = false;
        let resp = loop {
            let ev = tokio::select! {
                ev = tx.next() => ev,
                _ = &mut hangup => { hung_up = true; None }
            };
            if hung_up {
                break None;
            }
            match ev {
                Some(TxEvent::Response(r)) => {
                    let code = r.status().unwrap_or(0);
                    if code < 200 {
                        if code > 100 {
                            events(CallEvent::Progress(code, r.reason().unwrap_or("").into()));
                            start = early_media(start, &oa, &r, &options, &events);
                        }
                        continue;
                    }
                    break Some(r);
                }
                Some(TxEvent::Timeout) => {
                    return Ok(CallReport::failed(
                        408,
                        "Request Timeout",
                        Ending::Timeout,
                        &peer,
                    ))
                }
                Some(TxEvent::TransportError) | None => {
                    return Ok(CallReport::failed(
                        503,
                        "Service Unavailable",
                        Ending::Timeout,
                        &peer,
                    ))
                }
            }
        };
        let Some(resp) = resp else {
            return cancel(
                ua, tx, invite, route, local, oa, start, options, events, &peer,
            )
            .await;
        };
        let code = resp.status().unwrap_or(0);
        if matches!(code, 401 | 407) && attempts < 2 {
            if let Some(a) = ua.authorization(&resp, "INVITE", target.as_str(), 1) {
                attempts += 1;
                auth = Some(a);
                cseq += 1;
                oa.cancel_offer();
                let _ = oa.create_offer(&local);
                continue;
            }
        }
        if code >= 300 {
            return Ok(CallReport::failed(
                code,
                resp.reason().unwrap_or(""),
                Ending::Rejected,
                &peer,
            ));
        }
        // 2xx: the dialog, the ACK, the media.
        return confirmed(
            ua, tx, invite, resp, route, local, oa, start, options, events, hangup,
        )
        .await;
    }
}

/// A provisional response with an SDP answer (and a To tag) starts early
/// media, or moves it when it already runs (RFC 3261 §13.2.1, RFC 3960).
fn early_media(
    start: MediaStart,
    oa: &OfferAnswer,
    r: &Message,
    options: &CallOptions,
    events: &EventSink,
) -> MediaStart {
    let has_tag = r.to().is_ok_and(|t| t.tag().is_some());
    let Some(answer) = parse_sdp(r).filter(|_| has_tag) else {
        return start;
    };
    let mut probe = oa.clone();
    let Ok(Some(audio)) = probe.handle_answer(&answer) else {
        return start;
    };
    match start {
        MediaStart::Socket(rtp) => {
            events(CallEvent::EarlyMedia(r.status().unwrap_or(183)));
            MediaStart::Early(Box::new(Early {
                media: rtp.start(&audio, options.media.clone(), events.clone()),
                offer_answer: probe,
                audio,
            }))
        }
        MediaStart::Early(mut e) => {
            if e.audio != audio {
                e.media.update(&audio);
            }
            e.offer_answer = probe;
            e.audio = audio;
            MediaStart::Early(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn confirmed(
    ua: &UserAgent,
    tx: ClientTransaction,
    invite: Message,
    ok: Message,
    route: CallRoute,
    local: LocalAudio,
    mut oa: OfferAnswer,
    start: MediaStart,
    options: CallOptions,
    events: EventSink,
    hangup: impl Future<Output = ()>,
) -> Result<CallReport, UaError> {
    let answered_at = Instant::now();
    let dialog = Dialog::from_uac_response(&invite, &ok).map_err(peer_error)?;
    let sent_by = ua.local_addr().to_string();
    let branch = crate::agent::new_branch();
    let ack = dialog
        .ack(&ok, &via(ua, &sent_by, &branch))
        .map_err(peer_error)?
        .header("User-Agent", ua.user_agent())
        .build()
        .map_err(local_error)?;
    let ack_dest = ua.next_hop(&ack).await?;
    ua.send_stateless(ack.clone(), ack_dest).await?;
    let mut audio: Option<NegotiatedAudio> = match parse_sdp(&ok) {
        Some(answer) => oa.handle_answer(&answer).ok().flatten(),
        None => None,
    };
    let media = match start {
        MediaStart::Socket(rtp) => audio
            .as_ref()
            .map(|a| rtp.start(a, options.media.clone(), events.clone())),
        MediaStart::Early(e) => {
            let e = *e;
            match &audio {
                Some(a) if *a != e.audio => e.media.update(a),
                Some(_) => {}
                None => {
                    // The 2xx repeats no SDP: the early answer stands.
                    oa = e.offer_answer;
                    audio = Some(e.audio);
                }
            }
            Some(e.media)
        }
    };
    let status = ok.status().unwrap_or(200);
    let reason = ok.reason().unwrap_or("OK").to_owned();
    let cseq = ok.cseq().map(|c| c.seq).unwrap_or(1);
    let mut s = Session::new(
        ua,
        dialog,
        route,
        media,
        oa,
        local,
        events.clone(),
        &options.control,
    );
    s.acks.push((cseq, ack.clone(), ack_dest));
    if audio.is_none() {
        // No usable answer: end the call we just confirmed.
        s.stop_media().await;
        s.bye().await;
        return Err(UaError::Peer("the 2xx carried no usable SDP answer".into()));
    }
    // Session timers (RFC 4028 §7.2): the 2xx says who refreshes.
    if let Some((secs, refresher)) = session_expires(&ok) {
        s.timer = Some(SessionTimer {
            interval: Duration::from_secs(u64::from(secs)),
            we_refresh: refresher.as_deref() != Some("uas"),
            peer_supports: supports_timer(&ok),
        });
    }
    events(CallEvent::Answered);
    // Keep absorbing 2xx retransmissions of the INVITE transaction.
    s.absorbers
        .push(absorb_retransmissions(ua, tx, ack, ack_dest));
    let deadline = options.duration.map(|d| answered_at + d);
    Ok(s.run(deadline, hangup, answered_at, status, reason).await)
}

/// CANCEL (RFC 3261 §9.1) and the INVITE's final response; a 2xx racing
/// the CANCEL is ACKed and the call hung up at once.
#[allow(clippy::too_many_arguments)]
async fn cancel(
    ua: &UserAgent,
    mut tx: ClientTransaction,
    invite: Message,
    route: CallRoute,
    local: LocalAudio,
    oa: OfferAnswer,
    start: MediaStart,
    options: CallOptions,
    events: EventSink,
    peer: &str,
) -> Result<CallReport, UaError> {
    let cancel = cancel_request(&invite)
        .map_err(local_error)?
        .build()
        .map_err(local_error)?;
    let _cancel_tx = ua.start(cancel, tx.destination).await?;
    let wait = tokio::time::timeout(Duration::from_secs(32), async {
        loop {
            match tx.next().await {
                Some(TxEvent::Response(r)) if r.status().unwrap_or(0) >= 200 => return Some(r),
                Some(TxEvent::Response(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    match wait {
        Ok(Some(r)) if r.status().is_some_and(|s| (200..300).contains(&s)) => {
            let mut report = confirmed(
                ua,
                tx,
                invite,
                r,
                route,
                local,
                oa,
                start,
                CallOptions {
                    duration: Some(Duration::ZERO),
                    ..options
                },
                events,
                std::future::ready(()),
            )
            .await?;
            report.ending = Ending::Cancelled;
            Ok(report)
        }
        _ => Ok(CallReport::failed(
            487,
            "Request Terminated",
            Ending::Cancelled,
            peer,
        )),
    }
}

/// Answers (or rejects) an incoming call: 180 Ringing, then after
/// `options.after` 200 with the SDP answer (retransmitted until the ACK,
/// RFC 3261 §13.3.1.4), media until the peer's BYE, `options.duration` or
/// `hangup`. A CANCEL while ringing gets 200 and the INVITE 487.
pub async fn answer(
    ua: &UserAgent,
    call: IncomingCall,
    mut options: AnswerOptions,
    events: EventSink,
    hangup: impl Future<Output = ()>,
) -> Result<CallReport, UaError> {
    tokio::pin!(hangup);
    options
        .media
        .live
        .get_or_insert_with(|| options.control.live());
    let IncomingCall {
        key,
        request: invite,
        messages: mut route,
        ..
    } = call;
    let peer = invite
        .from()
        .map(|f| f.uri().as_str().to_owned())
        .unwrap_or_default();
    let tag = random_hex(8);
    if let Some(code) = options.reject {
        let code = code.clamp(300, 699);
        ua.respond(key, final_reply(&invite, &tag, ua.user_agent(), code)?)
            .await?;
        return Ok(CallReport::failed(
            code,
            habla_message::reason_phrase(code),
            Ending::Rejected,
            &peer,
        ));
    }
    let rtp = RtpSocket::bind(ua.local_addr().ip()).await?;
    let local = local_audio(ua, &rtp);
    let mut oa = OfferAnswer::new("habla", u64::from(random_u32()), 1, ua.local_addr().ip());
    let Some(offer) = parse_sdp(&invite) else {
        // Offer in the 2xx / ACK (RFC 3264 late offer) is not supported yet.
        ua.respond(key, final_reply(&invite, &tag, ua.user_agent(), 488)?)
            .await?;
        return Ok(CallReport::failed(
            488,
            "Not Acceptable Here",
            Ending::Rejected,
            &peer,
        ));
    };
    let (sdp, audio) = match oa.create_answer(&offer, &local) {
        Ok((sdp, Some(audio))) => (sdp, audio),
        _ => {
            ua.respond(key, final_reply(&invite, &tag, ua.user_agent(), 488)?)
                .await?;
            return Ok(CallReport::failed(
                488,
                "Not Acceptable Here",
                Ending::Rejected,
                &peer,
            ));
        }
    };
    ua.respond(key, final_reply(&invite, &tag, ua.user_agent(), 180)?)
        .await?;
    // Ring; a CANCEL ends it.
    let ring_until = Instant::now() + options.after;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(ring_until) => break,
            _ = &mut hangup => {
                ua.respond(key, final_reply(&invite, &tag, ua.user_agent(), 480)?).await?;
                return Ok(CallReport::failed(480, "Temporarily Unavailable", Ending::Rejected, &peer));
            }
            m = route.rx.recv() => match m {
                Some(CallMessage::Request { key: ck, request, .. })
                    if request.method() == Some(&Method::Cancel) =>
                {
                    if let Ok(r) = request.response(200).to_tag(&request, &tag).build() {
                        let _ = ua.respond(ck, r).await;
                    }
                    ua.respond(key, final_reply(&invite, &tag, ua.user_agent(), 487)?).await?;
                    return Ok(CallReport::failed(487, "Request Terminated", Ending::CancelledByPeer, &peer));
                }
                Some(CallMessage::Request { key: k, request, .. }) => {
                    if let Ok(r) = request.response(481).build() {
                        let _ = ua.respond(k, r).await;
                    }
                }
                Some(_) => {}
                None => break,
            },
        }
    }
    let mut ok = invite
        .response(200)
        .to_tag(&invite, &tag)
        .header("Contact", &ua.contact())
        .header("Allow", crate::agent::ALLOW)
        .header("Supported", "timer")
        .header("Server", ua.user_agent());
    // Session timers (RFC 4028 §9): the caller's interval; the caller
    // refreshes when it can (or says so), else we do.
    let peer_supports = supports_timer(&invite);
    let mut timer = None;
    if let Some((secs, refresher)) = session_expires(&invite) {
        let peer_refreshes = match refresher.as_deref() {
            Some("uas") => false,
            Some(_) => true,
            None => peer_supports,
        };
        let who = if peer_refreshes { "uac" } else { "uas" };
        ok = ok.header("Session-Expires", &format!("{secs};refresher={who}"));
        if peer_supports {
            ok = ok.header("Require", "timer");
        }
        timer = Some(SessionTimer {
            interval: Duration::from_secs(u64::from(secs)),
            we_refresh: !peer_refreshes,
            peer_supports,
        });
    }
    let ok = ok
        .body("application/sdp", sdp.to_bytes())
        .build()
        .map_err(local_error)?;
    let dialog = Dialog::from_uas_response(&invite, &ok).map_err(peer_error)?;
    ua.respond(key, ok.clone()).await?;
    let answered_at = Instant::now();
    events(CallEvent::Answered);
    let media = rtp.start(&audio, options.media.clone(), events.clone());
    // Retransmit the 2xx until the ACK (T1 doubling to T2, 64*T1 in all).
    let mut early: Vec<CallMessage> = Vec::new();
    let mut interval = Duration::from_millis(500);
    let give_up = answered_at + Duration::from_secs(32);
    let mut next = answered_at + interval;
    let acked = loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {
                if Instant::now() >= give_up { break false; }
                let _ = ua.respond(key, ok.clone()).await;
                interval = (interval * 2).min(Duration::from_secs(4));
                next = Instant::now() + interval;
            }
            m = route.rx.recv() => match m {
                Some(CallMessage::Ack(_)) => break true,
                Some(m @ CallMessage::Request { .. }) => {
                    // A BYE may overtake the ACK: keep it for the session.
                    early.push(m);
                    break true;
                }
                Some(_) => {}
                None => break false,
            },
        }
    };
    let mut session = Session::new(
        ua,
        dialog,
        route,
        Some(media),
        oa,
        local,
        events,
        &options.control,
    );
    session.timer = timer;
    if !acked {
        let media = session.stop_media().await;
        session.bye().await;
        return Ok(CallReport {
            status: 200,
            reason: "OK".into(),
            ending: Ending::Timeout,
            talk_time: answered_at.elapsed(),
            media: Some(media),
            peer,
        });
    }
    for m in early {
        if session.handle(m).await {
            let media = session.stop_media().await;
            return Ok(CallReport {
                status: 200,
                reason: "OK".into(),
                ending: Ending::Remote,
                talk_time: answered_at.elapsed(),
                media: Some(media),
                peer,
            });
        }
    }
    let deadline = options.duration.map(|d| answered_at + d);
    Ok(session
        .run(deadline, hangup, answered_at, 200, "OK".into())
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(extra: &str) -> Message {
        let text = format!(
            "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n\
             Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Message::parse(bytes::Bytes::from(text)).unwrap()
    }

    #[test]
    fn session_expires_and_its_refresher_are_read_in_both_forms() {
        assert_eq!(
            session_expires(&message("Session-Expires: 1800;refresher=UAC\r\n")),
            Some((1800, Some("uac".into())))
        );
        assert_eq!(session_expires(&message("x: 90\r\n")), Some((90, None)));
        assert_eq!(session_expires(&message("Session-Expires: soon\r\n")), None);
        assert_eq!(session_expires(&message("Session-Expires: 0\r\n")), None);
        assert_eq!(session_expires(&message("")), None);
    }

    #[test]
    fn timer_support_is_read_from_supported_or_require() {
        assert!(supports_timer(&message("Supported: 100rel, timer\r\n")));
        assert!(supports_timer(&message("k: timer\r\n")));
        assert!(supports_timer(&message("Require: timer\r\n")));
        assert!(!supports_timer(&message("Supported: 100rel\r\n")));
    }
}
