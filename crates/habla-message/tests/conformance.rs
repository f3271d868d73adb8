//! RFC 4475 / RFC 5118 torture-test conformance.
//!
//! Walks the corpus manifest (`manifest.toml`, documented in the corpus
//! `README.md`) at run time and checks every message against what the
//! manifest says: valid messages must parse, serialise byte for byte and
//! yield every value under `checks`; invalid ones must be refused with one of
//! the listed responses (or be unanswerable when they are to be dropped).
//!
//! The corpus lives outside the repository: `../shared/conformance` next to
//! the repository root, or the directory named by `HABLA_CONFORMANCE_DIR`.
//! When it is missing the test is skipped, unless `HABLA_REQUIRE_CONFORMANCE=1`.
//!
//! Every mismatch is collected; the test prints them all with a summary line
//! and fails at the end if there was any.

use bytes::Bytes;
use habla_message::{
    AuthParams, Error, HeaderName, Limits, Message, NameAddr, ParseError, SipStr, Uri,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};

// ----- manifest ---------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct Manifest {
    schema_version: u32,
    source: BTreeMap<String, Source>,
    message: Vec<Entry>,
}

#[derive(Debug, Deserialize)]
struct Source {
    messages: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    Valid,
    Invalid,
    ValidButUnusual,
}

#[derive(Debug, Deserialize)]
struct Entry {
    file: String,
    name: String,
    kind: Kind,
    message_type: String,
    size: usize,
    content_length_values: Option<Vec<i64>>,
    body_octets: Option<usize>,
    responses: Vec<u16>,
    drop: bool,
    accept_allowed: bool,
    expect: String,
    #[serde(default)]
    checks: BTreeMap<String, toml::Value>,
}

/// What a server must do with a message that parses: not asserted here (this
/// crate has no server), kept for a server-level test to assert.
#[derive(Debug)]
#[allow(dead_code)] // Read through `Debug` only.
struct ServerExpectation {
    name: String,
    kind: Kind,
    responses: Vec<u16>,
    drop: bool,
    accept_allowed: bool,
    expect: String,
}

// ----- corpus location --------------------------------------------------------

fn corpus_dir() -> PathBuf {
    match std::env::var_os("HABLA_CONFORMANCE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        // crates/habla-message -> repository root -> its sibling `shared`.
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
    }
}

// ----- the test ---------------------------------------------------------------

#[test]
fn rfc4475_rfc5118_torture_corpus() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        if std::env::var("HABLA_REQUIRE_CONFORMANCE").as_deref() == Ok("1") {
            panic!(
                "conformance: corpus not found at {} and HABLA_REQUIRE_CONFORMANCE=1 \
                 (set HABLA_CONFORMANCE_DIR to the conformance folder)",
                dir.display()
            );
        }
        println!(
            "conformance: corpus not found at {}; skipping (set HABLA_CONFORMANCE_DIR)",
            dir.display()
        );
        return;
    }
    let manifest_path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", manifest_path.display()));
    let manifest: Manifest = toml::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", manifest_path.display()));
    assert_eq!(manifest.schema_version, 1, "unknown manifest schema");

    let total = manifest.message.len();
    let mut failures: Vec<String> = Vec::new();
    let declared: usize = manifest.source.values().map(|s| s.messages).sum();
    if declared != total {
        failures.push(format!(
            "manifest: sources declare {declared} messages but {total} entries are listed"
        ));
    }

    let mut passed = 0;
    let mut notes: Vec<String> = Vec::new();
    let mut server: Vec<ServerExpectation> = Vec::new();
    for entry in &manifest.message {
        let mut out = Outcome::default();
        run_entry(&dir, entry, &mut out, &mut server);
        if out.failures.is_empty() {
            passed += 1;
        }
        let label = format!("{} ({:?}, {})", entry.name, entry.kind, entry.file);
        failures.extend(out.failures.into_iter().map(|f| format!("{label}: {f}")));
        notes.extend(out.notes.into_iter().map(|n| format!("{label}: {n}")));
    }

    println!("conformance: server-level expectations (for a server test to assert):");
    for s in &server {
        println!("  {s:?}");
    }
    if !notes.is_empty() {
        println!("conformance: notes (not failures):");
        for n in &notes {
            println!("  {n}");
        }
    }
    if !failures.is_empty() {
        println!("conformance: {} mismatches:", failures.len());
        for f in &failures {
            println!("  {f}");
        }
    }
    println!("conformance: {passed}/{total} entries as the RFCs expect");
    assert!(
        failures.is_empty(),
        "{} conformance mismatches in {} entries (listed above)",
        failures.len(),
        total - passed
    );
}

#[derive(Default)]
struct Outcome {
    failures: Vec<String>,
    notes: Vec<String>,
}

/// `HABLA_CONFORMANCE_STRICT=1`: an invalid message that the RFC also lets a
/// liberal element accept (`accept_allowed = true`) must still be refused.
fn strict() -> bool {
    std::env::var("HABLA_CONFORMANCE_STRICT").as_deref() == Ok("1")
}

fn run_entry(dir: &Path, e: &Entry, out: &mut Outcome, server: &mut Vec<ServerExpectation>) {
    let raw = match std::fs::read(dir.join(&e.file)) {
        Ok(b) => b,
        Err(err) => {
            out.failures.push(format!("cannot read the file: {err}"));
            return;
        }
    };
    if raw.len() != e.size {
        out.failures.push(format!(
            "corpus damaged: file has {} octets, manifest says {}",
            raw.len(),
            e.size
        ));
        return;
    }
    // Every file is one datagram (`transport = "udp"` entries depend on it,
    // the others do not care), which is what `Message::parse` takes.
    match (e.kind, Message::parse(Bytes::from(raw.clone()))) {
        (Kind::Valid | Kind::ValidButUnusual, Ok(m)) => {
            check_parsed(e, &raw, &m, out);
            if !e.responses.is_empty() || e.drop {
                server.push(ServerExpectation {
                    name: e.name.clone(),
                    kind: e.kind,
                    responses: e.responses.clone(),
                    drop: e.drop,
                    accept_allowed: e.accept_allowed,
                    expect: e.expect.clone(),
                });
            }
        }
        (Kind::Valid | Kind::ValidButUnusual, Err(err)) => {
            out.failures
                .push(format!("must parse, but was refused: {err}"));
        }
        (Kind::Invalid, Ok(m)) if e.accept_allowed && !strict() => {
            // The RFC lets a liberal element repair or ignore the defect.
            out.notes.push(format!(
                "accepted; allowed by accept_allowed = true (expect: {})",
                e.expect
            ));
            check_parsed(e, &raw, &m, out);
        }
        (Kind::Invalid, Ok(_)) => {
            out.failures.push(format!(
                "must be refused ({}), but parsed successfully{}",
                responses_text(e),
                if e.accept_allowed {
                    " (accept_allowed = true; failing because HABLA_CONFORMANCE_STRICT=1)"
                } else {
                    ""
                }
            ));
        }
        (Kind::Invalid, Err(err)) => check_refused(e, &err, out),
    }
}

fn responses_text(e: &Entry) -> String {
    if e.drop {
        "drop".to_owned()
    } else {
        format!("answer {:?}", e.responses)
    }
}

/// Leading CRLFs are ignored before a message (RFC 3261 §7.5).
fn leading_crlfs(raw: &[u8]) -> usize {
    raw.iter()
        .take_while(|&&c| c == b'\r' || c == b'\n')
        .count()
}

/// A message that parsed: serialisation, framing facts and `checks`.
fn check_parsed(e: &Entry, raw: &[u8], m: &Message, out: &mut Outcome) {
    let ser = m.to_bytes();
    let lead = leading_crlfs(raw);
    // Octets of the datagram after the message (`dblreq`), which the parser
    // must leave out of the message.
    let trailing = raw.len().saturating_sub(lead + ser.len());
    let want_trailing = match e.checks.get("trailing_octets").map(as_int) {
        Some(Ok(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        _ => 0,
    };
    let end = raw.len().saturating_sub(want_trailing);
    if *ser != raw[lead.min(end)..end] {
        out.failures.push(format!(
            "to_bytes() is not the received message: {} octets serialised, {} expected \
             (file minus {lead} leading CRLF octets and {want_trailing} trailing octets)",
            ser.len(),
            end.saturating_sub(lead)
        ));
    }
    if let Some(want) = e.body_octets {
        // `body_octets` counts everything after the header section, trailing
        // junk included.
        if m.body().len() + trailing != want {
            out.failures.push(format!(
                "body is {} octets (+{trailing} trailing), manifest says {want} after the header section",
                m.body().len()
            ));
        }
    }
    check_common(e, m, Some(trailing), out);
}

/// An invalid message that was refused: the error, the answer, and the
/// checks against what survived of the message.
fn check_refused(e: &Entry, err: &ParseError, out: &mut Outcome) {
    let text = err.to_string();
    if text.trim().is_empty() {
        out.failures.push("error has an empty message".to_owned());
    }
    if e.drop {
        if err.can_answer() {
            out.failures.push(format!(
                "must be dropped, but can_answer() is true (error: {text})"
            ));
        }
    } else if !e.responses.is_empty() {
        if !e.responses.contains(&err.status_code()) {
            out.failures.push(format!(
                "refused with status {}, manifest expects one of {:?} (error: {text})",
                err.status_code(),
                e.responses
            ));
        }
        match err.message() {
            // Answerable: a request whose top Via and CSeq survived.
            Some(lm) if lm.is_request() && lm.top_via().is_ok() && lm.cseq().is_ok() => {
                check_answer(err, &text, out);
            }
            Some(lm) => out.notes.push(format!(
                "not answerable: {} (error: {text})",
                if !lm.is_request() {
                    "it is a response".to_owned()
                } else if let Err(v) = lm.top_via() {
                    format!("top Via does not parse: {v}")
                } else {
                    format!(
                        "CSeq does not parse: {}",
                        lm.cseq().err().map(|c| c.to_string()).unwrap_or_default()
                    )
                }
            )),
            None => out.failures.push(format!(
                "nothing of the message survived the error, so the {:?} answer cannot be sent \
                 (error: {text})",
                e.responses
            )),
        }
    }
    match err.message() {
        Some(lm) => check_common(e, lm, None, out),
        None => {
            // The parser keeps no message when the start line or the header
            // lines cannot be split. A bad status code is still named by the
            // error; every other value is genuinely unreachable.
            let mut unreachable = 0;
            for (key, want) in &e.checks {
                match (key.as_str(), err.error()) {
                    ("status_code_raw", Error::StatusCode(code)) => {
                        if let Err(why) = as_str(want).and_then(|w| same(code.as_str(), w)) {
                            out.failures
                                .push(format!("check {key} (from the error): {why}"));
                        }
                    }
                    _ => unreachable += 1,
                }
            }
            if unreachable > 0 {
                out.notes.push(format!(
                    "{unreachable} checks not verifiable: no message survived ({text})"
                ));
            }
        }
    }
}

fn check_answer(err: &ParseError, text: &str, out: &mut Outcome) {
    if !err.can_answer() {
        out.failures.push(format!(
            "top Via and CSeq parse, but can_answer() is false (error: {text})"
        ));
        return;
    }
    let Some(resp) = err.response("habla") else {
        out.failures.push(format!(
            "can_answer() but response() gave nothing (error: {text})"
        ));
        return;
    };
    match Message::parse_lazy(resp, &Limits::default()) {
        Ok(r) if r.status() == Some(err.status_code()) => {}
        Ok(r) => out.failures.push(format!(
            "response() has status {:?}, status_code() is {}",
            r.status(),
            err.status_code()
        )),
        Err(pe) => out
            .failures
            .push(format!("response() does not parse: {pe}")),
    }
}

/// Start-line kind, Content-Length values and every `checks` key.
/// `trailing` is the count of octets after a message that parsed; `None`
/// for the unvalidated message kept by a [`ParseError`], whose values are
/// read from the raw header text where the typed parse fails.
fn check_common(e: &Entry, m: &Message, trailing: Option<usize>, out: &mut Outcome) {
    let is_request = e.message_type == "request";
    if m.is_request() != is_request {
        out.failures.push(format!(
            "parsed as the wrong kind of message, manifest says {}",
            e.message_type
        ));
    }
    let cl: Vec<Result<i64, String>> = m
        .header_values("Content-Length")
        .map(|v| v.trim().parse::<i64>().map_err(|_| v.to_owned()))
        .collect();
    let want_cl: Vec<Result<i64, String>> = e
        .content_length_values
        .iter()
        .flatten()
        .map(|&n| Ok(n))
        .collect();
    if cl != want_cl {
        out.failures.push(format!(
            "Content-Length values {cl:?}, manifest says {want_cl:?}"
        ));
    }
    let ctx = Ctx {
        m,
        checks: &e.checks,
        lenient: trailing.is_none(),
        trailing,
    };
    for (key, want) in &e.checks {
        if let Err(why) = ctx.check(key, want) {
            out.failures.push(format!("check {key}: {why}"));
        }
    }
}

// ----- checks -------------------------------------------------------------------

type R = Result<(), String>;

struct Ctx<'a> {
    m: &'a Message,
    checks: &'a BTreeMap<String, toml::Value>,
    lenient: bool,
    trailing: Option<usize>,
}

fn as_str(v: &toml::Value) -> Result<&str, String> {
    v.as_str()
        .ok_or_else(|| format!("manifest value {v} is not a string"))
}

fn as_int(v: &toml::Value) -> Result<i64, String> {
    v.as_integer()
        .ok_or_else(|| format!("manifest value {v} is not an integer"))
}

fn as_bool(v: &toml::Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("manifest value {v} is not a boolean"))
}

fn as_strs(v: &toml::Value) -> Result<Vec<&str>, String> {
    v.as_array()
        .ok_or_else(|| format!("manifest value {v} is not an array"))?
        .iter()
        .map(as_str)
        .collect()
}

fn as_ints(v: &toml::Value) -> Result<Vec<i64>, String> {
    v.as_array()
        .ok_or_else(|| format!("manifest value {v} is not an array"))?
        .iter()
        .map(as_int)
        .collect()
}

fn same<T: PartialEq + Debug>(got: T, want: T) -> R {
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, manifest says {want:?}"))
    }
}

/// Formats a typed-accessor error.
fn fail<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what} does not parse: {e}")
}

/// Percent-decoded user part of a SIP URI.
fn user_of(u: &Uri) -> Result<Vec<u8>, String> {
    let sip = u
        .as_sip()
        .ok_or_else(|| format!("{} is not a SIP URI", u.as_str()))?;
    Ok(sip
        .user_decoded()
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_default())
}

/// First whitespace-separated word of a raw value.
fn first_word(v: &str) -> &str {
    v.split_ascii_whitespace().next().unwrap_or("")
}

impl Ctx<'_> {
    fn raw(&self, name: &str) -> Result<&str, String> {
        self.m
            .header(name)
            .ok_or_else(|| format!("no {name} header"))
    }

    fn first_contact(&self) -> Result<&NameAddr, String> {
        let c = self.m.contacts().map_err(fail("Contact"))?;
        c.first()
            .ok_or("no Contact")?
            .addr()
            .ok_or_else(|| "Contact is *".to_owned())
    }

    fn contact_addrs(&self) -> Result<Vec<&NameAddr>, String> {
        let c = self.m.contacts().map_err(fail("Contact"))?;
        c.iter()
            .map(|c| c.addr().ok_or_else(|| "Contact is *".to_owned()))
            .collect()
    }

    /// CSeq number and method; from the raw text when lenient and the typed
    /// parse fails (the defect of an invalid message may sit there).
    fn cseq(&self) -> Result<(String, String), String> {
        match self.m.cseq() {
            Ok(c) => Ok((c.seq.to_string(), c.method.as_str().to_owned())),
            Err(_) if self.lenient => {
                let mut it = self.raw("CSeq")?.split_ascii_whitespace();
                let n = it.next().unwrap_or("").to_owned();
                let method = it.next().unwrap_or("").to_owned();
                Ok((n, method))
            }
            Err(e) => Err(fail("CSeq")(e)),
        }
    }

    fn check(&self, key: &str, want: &toml::Value) -> R {
        let m = self.m;
        match key {
            // Start line.
            "method" => same(m.method().map(|x| x.as_str()), Some(as_str(want)?)),
            "request_uri" => same(m.request_uri_str(), Some(as_str(want)?)),
            "sip_version" => same(m.version(), as_str(want)?),
            "status_code" => same(&m.status().map(i64::from), &Some(as_int(want)?)),
            "status_code_raw" => {
                // The second element of the status line as written.
                let b = m.to_bytes();
                let line = b.split(|&c| c == b'\r' || c == b'\n').next().unwrap_or(&[]);
                let line = String::from_utf8_lossy(line);
                same(line.split(' ').nth(1), Some(as_str(want)?))
            }
            "reason_phrase" => same(m.reason(), Some(as_str(want)?)),

            // Request-URI parts.
            "request_uri_scheme" => same(
                m.request_uri().map_err(fail("Request-URI"))?.scheme(),
                as_str(want)?,
            ),
            "request_uri_user" => same(
                &user_of(m.request_uri().map_err(fail("Request-URI"))?)?[..],
                as_str(want)?.as_bytes(),
            ),
            "request_uri_host" | "request_uri_port" | "request_uri_has_port" => {
                let u = m.request_uri().map_err(fail("Request-URI"))?;
                let sip = u.as_sip().ok_or("Request-URI is not a SIP URI")?;
                match key {
                    "request_uri_host" => same(sip.host().as_str(), as_str(want)?),
                    "request_uri_port" => same(&sip.port().map(i64::from), &Some(as_int(want)?)),
                    _ => same(&sip.port().is_some(), &as_bool(want)?),
                }
            }

            // Dialog and transaction headers.
            "call_id" => match m.call_id() {
                Ok(c) => same(c.as_str(), as_str(want)?),
                Err(_) if self.lenient => same(self.raw("Call-ID")?, as_str(want)?),
                Err(e) => Err(fail("Call-ID")(e)),
            },
            "call_id_values" => same(
                &m.header_values("Call-ID").collect::<Vec<_>>(),
                &as_strs(want)?,
            ),
            "cseq_number" => same(self.cseq()?.0.parse::<i64>().ok(), Some(as_int(want)?)),
            "cseq_method" => same(&self.cseq()?.1[..], as_str(want)?),
            "cseq_number_raw" => same(first_word(self.raw("CSeq")?), as_str(want)?),
            "cseq_numbers" => same(
                &m.header_values("CSeq")
                    .map(|v| first_word(v).parse::<i64>().unwrap_or(-1))
                    .collect::<Vec<_>>(),
                &as_ints(want)?,
            ),
            "max_forwards" => same(
                &m.max_forwards()
                    .map_err(fail("Max-Forwards"))?
                    .map(i64::from),
                &Some(as_int(want)?),
            ),
            "max_forwards_raw" => same(self.raw("Max-Forwards")?, as_str(want)?),

            // From / To.
            "from_uri" | "from_tag" | "from_display" | "from_uri_user" | "to_uri" | "to_tag"
            | "to_display" | "to_uri_user" => {
                let (a, field) = if key.starts_with("from") {
                    (m.from().map_err(fail("From"))?, &key[5..])
                } else {
                    (m.to().map_err(fail("To"))?, &key[3..])
                };
                match field {
                    "uri" => same(a.uri().as_str(), as_str(want)?),
                    "tag" => same(a.tag(), Some(as_str(want)?)),
                    "display" => same(a.display_name().as_deref(), Some(as_str(want)?)),
                    _ => same(&user_of(a.uri())?[..], as_str(want)?.as_bytes()),
                }
            }

            // Via.
            "via_count" => same(
                &(m.vias().map_err(fail("Via"))?.len() as i64),
                &as_int(want)?,
            ),
            "via_transports" => same(
                &m.vias()
                    .map_err(fail("Via"))?
                    .iter()
                    .map(|v| v.transport())
                    .collect::<Vec<_>>(),
                &as_strs(want)?,
            ),
            "via_hosts" => same(
                &m.vias()
                    .map_err(fail("Via"))?
                    .iter()
                    .map(|v| v.host().as_str())
                    .collect::<Vec<_>>(),
                &as_strs(want)?,
            ),
            "via_branches" => same(
                &m.vias()
                    .map_err(fail("Via"))?
                    .iter()
                    .map(|v| v.branch())
                    .collect::<Vec<_>>(),
                &as_strs(want)?.into_iter().map(Some).collect::<Vec<_>>(),
            ),
            "top_via_transport" => {
                same(m.top_via().map_err(fail("Via"))?.transport(), as_str(want)?)
            }
            "top_via_host" => same(
                m.top_via().map_err(fail("Via"))?.host().as_str(),
                as_str(want)?,
            ),
            "top_via_port" => same(
                &m.top_via().map_err(fail("Via"))?.port().map(i64::from),
                &Some(as_int(want)?),
            ),
            "top_via_branch" => same(
                m.top_via().map_err(fail("Via"))?.branch(),
                Some(as_str(want)?),
            ),
            "top_via_received" => same(
                m.top_via().map_err(fail("Via"))?.received(),
                Some(as_str(want)?),
            ),

            // Contact.
            "contact_count" => same(
                &(m.contacts().map_err(fail("Contact"))?.len() as i64),
                &as_int(want)?,
            ),
            "contact_uri" => same(self.first_contact()?.uri().as_str(), as_str(want)?),
            "contact_uris" => same(
                &self
                    .contact_addrs()?
                    .iter()
                    .map(|a| a.uri().as_str())
                    .collect::<Vec<_>>(),
                &as_strs(want)?,
            ),
            "contact_display" => same(
                self.first_contact()?.display_name().as_deref(),
                Some(as_str(want)?),
            ),
            "contact_q" => same(
                self.first_contact()?.params().value("q"),
                Some(as_str(want)?),
            ),
            "contact_expires_raw" => same(
                self.first_contact()?.params().value("expires"),
                Some(as_str(want)?),
            ),
            "contact_param" => {
                let name = as_str(want)?;
                let c = self.first_contact()?;
                if c.params().contains(name) {
                    Ok(())
                } else {
                    Err(format!(
                        "Contact header parameters {:?} lack {name:?}",
                        c.params()
                    ))
                }
            }
            "contact_uri_user" => same(
                &user_of(self.first_contact()?.uri())?[..],
                as_str(want)?.as_bytes(),
            ),
            "contact_uri_users" => same(
                &self
                    .contact_addrs()?
                    .iter()
                    .map(|a| user_of(a.uri()))
                    .collect::<Result<Vec<_>, _>>()?,
                &as_strs(want)?
                    .iter()
                    .map(|s| s.as_bytes().to_vec())
                    .collect::<Vec<_>>(),
            ),
            "contact_uri_params" => {
                let c = self.first_contact()?;
                let sip = c.uri().as_sip().ok_or("Contact URI is not a SIP URI")?;
                // Names and values percent-decoded once.
                let dec = |s: &str| {
                    String::from_utf8_lossy(&habla_message::percent_decode(s)).into_owned()
                };
                let got: Vec<String> = sip
                    .params()
                    .iter()
                    .map(|(n, v)| match v {
                        Some(v) => format!("{}={}", dec(n), dec(v)),
                        None => dec(n),
                    })
                    .collect();
                same(
                    &got,
                    &as_strs(want)?.iter().map(|s| s.to_string()).collect(),
                )
            }

            // Other headers.
            "content_type" => {
                if !self.lenient {
                    m.content_type().map_err(fail("Content-Type"))?;
                }
                same(self.raw("Content-Type")?, as_str(want)?)
            }
            "subject" => same(self.raw("Subject")?, as_str(want)?),
            "accept" => same(self.raw("Accept")?, as_str(want)?),
            "date_raw" => same(self.raw("Date")?, as_str(want)?),
            "expires_raw" => same(self.raw("Expires")?, as_str(want)?),
            "require" | "proxy_require" => {
                let name = if key == "require" {
                    "Require"
                } else {
                    "Proxy-Require"
                };
                let got: Vec<&str> = m
                    .header_values(name)
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .collect();
                same(&got, &as_strs(want)?)
            }
            // `Retry-After: delta-seconds [comment] *(;param)`: the number.
            "retry_after_raw" => {
                let v = self.raw("Retry-After")?;
                let n = v.split([' ', '\t', ';', '(']).next().unwrap_or("");
                same(n, as_str(want)?)
            }
            // `Warning: code agent "text"`: the code.
            "warning_code_raw" => same(first_word(self.raw("Warning")?), as_str(want)?),
            "route_count" => same(
                &(m.routes().map_err(fail("Route"))?.len() as i64),
                &as_int(want)?,
            ),
            "route_uri" => same(
                m.routes()
                    .map_err(fail("Route"))?
                    .first()
                    .map(|r| r.uri().as_str()),
                Some(as_str(want)?),
            ),
            "authorization_scheme" => {
                let v = SipStr::from(self.raw("Authorization")?);
                let a = AuthParams::parse(&v, "Authorization").map_err(fail("Authorization"))?;
                same(a.scheme(), as_str(want)?)
            }
            // The manifest does not name the header: some header this crate
            // does not know must carry exactly this value.
            "unknown_header_value" => {
                let want = as_str(want)?;
                let unknown: Vec<&str> = m
                    .headers()
                    .filter(|h| h.name == HeaderName::Other)
                    .map(|h| h.value)
                    .collect();
                if unknown.contains(&want) {
                    Ok(())
                } else {
                    Err(format!(
                        "no unknown header has value {want:?}; unknown values: {unknown:?}"
                    ))
                }
            }
            "extension_header_name" => {
                let want = as_str(want)?;
                match m.headers().find(|h| h.raw_name == want) {
                    Some(h) if h.name == HeaderName::Other => Ok(()),
                    Some(h) => Err(format!(
                        "{want:?} was taken for the known header {:?}",
                        h.name
                    )),
                    None => Err(format!("no header named {want:?}")),
                }
            }
            "extension_header_value" => {
                let name = self
                    .checks
                    .get("extension_header_name")
                    .ok_or("extension_header_value without extension_header_name")?;
                let name = as_str(name)?;
                same(
                    m.headers().find(|h| h.raw_name == name).map(|h| h.value),
                    Some(as_str(want)?),
                )
            }

            // Body.
            "multipart_boundary" => same(self.boundary()?.as_str(), as_str(want)?),
            "multipart_part_count" => same(
                &(multipart_parts(m.body(), &self.boundary()?).len() as i64),
                &as_int(want)?,
            ),
            "binary_part_octets" => {
                let parts = multipart_parts(m.body(), &self.boundary()?);
                // The part whose content is not text: not UTF-8, or with a NUL.
                let bin = parts
                    .iter()
                    .map(|p| part_content(p))
                    .find(|c| std::str::from_utf8(c).is_err() || c.contains(&0))
                    .ok_or("no binary part")?;
                same(&(bin.len() as i64), &as_int(want)?)
            }
            "sdp_connection" => {
                let (session, _) = sdp_connections(m.body());
                same(session.as_deref(), Some(as_str(want)?))
            }
            "sdp_media_connections" => {
                let (_, media) = sdp_connections(m.body());
                same(
                    &media.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                    &as_strs(want)?,
                )
            }
            "trailing_octets" => match self.trailing {
                Some(t) => same(t as i64, as_int(want)?),
                None => Err("no parsed message to measure trailing octets against".to_owned()),
            },
            other => Err(format!(
                "unknown checks key {other:?} (this test needs updating)"
            )),
        }
    }

    /// The `boundary` parameter of a multipart Content-Type, unquoted.
    fn boundary(&self) -> Result<String, String> {
        let ct = self
            .m
            .content_type()
            .map_err(fail("Content-Type"))?
            .ok_or("no Content-Type")?;
        if !ct.main_type().eq_ignore_ascii_case("multipart") {
            return Err(format!("Content-Type {} is not multipart", ct.essence()));
        }
        let b = ct
            .params()
            .value("boundary")
            .ok_or("no boundary parameter")?;
        Ok(b.trim_matches('"').to_owned())
    }
}

// ----- minimal body helpers (the parser has no MIME or SDP module) --------------

/// The parts of a multipart body (RFC 2046 §5.1.1): each part is what lies
/// between a delimiter line and the CRLF that precedes the next delimiter.
/// Preamble and epilogue are dropped.
fn multipart_parts<'b>(body: &'b [u8], boundary: &str) -> Vec<&'b [u8]> {
    let delim = format!("--{boundary}");
    let delim = delim.as_bytes();
    // Delimiter positions: at the start of the body or right after a CRLF.
    let mut starts = Vec::new();
    let mut i = 0;
    while i + delim.len() <= body.len() {
        if body[i..].starts_with(delim) && (i == 0 || body[..i].ends_with(b"\r\n")) {
            starts.push(i);
            i += delim.len();
        } else {
            i += 1;
        }
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let (d, next) = (w[0], w[1]);
        let after = &body[d + delim.len()..];
        if after.starts_with(b"--") {
            break; // close delimiter
        }
        // Skip the rest of the delimiter line (transport padding and CRLF).
        let line_end = after
            .windows(2)
            .position(|x| x == b"\r\n")
            .map_or(after.len(), |p| p + 2);
        let start = d + delim.len() + line_end;
        let end = next.saturating_sub(2).max(start);
        parts.push(&body[start..end]);
    }
    parts
}

/// The content of a MIME part: what follows its header section.
fn part_content(part: &[u8]) -> &[u8] {
    if part.starts_with(b"\r\n") {
        return &part[2..];
    }
    match part.windows(4).position(|x| x == b"\r\n\r\n") {
        Some(p) => &part[p + 4..],
        None => &[],
    }
}

/// SDP `c=` values (RFC 4566 §5): the session-level one (before the first
/// `m=`) and the first of each media section.
fn sdp_connections(body: &[u8]) -> (Option<String>, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let mut session = None;
    let mut media: Vec<Option<String>> = Vec::new();
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        if line.starts_with("m=") {
            media.push(None);
        } else if let Some(c) = line.strip_prefix("c=") {
            let slot = match media.last_mut() {
                Some(s) => s,
                None => &mut session,
            };
            slot.get_or_insert_with(|| c.to_owned());
        }
    }
    (session, media.into_iter().flatten().collect())
}
