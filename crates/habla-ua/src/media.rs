//! The RTP session of a call: one UDP socket, frames sent every ptime on a
//! tokio interval, packets received into the jitter buffer and played out
//! into a recording, RFC 4733 DTMF both ways, symmetric RTP.

use crate::error::UaError;
use crate::CallEvent;
use bytes::Bytes;
use habla_media::dtmf::{DtmfReceiver, DtmfSender, DtmfSenderConfig};
use habla_media::jitter::{Frame, JitterBuffer, JitterBufferConfig};
use habla_media::statistics::SourceStatistics;
use habla_media::tone::ToneGenerator;
use habla_media::{Packetizer, RtpPacket, G711};
use habla_sdp::{AudioCodec, NegotiatedAudio};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
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
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            source: AudioSource::Silence,
            record: false,
            dtmf: None,
            dtmf_delay: Duration::from_millis(500),
            jitter: JitterBufferConfig::default(),
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
}

/// A bound RTP socket, before negotiation ends.
#[derive(Debug)]
pub struct RtpSocket {
    socket: UdpSocket,
    local: SocketAddr,
}

impl RtpSocket {
    /// Binds an RTP socket on `ip` (ephemeral port).
    pub async fn bind(ip: IpAddr) -> Result<RtpSocket, UaError> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
            .await
            .map_err(|e| UaError::Local(format!("cannot bind RTP socket on {ip}: {e}")))?;
        let local = socket
            .local_addr()
            .map_err(|e| UaError::Local(e.to_string()))?;
        Ok(RtpSocket { socket, local })
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
        let task = tokio::spawn(run(self.socket, audio.clone(), config, events, stop_rx));
        MediaSession {
            stop: Some(stop_tx),
            task,
        }
    }
}

/// A running RTP session; [`MediaSession::stop`] ends it.
#[derive(Debug)]
pub struct MediaSession {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<MediaReport>,
}

impl MediaSession {
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

async fn run(
    socket: UdpSocket,
    audio: NegotiatedAudio,
    config: MediaConfig,
    events: crate::EventSink,
    mut stop: oneshot::Receiver<()>,
) -> MediaReport {
    let codec = g711_of(audio.codec);
    let ptime = audio.ptime.clamp(10, 60);
    let samples_per_frame = 8 * ptime as usize;
    let mut remote = audio.remote_rtp();
    let mut packetizer = Packetizer::new(
        crate::agent::random_u32(),
        audio.payload_type,
        crate::agent::random_u32() as u16,
        crate::agent::random_u32(),
        samples_per_frame as u32,
    );
    let mut dtmf_tx = audio.telephone_event.map(|pt| {
        DtmfSender::new(DtmfSenderConfig {
            payload_type: pt,
            packet_interval: Duration::from_millis(u64::from(ptime)),
            ..DtmfSenderConfig::default()
        })
    });
    let mut digits = config.dtmf.clone().filter(|d| !d.is_empty());
    let mut dtmf_rx = DtmfReceiver::new();
    let mut jitter = JitterBuffer::new(JitterBufferConfig {
        frame_duration: Duration::from_millis(u64::from(ptime)),
        ..config.jitter.clone()
    });
    let mut source = Source::new(config.source.clone());
    let mut stats: Option<SourceStatistics> = None;
    let mut report = MediaReport::default();
    let mut frame = vec![0i16; samples_per_frame];
    let mut payload = Vec::with_capacity(samples_per_frame);
    let mut decoded = Vec::with_capacity(samples_per_frame);
    let mut buf = vec![0u8; 2048];
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(u64::from(ptime)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let sends = !matches!(
        audio.direction,
        habla_sdp::Direction::RecvOnly | habla_sdp::Direction::Inactive
    );

    let play = |frame: Frame, report: &mut MediaReport, decoded: &mut Vec<i16>| {
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
                .or((payload_type == audio.payload_type).then_some(codec))
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
            _ = tick.tick() => {
                let now = Instant::now().into_std();
                if let (Some(d), Some(tx)) = (digits.as_ref(), dtmf_tx.as_mut()) {
                    if start.elapsed() >= config.dtmf_delay {
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
                        if let (Some(to), true) = (remote, sends) {
                            let _ = socket.send_to(&pkt.to_bytes(), to).await;
                            report.stats.packets_sent += 1;
                        }
                    }
                    sending_dtmf = tx.is_sending();
                }
                source.frame(&mut frame);
                if sending_dtmf {
                    packetizer.skip(samples_per_frame as u32);
                } else {
                    payload.clear();
                    codec.encode(&frame, &mut payload);
                    let pkt = packetizer.packetize(Bytes::copy_from_slice(&payload));
                    if let (Some(to), true) = (remote, sends) {
                        let _ = socket.send_to(&pkt.to_bytes(), to).await;
                        report.stats.packets_sent += 1;
                    }
                }
                while let Some(f) = jitter.poll_frame(now) {
                    play(f, &mut report, &mut decoded);
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
                let s = stats.get_or_insert_with(|| SourceStatistics::new(pkt.sequence_number, 8000));
                let _ = s.handle_packet(now, pkt.sequence_number, pkt.timestamp);
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
    // Play out what is still buffered.
    let end = Instant::now().into_std() + config.jitter.target_delay * 2;
    while !jitter.is_empty() {
        match jitter.poll_frame(end) {
            Some(f) => play(f, &mut report, &mut decoded),
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
