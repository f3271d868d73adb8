//! The user agent subcommands: `register`, `call`, `answer`, `message`,
//! `options`. One line per event on stdout (tests and scripts read them);
//! the exit code tells the outcome ([`Exit`]).

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use habla_message::{Message, Uri};
use habla_transaction::Transport;
use habla_ua::{
    AnswerOptions, AudioSource, CallControl, CallEvent, CallOptions, CallReport, Credentials,
    Ending, EventSink, Identity, Incoming, MediaConfig, Registration, UaConfig, UaError, UserAgent,
};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// Exit codes of the UA commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A local problem (arguments, files, sockets).
    Local = 1,
    /// The request or call was refused with a final response (3xx–6xx).
    Rejected = 3,
    /// Authentication failed (401/407 after sending credentials, 403).
    Auth = 4,
    /// No final response (timeout, transport failure).
    NoResponse = 5,
    /// Cancelled by the user before an answer.
    Cancelled = 6,
}

fn exit_for(status: u16) -> Exit {
    match status {
        200..=299 => Exit::Ok,
        401 | 403 | 407 => Exit::Auth,
        408 => Exit::NoResponse,
        _ => Exit::Rejected,
    }
}

/// Options shared by every UA command.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Local SIP address, IP:PORT (default: an ephemeral port on the
    /// address that routes to the target).
    #[arg(long, value_name = "ADDR")]
    local: Option<SocketAddr>,
    /// Transport for requests: udp or tcp.
    #[arg(long, default_value = "udp", value_name = "udp|tcp")]
    transport: String,
    /// Digest password (for 401/407 challenges).
    #[arg(long)]
    password: Option<String>,
    /// Digest user name (default: the user part of the address).
    #[arg(long)]
    user: Option<String>,
}

/// `habla register`.
#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The address of record, sip:alice@HOST.
    aor: String,
    /// Requested registration lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    expires: u32,
    #[command(flatten)]
    common: Common,
}

/// `habla call`.
#[derive(Args, Debug)]
pub struct CallArgs {
    /// Whom to call, sip:bob@HOST.
    target: String,
    /// Our address (From); default sip:anonymous@anonymous.invalid.
    #[arg(long)]
    from: Option<String>,
    /// WAV file to play (converted to 8 kHz mono).
    #[arg(long, value_name = "FILE")]
    play: Option<PathBuf>,
    /// Play a tone of this frequency (Hz) instead of a file.
    #[arg(long, value_name = "HZ")]
    tone: Option<f64>,
    /// Record what is heard to this WAV file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Hang up this long after the answer (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// DTMF digits to send (RFC 4733) half a second after the answer.
    #[arg(long)]
    dtmf: Option<String>,
    /// Put the peer on hold (re-INVITE, a=sendonly) this long after the answer.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    hold_after: Option<Duration>,
    /// Take the peer off hold this long after the answer.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    resume_after: Option<Duration>,
    #[command(flatten)]
    common: Common,
}

/// `habla answer`.
#[derive(Args, Debug)]
pub struct AnswerArgs {
    /// Our address of record, sip:bob@HOST (registered there).
    aor: String,
    /// WAV file to play to callers.
    #[arg(long, value_name = "FILE")]
    play: Option<PathBuf>,
    /// Play a tone of this frequency (Hz).
    #[arg(long, value_name = "HZ")]
    tone: Option<f64>,
    /// Record each call; `%n` is replaced by the call number (1, 2...).
    #[arg(long, value_name = "FILE")]
    record: Option<String>,
    /// Ring this long before answering.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    after: Duration,
    /// Reject calls with this status (e.g. 486) instead of answering.
    #[arg(long, value_name = "CODE")]
    reject: Option<u16>,
    /// Hang up this long after answering (default: wait for the caller).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Registration lifetime in seconds.
    #[arg(long, default_value_t = 600)]
    expires: u32,
    /// Do not register (wait for calls sent to the local address).
    #[arg(long)]
    no_register: bool,
    /// Put the peer on hold (re-INVITE, a=sendonly) this long after the answer.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    hold_after: Option<Duration>,
    /// Take the peer off hold this long after the answer.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    resume_after: Option<Duration>,
    #[command(flatten)]
    common: Common,
}

/// `habla message`.
#[derive(Args, Debug)]
pub struct MessageArgs {
    /// Recipient, sip:bob@HOST.
    target: String,
    /// The text.
    text: String,
    /// Our address (From); default sip:anonymous@anonymous.invalid.
    #[arg(long)]
    from: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `habla options`.
#[derive(Args, Debug)]
pub struct OptionsArgs {
    /// Whom to ask, sip:HOST or sip:user@HOST.
    target: String,
    /// Our address (From); default sip:anonymous@anonymous.invalid.
    #[arg(long)]
    from: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// Parses `10s`, `500ms`, `2m`, `1h` or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (try 10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_uri(s: &str) -> Result<Uri> {
    let s = if s.contains(':') && (s.starts_with("sip:") || s.starts_with("sips:")) {
        s.to_owned()
    } else {
        format!("sip:{s}")
    };
    let uri = Uri::parse(&s).map_err(|e| anyhow!("bad SIP URI {s:?}: {e}"))?;
    if uri.as_sip().is_none() {
        bail!("not a SIP URI: {s}");
    }
    Ok(uri)
}

/// The local IP that routes to `target` (no packet is sent).
async fn routed_ip(target: &Uri) -> Result<IpAddr> {
    let sip = target.as_sip().context("not a SIP URI")?;
    let addr = habla_ua::resolve_host(sip.host().as_str(), sip.port().unwrap_or(5060)).await?;
    let any: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let s = std::net::UdpSocket::bind(any)?;
    s.connect(addr)?;
    Ok(s.local_addr()?.ip())
}

async fn user_agent(common: &Common, aor: &Uri, toward: &Uri) -> Result<UserAgent> {
    let (ua, _incoming) = user_agent_with_incoming(common, aor, toward).await?;
    Ok(ua)
}

async fn user_agent_with_incoming(
    common: &Common,
    aor: &Uri,
    toward: &Uri,
) -> Result<(UserAgent, tokio::sync::mpsc::Receiver<Incoming>)> {
    let transport = match common.transport.to_ascii_lowercase().as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        t => bail!("unsupported transport {t:?} (udp or tcp)"),
    };
    let local = match common.local {
        Some(l) => l,
        None => SocketAddr::new(routed_ip(toward).await?, 0),
    };
    let credentials = common.password.clone().map(|password| Credentials {
        username: common
            .user
            .clone()
            .or_else(|| aor.as_sip().and_then(|s| s.user()).map(str::to_owned))
            .unwrap_or_default(),
        password,
    });
    let config = UaConfig {
        local,
        transport,
        identity: Identity {
            aor: aor.clone(),
            display_name: None,
            credentials,
        },
        user_agent: concat!("habla/", env!("CARGO_PKG_VERSION")).into(),
        transactions: habla_transaction::Config::default(),
    };
    Ok(UserAgent::bind(config).await?)
}

fn anonymous() -> Uri {
    Uri::parse("sip:anonymous@anonymous.invalid").expect("valid URI")
}

fn status_line(m: &Message) -> String {
    format!("{} {}", m.status().unwrap_or(0), m.reason().unwrap_or(""))
}

fn failure(e: &UaError) -> (Exit, String) {
    match e {
        UaError::NoResponse(code) => (Exit::NoResponse, format!("{code} no response")),
        UaError::Transport(m) => (Exit::NoResponse, format!("503 transport: {m}")),
        other => (Exit::Local, other.to_string()),
    }
}

async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn source(play: Option<&Path>, tone: Option<f64>) -> Result<AudioSource> {
    if let Some(p) = play {
        let f = std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        let samples = habla_media::wav::read_wav(std::io::BufReader::new(f), 3600)
            .with_context(|| format!("cannot play {}", p.display()))?;
        return Ok(AudioSource::Samples(Arc::new(samples)));
    }
    Ok(match tone {
        Some(frequency) => AudioSource::Tone {
            frequency,
            amplitude: 8000,
        },
        None => AudioSource::Silence,
    })
}

fn write_recording(path: &Path, samples: &[i16]) -> Result<()> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    habla_media::wav::write_wav(std::io::BufWriter::new(f), samples)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn media_summary(r: &CallReport) -> String {
    match &r.media {
        Some(m) => {
            let peer = match &m.peer {
                Some(p) => format!(
                    "; peer reports lost {} ({:.1}%) jitter {:.1} ms",
                    p.cumulative_lost,
                    p.fraction_lost * 100.0,
                    p.jitter_ms
                ),
                None => String::new(),
            };
            format!(
                "rtp sent {} received {} lost {} jitter {:.1} ms; rtcp sent {} received {}{peer}; dtmf {:?}",
                m.stats.packets_sent,
                m.stats.packets_received,
                m.stats.lost,
                m.stats.jitter_ms,
                m.stats.rtcp_sent,
                m.stats.rtcp_received,
                m.dtmf_received
            )
        }
        None => "no media".into(),
    }
}

fn ending(e: Ending) -> &'static str {
    match e {
        Ending::Local => "hung up",
        Ending::Remote => "peer hung up",
        Ending::Cancelled => "cancelled",
        Ending::CancelledByPeer => "cancelled by peer",
        Ending::Rejected => "rejected",
        Ending::Timeout => "timeout",
    }
}

/// Where a call stands, for the progress line.
#[derive(Debug, Clone, Copy)]
enum Phase {
    Calling,
    Ringing,
    Early,
    InCall,
}

/// Event lines, and on a terminal a progress line kept at the bottom
/// (rewritten in place every half second); plain lines otherwise.
#[derive(Clone)]
struct Output {
    tty: bool,
    state: Arc<Mutex<(Phase, tokio::time::Instant, bool)>>,
    control: CallControl,
}

impl Output {
    fn new(control: CallControl) -> Output {
        Output {
            tty: std::io::stdout().is_terminal(),
            state: Arc::new(Mutex::new((
                Phase::Calling,
                tokio::time::Instant::now(),
                false,
            ))),
            control,
        }
    }

    fn line(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.tty {
            // Clear the progress line first.
            let _ = write!(out, "\r\x1b[K");
        }
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    fn set(&self, phase: Phase) {
        if let Ok(mut s) = self.state.lock() {
            *s = (phase, tokio::time::Instant::now(), s.2);
        }
    }

    fn progress_text(&self) -> String {
        let (phase, since, held) = *self.state.lock().expect("state lock");
        let secs = since.elapsed().as_secs();
        let live = self.control.live();
        let counts = format!("rtp sent {} received {}", live.sent(), live.received());
        match phase {
            Phase::Calling => format!("calling... {secs} s"),
            Phase::Ringing => format!("ringing... {secs} s"),
            Phase::Early => format!("early media {secs} s; {counts}"),
            Phase::InCall => format!(
                "in call {:02}:{:02}{}; {counts}",
                secs / 60,
                secs % 60,
                if held { " (hold)" } else { "" }
            ),
        }
    }

    /// Rewrites the progress line every half second (terminals only)
    /// until the returned task is aborted.
    fn spawn_progress(&self) -> Option<tokio::task::JoinHandle<()>> {
        if !self.tty {
            return None;
        }
        let me = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "\r\x1b[K{}", me.progress_text());
                let _ = out.flush();
            }
        }))
    }

    fn clear_progress(&self) {
        if self.tty {
            print!("\r\x1b[K");
            let _ = std::io::stdout().flush();
        }
    }

    /// The event sink: one line per event; schedules hold/resume after the answer.
    fn sink(&self, hold_after: Option<Duration>, resume_after: Option<Duration>) -> EventSink {
        let me = self.clone();
        Arc::new(move |e| match e {
            CallEvent::Progress(code, reason) => {
                if code == 180 {
                    me.set(Phase::Ringing);
                }
                me.line(&format!("progress {code} {reason}"))
            }
            CallEvent::EarlyMedia(code) => {
                me.set(Phase::Early);
                me.line(&format!("early media ({code})"))
            }
            CallEvent::Answered => {
                let early = matches!(me.state.lock().map(|s| s.0), Ok(Phase::Early));
                me.set(Phase::InCall);
                if early {
                    let live = me.control.live();
                    me.line(&format!(
                        "answered (early media: rtp sent {} received {})",
                        live.sent(),
                        live.received()
                    ));
                } else {
                    me.line("answered");
                }
                schedule_hold(&me.control, hold_after, resume_after);
            }
            CallEvent::Dtmf(c) => me.line(&format!("dtmf {c}")),
            CallEvent::Message(t) => me.line(&format!("message in call: {t}")),
            CallEvent::Held | CallEvent::HeldByPeer => {
                if let Ok(mut s) = me.state.lock() {
                    s.2 = true;
                }
                me.line(if e == CallEvent::Held {
                    "held"
                } else {
                    "held by peer"
                })
            }
            CallEvent::Resumed | CallEvent::ResumedByPeer => {
                if let Ok(mut s) = me.state.lock() {
                    s.2 = false;
                }
                me.line(if e == CallEvent::Resumed {
                    "resumed"
                } else {
                    "resumed by peer"
                })
            }
            CallEvent::ReinviteFailed(code) => me.line(&format!("re-INVITE failed: {code}")),
            CallEvent::SessionRefreshed(true) => me.line("session refreshed"),
            CallEvent::SessionRefreshed(false) => me.line("session refreshed by peer"),
            _ => {}
        })
    }
}

/// Hold and resume `hold_after` / `resume_after` from now (the answer).
fn schedule_hold(
    control: &CallControl,
    hold_after: Option<Duration>,
    resume_after: Option<Duration>,
) {
    if hold_after.is_none() && resume_after.is_none() {
        return;
    }
    let control = control.clone();
    let start = tokio::time::Instant::now();
    tokio::spawn(async move {
        let mut steps: Vec<(Duration, bool)> = Vec::new();
        steps.extend(hold_after.map(|d| (d, true)));
        steps.extend(resume_after.map(|d| (d, false)));
        steps.sort_by_key(|s| s.0);
        for (at, hold) in steps {
            tokio::time::sleep_until(start + at).await;
            if hold {
                control.hold();
            } else {
                control.resume();
            }
        }
    });
}

/// `habla register`: register, refresh until Ctrl-C, unregister.
pub async fn register(args: RegisterArgs) -> Result<Exit> {
    let aor = parse_uri(&args.aor)?;
    let ua = user_agent(&args.common, &aor, &aor).await?;
    let mut reg = Registration::new(&ua, args.expires)?;
    let out = match reg.register().await {
        Ok(o) => o,
        Err(e) => {
            let (code, msg) = failure(&e);
            println!("register failed: {msg}");
            return Ok(code);
        }
    };
    let Some(granted) = out.granted else {
        println!("register failed: {}", status_line(&out.response));
        return Ok(exit_for(out.response.status().unwrap_or(500)).max_code());
    };
    println!("registered {} expires {granted}", aor.as_str());
    reg.keep_refreshed(ctrl_c(), |r| match r {
        Ok(o) if o.granted.is_some() => {
            println!("refreshed expires {}", o.granted.unwrap_or(0))
        }
        Ok(o) => println!("refresh failed: {}", status_line(&o.response)),
        Err(e) => println!("refresh failed: {e}"),
    })
    .await;
    match reg.unregister().await {
        Ok(o) => println!("unregistered: {}", status_line(&o.response)),
        Err(e) => println!("unregister failed: {e}"),
    }
    ua.shutdown().await;
    Ok(Exit::Ok)
}

impl Exit {
    /// A success code never stands for a failure.
    fn max_code(self) -> Exit {
        if self == Exit::Ok {
            Exit::Rejected
        } else {
            self
        }
    }
}

/// `habla call`.
pub async fn call(args: CallArgs) -> Result<Exit> {
    let target = parse_uri(&args.target)?;
    let from = match &args.from {
        Some(f) => parse_uri(f)?,
        None => anonymous(),
    };
    let ua = user_agent(&args.common, &from, &target).await?;
    let media = MediaConfig {
        source: source(args.play.as_deref(), args.tone)?,
        record: args.record.is_some(),
        dtmf: args.dtmf.clone(),
        ..MediaConfig::default()
    };
    let control = CallControl::new();
    let output = Output::new(control.clone());
    let opts = CallOptions {
        target: target.clone(),
        duration: Some(args.duration),
        media,
        control,
    };
    let progress = output.spawn_progress();
    let report = habla_ua::place_call(
        &ua,
        opts,
        output.sink(args.hold_after, args.resume_after),
        ctrl_c(),
    )
    .await;
    if let Some(p) = progress {
        p.abort();
    }
    output.clear_progress();
    ua.shutdown().await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let (code, msg) = failure(&e);
            println!("call failed: {msg}");
            return Ok(code);
        }
    };
    if let (Some(path), Some(m)) = (&args.record, &report.media) {
        write_recording(path, &m.recording)?;
    }
    if report.answered() {
        println!(
            "call {} {}: {} after {:.2} s; {}",
            report.status,
            report.reason,
            ending(report.ending),
            report.talk_time.as_secs_f64(),
            media_summary(&report)
        );
        Ok(Exit::Ok)
    } else {
        println!(
            "call {} {}: {}",
            report.status,
            report.reason,
            ending(report.ending)
        );
        Ok(match report.ending {
            Ending::Cancelled => Exit::Cancelled,
            Ending::Timeout => Exit::NoResponse,
            _ => exit_for(report.status).max_code(),
        })
    }
}

/// `habla answer`: register, answer calls until Ctrl-C, print DTMF and
/// messages, unregister.
pub async fn answer(args: AnswerArgs) -> Result<Exit> {
    let aor = parse_uri(&args.aor)?;
    let (ua, mut incoming) = user_agent_with_incoming(&args.common, &aor, &aor).await?;
    let play = source(args.play.as_deref(), args.tone)?;
    println!("listening on {}", ua.local_addr());
    let mut reg = None;
    if !args.no_register {
        let mut r = Registration::new(&ua, args.expires)?;
        match r.register().await {
            Ok(o) if o.granted.is_some() => {
                println!(
                    "registered {} expires {}",
                    aor.as_str(),
                    o.granted.unwrap_or(0)
                )
            }
            Ok(o) => {
                println!("register failed: {}", status_line(&o.response));
                return Ok(exit_for(o.response.status().unwrap_or(500)).max_code());
            }
            Err(e) => {
                let (code, msg) = failure(&e);
                println!("register failed: {msg}");
                return Ok(code);
            }
        }
        reg = Some(r);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let refresher = reg.map(|mut r| {
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            r.keep_refreshed(
                async move {
                    let _ = stop.changed().await;
                },
                |res| {
                    if let Err(e) = res {
                        println!("refresh failed: {e}");
                    }
                },
            )
            .await;
            r
        })
    });
    let mut n = 0u32;
    let mut calls = tokio::task::JoinSet::new();
    let interrupted = ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            inc = incoming.recv() => match inc {
                None => break,
                Some(Incoming::Message { from, text, .. }) => println!("message from {from}: {text}"),
                Some(Incoming::Invite(call)) => {
                    n += 1;
                    let from = call.request.from().map(|f| f.uri().as_str().to_owned()).unwrap_or_default();
                    println!("call {n} from {from}");
                    let record = args.record.as_ref().map(|r| PathBuf::from(r.replace("%n", &n.to_string())));
                    let control = CallControl::new();
                    let sink = Output::new(control.clone()).sink(args.hold_after, args.resume_after);
                    let opts = AnswerOptions {
                        after: args.after,
                        reject: args.reject,
                        duration: args.duration,
                        media: MediaConfig {
                            source: play.clone(),
                            record: record.is_some(),
                            ..MediaConfig::default()
                        },
                        control,
                    };
                    let ua = ua.clone();
                    let mut stop = stop_rx.clone();
                    calls.spawn(async move {
                        let hangup = async move { let _ = stop.changed().await; };
                        match habla_ua::answer(&ua, call, opts, sink, hangup).await {
                            Ok(report) => {
                                let mut saved = String::new();
                                if let (Some(path), Some(m)) = (&record, &report.media) {
                                    match write_recording(path, &m.recording) {
                                        Ok(()) => saved = format!("; recorded {}", path.display()),
                                        Err(e) => saved = format!("; {e:#}"),
                                    }
                                }
                                println!(
                                    "call {n} ended: {} {} ({}) after {:.2} s; {}{saved}",
                                    report.status,
                                    report.reason,
                                    ending(report.ending),
                                    report.talk_time.as_secs_f64(),
                                    media_summary(&report)
                                );
                            }
                            Err(e) => println!("call {n} failed: {e}"),
                        }
                    });
                }
            },
        }
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while calls.join_next().await.is_some() {}
    })
    .await;
    if let Some(t) = refresher {
        if let Ok(mut r) = t.await {
            match r.unregister().await {
                Ok(o) => println!("unregistered: {}", status_line(&o.response)),
                Err(e) => println!("unregister failed: {e}"),
            }
        }
    }
    ua.shutdown().await;
    Ok(Exit::Ok)
}

/// `habla message`.
pub async fn message(args: MessageArgs) -> Result<Exit> {
    let target = parse_uri(&args.target)?;
    let from = match &args.from {
        Some(f) => parse_uri(f)?,
        None => anonymous(),
    };
    let ua = user_agent(&args.common, &from, &target).await?;
    let r = ua.message(&target, &args.text).await;
    ua.shutdown().await;
    match r {
        Ok(resp) => {
            println!("message {}", status_line(&resp));
            Ok(exit_for(resp.status().unwrap_or(500)))
        }
        Err(e) => {
            let (code, msg) = failure(&e);
            println!("message failed: {msg}");
            Ok(code)
        }
    }
}

/// `habla options`: status, Allow, Supported, round-trip time.
pub async fn options(args: OptionsArgs) -> Result<Exit> {
    let target = parse_uri(&args.target)?;
    let from = match &args.from {
        Some(f) => parse_uri(f)?,
        None => anonymous(),
    };
    let ua = user_agent(&args.common, &from, &target).await?;
    let r = ua.options(&target).await;
    ua.shutdown().await;
    match r {
        Ok((resp, rtt)) => {
            println!(
                "options {}: rtt {:.1} ms; allow: {}; supported: {}; server: {}",
                status_line(&resp),
                rtt.as_secs_f64() * 1000.0,
                resp.header("Allow").unwrap_or("-"),
                resp.header("Supported").unwrap_or("-"),
                resp.header("Server")
                    .or(resp.header("User-Agent"))
                    .unwrap_or("-"),
            );
            Ok(exit_for(resp.status().unwrap_or(500)))
        }
        Err(e) => {
            let (code, msg) = failure(&e);
            println!("options failed: {msg}");
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn exit_codes_are_distinct_per_failure_class() {
        assert_eq!(exit_for(200), Exit::Ok);
        assert_eq!(exit_for(480), Exit::Rejected);
        assert_eq!(exit_for(407), Exit::Auth);
        assert_eq!(exit_for(408), Exit::NoResponse);
    }
}
