//! INVITE sessions (RFC 3261 §13–15) on both sides, with their media.

use crate::agent::{random_hex, random_u32, CallMessage, CallRoute, IncomingCall, UserAgent};
use crate::error::UaError;
use crate::media::{MediaConfig, MediaReport, MediaSession, RtpSocket};
use habla_dialog::{cancel_request, Dialog, InDialogDecision, LocalVia};
use habla_message::{Message, Method, Uri};
use habla_sdp::{LocalAudio, NegotiatedAudio, OfferAnswer, SessionDescription};
use habla_tokio::Destination;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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

/// A confirmed call: dialog, media, and the messages of its Call-ID.
struct Session<'a> {
    ua: &'a UserAgent,
    dialog: Dialog,
    route: CallRoute,
    media: Option<MediaSession>,
    /// The ACK we sent for the 2xx (UAC), re-sent on retransmitted 2xx.
    ack: Option<(Message, Destination)>,
    offer_answer: OfferAnswer,
    local: LocalAudio,
    events: EventSink,
}

impl Session<'_> {
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
            tokio::select! {
                _ = sleep => break Ending::Local,
                _ = &mut hangup => break Ending::Local,
                m = self.route.rx.recv() => match m {
                    Some(m) => if self.handle(m).await { break Ending::Remote },
                    None => break Ending::Local,
                },
            }
        };
        let talk_time = answered_at.elapsed();
        let media = self.stop_media().await;
        if ending == Ending::Local {
            self.bye().await;
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

    async fn stop_media(&mut self) -> MediaReport {
        match self.media.take() {
            Some(m) => m.stop().await,
            None => MediaReport::default(),
        }
    }

    async fn respond(&mut self, key: habla_tokio::TransactionKey, response: Option<Message>) {
        if let Some(r) = response {
            let _ = self.ua.respond(key, r).await;
        }
    }

    /// Handles one in-call message; true when the peer ended the call.
    async fn handle(&mut self, m: CallMessage) -> bool {
        match m {
            CallMessage::Ack(_) => false,
            CallMessage::Stray(resp) => {
                // A retransmitted 2xx: the ACK got lost (RFC 3261 §13.2.2.4).
                if let Some((ack, dest)) = &self.ack {
                    if resp.status().is_some_and(|s| (200..300).contains(&s)) {
                        let _ = self.ua.send_stateless(ack.clone(), *dest).await;
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
                        self.reinvite(key, request).await;
                        false
                    }
                    Some(Method::Message) => {
                        self.respond(key, reply_to(&request, 200)).await;
                        (self.events)(CallEvent::Message(
                            String::from_utf8_lossy(request.body()).into_owned(),
                        ));
                        false
                    }
                    Some(Method::Options | Method::Info | Method::Update) => {
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

    /// A re-INVITE from the peer: answered with our SDP (the media keeps
    /// its symmetric-RTP peer; hold/resume is not applied to the stream).
    async fn reinvite(&mut self, key: habla_tokio::TransactionKey, request: Message) {
        let answer = match parse_sdp(&request) {
            Some(offer) => match self.offer_answer.create_answer(&offer, &self.local) {
                Ok((sdp, Some(_))) => Some(sdp),
                _ => None,
            },
            None => self.offer_answer.last_sent().cloned(),
        };
        let response = match answer {
            Some(sdp) => request
                .response(200)
                .header("Contact", &self.ua.contact())
                .header("Allow", crate::agent::ALLOW)
                .body("application/sdp", sdp.to_bytes())
                .build()
                .ok(),
            None => reply_to(&request, 488),
        };
        self.respond(key, response).await;
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

/// Places a call: INVITE with an SDP offer (digest challenges answered
/// with a new CSeq), provisional responses reported, the 2xx ACKed (and
/// re-ACKed when retransmitted), media until `options.duration` elapses,
/// `hangup` resolves or the peer hangs up; CANCEL if `hangup` resolves
/// before the answer.
pub async fn place_call(
    ua: &UserAgent,
    options: CallOptions,
    events: EventSink,
    hangup: impl Future<Output = ()>,
) -> Result<CallReport, UaError> {
    tokio::pin!(hangup);
    let target = options.target.clone();
    let peer = target.as_str().to_owned();
    let dest = ua.resolve(&target).await?;
    let rtp = RtpSocket::bind(ua.local_addr().ip()).await?;
    let local = local_audio(ua, &rtp);
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
            .header("Allow", crate::agent::ALLOW);
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
                Some(crate::agent::TxEvent::Response(r)) => {
                    let code = r.status().unwrap_or(0);
                    if code < 200 {
                        if code > 100 {
                            events(CallEvent::Progress(code, r.reason().unwrap_or("").into()));
                        }
                        continue;
                    }
                    break Some(r);
                }
                Some(crate::agent::TxEvent::Timeout) => {
                    return Ok(CallReport::failed(
                        408,
                        "Request Timeout",
                        Ending::Timeout,
                        &peer,
                    ))
                }
                Some(crate::agent::TxEvent::TransportError) | None => {
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
                ua, tx, invite, route, local, oa, rtp, options, events, &peer,
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
            ua, tx, invite, resp, route, local, oa, rtp, options, events, hangup,
        )
        .await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn confirmed(
    ua: &UserAgent,
    tx: crate::agent::ClientTransaction,
    invite: Message,
    ok: Message,
    route: CallRoute,
    local: LocalAudio,
    mut oa: OfferAnswer,
    rtp: RtpSocket,
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
    let audio: Option<NegotiatedAudio> = match parse_sdp(&ok) {
        Some(answer) => oa.handle_answer(&answer).ok().flatten(),
        None => None,
    };
    let status = ok.status().unwrap_or(200);
    let reason = ok.reason().unwrap_or("OK").to_owned();
    let Some(audio) = audio else {
        // No usable answer: end the call we just confirmed.
        let mut s = Session {
            ua,
            dialog,
            route,
            media: Some(rtp.start(
                &dummy_audio(),
                MediaConfig::default(),
                crate::ignore_events(),
            )),
            ack: Some((ack, ack_dest)),
            offer_answer: oa,
            local,
            events,
        };
        s.bye().await;
        return Err(UaError::Peer("the 2xx carried no usable SDP answer".into()));
    };
    events(CallEvent::Answered);
    let media = rtp.start(&audio, options.media.clone(), events.clone());
    // Keep absorbing 2xx retransmissions of the INVITE transaction.
    let retrans = {
        let ua = ua.clone();
        let ack = ack.clone();
        let mut tx = tx;
        tokio::spawn(async move {
            while let Some(ev) = tx.next().await {
                if let crate::agent::TxEvent::Response(r) = ev {
                    if r.status().is_some_and(|s| (200..300).contains(&s)) {
                        let _ = ua.send_stateless(ack.clone(), ack_dest).await;
                    }
                }
            }
        })
    };
    let s = Session {
        ua,
        dialog,
        route,
        media: Some(media),
        ack: Some((ack, ack_dest)),
        offer_answer: oa,
        local,
        events,
    };
    let deadline = options.duration.map(|d| answered_at + d);
    let report = s.run(deadline, hangup, answered_at, status, reason).await;
    retrans.abort();
    Ok(report)
}

fn dummy_audio() -> NegotiatedAudio {
    NegotiatedAudio {
        media_index: 0,
        remote_address: "0.0.0.0".into(),
        remote_port: 0,
        codec: habla_sdp::AudioCodec::Pcmu,
        payload_type: 0,
        telephone_event: None,
        ptime: 20,
        direction: habla_sdp::Direction::Inactive,
    }
}

/// CANCEL (RFC 3261 §9.1) and the INVITE's final response; a 2xx racing
/// the CANCEL is ACKed and the call hung up at once.
#[allow(clippy::too_many_arguments)]
async fn cancel(
    ua: &UserAgent,
    mut tx: crate::agent::ClientTransaction,
    invite: Message,
    route: CallRoute,
    local: LocalAudio,
    oa: OfferAnswer,
    rtp: RtpSocket,
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
                Some(crate::agent::TxEvent::Response(r)) if r.status().unwrap_or(0) >= 200 => {
                    return Some(r)
                }
                Some(crate::agent::TxEvent::Response(_)) => {}
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
                rtp,
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
    options: AnswerOptions,
    events: EventSink,
    hangup: impl Future<Output = ()>,
) -> Result<CallReport, UaError> {
    tokio::pin!(hangup);
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
    let ok = invite
        .response(200)
        .to_tag(&invite, &tag)
        .header("Contact", &ua.contact())
        .header("Allow", crate::agent::ALLOW)
        .header("Server", ua.user_agent())
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
    let mut session = Session {
        ua,
        dialog,
        route,
        media: Some(media),
        ack: None,
        offer_answer: oa,
        local,
        events,
    };
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
