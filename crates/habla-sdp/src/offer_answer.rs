//! The offer/answer model (RFC 3264) for one audio stream with G.711
//! (PCMU, PCMA) and telephone-events (RFC 4733).
//!
//! [`OfferAnswer`] keeps what the model needs between exchanges: our origin
//! (the version increments whenever what we send changes, RFC 3264 §8),
//! the layout of negotiated media descriptions (a re-offer keeps every
//! m-line, RFC 3264 §8), and whether an offer of ours awaits its answer.
//!
//! - Answering (RFC 3264 §6): one m-line per offered m-line, in order. The
//!   first audio stream over RTP/AVP with a codec we support is accepted;
//!   the codec is the first of the offer's formats that we support (the
//!   offerer's preference). Every other stream (video, unknown codecs,
//!   other transports, a second audio stream, streams offered with port 0)
//!   is answered with port 0 (§6: rejected), never an error.
//! - Directions (§6.1, §8.4 hold): the answer's direction is the reverse of
//!   the offer's intersected with ours: sendonly is answered recvonly,
//!   recvonly sendonly, inactive inactive. An offer whose connection
//!   address is 0.0.0.0 (the old RFC 2543 hold) does not want media.
//! - Payload types: we send with the numbers the peer's description uses
//!   (§6.1: each side receives on the numbers it wrote).

use std::net::IpAddr;

use crate::error::OfferAnswerError;
use crate::session::{
    Attribute, Connection, Direction, MediaDescription, Origin, RtpMap, SessionDescription,
};

/// A G.711 audio codec (RFC 3551 §4.5.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl AudioCodec {
    /// The encoding name in rtpmap.
    pub fn encoding_name(self) -> &'static str {
        match self {
            AudioCodec::Pcmu => "PCMU",
            AudioCodec::Pcma => "PCMA",
        }
    }

    /// The static payload type (RFC 3551 Table 4).
    pub fn static_payload_type(self) -> u8 {
        match self {
            AudioCodec::Pcmu => 0,
            AudioCodec::Pcma => 8,
        }
    }

    /// The RTP clock rate.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    fn from_rtpmap(m: &RtpMap) -> Option<AudioCodec> {
        let mono = m.encoding_parameters.as_deref().is_none_or(|c| c == "1");
        if m.clock_rate != 8000 || !mono {
            return None;
        }
        if m.encoding_name.eq_ignore_ascii_case("PCMU") {
            Some(AudioCodec::Pcmu)
        } else if m.encoding_name.eq_ignore_ascii_case("PCMA") {
            Some(AudioCodec::Pcma)
        } else {
            None
        }
    }
}

/// The DTMF events we send and receive: 0-15 and flash (RFC 4733 §3.2).
pub const SUPPORTED_EVENTS: std::ops::RangeInclusive<u8> = 0..=16;

/// What we want for the audio stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAudio {
    /// Address we receive RTP on (also used in "o=" and "c=").
    pub address: IpAddr,
    /// RTP port (RTCP on port + 1, RFC 3550 §11).
    pub port: u16,
    /// Codecs we support, in our preference order (used in our offers).
    pub codecs: Vec<AudioCodec>,
    /// Payload type to offer telephone-event with, or `None` to not use
    /// RFC 4733 events.
    pub telephone_event: Option<u8>,
    /// Packetization we want to receive, in ms ("a=ptime").
    pub ptime: u32,
    /// Direction we want (sendonly to put the peer on hold, RFC 3264 §8.4).
    pub direction: Direction,
}

impl LocalAudio {
    /// PCMU and PCMA, telephone-event on 101, 20 ms, sendrecv.
    pub fn new(address: IpAddr, port: u16) -> Self {
        LocalAudio {
            address,
            port,
            codecs: vec![AudioCodec::Pcmu, AudioCodec::Pcma],
            telephone_event: Some(101),
            ptime: 20,
            direction: Direction::SendRecv,
        }
    }
}

/// The audio stream as agreed by an offer/answer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedAudio {
    /// Index of the audio m-line.
    pub media_index: usize,
    /// The peer's connection address (an IP literal or, rarely, a domain
    /// name to resolve).
    pub remote_address: String,
    /// The peer's RTP port.
    pub remote_port: u16,
    /// The codec.
    pub codec: AudioCodec,
    /// Payload type to send the codec with (the peer's number).
    pub payload_type: u8,
    /// Payload type to send telephone-events with, if both use them.
    pub telephone_event: Option<u8>,
    /// Packetization to send with, in ms (the peer's "a=ptime", else 20).
    pub ptime: u32,
    /// What we do: send, receive, both or neither.
    pub direction: Direction,
}

impl NegotiatedAudio {
    /// The peer's RTP address, when the connection address is an IP literal.
    pub fn remote_rtp(&self) -> Option<std::net::SocketAddr> {
        let ip: IpAddr = self.remote_address.parse().ok()?;
        Some(std::net::SocketAddr::new(ip, self.remote_port))
    }

    /// The peer's RTCP port (RTP port + 1, RFC 3550 §11).
    pub fn remote_rtcp_port(&self) -> u16 {
        self.remote_port.wrapping_add(1)
    }
}

/// One negotiated m-line, remembered for re-offers (RFC 3264 §8: the
/// number and order of m-lines never shrink).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    media: String,
    protocol: String,
    formats: Vec<String>,
}

/// The offer/answer state of one session (one dialog's SDP).
#[derive(Debug, Clone)]
pub struct OfferAnswer {
    origin: Origin,
    session_name: String,
    last_sent: Option<SessionDescription>,
    pending_offer: Option<SessionDescription>,
    slots: Vec<Slot>,
    audio_slot: Option<usize>,
}

impl OfferAnswer {
    /// New state. `session_id` and `initial_version` should be unique per
    /// session (RFC 8866 §5.2 suggests an NTP timestamp); the caller
    /// supplies them. `address` goes into "o=".
    pub fn new(username: &str, session_id: u64, initial_version: u64, address: IpAddr) -> Self {
        let username = if username.is_empty() || username.contains(' ') {
            "-"
        } else {
            username
        };
        OfferAnswer {
            origin: Origin {
                username: username.into(),
                session_id,
                session_version: initial_version,
                network_type: "IN".into(),
                address_type: crate::session::AddressType::of(&address),
                unicast_address: address.to_string(),
            },
            session_name: "habla".into(),
            last_sent: None,
            pending_offer: None,
            slots: Vec::new(),
            audio_slot: None,
        }
    }

    /// Whether an offer of ours awaits its answer.
    pub fn has_pending_offer(&self) -> bool {
        self.pending_offer.is_some()
    }

    /// The last description we sent.
    pub fn last_sent(&self) -> Option<&SessionDescription> {
        self.last_sent.as_ref()
    }

    /// Gives up the pending offer (for example when the INVITE failed),
    /// so the next exchange starts from the last agreed state.
    pub fn cancel_offer(&mut self) {
        self.pending_offer = None;
    }

    /// Creates an offer (initial or re-offer, RFC 3264 §5, §8). A re-offer
    /// keeps every m-line of the previous exchange, the ones not ours with
    /// port 0. The origin version increments when the description differs
    /// from the last one sent and stays when it is the same (§8).
    pub fn create_offer(
        &mut self,
        local: &LocalAudio,
    ) -> Result<SessionDescription, OfferAnswerError> {
        if self.pending_offer.is_some() {
            return Err(OfferAnswerError::OfferPending);
        }
        let audio = audio_offer_media(local);
        let mut media = Vec::new();
        if self.slots.is_empty() {
            media.push(audio);
        } else {
            let audio_at = self.audio_slot.unwrap_or(self.slots.len());
            for (i, slot) in self.slots.iter().enumerate() {
                if i == audio_at {
                    media.push(audio.clone());
                } else {
                    media.push(MediaDescription::new(
                        &slot.media,
                        0,
                        &slot.protocol,
                        slot.formats.clone(),
                    ));
                }
            }
            if audio_at == self.slots.len() {
                media.push(audio);
            }
        }
        let sd = self.finish(local, media);
        self.pending_offer = Some(sd.clone());
        Ok(sd)
    }

    /// Takes the answer to our pending offer (RFC 3264 §7) and returns the
    /// negotiated audio stream, or `None` when the peer rejected it (port 0).
    pub fn handle_answer(
        &mut self,
        answer: &SessionDescription,
    ) -> Result<Option<NegotiatedAudio>, OfferAnswerError> {
        let offer = self
            .pending_offer
            .as_ref()
            .ok_or(OfferAnswerError::NoOfferPending)?;
        if answer.media.len() != offer.media.len() {
            return Err(OfferAnswerError::MediaCountMismatch {
                offer: offer.media.len(),
                answer: answer.media.len(),
            });
        }
        for (i, (o, a)) in offer.media.iter().zip(&answer.media).enumerate() {
            if o.media != a.media {
                return Err(OfferAnswerError::MediaTypeMismatch(i));
            }
        }
        let audio_index = offer
            .media
            .iter()
            .position(|m| m.port != 0 && m.media == "audio");
        let mut result = None;
        if let Some(i) = audio_index {
            let a = &answer.media[i];
            if !a.is_rejected() {
                let offered = &offer.media[i];
                // The answer lists the formats it accepts (§6.1); use the
                // first that is ours.
                let (payload_type, codec) = a
                    .formats
                    .iter()
                    .filter(|f| offered.formats.contains(f))
                    .find_map(|f| {
                        let pt = f.parse::<u8>().ok()?;
                        Some((pt, codec_of(a, pt).or_else(|| codec_of(offered, pt))?))
                    })
                    .ok_or(OfferAnswerError::NoCommonCodec)?;
                let connection = answer
                    .media_connection(i)
                    .ok_or(OfferAnswerError::MissingConnection(i))?;
                let telephone_event = telephone_event_of(a).map(|(pt, _)| pt);
                let offered_direction = offer.media_direction(i);
                let mut peer = answer.media_direction(i);
                if is_unspecified(connection) {
                    peer = peer.intersect(Direction::SendOnly);
                }
                result = Some(NegotiatedAudio {
                    media_index: i,
                    remote_address: connection.address.clone(),
                    remote_port: a.port,
                    codec,
                    payload_type,
                    telephone_event,
                    ptime: send_ptime(a),
                    direction: peer.reverse().intersect(offered_direction),
                });
            }
        }
        let offer = self.pending_offer.take().unwrap_or_else(|| answer.clone());
        self.remember_layout(&offer, audio_index);
        Ok(result)
    }

    /// Answers a peer's offer (RFC 3264 §6). Returns the answer and the
    /// negotiated audio stream (`None` when no offered stream was
    /// acceptable: every m-line is then answered with port 0, and a SIP UA
    /// would rather answer the INVITE with 488).
    pub fn create_answer(
        &mut self,
        offer: &SessionDescription,
        local: &LocalAudio,
    ) -> Result<(SessionDescription, Option<NegotiatedAudio>), OfferAnswerError> {
        if self.pending_offer.is_some() {
            return Err(OfferAnswerError::OfferPending);
        }
        let mut media = Vec::with_capacity(offer.media.len());
        let mut negotiated: Option<NegotiatedAudio> = None;
        for (i, m) in offer.media.iter().enumerate() {
            let accepted = if negotiated.is_none() {
                self.accept_audio(offer, i, local)
            } else {
                None
            };
            match accepted {
                Some((answer_media, audio)) => {
                    media.push(answer_media);
                    negotiated = Some(audio);
                }
                None => media.push(rejected(m)),
            }
        }
        let audio_index = negotiated.as_ref().map(|a| a.media_index);
        let sd = self.finish(local, media);
        self.remember_layout(offer, audio_index);
        Ok((sd, negotiated))
    }

    /// The answer m-line and negotiated stream for offered m-line `i`, if we
    /// accept it.
    fn accept_audio(
        &self,
        offer: &SessionDescription,
        i: usize,
        local: &LocalAudio,
    ) -> Option<(MediaDescription, NegotiatedAudio)> {
        let m = &offer.media[i];
        if m.media != "audio" || m.protocol != "RTP/AVP" || m.is_rejected() {
            return None;
        }
        // The offerer's order decides (RFC 3264 §6.1 lets the answerer
        // choose; following the offerer's preference is the common courtesy).
        let (payload_type, codec) = m.formats.iter().find_map(|f| {
            let pt = f.parse::<u8>().ok()?;
            codec_of(m, pt)
                .filter(|c| local.codecs.contains(c))
                .map(|c| (pt, c))
        })?;
        let connection = offer.media_connection(i)?;
        let telephone_event = local.telephone_event.and(telephone_event_of(m));

        let mut peer = offer.media_direction(i);
        if is_unspecified(connection) {
            // RFC 3264 §8.4: c=0.0.0.0 is the old way to say "don't send".
            peer = peer.intersect(Direction::SendOnly);
        }
        let ours = peer.reverse().intersect(local.direction);

        let mut answer = MediaDescription::new(
            "audio",
            local.port,
            "RTP/AVP",
            vec![payload_type.to_string()],
        );
        answer.attributes.push(Attribute::value(
            "rtpmap",
            RtpMap {
                payload_type,
                encoding_name: codec.encoding_name().into(),
                clock_rate: 8000,
                encoding_parameters: None,
            }
            .to_string(),
        ));
        if let Some((pt, events)) = &telephone_event {
            answer.formats.push(pt.to_string());
            answer.attributes.push(Attribute::value(
                "rtpmap",
                format!("{pt} telephone-event/8000"),
            ));
            answer
                .attributes
                .push(Attribute::value("fmtp", format!("{pt} {events}")));
        }
        answer
            .attributes
            .push(Attribute::value("ptime", local.ptime.to_string()));
        answer.attributes.push(Attribute::property(ours.as_str()));

        let negotiated = NegotiatedAudio {
            media_index: i,
            remote_address: connection.address.clone(),
            remote_port: m.port,
            codec,
            payload_type,
            telephone_event: telephone_event.map(|(pt, _)| pt),
            ptime: send_ptime(m),
            direction: ours,
        };
        Some((answer, negotiated))
    }

    /// Fills in the session-level lines and the origin version.
    fn finish(&mut self, local: &LocalAudio, media: Vec<MediaDescription>) -> SessionDescription {
        let mut sd = SessionDescription::new(self.origin.clone(), &self.session_name);
        sd.connection = Some(Connection::new(local.address));
        sd.origin.address_type = crate::session::AddressType::of(&local.address);
        sd.origin.unicast_address = local.address.to_string();
        sd.media = media;
        // RFC 3264 §8: a changed description increments the version; an
        // unchanged one keeps it.
        if let Some(last) = &self.last_sent {
            if last.with_version(0) != sd.with_version(0) {
                self.origin.session_version = self.origin.session_version.wrapping_add(1);
            }
        }
        sd.origin.session_version = self.origin.session_version;
        self.origin.address_type = sd.origin.address_type;
        self.origin.unicast_address = sd.origin.unicast_address.clone();
        self.last_sent = Some(sd.clone());
        sd
    }

    fn remember_layout(&mut self, offer: &SessionDescription, audio: Option<usize>) {
        self.slots = offer
            .media
            .iter()
            .map(|m| Slot {
                media: m.media.clone(),
                protocol: m.protocol.clone(),
                formats: m.formats.clone(),
            })
            .collect();
        if audio.is_some() {
            self.audio_slot = audio;
        }
        if self.audio_slot.is_some_and(|i| i >= self.slots.len()) {
            self.audio_slot = None;
        }
    }
}

/// The codec a payload type means in `m`: its rtpmap if present, else the
/// static assignment (RFC 3551 Table 4).
fn codec_of(m: &MediaDescription, pt: u8) -> Option<AudioCodec> {
    match m.rtpmap(pt) {
        Some(map) => AudioCodec::from_rtpmap(&map),
        None => match pt {
            0 => Some(AudioCodec::Pcmu),
            8 => Some(AudioCodec::Pcma),
            _ => None,
        },
    }
}

/// The telephone-event format offered in `m` and the events of it we
/// support, as an fmtp value ("0-16"). RFC 4733 §2.4.1: no fmtp means 0-15.
fn telephone_event_of(m: &MediaDescription) -> Option<(u8, String)> {
    for f in &m.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        let Some(map) = m.rtpmap(pt) else { continue };
        if !map.encoding_name.eq_ignore_ascii_case("telephone-event") || map.clock_rate != 8000 {
            continue;
        }
        let offered = parse_event_list(m.fmtp(pt).unwrap_or("0-15"));
        let common: Vec<u8> = SUPPORTED_EVENTS
            .filter(|e| offered[usize::from(*e)])
            .collect();
        if common.is_empty() {
            continue;
        }
        return Some((pt, format_event_list(&common)));
    }
    None
}

/// Parses an RFC 4733 §2.4.1 event list ("0-15,66,70") into a membership
/// table; malformed items are skipped.
fn parse_event_list(s: &str) -> [bool; 256] {
    let mut set = [false; 256];
    for item in s.split(',').take(64) {
        let item = item.trim();
        let (lo, hi) = item.split_once('-').unwrap_or((item, item));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u8>(), hi.trim().parse::<u8>()) {
            for e in lo..=hi {
                set[usize::from(e)] = true;
            }
        }
    }
    set
}

fn format_event_list(events: &[u8]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < events.len() {
        let start = events[i];
        let mut end = start;
        while i + 1 < events.len() && events[i + 1] == end + 1 {
            i += 1;
            end = events[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

/// Packetization to send with: the peer's ptime if sane, else 20 ms.
fn send_ptime(m: &MediaDescription) -> u32 {
    m.ptime().filter(|p| (10..=200).contains(p)).unwrap_or(20)
}

fn is_unspecified(c: &Connection) -> bool {
    c.ip().is_some_and(|ip| ip.is_unspecified())
}

/// A rejected answer m-line: same media and transport, port 0 (RFC 3264 §6).
fn rejected(m: &MediaDescription) -> MediaDescription {
    let mut formats = m.formats.clone();
    if formats.is_empty() {
        formats.push("0".into());
    }
    MediaDescription::new(&m.media, 0, &m.protocol, formats)
}

/// Our audio m-line for an offer.
fn audio_offer_media(local: &LocalAudio) -> MediaDescription {
    let mut formats = Vec::new();
    let mut m = MediaDescription::new("audio", local.port, "RTP/AVP", Vec::new());
    let mut seen = Vec::new();
    for c in &local.codecs {
        if seen.contains(c) {
            continue;
        }
        seen.push(*c);
        let pt = c.static_payload_type();
        formats.push(pt.to_string());
        m.attributes.push(Attribute::value(
            "rtpmap",
            format!("{pt} {}/8000", c.encoding_name()),
        ));
    }
    if let Some(pt) = local.telephone_event {
        formats.push(pt.to_string());
        m.attributes.push(Attribute::value(
            "rtpmap",
            format!("{pt} telephone-event/8000"),
        ));
        m.attributes
            .push(Attribute::value("fmtp", format!("{pt} 0-16")));
    }
    m.formats = formats;
    m.attributes
        .push(Attribute::value("ptime", local.ptime.to_string()));
    m.attributes
        .push(Attribute::property(local.direction.as_str()));
    m
}
