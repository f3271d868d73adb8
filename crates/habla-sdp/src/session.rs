//! The session description (RFC 8866, which obsoletes RFC 4566): the
//! typed model, the parser and the serializer.
//!
//! ```text
//! Session description                   Media description
//!    v=  (protocol version)                m=  (media name and transport address)
//!    o=  (originator and session id)       i=* (media title)
//!    s=  (session name)                    c=* (connection information)
//!    i=* u=* e=* p=*                       b=* (bandwidth)
//!    c=* (connection information)          k=* (obsolete)
//!    b=* (bandwidth)                       a=* (media attribute lines)
//!    t=  r=* z=* k=* a=*
//! ```
//!
//! Parsing is one pass over the lines, bounded by [`Limits`]. It accepts LF
//! as well as CRLF line ends and an empty "s=" (older RFCs, RFC 3264's
//! examples), and is otherwise strict: "v=0" first, then "o=", then "s=",
//! known type letters only, each line where RFC 8866 §5 allows it.
//! Serialization writes CRLF lines in the RFC's order; control characters
//! in text fields are dropped so a value cannot inject lines.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::error::SdpError;

/// Size limits applied by [`SessionDescription::parse_with_limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most octets in a description.
    pub max_size: usize,
    /// Most media descriptions ("m=" lines).
    pub max_media: usize,
    /// Most attributes in the whole description.
    pub max_attributes: usize,
    /// Most formats on one "m=" line.
    pub max_formats: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_size: 64 * 1024,
            max_media: 32,
            max_attributes: 1024,
            max_formats: 64,
        }
    }
}

/// Address type of "o=" and "c=" (RFC 8866 §5.2, §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressType {
    /// `IP4`.
    Ip4,
    /// `IP6`.
    Ip6,
}

impl AddressType {
    fn parse(s: &str) -> Option<AddressType> {
        match s {
            "IP4" => Some(AddressType::Ip4),
            "IP6" => Some(AddressType::Ip6),
            _ => None,
        }
    }

    /// The token as written in SDP.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::Ip4 => "IP4",
            AddressType::Ip6 => "IP6",
        }
    }

    /// The address type of an IP address.
    pub fn of(ip: &IpAddr) -> AddressType {
        match ip {
            IpAddr::V4(_) => AddressType::Ip4,
            IpAddr::V6(_) => AddressType::Ip6,
        }
    }
}

/// "o=" (RFC 8866 §5.2): `<username> <sess-id> <sess-version> <nettype>
/// <addrtype> <unicast-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User's login, or "-".
    pub username: String,
    /// Numeric session identifier.
    pub session_id: u64,
    /// Version, incremented when the description changes (RFC 3264 §8).
    pub session_version: u64,
    /// Network type; "IN".
    pub network_type: String,
    /// Address type.
    pub address_type: AddressType,
    /// Address (or domain name) of the originating host.
    pub unicast_address: String,
}

/// "c=" (RFC 8866 §5.7): `<nettype> <addrtype> <connection-address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Network type; "IN".
    pub network_type: String,
    /// Address type.
    pub address_type: AddressType,
    /// The address, possibly a domain name, possibly with a multicast
    /// "/ttl/count" suffix.
    pub address: String,
}

impl Connection {
    /// A connection line for an IP address.
    pub fn new(ip: IpAddr) -> Self {
        Connection {
            network_type: "IN".into(),
            address_type: AddressType::of(&ip),
            address: ip.to_string(),
        }
    }

    /// The address as an IP address, if it is one (domain names and
    /// multicast suffixes give `None`).
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.parse().ok()
    }
}

/// "b=" (RFC 8866 §5.8): `<bwtype>:<bandwidth>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bandwidth {
    /// "CT", "AS", or an extension token.
    pub bwtype: String,
    /// Kilobits per second (for CT/AS).
    pub bandwidth: u64,
}

/// "t=" (RFC 8866 §5.9) with its "r=" lines (§5.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Start time (NTP seconds), 0 for unbounded.
    pub start: u64,
    /// Stop time (NTP seconds), 0 for unbounded.
    pub stop: u64,
    /// "r=" lines, kept as text.
    pub repeats: Vec<String>,
}

/// "a=" (RFC 8866 §5.13): `<name>` or `<name>:<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name.
    pub name: String,
    /// Value, for value attributes.
    pub value: Option<String>,
}

impl Attribute {
    /// A property attribute (`a=<name>`).
    pub fn property(name: &str) -> Self {
        Attribute {
            name: name.into(),
            value: None,
        }
    }

    /// A value attribute (`a=<name>:<value>`).
    pub fn value(name: &str, value: impl Into<String>) -> Self {
        Attribute {
            name: name.into(),
            value: Some(value.into()),
        }
    }
}

/// Media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1), from the
/// point of view of the description's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction named by an attribute, if it is one.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Whether the description's sender sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the description's sender receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction that sends and receives as told.
    pub fn from_flags(sends: bool, receives: bool) -> Direction {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The same stream seen from the other end: sendonly ↔ recvonly.
    pub fn reverse(self) -> Direction {
        Direction::from_flags(self.receives(), self.sends())
    }

    /// What both allow.
    pub fn intersect(self, other: Direction) -> Direction {
        Direction::from_flags(
            self.sends() && other.sends(),
            self.receives() && other.receives(),
        )
    }
}

/// "a=rtpmap" (RFC 8866 §6.6): `<payload type> <encoding name>/<clock
/// rate>[/<encoding parameters>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub payload_type: u8,
    /// Encoding name, as written (compare case-insensitively).
    pub encoding_name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (channels for audio).
    pub encoding_parameters: Option<String>,
}

impl RtpMap {
    /// Parses an rtpmap value.
    pub fn parse(value: &str) -> Option<RtpMap> {
        let (pt, rest) = value.split_once(' ')?;
        let payload_type: u8 = pt.parse().ok().filter(|p| *p < 128)?;
        let mut parts = rest.trim().splitn(3, '/');
        let encoding_name = parts.next()?.to_string();
        let clock_rate = parts.next()?.parse().ok()?;
        let encoding_parameters = parts.next().map(str::to_string);
        if encoding_name.is_empty() {
            return None;
        }
        Some(RtpMap {
            payload_type,
            encoding_name,
            clock_rate,
            encoding_parameters,
        })
    }
}

impl fmt::Display for RtpMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.payload_type, self.encoding_name, self.clock_rate
        )?;
        if let Some(p) = &self.encoding_parameters {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

/// A media description (RFC 8866 §5.14): "m=" and the lines after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type: "audio", "video", ...
    pub media: String,
    /// Transport port; 0 rejects or disables the stream (RFC 3264 §6, §8.2).
    pub port: u16,
    /// Number of ports ("m=audio 49170/2 ..."), if given.
    pub port_count: Option<u16>,
    /// Transport protocol: "RTP/AVP", ...
    pub protocol: String,
    /// Media formats: RTP payload type numbers for RTP/AVP.
    pub formats: Vec<String>,
    /// "i=" media title.
    pub title: Option<String>,
    /// "c=" lines (several for layered multicast; usually zero or one).
    pub connections: Vec<Connection>,
    /// "b=" lines.
    pub bandwidths: Vec<Bandwidth>,
    /// "k=" (obsolete), kept as text.
    pub key: Option<String>,
    /// "a=" lines in order.
    pub attributes: Vec<Attribute>,
}

impl MediaDescription {
    /// A media description with no attributes.
    pub fn new(media: &str, port: u16, protocol: &str, formats: Vec<String>) -> Self {
        MediaDescription {
            media: media.into(),
            port,
            port_count: None,
            protocol: protocol.into(),
            formats,
            title: None,
            connections: Vec::new(),
            bandwidths: Vec::new(),
            key: None,
            attributes: Vec::new(),
        }
    }

    /// Whether the stream is rejected or disabled (port 0).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// The first attribute with this name.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// Values of all attributes with this name.
    pub fn attribute_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.name == name)
            .filter_map(|a| a.value.as_deref())
    }

    /// The rtpmap of a payload type, if there is one.
    pub fn rtpmap(&self, payload_type: u8) -> Option<RtpMap> {
        self.attribute_values("rtpmap")
            .filter_map(RtpMap::parse)
            .find(|m| m.payload_type == payload_type)
    }

    /// The format parameters of a payload type ("a=fmtp:<pt> <params>").
    pub fn fmtp(&self, payload_type: u8) -> Option<&str> {
        self.attribute_values("fmtp").find_map(|v| {
            let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
            (pt.parse::<u8>().ok() == Some(payload_type)).then(|| params.trim())
        })
    }

    /// "a=ptime" in milliseconds (RFC 8866 §6.4), if present and numeric.
    pub fn ptime(&self) -> Option<u32> {
        self.attribute("ptime")?
            .value
            .as_deref()?
            .trim()
            .parse()
            .ok()
    }

    /// The media-level direction attribute, if any.
    pub fn direction_attribute(&self) -> Option<Direction> {
        self.attributes.iter().rev().find_map(|a| {
            if a.value.is_none() {
                Direction::from_attribute(&a.name)
            } else {
                None
            }
        })
    }

    /// Replaces any direction attribute with `direction`.
    pub fn set_direction(&mut self, direction: Direction) {
        self.attributes
            .retain(|a| a.value.is_some() || Direction::from_attribute(&a.name).is_none());
        self.attributes
            .push(Attribute::property(direction.as_str()));
    }
}

/// A session description (RFC 8866 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// "o=".
    pub origin: Origin,
    /// "s=" (may be empty or "-").
    pub session_name: String,
    /// "i=".
    pub information: Option<String>,
    /// "u=".
    pub uri: Option<String>,
    /// "e=" lines.
    pub emails: Vec<String>,
    /// "p=" lines.
    pub phones: Vec<String>,
    /// Session-level "c=", the default for media without their own.
    pub connection: Option<Connection>,
    /// "b=" lines.
    pub bandwidths: Vec<Bandwidth>,
    /// "t=" lines with their "r=" lines.
    pub timing: Vec<Timing>,
    /// "z=", kept as text.
    pub time_zones: Option<String>,
    /// "k=" (obsolete), kept as text.
    pub key: Option<String>,
    /// Session-level "a=" lines.
    pub attributes: Vec<Attribute>,
    /// Media descriptions in order.
    pub media: Vec<MediaDescription>,
}

impl SessionDescription {
    /// A description with the given origin, session name, "t=0 0" and
    /// nothing else.
    pub fn new(origin: Origin, session_name: &str) -> Self {
        SessionDescription {
            origin,
            session_name: session_name.into(),
            information: None,
            uri: None,
            emails: Vec::new(),
            phones: Vec::new(),
            connection: None,
            bandwidths: Vec::new(),
            timing: vec![Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            }],
            time_zones: None,
            key: None,
            attributes: Vec::new(),
            media: Vec::new(),
        }
    }

    /// Parses with the default [`Limits`].
    pub fn parse(input: &[u8]) -> Result<SessionDescription, SdpError> {
        Self::parse_with_limits(input, &Limits::default())
    }

    /// Parses a description, enforcing `limits`.
    pub fn parse_with_limits(
        input: &[u8],
        limits: &Limits,
    ) -> Result<SessionDescription, SdpError> {
        if input.len() > limits.max_size {
            return Err(SdpError::TooLarge {
                size: input.len(),
                limit: limits.max_size,
            });
        }
        let text = std::str::from_utf8(input).map_err(|_| SdpError::NotUtf8)?;
        Parser {
            limits,
            attributes: 0,
        }
        .parse(text)
    }

    /// The session-level direction attribute, if any.
    pub fn direction_attribute(&self) -> Option<Direction> {
        self.attributes.iter().rev().find_map(|a| {
            if a.value.is_none() {
                Direction::from_attribute(&a.name)
            } else {
                None
            }
        })
    }

    /// The direction of media description `index`: its own attribute, else
    /// the session-level one, else sendrecv (RFC 3264 §5.1).
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(MediaDescription::direction_attribute)
            .or_else(|| self.direction_attribute())
            .unwrap_or_default()
    }

    /// The connection of media description `index`: its own first "c=",
    /// else the session-level one (RFC 8866 §5.7).
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connections.first())
            .or(self.connection.as_ref())
    }

    /// Serializes to octets (CRLF line ends).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The description with origin version set to `v`, for comparisons that
    /// ignore the version.
    pub(crate) fn with_version(&self, v: u64) -> SessionDescription {
        let mut c = self.clone();
        c.origin.session_version = v;
        c
    }
}

/// Writes `s` without CR, LF or NUL (RFC 8866 §9: text may not contain them).
fn text(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        if c != '\r' && c != '\n' && c != '\0' {
            f.write_char(c)?;
        }
    }
    Ok(())
}

fn line(f: &mut fmt::Formatter<'_>, kind: char, value: &str) -> fmt::Result {
    f.write_char(kind)?;
    f.write_char('=')?;
    text(f, value)?;
    f.write_str("\r\n")
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.network_type,
            self.address_type.as_str(),
            self.address
        )
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}:{}", self.name, v),
            None => f.write_str(&self.name),
        }
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        line(f, 'v', "0")?;
        let o = &self.origin;
        line(
            f,
            'o',
            &format!(
                "{} {} {} {} {} {}",
                o.username,
                o.session_id,
                o.session_version,
                o.network_type,
                o.address_type.as_str(),
                o.unicast_address
            ),
        )?;
        line(f, 's', &self.session_name)?;
        if let Some(i) = &self.information {
            line(f, 'i', i)?;
        }
        if let Some(u) = &self.uri {
            line(f, 'u', u)?;
        }
        for e in &self.emails {
            line(f, 'e', e)?;
        }
        for p in &self.phones {
            line(f, 'p', p)?;
        }
        if let Some(c) = &self.connection {
            line(f, 'c', &c.to_string())?;
        }
        for b in &self.bandwidths {
            line(f, 'b', &format!("{}:{}", b.bwtype, b.bandwidth))?;
        }
        for t in &self.timing {
            line(f, 't', &format!("{} {}", t.start, t.stop))?;
            for r in &t.repeats {
                line(f, 'r', r)?;
            }
        }
        if let Some(z) = &self.time_zones {
            line(f, 'z', z)?;
        }
        if let Some(k) = &self.key {
            line(f, 'k', k)?;
        }
        for a in &self.attributes {
            line(f, 'a', &a.to_string())?;
        }
        for m in &self.media {
            let port = match m.port_count {
                Some(n) => format!("{}/{}", m.port, n),
                None => m.port.to_string(),
            };
            let mut value = format!("{} {} {}", m.media, port, m.protocol);
            for fmt_ in &m.formats {
                value.push(' ');
                value.push_str(fmt_);
            }
            line(f, 'm', &value)?;
            if let Some(i) = &m.title {
                line(f, 'i', i)?;
            }
            for c in &m.connections {
                line(f, 'c', &c.to_string())?;
            }
            for b in &m.bandwidths {
                line(f, 'b', &format!("{}:{}", b.bwtype, b.bandwidth))?;
            }
            if let Some(k) = &m.key {
                line(f, 'k', k)?;
            }
            for a in &m.attributes {
                line(f, 'a', &a.to_string())?;
            }
        }
        Ok(())
    }
}

struct Parser<'l> {
    limits: &'l Limits,
    attributes: usize,
}

fn is_token(s: &str) -> bool {
    // RFC 8866 §9 token-char: visible ASCII except a few separators.
    !s.is_empty()
        && s.bytes().all(|b| {
            matches!(b, 0x21 | 0x23..=0x27 | 0x2A | 0x2B | 0x2D | 0x2E | 0x30..=0x39 | 0x41..=0x5A | 0x5E..=0x7E)
        })
}

fn no_controls(s: &str) -> bool {
    !s.chars().any(|c| c == '\0' || c == '\r' || c == '\n')
}

impl Parser<'_> {
    fn parse(&mut self, text: &str) -> Result<SessionDescription, SdpError> {
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .enumerate()
            .map(|(i, l)| (i + 1, l))
            .filter(|(_, l)| !l.is_empty());

        let next_typed = |lines: &mut dyn Iterator<Item = (usize, &str)>| -> Result<Option<(usize, char, String)>, SdpError> {
            match lines.next() {
                None => Ok(None),
                Some((n, l)) => {
                    let b = l.as_bytes();
                    // A bare CR or a NUL inside a line is not text (RFC 8866 §9).
                    if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_alphabetic() || !no_controls(l) {
                        return Err(SdpError::MalformedLine { line: n });
                    }
                    Ok(Some((n, b[0] as char, l[2..].to_string())))
                }
            }
        };

        // v= (RFC 8866 §5.1): must be first and 0.
        match next_typed(&mut lines)? {
            Some((n, 'v', v)) => {
                if v.trim() != "0" {
                    return Err(SdpError::InvalidField {
                        line: n,
                        field: "version",
                    });
                }
            }
            _ => return Err(SdpError::Missing('v')),
        }
        let origin = match next_typed(&mut lines)? {
            Some((n, 'o', v)) => parse_origin(n, &v)?,
            _ => return Err(SdpError::Missing('o')),
        };
        let session_name = match next_typed(&mut lines)? {
            Some((n, 's', v)) => {
                if !no_controls(&v) {
                    return Err(SdpError::InvalidField {
                        line: n,
                        field: "session name",
                    });
                }
                v
            }
            _ => return Err(SdpError::Missing('s')),
        };
        let mut sd = SessionDescription::new(origin, &session_name);
        sd.timing.clear();

        while let Some((n, kind, value)) = next_typed(&mut lines)? {
            if !no_controls(&value) {
                return Err(SdpError::InvalidField {
                    line: n,
                    field: "text",
                });
            }
            if let Some(m) = sd.media.last_mut() {
                // Inside a media description (RFC 8866 §5: i, c, b, k, a).
                match kind {
                    'm' => {}
                    'i' if m.title.is_none() => {
                        m.title = Some(value);
                        continue;
                    }
                    'c' => {
                        if m.connections.len() >= 8 {
                            return Err(SdpError::TooMany {
                                what: "connection lines",
                                limit: 8,
                            });
                        }
                        m.connections.push(parse_connection(n, &value)?);
                        continue;
                    }
                    'b' => {
                        if m.bandwidths.len() >= 8 {
                            return Err(SdpError::TooMany {
                                what: "bandwidth lines",
                                limit: 8,
                            });
                        }
                        m.bandwidths.push(parse_bandwidth(n, &value)?);
                        continue;
                    }
                    'k' if m.key.is_none() => {
                        m.key = Some(value);
                        continue;
                    }
                    'a' => {
                        let a = self.attribute(n, &value)?;
                        m.attributes.push(a);
                        continue;
                    }
                    _ => return Err(SdpError::UnexpectedLine { line: n, kind }),
                }
            }
            match kind {
                'i' if sd.information.is_none() => sd.information = Some(value),
                'u' if sd.uri.is_none() => sd.uri = Some(value),
                'e' if sd.emails.len() < 8 => sd.emails.push(value),
                'p' if sd.phones.len() < 8 => sd.phones.push(value),
                'c' if sd.connection.is_none() => {
                    sd.connection = Some(parse_connection(n, &value)?)
                }
                'b' if sd.bandwidths.len() < 8 => sd.bandwidths.push(parse_bandwidth(n, &value)?),
                't' if sd.timing.len() < 8 => sd.timing.push(parse_timing(n, &value)?),
                'r' => match sd.timing.last_mut() {
                    Some(t) if t.repeats.len() < 8 => t.repeats.push(value),
                    _ => return Err(SdpError::UnexpectedLine { line: n, kind }),
                },
                'z' if sd.time_zones.is_none() => sd.time_zones = Some(value),
                'k' if sd.key.is_none() => sd.key = Some(value),
                'a' => {
                    let a = self.attribute(n, &value)?;
                    sd.attributes.push(a);
                }
                'm' => {
                    if sd.media.len() >= self.limits.max_media {
                        return Err(SdpError::TooMany {
                            what: "media descriptions",
                            limit: self.limits.max_media,
                        });
                    }
                    let m = parse_media(n, &value, self.limits.max_formats)?;
                    sd.media.push(m);
                }
                _ => return Err(SdpError::UnexpectedLine { line: n, kind }),
            }
        }
        if sd.timing.is_empty() {
            // "t=" is mandatory (RFC 8866 §5.9), but SIP peers omit it
            // often enough; "t=0 0" is what they mean.
            sd.timing.push(Timing {
                start: 0,
                stop: 0,
                repeats: Vec::new(),
            });
        }
        Ok(sd)
    }

    fn attribute(&mut self, n: usize, value: &str) -> Result<Attribute, SdpError> {
        self.attributes += 1;
        if self.attributes > self.limits.max_attributes {
            return Err(SdpError::TooMany {
                what: "attributes",
                limit: self.limits.max_attributes,
            });
        }
        let (name, value) = match value.split_once(':') {
            Some((name, v)) => (name, Some(v.to_string())),
            None => (value, None),
        };
        if !is_token(name) {
            return Err(SdpError::InvalidField {
                line: n,
                field: "attribute name",
            });
        }
        Ok(Attribute {
            name: name.to_string(),
            value,
        })
    }
}

fn parse_origin(n: usize, v: &str) -> Result<Origin, SdpError> {
    let bad = || SdpError::InvalidField {
        line: n,
        field: "origin",
    };
    let f: Vec<&str> = v.split(' ').collect();
    if f.len() != 6 || f.iter().any(|x| x.is_empty()) {
        return Err(bad());
    }
    let address_type = AddressType::parse(f[4]).ok_or_else(bad)?;
    Ok(Origin {
        username: f[0].to_string(),
        session_id: f[1].parse().map_err(|_| bad())?,
        session_version: f[2].parse().map_err(|_| bad())?,
        network_type: f[3].to_string(),
        address_type,
        unicast_address: f[5].to_string(),
    })
}

fn parse_connection(n: usize, v: &str) -> Result<Connection, SdpError> {
    let bad = || SdpError::InvalidField {
        line: n,
        field: "connection",
    };
    let f: Vec<&str> = v.split(' ').collect();
    if f.len() != 3 || f.iter().any(|x| x.is_empty()) || f[0] != "IN" {
        return Err(bad());
    }
    let address_type = AddressType::parse(f[1]).ok_or_else(bad)?;
    // A literal must match its declared family (RFC 8866 §5.7).
    if let Ok(ip) = f[2].parse::<IpAddr>() {
        if AddressType::of(&ip) != address_type {
            return Err(bad());
        }
    }
    Ok(Connection {
        network_type: f[0].to_string(),
        address_type,
        address: f[2].to_string(),
    })
}

fn parse_bandwidth(n: usize, v: &str) -> Result<Bandwidth, SdpError> {
    let bad = || SdpError::InvalidField {
        line: n,
        field: "bandwidth",
    };
    let (t, b) = v.split_once(':').ok_or_else(bad)?;
    if !is_token(t) {
        return Err(bad());
    }
    Ok(Bandwidth {
        bwtype: t.to_string(),
        bandwidth: b.parse().map_err(|_| bad())?,
    })
}

fn parse_timing(n: usize, v: &str) -> Result<Timing, SdpError> {
    let bad = || SdpError::InvalidField {
        line: n,
        field: "timing",
    };
    let (a, b) = v.split_once(' ').ok_or_else(bad)?;
    Ok(Timing {
        start: a.parse().map_err(|_| bad())?,
        stop: b.parse().map_err(|_| bad())?,
        repeats: Vec::new(),
    })
}

fn parse_media(n: usize, v: &str, max_formats: usize) -> Result<MediaDescription, SdpError> {
    let bad = |field| SdpError::InvalidField { line: n, field };
    let mut f = v.split(' ');
    let media = f.next().filter(|s| is_token(s)).ok_or(bad("media"))?;
    let port_field = f.next().ok_or(bad("port"))?;
    let (port, port_count) = match port_field.split_once('/') {
        Some((p, c)) => (p, Some(c.parse::<u16>().map_err(|_| bad("port"))?)),
        None => (port_field, None),
    };
    let port: u16 = port.parse().map_err(|_| bad("port"))?;
    let protocol = f.next().filter(|s| !s.is_empty()).ok_or(bad("protocol"))?;
    if !protocol.split('/').all(is_token) {
        return Err(bad("protocol"));
    }
    let mut formats = Vec::new();
    for fmt_ in f {
        if fmt_.is_empty() {
            continue;
        }
        if !is_token(fmt_) {
            return Err(bad("format"));
        }
        if formats.len() >= max_formats {
            return Err(SdpError::TooMany {
                what: "formats",
                limit: max_formats,
            });
        }
        formats.push(fmt_.to_string());
    }
    let mut m = MediaDescription::new(media, port, protocol, formats);
    m.port_count = port_count;
    Ok(m)
}
