//! Digest authentication end to end: the RFC worked examples, challenge →
//! client → verification round trips, and every refusal path.

use bytes::Bytes;
use habla_auth::client::{self, ClientRequest};
use habla_auth::{
    Algorithm, AuthConfig, AuthDecision, AuthState, ChallengeKind, ChallengeReason,
    CredentialsError, DigestServer, ForbiddenReason, Ha1, IdentityError, IdentityHeader,
    ResponseInput, Step, ThrottlePolicy, TrustedNetworks,
};
use habla_message::{AuthParams, HeaderName, Message, SipStr};
use std::net::IpAddr;

const REALM: &str = "example.org";
const SECRET: &[u8] = b"habla test secret, 32 bytes long";
const T0: u64 = 1_700_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn server_with(f: impl FnOnce(&mut AuthConfig)) -> DigestServer {
    let mut c = AuthConfig::new(REALM);
    f(&mut c);
    DigestServer::new(c, SECRET).unwrap()
}

fn server() -> DigestServer {
    server_with(|_| {})
}

/// The user store: alice/wonderland and bob/builder.
fn lookup(user: &str) -> Option<Ha1> {
    match user {
        "alice" => Some(Ha1::compute("alice", REALM, "wonderland")),
        "bob" => Some(Ha1::compute("bob", REALM, "builder")),
        _ => None,
    }
}

/// A request from `from_user` to `to_user` with extra header lines.
fn request(
    method: &str,
    ruri: &str,
    from_user: &str,
    to_user: &str,
    extra: &[(&str, &str)],
) -> Message {
    let mut s = format!(
        "{method} {ruri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{method}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from_user}@{REALM}>;tag=f1\r\n\
         To: <sip:{to_user}@{REALM}>\r\n\
         Call-ID: call-1@192.0.2.10\r\n\
         CSeq: 1 {method}\r\n"
    );
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    Message::parse(Bytes::from(s)).unwrap()
}

fn register(user: &str, extra: &[(&str, &str)]) -> Message {
    request("REGISTER", "sip:example.org", user, user, extra)
}

/// The 401/407 the server sends for `req`, parsed back, and its challenges.
fn challenge_of(
    srv: &DigestServer,
    req: &Message,
    decision: &AuthDecision,
    now: u64,
    seed: u8,
) -> (Message, Vec<AuthParams>) {
    let resp = srv
        .respond(req, decision, now, &[seed; 16])
        .expect("a refusal has a response")
        .build()
        .unwrap();
    let name = if resp.status() == Some(401) {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    let ch: Vec<AuthParams> = resp.auth_headers(name).map(Result::unwrap).collect();
    (resp, ch)
}

/// The credentials value answering `challenge` for a request.
fn answer(
    challenge: &AuthParams,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    client::authorization(
        challenge,
        &ClientRequest {
            username: user,
            password,
            method,
            uri,
            cnonce: "0a4f113b",
            nc,
        },
    )
    .unwrap()
}

fn auth(srv: &DigestServer, st: &AuthState, req: &Message, now: u64) -> AuthDecision {
    srv.authenticate(st, req, ip("192.0.2.10"), now, lookup)
}

/// A first REGISTER for `user`, its 401, and the chosen challenge.
fn first_challenge(srv: &DigestServer, st: &AuthState, user: &str, now: u64) -> AuthParams {
    let req = register(user, &[]);
    let d = auth(srv, st, &req, now);
    assert_eq!(
        d,
        AuthDecision::Challenge {
            kind: ChallengeKind::Www,
            stale: false,
            reason: ChallengeReason::NoCredentials
        }
    );
    let (_, ch) = challenge_of(srv, &req, &d, now, 1);
    client::select_challenge(&ch).unwrap().clone()
}

fn registered_with(ch: &AuthParams, user: &str, password: &str, nc: u32) -> Message {
    let v = answer(ch, user, password, "REGISTER", "sip:example.org", nc);
    register(user, &[("Authorization", &v)])
}

fn challenge(kind: ChallengeKind, stale: bool, reason: ChallengeReason) -> AuthDecision {
    AuthDecision::Challenge {
        kind,
        stale,
        reason,
    }
}

// ----- RFC worked examples ---------------------------------------------------

/// RFC 7616 §3.9.1: Mufasa / "Circle of Life", GET /dir/index.html, MD5 and
/// SHA-256 responses as published.
#[test]
fn rfc7616_section_3_9_1_examples() {
    let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    for (alg, expected) in [
        (Algorithm::Md5, "8ca523f5e9506fed4657c9700eebdbec"),
        (
            Algorithm::Sha256,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let got = client::compute_response(
            alg,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            nonce,
            1,
            cnonce,
        );
        assert_eq!(got, expected, "{alg}");
        // The same from the stored HA1 (what the server does).
        let ha1 = Ha1::compute("Mufasa", "http-auth@example.org", "Circle of Life");
        let input = ResponseInput {
            algorithm: alg,
            nonce,
            nc: "00000001",
            cnonce,
            qop: "auth",
            method: "GET",
            uri: "/dir/index.html",
        };
        assert_eq!(input.response_hex_from_ha1(&ha1), expected);
    }
    // And through the client helper, from the RFC's challenge text.
    let ch = AuthParams::parse(
        &SipStr::from(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        ),
        "WWW-Authenticate",
    )
    .unwrap();
    let v = client::authorization(
        &ch,
        &ClientRequest {
            username: "Mufasa",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            cnonce,
            nc: 1,
        },
    )
    .unwrap();
    assert!(
        v.contains("response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""),
        "{v}"
    );
    assert!(v.contains("opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""));
    assert!(v.contains("nc=00000001") && v.contains("algorithm=SHA-256"));
}

/// RFC 2617 §3.5: Mufasa / "Circle Of Life", MD5 with qop=auth.
#[test]
fn rfc2617_section_3_5_example() {
    let got = client::compute_response(
        Algorithm::Md5,
        "Mufasa",
        "testrealm@host.com",
        "Circle Of Life",
        "GET",
        "/dir/index.html",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        1,
        "0a4f113b",
    );
    assert_eq!(got, "6629fae49393a05397450978507c4ef1");
}

/// MD5-sess folds the nonce and cnonce into HA1 (RFC 7616 §3.4.2).
#[test]
fn session_variant_differs_and_verifies() {
    let srv = server_with(|c| c.algorithms = vec![Algorithm::Md5Sess]);
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    assert_eq!(ch.get("algorithm").unwrap(), "MD5-sess");
    let d = auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 1),
        T0 + 1,
    );
    assert_eq!(
        d,
        AuthDecision::Authenticated {
            user: "alice".into(),
            algorithm: Algorithm::Md5Sess
        }
    );
    let a = client::compute_response(Algorithm::Md5, "u", "r", "p", "M", "sip:x", "n", 1, "c");
    let b = client::compute_response(Algorithm::Md5Sess, "u", "r", "p", "M", "sip:x", "n", 1, "c");
    assert_ne!(a, b);
}

// ----- challenges and round trips -------------------------------------------

#[test]
fn challenge_offers_sha256_then_md5() {
    let srv = server_with(|c| c.opaque = Some("op4que".into()));
    let st = srv.new_state();
    let req = register("alice", &[]);
    let d = auth(&srv, &st, &req, T0);
    let (resp, ch) = challenge_of(&srv, &req, &d, T0, 7);
    assert_eq!(resp.status(), Some(401));
    assert_eq!(ch.len(), 2);
    assert_eq!(ch[0].get("algorithm").unwrap(), "SHA-256");
    assert_eq!(ch[1].get("algorithm").unwrap(), "MD5");
    for c in &ch {
        assert_eq!(c.scheme(), "Digest");
        assert_eq!(c.get("realm").unwrap(), REALM);
        assert_eq!(c.get("qop").unwrap(), "auth");
        assert_eq!(c.get("opaque").unwrap(), "op4que");
        assert!(c.get("stale").is_none());
    }
    assert_eq!(ch[0].get("nonce"), ch[1].get("nonce"));
    // qop is quoted, algorithm is not (RFC 7616 §3.3).
    let raw = resp.to_bytes();
    let text = std::str::from_utf8(&raw).unwrap();
    assert!(text.contains("WWW-Authenticate: Digest realm=\"example.org\", nonce=\""));
    assert!(text.contains("algorithm=SHA-256, qop=\"auth\""), "{text}");
    // Another entropy, another nonce.
    let (_, ch2) = challenge_of(&srv, &req, &d, T0, 8);
    assert_ne!(ch[0].get("nonce"), ch2[0].get("nonce"));
    // Other requests get 407 / Proxy-Authenticate.
    let inv = request("INVITE", "sip:bob@example.org", "alice", "bob", &[]);
    let d = auth(&srv, &st, &inv, T0);
    assert_eq!(
        d,
        challenge(ChallengeKind::Proxy, false, ChallengeReason::NoCredentials)
    );
    let (resp, ch) = challenge_of(&srv, &inv, &d, T0, 9);
    assert_eq!(resp.status(), Some(407));
    assert_eq!(ch.len(), 2);
}

#[test]
fn round_trip_register_sha256_and_md5() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    assert_eq!(ch.get("algorithm").unwrap(), "SHA-256");
    let d = auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 1),
        T0 + 2,
    );
    assert_eq!(
        d,
        AuthDecision::Authenticated {
            user: "alice".into(),
            algorithm: Algorithm::Sha256
        }
    );
    assert!(d.is_allowed() && d.status_code().is_none());
    // The next request on the same nonce counts up.
    let d = auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 2),
        T0 + 3,
    );
    assert!(d.is_allowed(), "{d:?}");

    // A client that only does MD5 picks the second challenge.
    let req = register("bob", &[]);
    let d = auth(&srv, &st, &req, T0);
    let (_, ch) = challenge_of(&srv, &req, &d, T0, 2);
    let d = auth(
        &srv,
        &st,
        &registered_with(&ch[1], "bob", "builder", 1),
        T0 + 1,
    );
    assert_eq!(
        d,
        AuthDecision::Authenticated {
            user: "bob".into(),
            algorithm: Algorithm::Md5
        }
    );
}

#[test]
fn round_trip_proxy_authorization_for_invite_in_two_steps() {
    let srv = server();
    let st = srv.new_state();
    let inv = request("INVITE", "sip:bob@example.org", "alice", "bob", &[]);
    let d = auth(&srv, &st, &inv, T0);
    let (_, ch) = challenge_of(&srv, &inv, &d, T0, 3);
    let v = answer(
        &ch[0],
        "alice",
        "wonderland",
        "INVITE",
        "sip:bob@example.org",
        1,
    );
    // Credentials in the wrong header (Authorization for a 407) are not seen.
    let wrong = request(
        "INVITE",
        "sip:bob@example.org",
        "alice",
        "bob",
        &[("Authorization", &v)],
    );
    assert_eq!(
        auth(&srv, &st, &wrong, T0 + 1),
        challenge(ChallengeKind::Proxy, false, ChallengeReason::NoCredentials)
    );
    let inv = request(
        "INVITE",
        "sip:bob@example.org",
        "alice",
        "bob",
        &[("Proxy-Authorization", &v)],
    );
    // The sans-IO split: start, look up however, finish.
    let Step::NeedCredentials(p) = srv.start(&st, &inv, ip("192.0.2.10"), T0 + 1) else {
        panic!("expected a lookup")
    };
    assert_eq!(p.username(), "alice");
    let ha1 = lookup(&p.username());
    let d = srv.finish(&st, p, ha1.as_ref(), T0 + 1);
    assert!(
        matches!(d, AuthDecision::Authenticated { ref user, .. } if user == "alice"),
        "{d:?}"
    );
}

#[test]
fn credentials_for_another_realm_are_skipped_and_ours_found() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let ours = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1);
    let theirs = ours.replace("realm=\"example.org\"", "realm=\"other.net\"");
    // Only another realm: a fresh challenge, not a failure.
    let req = register("alice", &[("Authorization", &theirs)]);
    assert_eq!(
        auth(&srv, &st, &req, T0 + 1),
        challenge(ChallengeKind::Www, false, ChallengeReason::OtherRealm)
    );
    // Both: ours is used.
    let req = register(
        "alice",
        &[("Authorization", &theirs), ("Authorization", &ours)],
    );
    assert!(auth(&srv, &st, &req, T0 + 1).is_allowed());
}

// ----- refusals --------------------------------------------------------------

#[test]
fn wrong_password_and_unknown_user_get_the_same_answer() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let wrong = auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "guess", 1),
        T0 + 1,
    );
    let unknown = auth(
        &srv,
        &st,
        &registered_with(&ch, "mallory", "guess", 1),
        T0 + 1,
    );
    let expected = challenge(
        ChallengeKind::Www,
        false,
        ChallengeReason::InvalidCredentials,
    );
    assert_eq!(wrong, expected);
    assert_eq!(unknown, expected);
    // And the same bytes on the wire, apart from the nonce.
    let r1 = srv
        .respond(&register("alice", &[]), &wrong, T0, &[5; 16])
        .unwrap()
        .to_bytes()
        .unwrap();
    let r2 = srv
        .respond(&register("alice", &[]), &unknown, T0, &[5; 16])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert_eq!(r1, r2);
    // An unknown user who somehow knew "the" dummy still fails: the store
    // said no.
    let d = srv.authenticate(
        &st,
        &registered_with(&ch, "ghost", "", 1),
        ip("192.0.2.10"),
        T0 + 1,
        |_| None,
    );
    assert_eq!(d, expected);
}

#[test]
fn replayed_nonce_count_is_refused() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let req = registered_with(&ch, "alice", "wonderland", 1);
    assert!(auth(&srv, &st, &req, T0 + 1).is_allowed());
    // The very same request again (a captured copy): refused.
    let replay = challenge(ChallengeKind::Www, true, ChallengeReason::Replay);
    assert_eq!(auth(&srv, &st, &req, T0 + 2), replay);
    assert!(auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 5),
        T0 + 3
    )
    .is_allowed());
    // Going back is refused too.
    assert_eq!(
        auth(
            &srv,
            &st,
            &registered_with(&ch, "alice", "wonderland", 4),
            T0 + 4
        ),
        replay
    );
    assert_eq!(
        auth(
            &srv,
            &st,
            &registered_with(&ch, "alice", "wonderland", 5),
            T0 + 4
        ),
        replay
    );
    // A wrong password with a huge nc does not poison the table.
    assert_eq!(
        auth(
            &srv,
            &st,
            &registered_with(&ch, "alice", "guess", 0xffff_fff0),
            T0 + 5
        ),
        challenge(
            ChallengeKind::Www,
            false,
            ChallengeReason::InvalidCredentials
        )
    );
    assert!(auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 6),
        T0 + 5
    )
    .is_allowed());
}

#[test]
fn replay_refused_even_after_the_table_evicted_the_nonce() {
    let srv = server_with(|c| c.nonce_count_capacity = 1);
    let st = srv.new_state();
    let a = first_challenge(&srv, &st, "alice", T0);
    let req_a = registered_with(&a, "alice", "wonderland", 1);
    assert!(auth(&srv, &st, &req_a, T0 + 1).is_allowed());
    let b = first_challenge(&srv, &st, "bob", T0 + 2);
    assert!(auth(&srv, &st, &registered_with(&b, "bob", "builder", 1), T0 + 3).is_allowed());
    // alice's nonce was evicted: replaying her request is answered stale.
    assert_eq!(
        auth(&srv, &st, &req_a, T0 + 4),
        challenge(ChallengeKind::Www, true, ChallengeReason::StaleNonce)
    );
}

#[test]
fn expired_nonce_gets_stale_challenge_only_with_the_right_password() {
    let srv = server_with(|c| c.nonce_lifetime = 60);
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    assert!(auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 1),
        T0 + 59
    )
    .is_allowed());
    let late = T0 + 60;
    let d = auth(
        &srv,
        &st,
        &registered_with(&ch, "alice", "wonderland", 2),
        late,
    );
    assert_eq!(
        d,
        challenge(ChallengeKind::Www, true, ChallengeReason::StaleNonce)
    );
    let (_, fresh) = challenge_of(&srv, &register("alice", &[]), &d, late, 4);
    assert_eq!(fresh[0].get("stale").unwrap(), "true");
    assert_ne!(fresh[0].get("nonce"), ch.get("nonce"));
    // The client retries with the new nonce without asking the user.
    let ch2 = client::select_challenge(&fresh).unwrap();
    assert!(auth(
        &srv,
        &st,
        &registered_with(ch2, "alice", "wonderland", 1),
        late + 1
    )
    .is_allowed());
    // With a wrong password the expired nonce is not "stale" (RFC 7616 §3.3).
    assert_eq!(
        auth(&srv, &st, &registered_with(&ch, "alice", "guess", 3), late),
        challenge(
            ChallengeKind::Www,
            false,
            ChallengeReason::InvalidCredentials
        )
    );
    // A nonce dated far in the future (a clock step back) is stale too.
    let d = auth(
        &srv,
        &st,
        &registered_with(ch2, "alice", "wonderland", 2),
        T0 - 1000,
    );
    assert_eq!(
        d,
        challenge(ChallengeKind::Www, true, ChallengeReason::StaleNonce)
    );
}

#[test]
fn forged_or_foreign_nonces_are_refused() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let nonce = ch.get("nonce").unwrap().into_owned();
    let invalid = challenge(ChallengeKind::Www, false, ChallengeReason::InvalidNonce);
    // A nonce whose timestamp was moved forward (to dodge expiry), one with
    // its tag altered, one made up: the client signs them correctly, the
    // HMAC check refuses them.
    let mut bytes = nonce.clone().into_bytes();
    bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
    let moved = String::from_utf8(bytes).unwrap();
    let mut bytes = nonce.clone().into_bytes();
    bytes[50] = if bytes[50] == b'A' { b'B' } else { b'A' };
    let tag = String::from_utf8(bytes).unwrap();
    for forged in [moved, tag, "bm90IGEgbm9uY2U".to_owned(), "x".repeat(54)] {
        let c = AuthParams::parse(
            &SipStr::from(
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"{forged}\", algorithm=SHA-256, qop=\"auth\""
                )
                .as_str(),
            ),
            "WWW-Authenticate",
        )
        .unwrap();
        assert_eq!(
            auth(
                &srv,
                &st,
                &registered_with(&c, "alice", "wonderland", 1),
                T0 + 1
            ),
            invalid,
            "{forged}"
        );
    }
    // A nonce from a server with another secret, or for another realm.
    let other =
        DigestServer::new(AuthConfig::new(REALM), b"another secret of 32 bytes......").unwrap();
    let foreign = other.challenge(ChallengeKind::Www, T0, &[1; 16], false);
    let c = AuthParams::parse(
        &SipStr::from(foreign.values[0].as_str()),
        "WWW-Authenticate",
    )
    .unwrap();
    assert_eq!(
        auth(
            &srv,
            &st,
            &registered_with(&c, "alice", "wonderland", 1),
            T0 + 1
        ),
        invalid
    );
    let realm2 = DigestServer::new(AuthConfig::new("other.net"), SECRET).unwrap();
    let n2 = realm2.issue_nonce(T0, &[1; 16]);
    let c = AuthParams::parse(
        &SipStr::from(
            format!("Digest realm=\"{REALM}\", nonce=\"{n2}\", algorithm=SHA-256, qop=\"auth\"")
                .as_str(),
        ),
        "WWW-Authenticate",
    )
    .unwrap();
    assert_eq!(
        auth(
            &srv,
            &st,
            &registered_with(&c, "alice", "wonderland", 1),
            T0 + 1
        ),
        invalid
    );
}

#[test]
fn wrong_realm_in_response_is_not_accepted() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    // The client computed HA1 for another realm but labelled it ours.
    let nonce = ch.get("nonce").unwrap();
    let resp = client::compute_response(
        Algorithm::Sha256,
        "alice",
        "other.net",
        "wonderland",
        "REGISTER",
        "sip:example.org",
        &nonce,
        1,
        "c",
    );
    let v = format!(
        "Digest username=\"alice\", realm=\"example.org\", nonce=\"{nonce}\", uri=\"sip:example.org\", \
         response=\"{resp}\", algorithm=SHA-256, cnonce=\"c\", qop=auth, nc=00000001"
    );
    assert_eq!(
        auth(
            &srv,
            &st,
            &register("alice", &[("Authorization", &v)]),
            T0 + 1
        ),
        challenge(
            ChallengeKind::Www,
            false,
            ChallengeReason::InvalidCredentials
        )
    );
}

#[test]
fn uri_must_match_the_request_uri() {
    let srv = server();
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    // Credentials signed for another Request-URI, replayed onto this one.
    let v = answer(
        &ch,
        "alice",
        "wonderland",
        "REGISTER",
        "sip:other.example.org",
        1,
    );
    let d = auth(
        &srv,
        &st,
        &register("alice", &[("Authorization", &v)]),
        T0 + 1,
    );
    assert!(
        matches!(
            d,
            AuthDecision::BadRequest(CredentialsError::UriMismatch { .. })
        ),
        "{d:?}"
    );
    assert_eq!(d.status_code(), Some(400));
    // Case of scheme and host does not matter (the client signed what it sent).
    let v = answer(&ch, "alice", "wonderland", "REGISTER", "SIP:Example.ORG", 2);
    let req = request(
        "REGISTER",
        "sip:example.org",
        "alice",
        "alice",
        &[("Authorization", &v)],
    );
    assert!(auth(&srv, &st, &req, T0 + 1).is_allowed());
    // The check can be turned off (a proxy behind a URI-rewriting hop).
    let lax = server_with(|c| c.check_uri = false);
    let st2 = lax.new_state();
    let ch = first_challenge(&lax, &st2, "alice", T0);
    let v = answer(
        &ch,
        "alice",
        "wonderland",
        "REGISTER",
        "sip:other.example.org",
        1,
    );
    assert!(auth(
        &lax,
        &st2,
        &register("alice", &[("Authorization", &v)]),
        T0 + 1
    )
    .is_allowed());
}

#[test]
fn identity_mismatch_is_forbidden() {
    let srv = server();
    let st = srv.new_state();
    // alice authenticates correctly but registers bob's AOR.
    let ch = first_challenge(&srv, &st, "alice", T0);
    let v = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1);
    let req = request(
        "REGISTER",
        "sip:example.org",
        "alice",
        "bob",
        &[("Authorization", &v)],
    );
    let d = auth(&srv, &st, &req, T0 + 1);
    assert_eq!(
        d,
        AuthDecision::Forbidden(ForbiddenReason::Identity(IdentityError::Mismatch(
            IdentityHeader::To
        )))
    );
    assert_eq!(d.status_code(), Some(403));
    // ... or claims to be bob in From (third-party registration of herself).
    let v = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 2);
    let req = request(
        "REGISTER",
        "sip:example.org",
        "bob",
        "alice",
        &[("Authorization", &v)],
    );
    assert_eq!(
        auth(&srv, &st, &req, T0 + 1),
        AuthDecision::Forbidden(ForbiddenReason::Identity(IdentityError::Mismatch(
            IdentityHeader::From
        )))
    );
    // An INVITE from alice to bob is fine (To is the callee) ...
    let inv = request("INVITE", "sip:bob@example.org", "alice", "bob", &[]);
    let d = auth(&srv, &st, &inv, T0);
    let (_, pch) = challenge_of(&srv, &inv, &d, T0, 6);
    let v = answer(
        &pch[0],
        "alice",
        "wonderland",
        "INVITE",
        "sip:bob@example.org",
        1,
    );
    let ok = request(
        "INVITE",
        "sip:bob@example.org",
        "alice",
        "bob",
        &[("Proxy-Authorization", &v)],
    );
    assert!(auth(&srv, &st, &ok, T0 + 1).is_allowed());
    // ... one that claims to come from bob is not.
    let v = answer(
        &pch[0],
        "alice",
        "wonderland",
        "INVITE",
        "sip:bob@example.org",
        2,
    );
    let spoof = request(
        "INVITE",
        "sip:bob@example.org",
        "bob",
        "bob",
        &[("Proxy-Authorization", &v)],
    );
    assert_eq!(
        auth(&srv, &st, &spoof, T0 + 1),
        AuthDecision::Forbidden(ForbiddenReason::Identity(IdentityError::Mismatch(
            IdentityHeader::From
        )))
    );
    // The helper on its own, and user@domain usernames.
    assert!(habla_auth::check_identity("alice", &register("alice", &[])).is_ok());
    assert!(habla_auth::check_identity("alice@EXAMPLE.org", &register("alice", &[])).is_ok());
    assert!(habla_auth::check_identity("alice@example.com", &register("alice", &[])).is_err());
    assert!(habla_auth::check_identity("Alice", &register("alice", &[])).is_err());
    // Turned off: third-party registration allowed.
    let open = server_with(|c| c.check_identity = false);
    let st2 = open.new_state();
    let ch = first_challenge(&open, &st2, "alice", T0);
    let v = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1);
    let req = request(
        "REGISTER",
        "sip:example.org",
        "alice",
        "bob",
        &[("Authorization", &v)],
    );
    assert!(auth(&open, &st2, &req, T0 + 1).is_allowed());
}

#[test]
fn throttling_blocks_a_source_until_the_cool_down_passes() {
    let srv = server_with(|c| {
        c.throttle = ThrottlePolicy {
            max_failures: 3,
            window: 60,
            block_for: 300,
        }
    });
    let st = srv.new_state();
    let attacker = ip("203.0.113.66");
    let ch = first_challenge(&srv, &st, "alice", T0);
    let guess = |nc| registered_with(&ch, "alice", "guess", nc);
    for nc in 1..=2 {
        let d = srv.authenticate(&st, &guess(nc), attacker, T0 + 1, lookup);
        assert_eq!(
            d,
            challenge(
                ChallengeKind::Www,
                false,
                ChallengeReason::InvalidCredentials
            )
        );
    }
    // The third failure blocks; from then on, 403, even with the password.
    let d = srv.authenticate(&st, &guess(3), attacker, T0 + 2, lookup);
    assert_eq!(
        d,
        challenge(
            ChallengeKind::Www,
            false,
            ChallengeReason::InvalidCredentials
        )
    );
    let good = registered_with(&ch, "alice", "wonderland", 4);
    let d = srv.authenticate(&st, &good, attacker, T0 + 3, lookup);
    assert_eq!(
        d,
        AuthDecision::Forbidden(ForbiddenReason::Throttled { until: T0 + 302 })
    );
    assert_eq!(
        srv.respond(&good, &d, T0, &[0; 16])
            .unwrap()
            .build()
            .unwrap()
            .status(),
        Some(403)
    );
    // Unknown users count the same, and other sources are unaffected.
    assert!(srv
        .authenticate(&st, &good, ip("192.0.2.10"), T0 + 3, lookup)
        .is_allowed());
    // An attacker rotating through its IPv6 /64 is one source.
    for (i, a) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]
        .iter()
        .enumerate()
    {
        srv.authenticate(
            &st,
            &registered_with(&ch, "nobody", "x", 10 + i as u32),
            ip(a),
            T0 + 3,
            lookup,
        );
    }
    let d = srv.authenticate(&st, &good, ip("2001:db8:1:2::99"), T0 + 4, lookup);
    assert!(
        matches!(
            d,
            AuthDecision::Forbidden(ForbiddenReason::Throttled { .. })
        ),
        "{d:?}"
    );
    // After the cool-down the source is heard again (with a fresh nonce).
    let ch2 = first_challenge(&srv, &st, "alice", T0 + 302);
    let d = srv.authenticate(
        &st,
        &registered_with(&ch2, "alice", "wonderland", 1),
        attacker,
        T0 + 302,
        lookup,
    );
    assert!(d.is_allowed(), "{d:?}");
}

#[test]
fn trusted_networks_and_unchallenged_methods_skip_authentication() {
    let srv = server_with(|c| {
        c.trusted_networks =
            TrustedNetworks::parse(["198.51.100.0/24", "2001:db8:5060::/48"]).unwrap();
    });
    let st = srv.new_state();
    let inv = request("INVITE", "sip:bob@example.org", "carrier", "bob", &[]);
    for src in ["198.51.100.7", "::ffff:198.51.100.8", "2001:db8:5060:1::1"] {
        assert_eq!(
            srv.authenticate(&st, &inv, ip(src), T0, lookup),
            AuthDecision::Trusted,
            "{src}"
        );
    }
    for src in ["198.51.101.7", "2001:db8:5061::1", "10.0.0.1"] {
        assert!(
            matches!(
                srv.authenticate(&st, &inv, ip(src), T0, lookup),
                AuthDecision::Challenge { .. }
            ),
            "{src}"
        );
    }
    // ACK, CANCEL and (by default) BYE are never challenged.
    for m in ["ACK", "CANCEL", "BYE", "INFO"] {
        let r = request(m, "sip:bob@example.org", "alice", "bob", &[]);
        assert_eq!(auth(&srv, &st, &r, T0), AuthDecision::NotRequired, "{m}");
    }
}

#[test]
fn unsupported_algorithm_is_rechallenged() {
    let srv = server_with(|c| c.algorithms = vec![Algorithm::Sha256]);
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let v = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1)
        .replace("algorithm=SHA-256", "algorithm=MD5");
    assert_eq!(
        auth(
            &srv,
            &st,
            &register("alice", &[("Authorization", &v)]),
            T0 + 1
        ),
        challenge(
            ChallengeKind::Www,
            false,
            ChallengeReason::UnsupportedAlgorithm
        )
    );
    let v = v.replace("algorithm=MD5", "algorithm=SHA-512-256");
    assert_eq!(
        auth(
            &srv,
            &st,
            &register("alice", &[("Authorization", &v)]),
            T0 + 1
        ),
        challenge(
            ChallengeKind::Www,
            false,
            ChallengeReason::UnsupportedAlgorithm
        )
    );
}

#[test]
fn opaque_must_come_back_unchanged() {
    let srv = server_with(|c| c.opaque = Some("abc".into()));
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let v = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1);
    assert!(v.contains("opaque=\"abc\""));
    let bad = v.replace("opaque=\"abc\"", "opaque=\"abd\"");
    assert_eq!(
        auth(
            &srv,
            &st,
            &register("alice", &[("Authorization", &bad)]),
            T0 + 1
        ),
        challenge(ChallengeKind::Www, false, ChallengeReason::OpaqueMismatch)
    );
    assert!(auth(
        &srv,
        &st,
        &register("alice", &[("Authorization", &v)]),
        T0 + 1
    )
    .is_allowed());
}

// ----- hostile input ---------------------------------------------------------

#[test]
fn garbage_credentials_are_errors_never_panics() {
    let srv = server_with(|c| c.throttle.max_failures = 1_000_000);
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let good = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1);
    let huge = "A".repeat(60_000);
    let mut cases: Vec<String> = vec![
        "Digest".into(),
        "Digest ,,,,".into(),
        "Digest realm".into(),
        "Digest realm=\"example.org".into(),
        "Digest realm=example.org, nonce=\"\"".into(),
        "Digest realm=\"example.org\"".into(),
        "Basic YWxpY2U6d29uZGVybGFuZA==".into(),
        "\"Digest\" realm=\"example.org\"".into(),
        "Digest realm=\"example.org\", username=\"\u{0}\u{7f}\"".into(),
        "Digest realm=\"example.org\", nonce=\"é\u{1F600}\", username=\"é\"".into(),
        format!("Digest realm=\"example.org\", nonce=\"{huge}\""),
        format!("Digest realm=\"example.org\", {}", "a=b, ".repeat(200)),
        format!("Digest realm=\"{huge}\""),
        good.replace("nc=00000001", "nc=ffffffffff"),
        good.replace("nc=00000001", "nc=-0000001"),
        good.replace("qop=auth", "qop=\"auth,auth-int\""),
        good.replace("response=\"", "response=\"zz"),
        good.replace("cnonce=\"0a4f113b\"", &format!("cnonce=\"{huge}\"")),
        good.replace("uri=\"sip:example.org\"", "uri=\"\""),
        good.replace("uri=\"sip:example.org\"", &format!("uri=\"sip:{huge}\"")),
        good.replace("username=\"alice\"", "username=\"alice\", username=\"bob\""),
        good.replace("nonce=\"", "nonce=\"\\\""),
    ];
    for i in 0..64u8 {
        // Truncations at every length.
        cases.push(
            good.chars()
                .take(usize::from(i) * good.len() / 64)
                .collect(),
        );
    }
    let mut reached = 0;
    for v in &cases {
        let req = format!(
            "REGISTER sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.org>;tag=1\r\nTo: <sip:alice@example.org>\r\n\
             Call-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: {v}\r\nContent-Length: 0\r\n\r\n"
        );
        let Ok(req) = Message::parse(Bytes::from(req)) else {
            continue;
        };
        reached += 1;
        let d = auth(&srv, &st, &req, T0 + 1);
        assert!(!d.is_allowed(), "{v:.80}: {d:?}");
        assert!(matches!(d.status_code(), Some(400 | 401)), "{v:.80}: {d:?}");
        // The refusal can always be written.
        srv.respond(&req, &d, T0, &[0; 16])
            .unwrap()
            .to_bytes()
            .unwrap();
    }
    // Most values got past the message parser and into the engine.
    assert!(
        reached > cases.len() * 3 / 4,
        "{reached} of {}",
        cases.len()
    );
    // Many Authorization headers: bounded work, still a clean answer.
    let many: Vec<(&str, &str)> = (0..100)
        .map(|_| ("Authorization", "Digest realm=\"x\""))
        .collect();
    let d = auth(&srv, &st, &register("alice", &many), T0);
    assert_eq!(
        d,
        challenge(ChallengeKind::Www, false, ChallengeReason::OtherRealm)
    );
}

#[test]
fn a_response_is_not_a_request() {
    let srv = server();
    let st = srv.new_state();
    let req = register("alice", &[]);
    let resp = req.response(200).build().unwrap();
    assert_eq!(
        auth(&srv, &st, &resp, T0),
        AuthDecision::BadRequest(CredentialsError::NotARequest)
    );
}

#[test]
fn client_picks_the_strongest_usable_challenge() {
    let parse = |s: &str| AuthParams::parse(&SipStr::from(s), "WWW-Authenticate").unwrap();
    let md5 = parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth\"");
    let sha = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth-int, auth\"");
    let odd = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256, qop=\"auth\"");
    let noqop = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256");
    let basic = parse("Basic realm=\"r\"");
    let list = [md5.clone(), odd, noqop.clone(), sha.clone(), basic.clone()];
    assert_eq!(
        client::select_challenge(&list)
            .unwrap()
            .get("algorithm")
            .unwrap(),
        "SHA-256"
    );
    assert_eq!(
        client::select_challenge([&md5])
            .unwrap()
            .get("algorithm")
            .unwrap(),
        "MD5"
    );
    assert!(client::select_challenge([&basic, &noqop]).is_none());
    let req = ClientRequest {
        username: "a\"b",
        password: "p",
        method: "REGISTER",
        uri: "sip:r",
        cnonce: "c",
        nc: 0x1f,
    };
    assert_eq!(
        client::authorization(&basic, &req),
        Err(CredentialsError::NoUsableChallenge)
    );
    let v = client::authorization(&sha, &req).unwrap();
    assert!(
        v.starts_with("Digest username=\"a\\\"b\", realm=\"r\""),
        "{v}"
    );
    assert!(v.contains("nc=0000001f"));
    // It reads back as what was meant.
    let back = parse(&v);
    assert_eq!(back.get("username").unwrap(), "a\"b");
}

#[test]
fn state_is_send_and_time_converts() {
    fn send<T: Send>(_: &T) {}
    let srv = server();
    send(&srv.new_state());
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(T0);
    assert_eq!(habla_auth::unix_seconds(t), T0);
    assert_eq!(
        habla_auth::unix_seconds(std::time::UNIX_EPOCH - std::time::Duration::from_secs(1)),
        0
    );
}

/// Pseudo-random credentials built from the characters that matter to the
/// grammar: the engine answers every one that parses, and never panics.
#[test]
fn random_credentials_never_panic() {
    let srv = server_with(|c| c.throttle.max_failures = u32::MAX);
    let st = srv.new_state();
    let ch = first_challenge(&srv, &st, "alice", T0);
    let good = answer(&ch, "alice", "wonderland", "REGISTER", "sip:example.org", 1);
    let alphabet: Vec<char> = "aZ09=,\" \\\t:@;/-_.%é\u{0}".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..2000 {
        let mut v: Vec<char> = good.chars().collect();
        // Mutate a few positions, sometimes insert, sometimes cut.
        for _ in 0..(next() % 6) {
            let pos = (next() as usize) % v.len().max(1);
            let c = alphabet[(next() as usize) % alphabet.len()];
            match next() % 3 {
                0 => v[pos] = c,
                1 => v.insert(pos, c),
                _ => v.truncate(pos.max(1)),
            }
        }
        let v: String = v.into_iter().collect();
        let raw = format!(
            "REGISTER sip:example.org SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.org>;tag=1\r\nTo: <sip:alice@example.org>\r\n\
             Call-ID: x\r\nCSeq: 1 REGISTER\r\nAuthorization: {v}\r\nContent-Length: 0\r\n\r\n"
        );
        if let Ok(req) = Message::parse(Bytes::from(raw)) {
            let d = auth(&srv, &st, &req, T0 + 1);
            if let Some(r) = srv.respond(&req, &d, T0, &[0; 16]) {
                r.to_bytes().unwrap();
            }
        }
    }
}

#[test]
fn one_state_shared_by_threads_catches_replays_across_them() {
    // habla serve shares one AuthState per realm between its workers: a
    // request verified on one thread and replayed on another is refused.
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<AuthState>();
    let srv = std::sync::Arc::new(server());
    let st = std::sync::Arc::new(srv.new_state());
    let ch = first_challenge(&srv, &st, "alice", T0);
    let req = registered_with(&ch, "alice", "wonderland", 1);
    let (s1, st1, r1) = (srv.clone(), st.clone(), req.clone());
    let first = std::thread::spawn(move || auth(&s1, &st1, &r1, T0 + 1))
        .join()
        .unwrap();
    assert!(first.is_allowed(), "{first:?}");
    let (s2, st2, r2) = (srv.clone(), st.clone(), req);
    let again = std::thread::spawn(move || auth(&s2, &st2, &r2, T0 + 2))
        .join()
        .unwrap();
    assert!(!again.is_allowed(), "a replay on another thread: {again:?}");
    assert!(st.tracked_nonces() >= 1);
}
