//! The RTP session of a call: one UDP socket, frames sent every ptime on a
//! tokio interval, packets received into the jitter buffer and played out
//! into a recording, RFC 4733 DTMF both ways, symmetric RTP, RTCP
//! sender/receiver reports (RFC 3550 §6) on the port above, and updates
//! from a new offer/answer (hold, resume, a new address) while it runs.

use crate::error::UaError;
use crate::CallEvent;
use bytes::Bytes;
use habla_media::dtmf::{DtmfReceiver, DtmfSender, DtmfSenderConfig};
use habla_media::jitter::{Frame, JitterBuffer, JitterBufferConfig};
use habla_media::rtcp::{
    NtpTimestamp, ReceiverReport, ReportBlock, RtcpPacket, SenderInfo, SenderReport,
};
use habla_media::statistics::SourceStatistics;
use habla_media::tone::ToneGenerator;
use habla_media::{Packetizer, RtpPacket, G711};
use habla_sdp::{AudioCodec, NegotiatedAudio};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Most audio kept in a recording (30 minutes at 8 kHz).
const MAX_RECORDING: usize = 8000 * 60 * 30;

/// What to send.
#[derive(Debug, Clone)]
pub enum AudioSource {
    /// Silence (G.711 silence codes).
    Silence,
    /// A sine tone.
    Tone {
        /// Frequency in Hz.
        frequency: f64,
        /// Peak amplitude.
        amplitude: i16,
    },
    /// 8 kHz mono samples (a WAV file), played once then silence.
    Samples(Arc<Vec<i16>>),
}

/// How a call's media behaves.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// What to send.
    pub source: AudioSource,
    /// Keep what is heard (for a WAV file).
    pub record: bool,
    /// DTMF digits to send (RFC 4733), `0-9*#A-D`.
    pub dtmf: Option<String>,
    /// Delay from media start to the first digit.
    pub dtmf_delay: Duration,
    /// The playout buffer.
    pub jitter: JitterBufferConfig,
    /// Counters to update while running (a fresh set when `None`).
    pub live: Option<Arc<LiveStats>>,
    /// First RTCP report this long after the start, then every 5 s
    /// (randomised ±50 %, RFC 3550 §6.2).
    pub rtcp_first: Duration,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            source: AudioSource::Silence,
            record: false,
            dtmf: None,
            dtmf_delay: Duration::from_millis(500),
            jitter: JitterBufferConfig::default(),
            live: None,
            rtcp_first: Duration::from_millis(2500),
        }
    }
}

/// Counters of one RTP session.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaStats {
    /// RTP packets sent (audio and telephone-events).
    pub packets_sent: u64,
    /// RTP packets received from the peer.
    pub packets_received: u64,
    /// Packets lost (RFC 3550 §A.3 cumulative loss).
    pub lost: i64,
    /// Interarrival jitter (RFC 3550 §A.8), milliseconds.
    pub jitter_ms: f64,
    /// Frames played out from packets.
    pub played: u64,
    /// Frames concealed with silence (missing or not audio).
    pub concealed: u64,
    /// RTCP compound packets sent.
    pub rtcp_sent: u64,
    /// RTCP compound packets received.
    pub rtcp_received: u64,
}

/// Counters readable while the session runs (progress lines, tests).
#[derive(Debug, Default)]
pub struct LiveStats {
    sent: AtomicU64,
    received: AtomicU64,
}

impl LiveStats {
    /// RTP packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// RTP packets received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// What the peer said about our stream in its last RTCP report block
/// (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeerReport {
    /// Fraction of our packets lost in its last interval (0.0–1.0).
    pub fraction_lost: f64,
    /// Cumulative packets of ours it counts as lost.
    pub cumulative_lost: i64,
    /// Interarrival jitter it measured on our stream, milliseconds.
    pub jitter_ms: f64,
    /// Report blocks about us received.
    pub reports: u64,
}

/// What a finished RTP session leaves.
#[derive(Debug, Clone, Default)]
pub struct MediaReport {
    /// Counters.
    pub stats: MediaStats,
    /// What was heard, 8 kHz mono (empty unless recording).
    pub recording: Vec<i16>,
    /// DTMF digits received, in order.
    pub dtmf_received: String,
    /// Where the peer's RTP last came from.
    pub remote: Option<SocketAddr>,
    /// The peer's view of our stream, from its RTCP reports.
    pub peer: Option<PeerReport>,
}

/// A bound RTP socket (and RTCP on the port above), before negotiation ends.
#[derive(Debug)]
pub struct RtpSocket {
    socket: UdpSocket,
    rtcp: Option<UdpSocket>,
    local: SocketAddr,
}

impl RtpSocket {
    /// Binds an RTP socket on `ip`, on an even ephemeral port whose
    /// successor is free for RTCP (RFC 3550 §11); without such a pair
    /// after a few tries, RTP alone.
    pub async fn bind(ip: IpAddr) -> Result<RtpSocket, UaError> {
        let mut fallback = None;
        for _ in 0..32 {
            let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
                .await
                .map_err(|e| UaError::Local(format!("cannot bind RTP socket on {ip}: {e}")))?;
            let local = socket
                .local_addr()
                .map_err(|e| UaError::Local(e.to_string()))?;
            if local.port() % 2 != 0 || local.port() == u16::MAX {
                fallback.get_or_insert((socket, local));
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(ip, local.port() + 1)).await {
                return Ok(RtpSocket {
                    socket,
                    rtcp: Some(rtcp),
                    local,
                });
            }
        }
        let (socket, local) = match fallback {
            Some(f) => f,
            None => {
                let s = UdpSocket::bind(SocketAddr::new(ip, 0))
                    .await
                    .map_err(|e| UaError::Local(format!("cannot bind RTP socket on {ip}: {e}")))?;
                let l = s.local_addr().map_err(|e| UaError::Local(e.to_string()))?;
                (s, l)
            }
        };
        Ok(RtpSocket {
            socket,
            rtcp: None,
            local,
        })
    }

    /// The local RTP address (for SDP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts sending and receiving with the negotiated stream.
    pub fn start(
        self,
        audio: &NegotiatedAudio,
        config: MediaConfig,
        events: crate::EventSink,
    ) -> MediaSession {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (update_tx, update_rx) = mpsc::unbounded_channel();
        let live = config.live.clone().unwrap_or_default();
        let task = tokio::spawn(run(
            self.socket,
            self.rtcp,
            audio.clone(),
            config,
            events,
            Control {
                stop: stop_rx,
                updates: update_rx,
                live: live.clone(),
            },
        ));
        MediaSession {
            stop: Some(stop_tx),
            updates: update_tx,
            live,
            task,
        }
    }
}

struct Control {
    stop: oneshot::Receiver<()>,
    updates: mpsc::UnboundedReceiver<NegotiatedAudio>,
    live: Arc<LiveStats>,
}

/// A running RTP session; [`MediaSession::stop`] ends it.
#[derive(Debug)]
pub struct MediaSession {
    stop: Option<oneshot::Sender<()>>,
    updates: mpsc::UnboundedSender<NegotiatedAudio>,
    live: Arc<LiveStats>,
    task: JoinHandle<MediaReport>,
}

impl MediaSession {
    /// Applies a new offer/answer outcome: the peer's address and port,
    /// the direction (nothing is sent unless it includes sending), codec
    /// and payload types.
    pub fn update(&self, audio: &NegotiatedAudio) {
        let _ = self.updates.send(audio.clone());
    }

    /// The live packet counters.
    pub fn live(&self) -> Arc<LiveStats> {
        self.live.clone()
    }

    /// Stops the session and returns its report.
    pub async fn stop(mut self) -> MediaReport {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        (&mut self.task).await.unwrap_or_default()
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

struct Source {
    source: AudioSource,
    tone: Option<ToneGenerator>,
    pos: usize,
}

impl Source {
    fn new(source: AudioSource) -> Source {
        let tone = match &source {
            AudioSource::Tone {
                frequency,
                amplitude,
            } => Some(ToneGenerator::new(*frequency, 8000, *amplitude)),
            _ => None,
        };
        Source {
            source,
            tone,
            pos: 0,
        }
    }

    fn frame(&mut self, out: &mut [i16]) {
        out.fill(0);
        match &self.source {
            AudioSource::Silence => {}
            AudioSource::Tone { .. } => {
                if let Some(t) = &mut self.tone {
                    t.fill(out);
                }
            }
            AudioSource::Samples(s) => {
                let end = (self.pos + out.len()).min(s.len());
                if self.pos < end {
                    out[..end - self.pos].copy_from_slice(&s[self.pos..end]);
                }
                self.pos = end;
            }
        }
    }
}

fn g711_of(codec: AudioCodec) -> G711 {
    match codec {
        AudioCodec::Pcma => G711::Pcma,
        _ => G711::Pcmu,
    }
}

/// The wall clock as an NTP timestamp (RFC 3550 §4).
fn ntp_now() -> NtpTimestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() + 2_208_988_800;
    let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    NtpTimestamp((secs << 32) | frac)
}

/// The next RTCP interval: 5 s randomised to 2.5–7.5 s (RFC 3550 §6.3.1).
fn rtcp_interval() -> Duration {
    Duration::from_millis(2500 + u64::from(crate::agent::random_u32() % 5000))
}

/// Whether `direction` (ours) sends.
fn sends(direction: habla_sdp::Direction) -> bool {
    direction.sends()
}

async fn recv_rtcp(
    socket: &Option<UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

async fn run(
    socket: UdpSocket,
    rtcp: Option<UdpSocket>,
    mut audio: NegotiatedAudio,
    config: MediaConfig,
    events: crate::EventSink,
    control: Control,
) -> MediaReport {
    let Control {
        mut stop,
        mut updates,
        live,
    } = control;
    let mut codec = g711_of(audio.codec);
    let ptime = audio.ptime.clamp(10, 60);
    let samples_per_frame = 8 * ptime as usize;
    let mut remote = audio.remote_rtp();
    let ssrc = crate::agent::random_u32();
    let mut packetizer = Packetizer::new(
        ssrc,
        audio.payload_type,
        crate::agent::random_u32() as u16,
        crate::agent::random_u32(),
        samples_per_frame as u32,
    );
    let new_dtmf = |pt: Option<u8>| {
        pt.map(|pt| {
            DtmfSender::new(DtmfSenderConfig {
                payload_type: pt,
                packet_interval: Duration::from_millis(u64::from(ptime)),
                ..DtmfSenderConfig::default()
            })
        })
    };
    let mut dtmf_tx = new_dtmf(audio.telephone_event);
    let mut digits = config.dtmf.clone().filter(|d| !d.is_empty());
    let mut dtmf_rx = DtmfReceiver::new();
    let mut jitter = JitterBuffer::new(JitterBufferConfig {
        frame_duration: Duration::from_millis(u64::from(ptime)),
        ..config.jitter.clone()
    });
    let mut source = Source::new(config.source.clone());
    let mut stats: Option<SourceStatistics> = None;
    let mut remote_ssrc: Option<u32> = None;
    let mut report = MediaReport::default();
    let mut frame = vec![0i16; samples_per_frame];
    let mut payload = Vec::with_capacity(samples_per_frame);
    let mut decoded = Vec::with_capacity(samples_per_frame);
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(u64::from(ptime)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sending = sends(audio.direction);
    // Where RTCP goes: where the peer's RTCP comes from, else RTP port + 1.
    let mut rtcp_remote: Option<SocketAddr> = None;
    let mut next_rtcp = start + config.rtcp_first;
    let mut sent_since_report = false;
    let cname = format!(
        "habla@{}",
        socket
            .local_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    );

    let play =
        |frame: Frame, report: &mut MediaReport, decoded: &mut Vec<i16>, codec: G711, pt: u8| {
            if !config.record || report.recording.len() >= MAX_RECORDING {
                return;
            }
            decoded.clear();
            match frame {
                Frame::Audio {
                    payload_type,
                    payload,
                    ..
                } => match G711::from_payload_type(payload_type)
                    .or((payload_type == pt).then_some(codec))
                {
                    Some(c) => c.decode(&payload, decoded),
                    None => decoded.resize(samples_per_frame, 0),
                },
                Frame::Missing { .. } => decoded.resize(samples_per_frame, 0),
            }
            report.recording.extend_from_slice(decoded);
        };

    loop {
        tokio::select! {
            _ = &mut stop => break,
            u = updates.recv() => {
                let Some(u) = u else { continue };
                if let Some(to) = u.remote_rtp() {
                    if remote != Some(to) {
                        // A new address: RTCP follows it too.
                        rtcp_remote = None;
                    }
                    remote = Some(to);
                }
                sending = sends(u.direction);
                codec = g711_of(u.codec);
                if u.payload_type != audio.payload_type {
                    packetizer = Packetizer::new(
                        ssrc,
                        u.payload_type,
                        packetizer.next_sequence(),
                        packetizer.next_timestamp(),
                        samples_per_frame as u32,
                    );
                }
                if u.telephone_event != audio.telephone_event {
                    dtmf_tx = new_dtmf(u.telephone_event);
                }
                audio = u;
            }
            _ = tokio::time::sleep_until(next_rtcp), if rtcp.is_some() => {
                next_rtcp = Instant::now() + rtcp_interval();
                let now = Instant::now().into_std();
                let blocks: Vec<ReportBlock> = match (stats.as_mut(), remote_ssrc) {
                    (Some(s), Some(r)) => vec![s.report_block(now, r)],
                    _ => Vec::new(),
                };
                let first = if sent_since_report {
                    RtcpPacket::SenderReport(SenderReport {
                        ssrc,
                        sender_info: SenderInfo {
                            ntp_timestamp: ntp_now(),
                            rtp_timestamp: packetizer.next_timestamp(),
                            packet_count: packetizer.packets_sent(),
                            octet_count: packetizer.octets_sent(),
                        },
                        reports: blocks,
                    })
                } else {
                    RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports: blocks })
                };
                sent_since_report = false;
                let compound = RtcpPacket::build_compound(&[
                    first,
                    RtcpPacket::SourceDescription(vec![(ssrc, Some(cname.clone()))]),
                ]);
                let to = rtcp_remote.or_else(|| remote.map(|r| SocketAddr::new(r.ip(), r.port().wrapping_add(1))));
                if let (Some(to), Some(s)) = (to, rtcp.as_ref()) {
                    if s.send_to(&compound, to).await.is_ok() {
                        report.stats.rtcp_sent += 1;
                    }
                }
            }
            r = recv_rtcp(&rtcp, &mut rtcp_buf) => {
                let Ok((n, from)) = r else { continue };
                let Ok(packets) = RtcpPacket::parse_compound(&Bytes::copy_from_slice(&rtcp_buf[..n])) else { continue };
                report.stats.rtcp_received += 1;
                rtcp_remote = Some(from);
                let now = Instant::now().into_std();
                for p in packets {
                    let blocks = match p {
                        RtcpPacket::SenderReport(sr) => {
                            if let Some(s) = stats.as_mut() {
                                s.handle_sender_report(now, sr.sender_info.ntp_timestamp);
                            }
                            sr.reports
                        }
                        RtcpPacket::ReceiverReport(rr) => rr.reports,
                        _ => Vec::new(),
                    };
                    for b in blocks.iter().filter(|b| b.ssrc == ssrc) {
                        let p = report.peer.get_or_insert_with(PeerReport::default);
                        p.fraction_lost = f64::from(b.fraction_lost) / 256.0;
                        p.cumulative_lost = i64::from(b.cumulative_lost);
                        p.jitter_ms = f64::from(b.jitter) / 8.0;
                        p.reports += 1;
                    }
                }
            }
            _ = tick.tick() => {
                let now = Instant::now().into_std();
                if let (Some(d), Some(tx)) = (digits.as_ref(), dtmf_tx.as_mut()) {
                    if start.elapsed() >= config.dtmf_delay && sending {
                        if let Err(c) = tx.queue_digits(d) {
                            tracing::warn!("cannot send DTMF {c:?}");
                        }
                        digits = None;
                    }
                }
                let mut sending_dtmf = false;
                if let Some(tx) = dtmf_tx.as_mut() {
                    while let Some(p) = tx.poll(now, packetizer.next_timestamp()) {
                        let pkt = packetizer.packet(p.payload_type, p.marker, p.timestamp, p.payload());
                        if let (Some(to), true) = (remote, sending) {
                            let _ = socket.send_to(&pkt.to_bytes(), to).await;
                            report.stats.packets_sent += 1;
                            live.sent.fetch_add(1, Ordering::Relaxed);
                            sent_since_report = true;
                        }
                    }
                    sending_dtmf = tx.is_sending();
                }
                source.frame(&mut frame);
                if sending_dtmf {
                    packetizer.skip(samples_per_frame as u32);
                } else if sending {
                    payload.clear();
                    codec.encode(&frame, &mut payload);
                    let pkt = packetizer.packetize(Bytes::copy_from_slice(&payload));
                    if let Some(to) = remote {
                        let _ = socket.send_to(&pkt.to_bytes(), to).await;
                        report.stats.packets_sent += 1;
                        live.sent.fetch_add(1, Ordering::Relaxed);
                        sent_since_report = true;
                    }
                } else {
                    // On hold: the clock runs on, nothing is sent (RFC 3264 §8.4).
                    packetizer.skip(samples_per_frame as u32);
                }
                while let Some(f) = jitter.poll_frame(now) {
                    play(f, &mut report, &mut decoded, codec, audio.payload_type);
                }
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                let Ok(pkt) = RtpPacket::parse(Bytes::copy_from_slice(&buf[..n])) else { continue };
                let now = Instant::now().into_std();
                // Symmetric RTP (RFC 4961): answer where the media comes from.
                if remote != Some(from) {
                    remote = Some(from);
                }
                report.stats.packets_received += 1;
                live.received.fetch_add(1, Ordering::Relaxed);
                if remote_ssrc != Some(pkt.ssrc) {
                    // A new source (or the first): fresh statistics.
                    remote_ssrc = Some(pkt.ssrc);
                    stats = Some(SourceStatistics::new(pkt.sequence_number, 8000));
                }
                if let Some(s) = stats.as_mut() {
                    let _ = s.handle_packet(now, pkt.sequence_number, pkt.timestamp);
                }
                if Some(pkt.payload_type) == audio.telephone_event {
                    if let Ok(evs) = dtmf_rx.handle_packet(pkt.timestamp, &pkt.payload) {
                        for e in evs {
                            if let Some(c) = e.digit() {
                                report.dtmf_received.push(c);
                                events(CallEvent::Dtmf(c));
                            }
                        }
                    }
                } else {
                    let _ = jitter.handle_packet(now, pkt);
                }
            }
        }
    }
    if let Some(e) = dtmf_rx.finish() {
        if let Some(c) = e.digit() {
            report.dtmf_received.push(c);
            events(CallEvent::Dtmf(c));
        }
    }
    // RTCP BYE (RFC 3550 §6.6).
    let to =
        rtcp_remote.or_else(|| remote.map(|r| SocketAddr::new(r.ip(), r.port().wrapping_add(1))));
    if let (Some(to), Some(s)) = (to, rtcp.as_ref()) {
        let compound = RtcpPacket::build_compound(&[
            RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                reports: Vec::new(),
            }),
            RtcpPacket::SourceDescription(vec![(ssrc, Some(cname.clone()))]),
            RtcpPacket::Bye(vec![ssrc]),
        ]);
        if s.send_to(&compound, to).await.is_ok() {
            report.stats.rtcp_sent += 1;
        }
    }
    // Play out what is still buffered.
    let end = Instant::now().into_std() + config.jitter.target_delay * 2;
    while !jitter.is_empty() {
        match jitter.poll_frame(end) {
            Some(f) => play(f, &mut report, &mut decoded, codec, audio.payload_type),
            None => break,
        }
    }
    let js = jitter.statistics();
    report.stats.played = js.played;
    report.stats.concealed = js.concealed;
    if let Some(s) = &stats {
        report.stats.lost = i64::from(s.cumulative_lost());
        report.stats.jitter_ms = s.jitter_duration().as_secs_f64() * 1000.0;
    }
    report.remote = remote;
    report
}
