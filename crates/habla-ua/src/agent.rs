//! The user agent core: one SIP endpoint, a dispatcher task that routes
//! the endpoint's events (responses to the client transaction that asked,
//! requests to the call that owns their Call-ID, new requests to the
//! application), and sending with digest authentication.

use crate::error::UaError;
use bytes::Bytes;
use habla_message::{HeaderName, Message, Method, RequestBuilder, Uri};
use habla_tokio::{Destination, Endpoint, Event, Flow, Handle, TransactionKey, TransportConfig};
use habla_transaction::Transport;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Methods a habla UA accepts.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE";

/// Responses kept for a transaction key nobody has claimed yet (a response
/// can overtake [`Handle::send_request`]'s answer on loopback).
const MAX_ORPHANS: usize = 64;
/// Queue of in-dialog messages per call.
const CALL_QUEUE: usize = 64;

/// Who this UA is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The address of record, `sip:alice@example.org`.
    pub aor: Uri,
    /// Display name for From, if any.
    pub display_name: Option<String>,
    /// Digest credentials for challenges (401/407).
    pub credentials: Option<Credentials>,
}

/// Digest user name and password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// User name (usually the AOR's user part).
    pub username: String,
    /// Password.
    pub password: String,
}

/// How to run a [`UserAgent`].
#[derive(Debug, Clone)]
pub struct UaConfig {
    /// Local SIP address (UDP and TCP); port 0 picks one. Must be a
    /// concrete address (it goes into Contact and SDP).
    pub local: SocketAddr,
    /// Transport for the requests this UA starts.
    pub transport: Transport,
    /// Who we are.
    pub identity: Identity,
    /// User-Agent header value.
    pub user_agent: String,
    /// Transaction timers.
    pub transactions: habla_transaction::Config,
}

/// What happened to a client transaction.
#[allow(clippy::large_enum_variant)] // moved once, from the dispatcher to its owner
#[derive(Debug)]
pub enum TxEvent {
    /// A response (provisional or final; every 2xx to an INVITE).
    Response(Message),
    /// No final response (Timer B/F): treat as 408.
    Timeout,
    /// The transport could not send (treat as 503).
    TransportError,
}

/// A message for a call, routed by Call-ID.
#[derive(Debug)]
pub enum CallMessage {
    /// A request in (or about) the call: BYE, CANCEL, re-INVITE, INFO...
    Request {
        /// Its server transaction.
        key: TransactionKey,
        /// The request.
        request: Message,
        /// Where it came from.
        source: Flow,
    },
    /// An ACK (for a 2xx we sent).
    Ack(Message),
    /// A response matching no transaction (a 2xx retransmitted late).
    Stray(Message),
}

/// A new request for the application.
#[allow(clippy::large_enum_variant)] // moved once, from the dispatcher to the application
#[derive(Debug)]
pub enum Incoming {
    /// A new call (answer it with [`crate::answer`]).
    Invite(IncomingCall),
    /// A MESSAGE (already answered 200).
    Message {
        /// The From URI.
        from: String,
        /// The Content-Type.
        content_type: String,
        /// The body as text (lossy UTF-8).
        text: String,
    },
}

/// An INVITE outside any dialog, with the channel of its Call-ID.
#[derive(Debug)]
pub struct IncomingCall {
    /// The INVITE server transaction.
    pub key: TransactionKey,
    /// The INVITE.
    pub request: Message,
    /// Where it came from.
    pub source: Flow,
    pub(crate) messages: CallRoute,
}

/// The receiving end of a call's Call-ID route; unregisters on drop.
#[derive(Debug)]
pub(crate) struct CallRoute {
    pub(crate) rx: mpsc::Receiver<CallMessage>,
    call_id: String,
    shared: Arc<Shared>,
}

impl Drop for CallRoute {
    fn drop(&mut self) {
        if let Ok(mut r) = self.shared.routes.lock() {
            r.calls.remove(&self.call_id);
        }
    }
}

#[derive(Default)]
struct Routes {
    tx: HashMap<TransactionKey, mpsc::Sender<TxEvent>>,
    orphans: VecDeque<(TransactionKey, TxEvent)>,
    calls: HashMap<String, mpsc::Sender<CallMessage>>,
}

#[derive(Debug)]
struct Shared {
    routes: Mutex<Routes>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("transactions", &self.tx.len())
            .field("calls", &self.calls.len())
            .finish()
    }
}

/// A SIP user agent: an endpoint and its dispatcher. Cheap to clone.
#[derive(Debug, Clone)]
pub struct UserAgent {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    handle: Handle,
    shared: Arc<Shared>,
    local: SocketAddr,
    config: UaConfig,
    stop: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// A client transaction in progress: its request and its responses.
#[derive(Debug)]
pub struct ClientTransaction {
    /// The transaction key.
    pub key: TransactionKey,
    /// The request as sent (before the transport's Via rewrite).
    pub request: Message,
    /// Where it was sent.
    pub destination: Destination,
    rx: mpsc::Receiver<TxEvent>,
    shared: Arc<Shared>,
}

impl Drop for ClientTransaction {
    fn drop(&mut self) {
        if let Ok(mut r) = self.shared.routes.lock() {
            r.tx.remove(&self.key);
        }
    }
}

impl ClientTransaction {
    /// The next event; `None` once the transaction is gone.
    pub async fn next(&mut self) -> Option<TxEvent> {
        self.rx.recv().await
    }

    /// Waits for the final response, skipping provisional ones. A timeout
    /// becomes 408 and a transport error 503 ([`UaError::NoResponse`]).
    pub async fn final_response(&mut self) -> Result<Message, UaError> {
        loop {
            match self.next().await {
                Some(TxEvent::Response(r)) if r.status().unwrap_or(0) >= 200 => return Ok(r),
                Some(TxEvent::Response(_)) => {}
                Some(TxEvent::Timeout) => return Err(UaError::NoResponse(408)),
                Some(TxEvent::TransportError) | None => return Err(UaError::NoResponse(503)),
            }
        }
    }
}

impl UserAgent {
    /// Binds the endpoint (UDP and TCP on `config.local`) and starts the
    /// dispatcher. New calls and messages arrive on the returned receiver;
    /// dropping it makes the UA answer them 480.
    pub async fn bind(config: UaConfig) -> Result<(UserAgent, mpsc::Receiver<Incoming>), UaError> {
        let mut tcfg = TransportConfig::udp_and_tcp(config.local);
        tcfg.agent = config.user_agent.clone();
        let endpoint = Endpoint::bind(tcfg, config.transactions)
            .await
            .map_err(|e| UaError::Local(format!("cannot bind {}: {e}", config.local)))?;
        let local = endpoint
            .local_addr(Transport::Udp)
            .ok_or_else(|| UaError::Local("no UDP listening point".into()))?;
        let shared = Arc::new(Shared {
            routes: Mutex::new(Routes::default()),
        });
        let (in_tx, in_rx) = mpsc::channel(64);
        let stop = Arc::new(Notify::new());
        let handle = endpoint.handle();
        let task = tokio::spawn(dispatch(
            endpoint,
            shared.clone(),
            in_tx,
            stop.clone(),
            config.user_agent.clone(),
        ));
        let ua = UserAgent {
            inner: Arc::new(Inner {
                handle,
                shared,
                local,
                config,
                stop,
                task: Mutex::new(Some(task)),
            }),
        };
        Ok((ua, in_rx))
    }

    /// Stops the dispatcher and the endpoint (running transactions get a
    /// bounded time to finish).
    pub async fn shutdown(&self) {
        self.inner.stop.notify_one();
        let task = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }

    /// The bound local SIP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The transport used for requests this UA starts.
    pub fn transport(&self) -> Transport {
        self.inner.config.transport
    }

    /// Who we are.
    pub fn identity(&self) -> &Identity {
        &self.inner.config.identity
    }

    /// The User-Agent string.
    pub fn user_agent(&self) -> &str {
        &self.inner.config.user_agent
    }

    /// The endpoint handle (for responses).
    pub fn handle(&self) -> &Handle {
        &self.inner.handle
    }

    /// The transport token for Via (`UDP`, `TCP`).
    pub fn via_transport(&self) -> &'static str {
        match self.transport() {
            Transport::Tcp => "TCP",
            _ => "UDP",
        }
    }

    /// Our Contact value, `<sip:user@ip:port>` (`;transport=tcp` over TCP).
    pub fn contact(&self) -> String {
        let user = self
            .identity()
            .aor
            .as_sip()
            .and_then(|s| s.user())
            .unwrap_or("habla")
            .to_owned();
        let t = if self.transport() == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        format!("<sip:{user}@{}{t}>", self.local_addr())
    }

    /// The From value with a tag.
    pub fn from_header(&self, tag: &str) -> String {
        let id = self.identity();
        match &id.display_name {
            Some(d) => format!("\"{}\" <{}>;tag={tag}", d.replace('"', ""), id.aor.as_str()),
            None => format!("<{}>;tag={tag}", id.aor.as_str()),
        }
    }

    /// A fresh Call-ID.
    pub fn new_call_id(&self) -> String {
        format!("{}@{}", random_hex(16), self.local_addr().ip())
    }

    /// A request skeleton outside any dialog: Request-URI, Via (fresh
    /// branch), Max-Forwards, From (tagged), To, Call-ID, CSeq, Contact,
    /// User-Agent.
    pub fn out_of_dialog(
        &self,
        method: Method,
        uri: &Uri,
        to: &str,
        from_tag: &str,
        call_id: &str,
        cseq: u32,
    ) -> RequestBuilder {
        RequestBuilder::new(method, uri)
            .via(
                self.via_transport(),
                &self.local_addr().to_string(),
                &new_branch(),
                true,
            )
            .max_forwards(70)
            .from(&self.from_header(from_tag))
            .to(to)
            .call_id(call_id)
            .cseq(cseq)
            .header("Contact", &self.contact())
            .header("User-Agent", self.user_agent())
    }

    /// Starts a client transaction for `request` towards `destination`.
    pub async fn start(
        &self,
        request: Message,
        destination: Destination,
    ) -> Result<ClientTransaction, UaError> {
        let key = self
            .inner
            .handle
            .send_request(request.clone(), destination)
            .await
            .map_err(|e| UaError::Transport(e.to_string()))?;
        let (tx, rx) = mpsc::channel(32);
        {
            let mut r = self.inner.shared.routes.lock().expect("routes lock");
            let mut kept = VecDeque::new();
            for (k, ev) in r.orphans.drain(..) {
                if k == key {
                    let _ = tx.try_send(ev);
                } else {
                    kept.push_back((k, ev));
                }
            }
            r.orphans = kept;
            r.tx.insert(key, tx);
        }
        Ok(ClientTransaction {
            key,
            request,
            destination,
            rx,
            shared: self.inner.shared.clone(),
        })
    }

    /// Sends a message outside transactions (the ACK for a 2xx).
    pub async fn send_stateless(
        &self,
        message: Message,
        destination: Destination,
    ) -> Result<(), UaError> {
        self.inner
            .handle
            .send_stateless(message, destination)
            .await
            .map_err(|e| UaError::Transport(e.to_string()))
    }

    /// Answers a server transaction.
    pub async fn respond(&self, key: TransactionKey, response: Message) -> Result<(), UaError> {
        self.inner
            .handle
            .send_response(key, response)
            .await
            .map_err(|e| UaError::Transport(e.to_string()))
    }

    /// Routes the in-dialog messages of `call_id` to the returned receiver
    /// (for calls this UA places).
    pub(crate) fn route_call(&self, call_id: &str) -> CallRoute {
        let (tx, rx) = mpsc::channel(CALL_QUEUE);
        self.inner
            .shared
            .routes
            .lock()
            .expect("routes lock")
            .calls
            .insert(call_id.to_owned(), tx);
        CallRoute {
            rx,
            call_id: call_id.to_owned(),
            shared: self.inner.shared.clone(),
        }
    }

    /// The credentials header answering a 401/407 `response` for a request
    /// with `method` and `uri`: `(header name, value)`, or `None` when we
    /// have no credentials or no usable challenge.
    pub fn authorization(
        &self,
        response: &Message,
        method: &str,
        uri: &str,
        nc: u32,
    ) -> Option<(&'static str, String)> {
        let creds = self.identity().credentials.as_ref()?;
        let (from, to) = match response.status()? {
            401 => (HeaderName::WwwAuthenticate, "Authorization"),
            407 => (HeaderName::ProxyAuthenticate, "Proxy-Authorization"),
            _ => return None,
        };
        let challenges: Vec<_> = response.auth_headers(from).filter_map(Result::ok).collect();
        let challenge = habla_auth::client::select_challenge(&challenges)?;
        let cnonce = random_hex(16);
        let value = habla_auth::client::authorization(
            challenge,
            &habla_auth::client::ClientRequest {
                username: &creds.username,
                password: &creds.password,
                method,
                uri,
                cnonce: &cnonce,
                nc,
            },
        )
        .ok()?;
        Some((to, value))
    }

    /// Sends a non-INVITE request built by `build(cseq, credentials)`,
    /// answering up to two digest challenges with a new CSeq, and returns
    /// the final response.
    pub async fn request_with_auth(
        &self,
        method: Method,
        uri: &Uri,
        destination: Destination,
        mut build: impl FnMut(u32, Option<&(&'static str, String)>) -> Result<Message, UaError>,
        first_cseq: u32,
    ) -> Result<(Message, u32), UaError> {
        let mut cseq = first_cseq;
        let mut auth = None;
        for attempt in 0..3 {
            let req = build(cseq, auth.as_ref())?;
            let mut tx = self.start(req, destination).await?;
            let resp = tx.final_response().await?;
            let code = resp.status().unwrap_or(0);
            if matches!(code, 401 | 407) && (attempt == 0 || (attempt == 1 && is_stale(&resp))) {
                if let Some(a) = self.authorization(&resp, method.as_str(), uri.as_str(), 1) {
                    auth = Some(a);
                    cseq += 1;
                    continue;
                }
            }
            return Ok((resp, cseq));
        }
        unreachable!("the loop returns")
    }

    /// Where to send an out-of-dialog request for `uri`, or an in-dialog
    /// request (its first Route, else its Request-URI).
    pub fn next_hop(
        &self,
        request: &Message,
    ) -> impl std::future::Future<Output = Result<Destination, UaError>> + Send + '_ {
        let uri = match request.routes() {
            Ok(r) if !r.is_empty() => Ok(r[0].uri().clone()),
            _ => request
                .request_uri()
                .cloned()
                .map_err(|e| UaError::Local(e.to_string())),
        };
        async move { self.resolve(&uri?).await }
    }

    /// Resolves a SIP URI to a transport address (A/AAAA only: no NAPTR or
    /// SRV; port 5060 by default).
    pub async fn resolve(&self, uri: &Uri) -> Result<Destination, UaError> {
        let sip = uri
            .as_sip()
            .ok_or_else(|| UaError::Local(format!("not a SIP URI: {}", uri.as_str())))?;
        let transport = match sip.transport() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
            _ => self.transport(),
        };
        let host = sip.maddr().unwrap_or(sip.host().as_str()).to_owned();
        let port = sip.port().unwrap_or(5060);
        let addr = resolve_host(&host, port).await?;
        Ok(Destination::Address(transport, addr))
    }

    /// Sends OPTIONS to `uri` and returns the final response and the round
    /// trip time of the exchange (challenges answered if we have
    /// credentials).
    pub async fn options(&self, uri: &Uri) -> Result<(Message, Duration), UaError> {
        let dest = self.resolve(uri).await?;
        let call_id = self.new_call_id();
        let tag = random_hex(8);
        let to = format!("<{}>", uri.as_str());
        let started = tokio::time::Instant::now();
        let (resp, _) = self
            .request_with_auth(
                Method::Options,
                uri,
                dest,
                |cseq, auth| {
                    let mut b = self
                        .out_of_dialog(Method::Options, uri, &to, &tag, &call_id, cseq)
                        .header("Accept", "application/sdp");
                    if let Some((n, v)) = auth {
                        b = b.header(n, v);
                    }
                    b.build().map_err(|e| UaError::Local(e.to_string()))
                },
                1,
            )
            .await?;
        Ok((resp, started.elapsed()))
    }

    /// Sends a MESSAGE (RFC 3428) with `text/plain` to `uri` and returns
    /// the final response.
    pub async fn message(&self, uri: &Uri, text: &str) -> Result<Message, UaError> {
        let dest = self.resolve(uri).await?;
        let call_id = self.new_call_id();
        let tag = random_hex(8);
        let to = format!("<{}>", uri.as_str());
        let body = Bytes::copy_from_slice(text.as_bytes());
        let (resp, _) = self
            .request_with_auth(
                Method::Message,
                uri,
                dest,
                |cseq, auth| {
                    let mut b = self.out_of_dialog(Method::Message, uri, &to, &tag, &call_id, cseq);
                    if let Some((n, v)) = auth {
                        b = b.header(n, v);
                    }
                    b.body("text/plain;charset=UTF-8", body.clone())
                        .build()
                        .map_err(|e| UaError::Local(e.to_string()))
                },
                1,
            )
            .await?;
        Ok(resp)
    }
}

fn is_stale(resp: &Message) -> bool {
    [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate]
        .into_iter()
        .flat_map(|h| {
            resp.auth_headers(h)
                .filter_map(Result::ok)
                .collect::<Vec<_>>()
        })
        .any(|c| {
            c.get("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true"))
        })
}

/// Resolves `host` (an IP literal, bracketed IPv6 or a name) with `port`.
pub async fn resolve_host(host: &str, port: u16) -> Result<SocketAddr, UaError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| UaError::Local(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| UaError::Local(format!("{host} has no address")))
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A random u32 (SSRC, sequence numbers).
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source works");
    u32::from_le_bytes(b)
}

/// A fresh RFC 3261 branch.
pub fn new_branch() -> String {
    format!("z9hG4bK{}", random_hex(10))
}

fn simple_response(request: &Message, code: u16, agent: &str) -> Option<Message> {
    let mut b = request.response(code).to_tag(request, &random_hex(6));
    if matches!(code, 200 | 405) {
        b = b.header("Allow", ALLOW);
    }
    if request.method() == Some(&Method::Options) {
        b = b
            .header("Accept", "application/sdp, text/plain")
            .header("Supported", "");
    }
    b.header("Server", agent).build().ok()
}

async fn dispatch(
    mut endpoint: Endpoint,
    shared: Arc<Shared>,
    incoming: mpsc::Sender<Incoming>,
    stop: Arc<Notify>,
    agent: String,
) {
    let handle = endpoint.handle();
    loop {
        let ev = tokio::select! {
            ev = endpoint.recv() => match ev { Some(ev) => ev, None => break },
            _ = stop.notified() => break,
        };
        match ev {
            Event::Response { key, response } => {
                route_tx(&shared, key, TxEvent::Response(response))
            }
            Event::Timeout { key, .. } => route_tx(&shared, key, TxEvent::Timeout),
            Event::TransportError { key } => route_tx(&shared, key, TxEvent::TransportError),
            Event::Terminated { key } => {
                shared.routes.lock().expect("routes lock").tx.remove(&key);
            }
            Event::Ack { request, .. } => {
                let _ = route_call(&shared, &request, CallMessage::Ack(request.clone()));
            }
            Event::StrayResponse { response, .. } => {
                let is_invite = response.cseq().is_ok_and(|c| c.method == Method::Invite);
                if is_invite {
                    let _ = route_call(&shared, &response, CallMessage::Stray(response.clone()));
                }
            }
            Event::Request {
                key,
                request,
                source,
                ..
            } => {
                let flow = source.addr;
                let msg = CallMessage::Request {
                    key,
                    request,
                    source: flow,
                };
                let call_id = call_message_request(&msg)
                    .call_id()
                    .map(|c| c.to_string())
                    .ok();
                let request = match route_call_id(&shared, call_id.as_deref(), msg) {
                    Ok(()) => continue,
                    Err(CallMessage::Request { request, .. }) => request,
                    Err(_) => continue,
                };
                let method = request.method().cloned();
                let in_dialog = request.to().is_ok_and(|t| t.tag().is_some());
                match method {
                    _ if in_dialog => {
                        reply(&handle, key, simple_response(&request, 481, &agent)).await
                    }
                    Some(Method::Cancel | Method::Bye) => {
                        reply(&handle, key, simple_response(&request, 481, &agent)).await
                    }
                    Some(Method::Options) => {
                        reply(&handle, key, simple_response(&request, 200, &agent)).await
                    }
                    Some(Method::Invite) => {
                        if incoming.is_closed() {
                            reply(&handle, key, simple_response(&request, 480, &agent)).await;
                            continue;
                        }
                        let Ok(call_id) = request.call_id().map(|c| c.to_string()) else {
                            reply(&handle, key, simple_response(&request, 400, &agent)).await;
                            continue;
                        };
                        let (tx, rx) = mpsc::channel(CALL_QUEUE);
                        shared
                            .routes
                            .lock()
                            .expect("routes lock")
                            .calls
                            .insert(call_id.clone(), tx);
                        let call = IncomingCall {
                            key,
                            request: request.clone(),
                            source: flow,
                            messages: CallRoute {
                                rx,
                                call_id,
                                shared: shared.clone(),
                            },
                        };
                        if incoming.try_send(Incoming::Invite(call)).is_err() {
                            reply(&handle, key, simple_response(&request, 486, &agent)).await;
                        }
                    }
                    Some(Method::Message) => {
                        if incoming.is_closed() {
                            reply(&handle, key, simple_response(&request, 480, &agent)).await;
                            continue;
                        }
                        reply(&handle, key, simple_response(&request, 200, &agent)).await;
                        let from = request
                            .from()
                            .map(|f| f.uri().as_str().to_owned())
                            .unwrap_or_default();
                        let content_type = request
                            .content_type()
                            .ok()
                            .flatten()
                            .map(|c| c.essence().to_owned())
                            .unwrap_or_default();
                        let text = String::from_utf8_lossy(request.body()).into_owned();
                        let _ = incoming.try_send(Incoming::Message {
                            from,
                            content_type,
                            text,
                        });
                    }
                    _ => reply(&handle, key, simple_response(&request, 405, &agent)).await,
                }
            }
            Event::Refused(_) => {}
            _ => {}
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.shutdown()).await;
}

async fn reply(handle: &Handle, key: TransactionKey, response: Option<Message>) {
    if let Some(r) = response {
        let _ = handle.send_response(key, r).await;
    }
}

fn call_message_request(m: &CallMessage) -> &Message {
    match m {
        CallMessage::Request { request, .. } => request,
        CallMessage::Ack(r) | CallMessage::Stray(r) => r,
    }
}

/// Hands `msg` to the call owning `about`'s Call-ID; gives it back if none.
#[allow(clippy::result_large_err)] // the message comes back to its caller, once
fn route_call(shared: &Shared, about: &Message, msg: CallMessage) -> Result<(), CallMessage> {
    let call_id = about.call_id().map(|c| c.to_string()).ok();
    route_call_id(shared, call_id.as_deref(), msg)
}

#[allow(clippy::result_large_err)]
fn route_call_id(
    shared: &Shared,
    call_id: Option<&str>,
    msg: CallMessage,
) -> Result<(), CallMessage> {
    let Some(call_id) = call_id else {
        return Err(msg);
    };
    let r = shared.routes.lock().expect("routes lock");
    match r.calls.get(call_id) {
        Some(tx) => tx.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
        }),
        None => Err(msg),
    }
}

fn route_tx(shared: &Shared, key: TransactionKey, ev: TxEvent) {
    let mut r = shared.routes.lock().expect("routes lock");
    match r.tx.get(&key) {
        Some(tx) => {
            let _ = tx.try_send(ev);
        }
        None => {
            if r.orphans.len() >= MAX_ORPHANS {
                r.orphans.pop_front();
            }
            r.orphans.push_back((key, ev));
        }
    }
}
