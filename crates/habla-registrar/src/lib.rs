//! # habla-registrar: REGISTER processing (RFC 3261 §10.3)
//!
//! The registrar is a pure function: given a REGISTER request, the bindings
//! its address-of-record has now, and the time, [`process_register`]
//! decides the response and the new set of bindings. It reads no clock and
//! touches no storage: the caller loads the bindings of the AOR, applies the
//! [`RegisterDecision`] atomically, makes it durable, and only then sends
//! the 200 (nothing acknowledged is lost).
//!
//! ```
//! use habla_message::{Message, Method, RequestBuilder, Uri};
//! use habla_registrar::{process_register, RegisterDecision, RegistrarConfig};
//!
//! let req = RequestBuilder::new(Method::Register, &Uri::parse("sip:example.org")?)
//!     .via("UDP", "192.0.2.4:5060", "z9hG4bKreg1", true)
//!     .max_forwards(70)
//!     .to("<sip:bob@example.org>")
//!     .from("<sip:bob@example.org>;tag=456248")
//!     .call_id("843817637684230@998sdasdh09")
//!     .cseq(1826)
//!     .header("Contact", "<sip:bob@192.0.2.4>;expires=600")
//!     .build()?;
//! let now = 1_800_000_000; // unix seconds, from the caller's clock
//! match process_register(&RegistrarConfig::default(), now, &req, &[])? {
//!     RegisterDecision::Update { aor, bindings, .. } => {
//!         assert_eq!(aor, "sip:bob@example.org");
//!         assert_eq!(bindings[0].expires_at, now + 600);
//!     }
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod location;
use std::sync::Arc;

pub use location::{Committed, LocationError, LocationService, MemoryLocationService};

use habla_message::{Contact, HeaderName, Message, Method, Uri};

/// Registrar policy. Every limit is configurable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// Shortest registration accepted (423 below it, RFC 3261 §10.3 step 7).
    pub min_expires: u32,
    /// Longest registration granted (longer requests are shortened).
    pub max_expires: u32,
    /// Expiry when the request gives none (RFC 3261 §10.3 step 7).
    pub default_expires: u32,
    /// Most bindings one address-of-record may hold.
    pub max_bindings_per_aor: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            max_bindings_per_aor: 10,
        }
    }
}

/// One contact bound to an address-of-record (RFC 3261 §10.2.1), in a form
/// a store can keep: owned text and unix seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
///
/// The text fields are shared (`Arc<str>`): the bindings of an AOR are
/// copied on every REGISTER (the decision's new set, the in-memory table,
/// the store's write), and a copy should cost a reference count, not an
/// allocation per field.
pub struct Binding {
    /// The contact URI as written (without header parameters).
    pub contact: Arc<str>,
    /// Preference in thousandths (`q=0.5` is 500); 1000 when not given.
    pub q: u16,
    /// When the binding expires, in unix seconds.
    pub expires_at: u64,
    /// Call-ID of the REGISTER that last refreshed the binding.
    pub call_id: Arc<str>,
    /// CSeq of that REGISTER.
    pub cseq: u32,
    /// Path values to reach the contact through (RFC 3327 §5.3), top first.
    pub path: Arc<[Arc<str>]>,
    /// Where the REGISTER came from (a transport flow key chosen by the
    /// caller, e.g. `udp:192.0.2.4:5060`), to reach a contact behind NAT
    /// or over its TCP connection.
    pub source: Option<Arc<str>>,
    /// The registering agent's User-Agent, for operators.
    pub user_agent: Option<Arc<str>>,
}

impl Binding {
    /// Seconds left before expiry at `now`.
    pub fn remaining(&self, now: u64) -> u64 {
        self.expires_at.saturating_sub(now)
    }
}

/// What to do with a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterDecision {
    /// Store `bindings` as the complete, new set of the AOR (an empty set
    /// removes the AOR), make it durable, then send `response`.
    Update {
        /// The canonical address-of-record.
        aor: String,
        /// All bindings of the AOR after this request.
        bindings: Vec<Binding>,
        /// The 200 OK's Contact values (RFC 3261 §10.3 step 8).
        contacts: Vec<String>,
    },
    /// A query (no Contact): answer 200 listing the current bindings.
    Fetch {
        /// The canonical address-of-record.
        aor: String,
        /// The 200 OK's Contact values.
        contacts: Vec<String>,
    },
    /// Refuse the request.
    Reject(Rejection),
}

/// A refusal: the status, its reason and extra headers for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Status code.
    pub code: u16,
    /// Why, for a `Warning` header and logs.
    pub reason: String,
    /// Headers the response must carry (e.g. `Min-Expires`).
    pub headers: Vec<(&'static str, String)>,
}

impl Rejection {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Rejection {
            code,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
}

/// Errors in the caller's use of the registrar (not the peer's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistrarError {
    /// The message given is not a REGISTER request.
    #[error("not a REGISTER request")]
    NotRegister,
}

/// The canonical address-of-record of a SIP or SIPS URI (RFC 3261 §10.3
/// step 5: URI parameters and port ignored, host case-insensitive, user
/// compared after unescaping): `sip:user@host`.
pub fn address_of_record(uri: &Uri) -> Option<String> {
    let sip = uri.as_sip()?;
    let user = sip.user_decoded()?;
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let host = sip.host().as_str();
    let mut aor = String::with_capacity(uri.as_str().len() + 2 * user.len());
    aor.push_str(if sip.is_secure() { "sips:" } else { "sip:" });
    // Escape again what may not appear raw, so that the key is a valid URI
    // and distinct users stay distinct (RFC 4475 escnull: NUL and NUL NUL).
    let raw = |b: u8| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b);
    match std::str::from_utf8(&user) {
        // The usual user part: nothing to escape, copied at once.
        Ok(text) if user.iter().all(|&b| raw(b)) => aor.push_str(text),
        _ => {
            for &b in user.iter() {
                if raw(b) {
                    aor.push(b as char);
                } else {
                    aor.push('%');
                    aor.push(HEX[usize::from(b >> 4)] as char);
                    aor.push(HEX[usize::from(b & 15)] as char);
                }
            }
        }
    }
    aor.push('@');
    let at = aor.len();
    aor.push_str(host);
    aor[at..].make_ascii_lowercase();
    Some(aor)
}

fn reject(code: u16, reason: impl Into<String>) -> Result<RegisterDecision, RegistrarError> {
    Ok(RegisterDecision::Reject(Rejection::new(code, reason)))
}

/// Processes a REGISTER (RFC 3261 §10.3 steps 5-8; steps 1-4 — domain,
/// Require, authentication and authorisation — are the caller's).
///
/// `current` holds the AOR's bindings as stored; expired ones are ignored.
pub fn process_register(
    cfg: &RegistrarConfig,
    now: u64,
    req: &Message,
    current: &[Binding],
) -> Result<RegisterDecision, RegistrarError> {
    process_register_from(cfg, now, req, current, None)
}

/// [`process_register`] recording the flow the request came from.
pub fn process_register_from(
    cfg: &RegistrarConfig,
    now: u64,
    req: &Message,
    current: &[Binding],
    source: Option<&str>,
) -> Result<RegisterDecision, RegistrarError> {
    if req.method() != Some(&Method::Register) {
        return Err(RegistrarError::NotRegister);
    }
    // Step 5: the AOR is the To URI, which must be SIP or SIPS.
    let to = match req.to() {
        Ok(t) => t,
        Err(e) => return reject(400, e.to_string()),
    };
    let Some(aor) = address_of_record(to.uri()) else {
        return reject(
            400,
            "the To header must hold a SIP or SIPS address-of-record",
        );
    };
    process_register_as(cfg, now, req, &aor, current, source)
}

/// [`process_register_from`] for a REGISTER whose address-of-record the
/// caller has already taken from its To header with [`address_of_record`]
/// (to lock it, to check its domain): `aor`.
pub fn process_register_as(
    cfg: &RegistrarConfig,
    now: u64,
    req: &Message,
    aor: &str,
    current: &[Binding],
    source: Option<&str>,
) -> Result<RegisterDecision, RegistrarError> {
    if req.method() != Some(&Method::Register) {
        return Err(RegistrarError::NotRegister);
    }
    debug_assert_eq!(
        req.to()
            .ok()
            .and_then(|t| address_of_record(t.uri()))
            .as_deref(),
        Some(aor)
    );
    let call_id: &str = match req.call_id() {
        Ok(c) => c,
        Err(e) => return reject(400, e.to_string()),
    };
    let cseq = match req.cseq() {
        Ok(c) => c.seq,
        Err(e) => return reject(400, e.to_string()),
    };
    let contacts = match req.contacts() {
        Ok(c) => c,
        Err(e) => return reject(400, e.to_string()),
    };
    let header_expires = match req.header("Expires") {
        None => None,
        Some(v) => match v.trim().parse::<u64>() {
            // RFC 3261 §20.19: a huge value is not an error; clamp it.
            Ok(n) => Some(n.min(u64::from(u32::MAX)) as u32),
            Err(_) if v.trim().bytes().all(|c| c.is_ascii_digit()) && !v.trim().is_empty() => {
                Some(u32::MAX)
            }
            Err(_) => return reject(400, "Expires is not a number of seconds"),
        },
    };
    let live: Vec<Binding> = current
        .iter()
        .filter(|b| b.expires_at > now)
        .cloned()
        .collect();

    // Step 6: no Contact is a query.
    if contacts.is_empty() {
        return Ok(RegisterDecision::Fetch {
            contacts: contact_values(&live, now),
            aor: aor.to_owned(),
        });
    }

    // Step 6: "*" must be alone and with Expires: 0; it removes every
    // binding, subject to the Call-ID/CSeq rule of step 7.
    if contacts.iter().any(|c| matches!(c, Contact::Star)) {
        if contacts.len() != 1 || header_expires != Some(0) {
            return reject(400, "Contact: * must be alone and with Expires: 0");
        }
        for b in &live {
            if *b.call_id == *call_id && cseq <= b.cseq {
                return reject(
                    500,
                    "stale CSeq: a newer REGISTER of this Call-ID was processed",
                );
            }
        }
        return Ok(RegisterDecision::Update {
            aor: aor.to_owned(),
            bindings: Vec::new(),
            contacts: Vec::new(),
        });
    }

    let path: Vec<Arc<str>> =
        match req
            .typed_values(HeaderName::Path)
            .try_fold(Vec::new(), |mut acc, v| {
                for item in v.split(',') {
                    let item = item.trim();
                    let uri = item.trim_start_matches('<').trim_end_matches('>');
                    Uri::parse(uri).ok()?;
                    acc.push(Arc::from(item));
                }
                Some(acc)
            }) {
            Some(p) => p,
            None => return reject(400, "Path holds a malformed URI"),
        };
    // What the bindings record of the request: a refresh usually repeats
    // them, and then a binding keeps its own copies (no allocation).
    let mut call_id = Shared::new(call_id);
    let mut path = SharedPath::new(path);
    let mut user_agent = req.header("User-Agent").map(Shared::new);
    let mut source = source.map(Shared::new);

    // Step 7: each contact.
    let mut bindings = live;
    for c in contacts {
        let Contact::Addr(addr) = c else { continue };
        let uri = addr.uri();
        let requested = match addr.params().get("expires") {
            Some(Some(v)) => match v.parse::<u64>() {
                Ok(n) => n.min(u64::from(u32::MAX)) as u32,
                Err(_) if v.bytes().all(|c| c.is_ascii_digit()) => u32::MAX,
                // RFC 3261 §10.3: a malformed expires falls back to the default.
                Err(_) => header_expires.unwrap_or(cfg.default_expires),
            },
            _ => header_expires.unwrap_or(cfg.default_expires),
        };
        if requested != 0 && requested < cfg.min_expires {
            let mut r = Rejection::new(423, "registration interval too brief");
            r.headers.push(("Min-Expires", cfg.min_expires.to_string()));
            return Ok(RegisterDecision::Reject(r));
        }
        let expires = requested.min(cfg.max_expires);
        let q = match addr.params().get("q") {
            Some(Some(v)) => match habla_message::parse_qvalue(v) {
                Some(q) => q,
                None => return reject(400, "Contact q is not a qvalue"),
            },
            _ => 1000,
        };
        // Same text first (a refresh repeats its Contact as written), then
        // RFC 3261 §19.1.4 equality, which parses each stored contact.
        let existing = bindings
            .iter()
            .position(|b| *b.contact == *uri.as_str())
            .or_else(|| {
                bindings
                    .iter()
                    .position(|b| Uri::parse(&b.contact).is_ok_and(|stored| stored == *uri))
            });
        match existing {
            Some(i) => {
                let b = &bindings[i];
                if *b.call_id == *call_id.text && cseq <= b.cseq {
                    return reject(
                        500,
                        "stale CSeq: a newer REGISTER of this Call-ID was processed",
                    );
                }
                if expires == 0 {
                    bindings.remove(i);
                    continue;
                }
                let b = &mut bindings[i];
                if *b.contact != *uri.as_str() {
                    b.contact = Arc::from(uri.as_str());
                }
                b.q = q;
                b.expires_at = now + u64::from(expires);
                call_id.assign(&mut b.call_id);
                b.cseq = cseq;
                path.assign(&mut b.path);
                Shared::assign_option(&mut source, &mut b.source);
                Shared::assign_option(&mut user_agent, &mut b.user_agent);
            }
            None if expires == 0 => {}
            None => {
                if bindings.len() >= cfg.max_bindings_per_aor {
                    return reject(403, "too many bindings for this address-of-record");
                }
                bindings.push(Binding {
                    contact: Arc::from(uri.as_str()),
                    q,
                    expires_at: now + u64::from(expires),
                    call_id: call_id.get(),
                    cseq,
                    path: path.get(),
                    source: source.as_mut().map(Shared::get),
                    user_agent: user_agent.as_mut().map(Shared::get),
                });
            }
        }
    }
    Ok(RegisterDecision::Update {
        contacts: contact_values(&bindings, now),
        bindings,
        aor: aor.to_owned(),
    })
}

/// A text the bindings of a request record (Call-ID, User-Agent, flow),
/// shared: a binding that already holds an equal text keeps it, the others
/// share one copy made on first need.
struct Shared<'a> {
    text: &'a str,
    made: Option<Arc<str>>,
}

impl<'a> Shared<'a> {
    fn new(text: &'a str) -> Self {
        Shared { text, made: None }
    }

    fn get(&mut self) -> Arc<str> {
        let text = self.text;
        self.made.get_or_insert_with(|| Arc::from(text)).clone()
    }

    fn assign(&mut self, slot: &mut Arc<str>) {
        if **slot != *self.text {
            *slot = self.get();
        }
    }

    fn assign_option(shared: &mut Option<Shared<'_>>, slot: &mut Option<Arc<str>>) {
        match (shared, slot.as_mut()) {
            (Some(s), Some(held)) => s.assign(held),
            (Some(s), None) => *slot = Some(s.get()),
            (None, _) => *slot = None,
        }
    }
}

/// [`Shared`] for the Path values (RFC 3327), usually none.
struct SharedPath {
    values: Vec<Arc<str>>,
    made: Option<Arc<[Arc<str>]>>,
}

impl SharedPath {
    fn new(values: Vec<Arc<str>>) -> Self {
        SharedPath { values, made: None }
    }

    fn get(&mut self) -> Arc<[Arc<str>]> {
        let values = &self.values;
        self.made
            .get_or_insert_with(|| values.iter().cloned().collect())
            .clone()
    }

    fn assign(&mut self, slot: &mut Arc<[Arc<str>]>) {
        if slot[..] != self.values[..] {
            *slot = self.get();
        }
    }
}

/// Contact values for a 200 OK: every binding with its remaining expiry
/// (RFC 3261 §10.3 step 8).
pub fn contact_values(bindings: &[Binding], now: u64) -> Vec<String> {
    bindings
        .iter()
        .filter(|b| b.expires_at > now)
        .map(|b| {
            let expires = habla_message::Decimal::new(b.remaining(now));
            let mut v = String::with_capacity(b.contact.len() + 32);
            v.push('<');
            v.push_str(&b.contact);
            v.push_str(">;expires=");
            v.push_str(expires.as_str());
            if b.q != 1000 {
                v.push_str(";q=");
                v.push_str(&format_q(b.q));
            }
            v
        })
        .collect()
}

fn format_q(q: u16) -> String {
    if q >= 1000 {
        "1".into()
    } else {
        let s = format!("0.{q:03}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Orders bindings for forking (RFC 3261 §16.6: highest q first); equal q
/// keep their registration order.
pub fn by_preference(bindings: &mut [Binding]) {
    bindings.sort_by_key(|b| std::cmp::Reverse(b.q));
}

/// Builds the response for a decision: 200 with Contact values (and Date,
/// given by the caller's clock as an RFC 1123 string) or the rejection.
pub fn response(
    req: &Message,
    decision: &RegisterDecision,
    to_tag: &str,
    date: &str,
) -> bytes::Bytes {
    use habla_message::ResponseBuilder;
    let builder = match decision {
        RegisterDecision::Update { contacts, .. } | RegisterDecision::Fetch { contacts, .. } => {
            let mut b = ResponseBuilder::new(req, 200).to_tag(req, to_tag);
            for c in contacts {
                b = b.header("Contact", c);
            }
            // RFC 3327 §5.3: echo the Path the bindings were stored with.
            for p in req.typed_values(HeaderName::Path) {
                b = b.header("Path", &p);
            }
            b.header("Date", date)
        }
        RegisterDecision::Reject(r) => {
            let mut b = ResponseBuilder::new(req, r.code).to_tag(req, to_tag);
            for (n, v) in &r.headers {
                b = b.header(n, v);
            }
            let warning: String = r
                .reason
                .chars()
                .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
                .collect();
            b.header("Warning", &format!("399 habla \"{warning}\""))
        }
    };
    builder.to_bytes().unwrap_or_default()
}
