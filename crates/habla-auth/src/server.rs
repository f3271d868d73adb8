//! The server side: configuration, challenges and the verification of
//! credentials, as typed decisions.

use crate::credentials::{realm_of, DigestCredentials};
use crate::digest::{Algorithm, Ha1, ResponseInput};
use crate::error::{ConfigError, CredentialsError};
use crate::identity::{check_identity, IdentityError};
use crate::network::{mask, TrustedNetworks};
use crate::nonce::{NonceInfo, NonceKey};
use crate::replay::{NonceCountCheck, NonceCounts};
use crate::throttle::{Throttle, ThrottlePolicy};
use habla_message::{AuthParams, HeaderName, Message, Method, ResponseBuilder, Uri};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// Unix seconds of a wall-clock time (the driver reads the clock; this
/// crate only converts). Times before 1970 are 0.
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How many credentials headers are examined per request (RFC 3261 §22.3
/// allows one per realm; more is hostile).
const MAX_CREDENTIALS: usize = 8;

/// The authentication policy. Build with [`AuthConfig::new`] and adjust the
/// fields; [`DigestServer::new`] validates it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// The realm (RFC 3261 §22.1: usually the domain; it is part of every
    /// stored HA1, so changing it invalidates them).
    pub realm: String,
    /// How long a nonce is accepted after it was issued, in seconds.
    /// Past it the answer is a challenge with `stale=true` (RFC 7616 §3.3).
    pub nonce_lifetime: u64,
    /// An `opaque` value to send and require back (RFC 7616 §3.3), if any.
    pub opaque: Option<String>,
    /// The algorithms offered, one challenge header each, in order of
    /// preference (RFC 7616 §3.7, RFC 8760 §2.3: SHA-256 before MD5). Only
    /// these are accepted.
    pub algorithms: Vec<Algorithm>,
    /// The methods that are challenged (case-sensitive, RFC 3261 §7.1).
    /// ACK and CANCEL may not appear (RFC 3261 §22.1).
    pub challenge_methods: Vec<String>,
    /// Sources that are never challenged.
    pub trusted_networks: TrustedNetworks,
    /// Brute-force throttling.
    pub throttle: ThrottlePolicy,
    /// Sources tracked by the throttle at most.
    pub throttle_capacity: usize,
    /// IPv6 sources are throttled per prefix of this length (64: one
    /// customer network), IPv4 per address.
    pub ipv6_throttle_prefix: u8,
    /// Nonces tracked by the nonce-count table at most.
    pub nonce_count_capacity: usize,
    /// Check that `uri` names the Request-URI (RFC 7616 §3.4.6).
    pub check_uri: bool,
    /// Check From (and To for REGISTER) against the user
    /// ([`check_identity`]).
    pub check_identity: bool,
}

impl AuthConfig {
    /// The defaults: nonces live 300 s; SHA-256 then MD5; REGISTER, INVITE,
    /// MESSAGE, SUBSCRIBE, PUBLISH, REFER and OPTIONS challenged; no trusted
    /// network; 10 failures in 60 s block a source for 300 s; 65,536
    /// entries per table; URI and identity checks on.
    pub fn new(realm: impl Into<String>) -> AuthConfig {
        AuthConfig {
            realm: realm.into(),
            nonce_lifetime: 300,
            opaque: None,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            challenge_methods: [
                "REGISTER",
                "INVITE",
                "MESSAGE",
                "SUBSCRIBE",
                "PUBLISH",
                "REFER",
                "OPTIONS",
            ]
            .map(String::from)
            .to_vec(),
            trusted_networks: TrustedNetworks::default(),
            throttle: ThrottlePolicy::default(),
            throttle_capacity: 65_536,
            ipv6_throttle_prefix: 64,
            nonce_count_capacity: 65_536,
            check_uri: true,
            check_identity: true,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let quotable = |s: &str| !s.chars().any(|c| c == '"' || c == '\\' || c.is_control());
        if self.realm.is_empty() || !quotable(&self.realm) {
            return Err(ConfigError::InvalidRealm(self.realm.clone()));
        }
        if let Some(o) = &self.opaque {
            if !quotable(o) {
                return Err(ConfigError::InvalidOpaque(o.clone()));
            }
        }
        for (v, what) in [
            (self.nonce_lifetime, "nonce_lifetime"),
            (self.throttle_capacity as u64, "throttle_capacity"),
            (self.nonce_count_capacity as u64, "nonce_count_capacity"),
            (
                u64::from(self.throttle.max_failures),
                "throttle.max_failures",
            ),
        ] {
            if v == 0 {
                return Err(ConfigError::Zero(what));
            }
        }
        if self.algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithm);
        }
        if let Some(m) = self
            .challenge_methods
            .iter()
            .find(|m| *m == "ACK" || *m == "CANCEL")
        {
            return Err(ConfigError::UnchallengeableMethod(m.clone()));
        }
        if self.ipv6_throttle_prefix > 128 {
            return Err(ConfigError::InvalidNetwork {
                network: format!("/{}", self.ipv6_throttle_prefix),
                reason: "ipv6_throttle_prefix is longer than 128",
            });
        }
        Ok(())
    }
}

/// Who challenges: the registrar/UAS (401, `WWW-Authenticate`, credentials
/// in `Authorization`) or a proxy (407, `Proxy-Authenticate`, credentials
/// in `Proxy-Authorization`). RFC 3261 §22.2 and §22.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// 401 Unauthorized.
    Www,
    /// 407 Proxy Authentication Required.
    Proxy,
}

impl ChallengeKind {
    /// habla's rule: REGISTER is answered by the registrar (401); every
    /// other request from a local user is authenticated by the proxy (407).
    pub fn for_method(m: &Method) -> ChallengeKind {
        if *m == Method::Register {
            ChallengeKind::Www
        } else {
            ChallengeKind::Proxy
        }
    }
    /// 401 or 407.
    pub fn status(self) -> u16 {
        match self {
            ChallengeKind::Www => 401,
            ChallengeKind::Proxy => 407,
        }
    }
    /// `WWW-Authenticate` or `Proxy-Authenticate`.
    pub fn challenge_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }
    /// The header the credentials come back in.
    pub fn credentials_header(self) -> HeaderName {
        match self {
            ChallengeKind::Www => HeaderName::Authorization,
            ChallengeKind::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

/// Why a request is (re-)challenged. For logs and metrics only: what goes
/// on the wire depends on the kind and `stale` alone, so an unknown user
/// and a wrong password look the same to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChallengeReason {
    /// No credentials (the usual first request).
    NoCredentials,
    /// Credentials only for other realms (RFC 3261 §22.3).
    OtherRealm,
    /// An algorithm that was not offered.
    UnsupportedAlgorithm,
    /// A nonce this server did not sign (forged, other realm, corrupted).
    InvalidNonce,
    /// `opaque` not returned unchanged (RFC 7616 §3.3).
    OpaqueMismatch,
    /// A nonce past its lifetime, with an otherwise correct response
    /// (`stale=true`, RFC 7616 §3.3), or one whose count history was
    /// evicted ([`NonceCounts`]).
    StaleNonce,
    /// Wrong password or unknown user: deliberately one reason.
    InvalidCredentials,
    /// An nc not greater than one already accepted for the nonce (RFC 7616
    /// §3.4; a replay). Answered `stale=true` so an honest client simply
    /// retries with a fresh nonce.
    Replay,
}

/// Why a request is refused outright (403).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForbiddenReason {
    /// The source failed too often ([`ThrottlePolicy`]); blocked until this
    /// unix time.
    Throttled {
        /// End of the block (unix seconds, exclusive).
        until: u64,
    },
    /// Authenticated, but not as the user the request claims to be.
    Identity(IdentityError),
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthDecision {
    /// Valid credentials for `user`: process the request.
    Authenticated {
        /// The digest username.
        user: String,
        /// The algorithm the client used.
        algorithm: Algorithm,
    },
    /// The source is in a trusted network: process without credentials.
    Trusted,
    /// This method is not challenged: process without credentials.
    NotRequired,
    /// Answer 401/407 with [`DigestServer::challenge`].
    Challenge {
        /// 401 or 407.
        kind: ChallengeKind,
        /// Send `stale=true`.
        stale: bool,
        /// Why (not sent).
        reason: ChallengeReason,
    },
    /// Answer 403.
    Forbidden(ForbiddenReason),
    /// Answer 400: the credentials are malformed.
    BadRequest(CredentialsError),
}

impl AuthDecision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(
            self,
            AuthDecision::Authenticated { .. } | AuthDecision::Trusted | AuthDecision::NotRequired
        )
    }

    /// The status code to answer with, when the request may not proceed.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            AuthDecision::Challenge { kind, .. } => Some(kind.status()),
            AuthDecision::Forbidden(_) => Some(403),
            AuthDecision::BadRequest(_) => Some(400),
            _ => None,
        }
    }
}

/// The challenge header values of one 401/407 response: one per offered
/// algorithm, most preferred first (RFC 7616 §3.7; RFC 8760 §2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// 401 or 407.
    pub kind: ChallengeKind,
    /// The nonce every header carries.
    pub nonce: String,
    /// The header values (`Digest realm="...", ...`).
    pub values: Vec<String>,
}

impl Challenge {
    /// The response to `req`: 401/407 with the challenge headers.
    pub fn response(&self, req: &Message) -> ResponseBuilder {
        let name = self.kind.challenge_header();
        self.values
            .iter()
            .fold(req.response(self.kind.status()), |b, v| b.header(name, v))
    }
}

/// The mutable half of the engine: the nonce-count table and the throttle.
///
/// Shared by every thread that verifies requests (`Send + Sync`): each
/// table is split into independently locked stripes — nonces by their
/// signature, sources by a hash of the address — so that replay detection
/// and throttling see every request whichever worker handles it, without
/// one lock for all of them.
#[derive(Debug)]
pub struct AuthState {
    nonce_counts: Box<[Mutex<NonceCounts>]>,
    throttle: Box<[Mutex<Throttle<IpAddr>>]>,
}

/// Stripes of a table of `capacity` entries: one for small tables (their
/// bounds stay exact), up to 16 for large ones.
fn stripes(capacity: usize) -> usize {
    (capacity / 1024).clamp(1, 16)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned stripe only means a panic elsewhere while it was held; its
    // table is still consistent (every operation completes or does nothing).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AuthState {
    fn nonces(&self, tag: &[u8; 16]) -> MutexGuard<'_, NonceCounts> {
        // The tag is an HMAC: its first octet is uniformly distributed.
        lock(&self.nonce_counts[usize::from(tag[0]) % self.nonce_counts.len()])
    }

    fn sources(&self, key: &IpAddr) -> MutexGuard<'_, Throttle<IpAddr>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        lock(&self.throttle[(h.finish() as usize) % self.throttle.len()])
    }

    /// Nonces tracked for replay detection.
    pub fn tracked_nonces(&self) -> usize {
        self.nonce_counts.iter().map(|s| lock(s).len()).sum()
    }

    /// Sources tracked by the throttle.
    pub fn tracked_sources(&self) -> usize {
        self.throttle.iter().map(|s| lock(s).len()).sum()
    }
}

/// Verification that needs the user's [`Ha1`]: ask the store for
/// [`PendingAuth::username`] (however it likes: the lookup is the caller's
/// I/O), then call [`DigestServer::finish`].
#[derive(Debug, Clone)]
pub struct PendingAuth {
    params: AuthParams,
    method: Method,
    kind: ChallengeKind,
    source: IpAddr,
    nonce: NonceInfo,
    stale: bool,
    identity: Result<(), IdentityError>,
}

impl PendingAuth {
    /// The username to look up (unquoted).
    pub fn username(&self) -> Cow<'_, str> {
        self.params.get("username").unwrap_or_default()
    }
}

/// First step of verification.
#[derive(Debug, Clone)]
pub enum Step {
    /// Decided without the user's HA1.
    Decided(AuthDecision),
    /// Look the user up, then [`DigestServer::finish`].
    NeedCredentials(PendingAuth),
}

/// The digest authentication engine: immutable after construction
/// (`Send + Sync`, share it between threads); the tables live in
/// [`AuthState`].
#[derive(Clone)]
pub struct DigestServer {
    config: AuthConfig,
    key: NonceKey,
    dummy: Ha1,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DigestServer {
    /// An engine for `config`, signing nonces with `secret` (at least 16
    /// bytes of caller-supplied randomness; every node sharing it accepts
    /// the others' nonces).
    pub fn new(config: AuthConfig, secret: &[u8]) -> Result<DigestServer, ConfigError> {
        if secret.len() < 16 {
            return Err(ConfigError::SecretTooShort(secret.len()));
        }
        config.validate()?;
        let key = NonceKey::new(secret);
        // The HA1 used for unknown users: secret, so nobody can answer it,
        // and computed once, so unknown users cost what known ones cost.
        let d = key.derive(b"habla-auth dummy HA1");
        let mut dummy = Ha1 {
            md5: [0; 16],
            sha256: d,
        };
        dummy.md5.copy_from_slice(&d[..16]);
        Ok(DigestServer { config, key, dummy })
    }

    /// The configuration.
    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Empty tables sized by the configuration.
    pub fn new_state(&self) -> AuthState {
        let n = stripes(self.config.nonce_count_capacity);
        let t = stripes(self.config.throttle_capacity);
        AuthState {
            nonce_counts: (0..n)
                .map(|_| {
                    Mutex::new(NonceCounts::new(
                        self.config.nonce_count_capacity.div_ceil(n),
                    ))
                })
                .collect(),
            throttle: (0..t)
                .map(|_| {
                    Mutex::new(Throttle::new(
                        self.config.throttle,
                        self.config.throttle_capacity.div_ceil(t),
                    ))
                })
                .collect(),
        }
    }

    /// Whether requests of this method are challenged.
    pub fn challenges(&self, m: &Method) -> bool {
        !matches!(m, Method::Ack | Method::Cancel)
            && self
                .config
                .challenge_methods
                .iter()
                .any(|c| c == m.as_str())
    }

    /// A new nonce issued at `now` from 16 bytes of caller randomness.
    pub fn issue_nonce(&self, now: u64, entropy: &[u8; 16]) -> String {
        self.key.issue(&self.config.realm, now, entropy)
    }

    /// A challenge: one header per offered algorithm, all with the same
    /// fresh nonce, `qop="auth"`, and `stale=true` when asked (RFC 7616
    /// §3.3; RFC 3261 §22.1 and §25.1 `challenge`).
    pub fn challenge(
        &self,
        kind: ChallengeKind,
        now: u64,
        entropy: &[u8; 16],
        stale: bool,
    ) -> Challenge {
        let nonce = self.issue_nonce(now, entropy);
        let values = self
            .config
            .algorithms
            .iter()
            .map(|alg| {
                let mut v = format!(
                    "Digest realm=\"{}\", nonce=\"{}\"",
                    self.config.realm, nonce
                );
                if let Some(o) = &self.config.opaque {
                    v.push_str(&format!(", opaque=\"{o}\""));
                }
                // algorithm and stale are tokens, qop a quoted list (RFC
                // 7616 §3.3; RFC 3261 §25.1).
                v.push_str(&format!(", algorithm={alg}, qop=\"auth\""));
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect();
        Challenge {
            kind,
            nonce,
            values,
        }
    }

    /// The response for a refusing decision: 401/407 with a fresh challenge,
    /// 403 or 400 (`None` when the request may proceed). `entropy` feeds
    /// the new nonce.
    pub fn respond(
        &self,
        req: &Message,
        decision: &AuthDecision,
        now: u64,
        entropy: &[u8; 16],
    ) -> Option<ResponseBuilder> {
        match decision {
            AuthDecision::Challenge { kind, stale, .. } => {
                Some(self.challenge(*kind, now, entropy, *stale).response(req))
            }
            AuthDecision::Forbidden(_) => Some(req.response(403)),
            AuthDecision::BadRequest(e) => {
                // RFC 3261 §20.43: 399 is a free-text warning. The reason
                // may quote peer input: keep it short and quotable.
                let text: String = e
                    .to_string()
                    .chars()
                    .take(160)
                    .map(|c| {
                        if c == '"' || c == '\\' || c.is_control() {
                            '\''
                        } else {
                            c
                        }
                    })
                    .collect();
                Some(
                    req.response(400)
                        .header("Warning", &format!("399 habla \"{text}\"")),
                )
            }
            _ => None,
        }
    }

    /// The throttle key of a source: the address, or its IPv6 prefix.
    fn source_key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            v4 @ IpAddr::V4(_) => v4,
            v6 => mask(v6, self.config.ipv6_throttle_prefix),
        }
    }

    fn fail(&self, state: &AuthState, source: IpAddr, now: u64) {
        let key = self.source_key(source);
        state.sources(&key).record_failure(key, now);
    }

    /// First step: everything that does not need the user's HA1, in an
    /// order that never depends on whether the user exists.
    pub fn start(&self, state: &AuthState, req: &Message, source: IpAddr, now: u64) -> Step {
        use AuthDecision as D;
        let decided = Step::Decided;
        let Some(method) = req.method() else {
            return decided(D::BadRequest(CredentialsError::NotARequest));
        };
        if self.config.trusted_networks.contains(source) {
            return decided(D::Trusted);
        }
        if !self.challenges(method) {
            return decided(D::NotRequired);
        }
        let key = self.source_key(source);
        let blocked = state.sources(&key).blocked_until(&key, now);
        if let Some(until) = blocked {
            return decided(D::Forbidden(ForbiddenReason::Throttled { until }));
        }
        let kind = ChallengeKind::for_method(method);
        let challenge = |stale, reason| {
            decided(D::Challenge {
                kind,
                stale,
                reason,
            })
        };

        // RFC 3261 §22.3: pick the credentials for our realm; others are
        // for other proxies.
        let mut other_realm = false;
        let mut syntax: Option<String> = None;
        let mut chosen = None;
        for p in req
            .auth_headers(kind.credentials_header())
            .take(MAX_CREDENTIALS)
        {
            match p {
                Err(e) => {
                    syntax.get_or_insert_with(|| e.to_string());
                }
                Ok(p) if !p.scheme().eq_ignore_ascii_case("Digest") => {}
                Ok(p) if realm_of(&p).as_deref() == Some(self.config.realm.as_str()) => {
                    chosen = Some(p);
                    break;
                }
                Ok(_) => other_realm = true,
            }
        }
        let Some(params) = chosen else {
            if let Some(e) = syntax {
                self.fail(state, source, now);
                return decided(D::BadRequest(CredentialsError::Syntax(e)));
            }
            let reason = if other_realm {
                ChallengeReason::OtherRealm
            } else {
                ChallengeReason::NoCredentials
            };
            return challenge(false, reason);
        };

        let creds = match DigestCredentials::parse(&params, &self.config.algorithms) {
            Ok(c) => c,
            Err(CredentialsError::UnsupportedAlgorithm(_)) => {
                return challenge(false, ChallengeReason::UnsupportedAlgorithm);
            }
            Err(e) => {
                self.fail(state, source, now);
                return decided(D::BadRequest(e));
            }
        };

        // RFC 7616 §3.4.6 (RFC 2617 §3.2.2.5): the uri must name the
        // Request-URI, else 400.
        if self.config.check_uri {
            let ruri = req.request_uri_str().unwrap_or("");
            if !uri_matches(&creds.uri, ruri) {
                self.fail(state, source, now);
                return decided(D::BadRequest(CredentialsError::UriMismatch {
                    digest_uri: creds.uri.chars().take(256).collect(),
                    request_uri: ruri.chars().take(256).collect(),
                }));
            }
        }

        // RFC 7616 §3.3: opaque comes back unchanged.
        if let Some(o) = &self.config.opaque {
            let same = creds
                .opaque
                .as_deref()
                .is_some_and(|c| bool::from(c.as_bytes().ct_eq(o.as_bytes())));
            if !same {
                self.fail(state, source, now);
                return challenge(false, ChallengeReason::OpaqueMismatch);
            }
        }

        // The nonce must be ours (HMAC, constant time) ...
        let Some(nonce) = self.key.verify(&self.config.realm, &creds.nonce) else {
            self.fail(state, source, now);
            return challenge(false, ChallengeReason::InvalidNonce);
        };
        // ... and young enough. A nonce from the future (another node's
        // clock, a clock step) is tolerated up to one lifetime.
        let lifetime = self.config.nonce_lifetime;
        let stale = now.saturating_sub(nonce.issued) >= lifetime
            || nonce.issued.saturating_sub(now) > lifetime;

        let identity = if self.config.check_identity {
            check_identity(&creds.username, req)
        } else {
            Ok(())
        };
        drop(creds);
        Step::NeedCredentials(PendingAuth {
            params,
            method: method.clone(),
            kind,
            source,
            nonce,
            stale,
            identity,
        })
    }

    /// Second step: `ha1` is the stored hashes of
    /// [`PendingAuth::username`], `None` for an unknown user (which is
    /// verified against a secret dummy HA1 and fails exactly like a wrong
    /// password: same work, same decision).
    pub fn finish(
        &self,
        state: &AuthState,
        pending: PendingAuth,
        ha1: Option<&Ha1>,
        now: u64,
    ) -> AuthDecision {
        let kind = pending.kind;
        let creds = match DigestCredentials::parse(&pending.params, &self.config.algorithms) {
            Ok(c) => c,
            // `start` parsed the same value: unreachable in practice.
            Err(e) => return AuthDecision::BadRequest(e),
        };
        let known = subtle::Choice::from(u8::from(ha1.is_some()));
        let ha1 = ha1.unwrap_or(&self.dummy);
        let expected = ResponseInput {
            algorithm: creds.algorithm,
            nonce: &creds.nonce,
            nc: &creds.nc_text,
            cnonce: &creds.cnonce,
            qop: &creds.qop,
            method: pending.method.as_str(),
            uri: &creds.uri,
        }
        .response(ha1.for_algorithm(creds.algorithm));
        // Constant-time comparison, so timing does not tell how much of a
        // guessed response was right; the lengths are the algorithm's.
        let ok = expected.as_bytes().ct_eq(&creds.response) & known;
        let challenge = |stale, reason| AuthDecision::Challenge {
            kind,
            stale,
            reason,
        };
        if !bool::from(ok) {
            self.fail(state, pending.source, now);
            return challenge(false, ChallengeReason::InvalidCredentials);
        }
        // RFC 7616 §3.3: stale=true only when the response was valid with
        // the expired nonce (the password is right; retry without asking).
        if pending.stale {
            return challenge(true, ChallengeReason::StaleNonce);
        }
        let check = {
            let mut table = state.nonces(&pending.nonce.tag);
            table.prune(now.saturating_sub(self.config.nonce_lifetime));
            table.check_and_record(pending.nonce.tag, pending.nonce.issued, creds.nc)
        };
        match check {
            NonceCountCheck::Fresh => {}
            NonceCountCheck::Replay { .. } => return challenge(true, ChallengeReason::Replay),
            NonceCountCheck::Forgotten => return challenge(true, ChallengeReason::StaleNonce),
        }
        if let Err(e) = pending.identity {
            return AuthDecision::Forbidden(ForbiddenReason::Identity(e));
        }
        AuthDecision::Authenticated {
            user: creds.username.into_owned(),
            algorithm: creds.algorithm,
        }
    }

    /// Both steps with a synchronous lookup (an in-memory user table).
    pub fn authenticate(
        &self,
        state: &AuthState,
        req: &Message,
        source: IpAddr,
        now: u64,
        lookup: impl FnOnce(&str) -> Option<Ha1>,
    ) -> AuthDecision {
        match self.start(state, req, source, now) {
            Step::Decided(d) => d,
            Step::NeedCredentials(p) => {
                let ha1 = lookup(&p.username());
                self.finish(state, p, ha1.as_ref(), now)
            }
        }
    }
}

/// Whether the digest `uri` names the Request-URI. RFC 7616 §3.4.6 asks
/// for "the same resource"; habla compares the text, ignoring the case of
/// the scheme and, for SIP URIs, of the host (RFC 3261 §19.1.4), nothing
/// else (parameters, user parts and escapes must be as sent: the client
/// signs the Request-URI it puts on the request line).
pub fn uri_matches(digest_uri: &str, request_uri: &str) -> bool {
    if digest_uri == request_uri {
        return true;
    }
    if digest_uri.len() != request_uri.len() {
        return false;
    }
    match (normalized(digest_uri), normalized(request_uri)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The URI with scheme and (SIP) host lower-cased.
fn normalized(s: &str) -> Option<String> {
    let uri = Uri::parse(s).ok()?;
    let text = uri.as_str();
    let mut out = text.to_owned();
    let n = uri.scheme().len();
    out.get_mut(..n)?.make_ascii_lowercase();
    if let Uri::Sip(sip) = &uri {
        let host = sip.host().as_str();
        let off = (host.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
        out.get_mut(off..off.checked_add(host.len())?)?
            .make_ascii_lowercase();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_matching() {
        assert!(uri_matches("sip:example.org", "sip:example.org"));
        assert!(uri_matches("SIP:Example.ORG", "sip:example.org"));
        assert!(uri_matches(
            "sip:bob@EXAMPLE.org;transport=tcp",
            "sip:bob@example.org;transport=tcp"
        ));
        assert!(uri_matches(
            "sips:[2001:DB8::1]:5061",
            "sips:[2001:db8::1]:5061"
        ));
        assert!(!uri_matches("sip:Bob@example.org", "sip:bob@example.org"));
        assert!(!uri_matches("sip:bob@example.org", "sip:bob@example.org;x"));
        assert!(!uri_matches("sip:example.org", "sip:example.com"));
        assert!(!uri_matches("sips:example.org", "sip:example.org"));
        assert!(!uri_matches("", "sip:example.org"));
        assert!(!uri_matches("garbage", "garbage2"));
        assert!(uri_matches("TEL:+1555", "tel:+1555"));
    }

    #[test]
    fn config_validation() {
        let ok = AuthConfig::new("example.org");
        assert!(DigestServer::new(ok.clone(), b"short").is_err());
        assert!(DigestServer::new(ok.clone(), &[0; 16]).is_ok());
        let mut c = ok.clone();
        c.realm = "a\"b".into();
        assert!(matches!(
            DigestServer::new(c, &[0; 16]),
            Err(ConfigError::InvalidRealm(_))
        ));
        let mut c = ok.clone();
        c.challenge_methods.push("CANCEL".into());
        assert!(matches!(
            DigestServer::new(c, &[0; 16]),
            Err(ConfigError::UnchallengeableMethod(_))
        ));
        let mut c = ok.clone();
        c.nonce_lifetime = 0;
        assert_eq!(
            DigestServer::new(c, &[0; 16]).unwrap_err(),
            ConfigError::Zero("nonce_lifetime")
        );
        let mut c = ok;
        c.algorithms.clear();
        assert_eq!(
            DigestServer::new(c, &[0; 16]).unwrap_err(),
            ConfigError::NoAlgorithm
        );
    }

    #[test]
    fn engine_is_shareable_and_state_is_send() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<DigestServer>();
        send_sync::<AuthState>();
        send_sync::<PendingAuth>();
    }
}
