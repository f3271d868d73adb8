//! Registration client (RFC 3261 §10.2): REGISTER with digest, refresh
//! before expiry, unregister with `Expires: 0`.

use crate::agent::{random_hex, UserAgent};
use crate::error::UaError;
use habla_message::{Message, Method, Uri};
use std::future::Future;
use std::time::Duration;

/// One registration of the UA's AOR and Contact at a registrar.
#[derive(Debug)]
pub struct Registration {
    ua: UserAgent,
    registrar: Uri,
    expires: u32,
    call_id: String,
    tag: String,
    cseq: u32,
    granted: Option<u32>,
}

/// The result of one REGISTER exchange.
#[derive(Debug)]
pub struct RegisterOutcome {
    /// The final response.
    pub response: Message,
    /// The expiry the registrar granted our Contact (2xx only).
    pub granted: Option<u32>,
}

impl Registration {
    /// A registration of `ua`'s identity at its AOR's domain (the
    /// registrar URI is `sip:host[:port]` of the AOR), asking for
    /// `expires` seconds.
    pub fn new(ua: &UserAgent, expires: u32) -> Result<Registration, UaError> {
        let aor = &ua.identity().aor;
        let sip = aor
            .as_sip()
            .ok_or_else(|| UaError::Local(format!("not a SIP AOR: {}", aor.as_str())))?;
        let host = match sip.port() {
            Some(p) => format!("sip:{}:{p}", sip.host().as_str()),
            None => format!("sip:{}", sip.host().as_str()),
        };
        let registrar = Uri::parse(&host).map_err(|e| UaError::Local(e.to_string()))?;
        Ok(Registration {
            ua: ua.clone(),
            registrar,
            expires,
            call_id: ua.new_call_id(),
            tag: random_hex(8),
            cseq: 0,
            granted: None,
        })
    }

    /// The expiry granted by the last successful REGISTER.
    pub fn granted(&self) -> Option<u32> {
        self.granted
    }

    /// Sends one REGISTER asking for `expires` seconds (0 removes the
    /// binding), answering digest challenges.
    pub async fn send(&mut self, expires: u32) -> Result<RegisterOutcome, UaError> {
        let dest = self.ua.resolve(&self.registrar).await?;
        let to = format!("<{}>", self.ua.identity().aor.as_str());
        let contact = self.ua.contact();
        let first = self.cseq + 1;
        let (ua, registrar, tag, call_id) = (&self.ua, &self.registrar, &self.tag, &self.call_id);
        let (response, cseq) = ua
            .request_with_auth(
                Method::Register,
                registrar,
                dest,
                |cseq, auth| {
                    let mut b = ua
                        .out_of_dialog(Method::Register, registrar, &to, tag, call_id, cseq)
                        .header("Expires", &expires.to_string());
                    if let Some((n, v)) = auth {
                        b = b.header(n, v);
                    }
                    b.build().map_err(|e| UaError::Local(e.to_string()))
                },
                first,
            )
            .await?;
        self.cseq = cseq;
        let granted = if response.status().is_some_and(|s| (200..300).contains(&s)) {
            Some(granted_expiry(&response, &contact, expires))
        } else {
            None
        };
        if expires > 0 {
            self.granted = granted;
        } else {
            self.granted = None;
        }
        Ok(RegisterOutcome { response, granted })
    }

    /// Registers.
    pub async fn register(&mut self) -> Result<RegisterOutcome, UaError> {
        self.send(self.expires).await
    }

    /// Removes the binding (`Expires: 0`).
    pub async fn unregister(&mut self) -> Result<RegisterOutcome, UaError> {
        self.send(0).await
    }

    /// Keeps the registration refreshed (at half the granted expiry, at
    /// least a second apart; retrying every 30 s after a failure) until
    /// `stop` resolves. Does not unregister: call [`Registration::unregister`].
    pub async fn keep_refreshed(
        &mut self,
        stop: impl Future<Output = ()>,
        mut on_refresh: impl FnMut(&Result<RegisterOutcome, UaError>),
    ) {
        tokio::pin!(stop);
        loop {
            let wait = match self.granted {
                Some(g) => Duration::from_secs(u64::from(g / 2).max(1)),
                None => Duration::from_secs(30),
            };
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(wait) => {
                    let r = self.register().await;
                    on_refresh(&r);
                }
            }
        }
    }
}

/// The expiry of our Contact in a 2xx to REGISTER: its `expires`
/// parameter, else the Expires header, else what we asked.
fn granted_expiry(response: &Message, contact: &str, asked: u32) -> u32 {
    let ours = contact.trim_start_matches('<').trim_end_matches('>');
    if let Ok(cs) = response.contacts() {
        for c in cs {
            if let (Some(a), Some(e)) = (c.addr(), c.expires()) {
                if a.uri().as_str() == ours {
                    return e;
                }
            }
        }
    }
    response
        .header("Expires")
        .and_then(|e| e.trim().parse().ok())
        .unwrap_or(asked)
}
