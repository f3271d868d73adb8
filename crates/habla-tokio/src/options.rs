//! A minimal transaction user: answers OPTIONS with 200 and its
//! capabilities, every other request with 501, and nothing to ACK. It is
//! the logic of `examples/options_server.rs`, kept here so that tests can
//! run it in-process.

use crate::{Endpoint, Event, Handle};
use habla_message::{Message, Method};
use std::sync::atomic::{AtomicU64, Ordering};

/// The methods the responder allows.
pub const ALLOW: &str = "OPTIONS";

/// The response to a request: 200 with Allow/Accept/Supported for OPTIONS,
/// 501 (with Allow) otherwise, `None` for ACK.
pub fn answer(request: &Message, agent: &str) -> Option<Message> {
    static TAGS: AtomicU64 = AtomicU64::new(1);
    let tag = format!("hb{:x}", TAGS.fetch_add(1, Ordering::Relaxed));
    let builder = match request.method()? {
        Method::Ack => return None,
        Method::Options => request
            .response(200)
            .to_tag(request, &tag)
            .header("Allow", ALLOW)
            .header("Accept", "application/sdp")
            .header("Supported", ""),
        _ => request
            .response(501)
            .to_tag(request, &tag)
            .header("Allow", ALLOW),
    };
    builder.header("Server", agent).build().ok()
}

/// Serves `endpoint` until its driver stops: every request gets
/// [`answer`]'s response through its server transaction.
pub async fn serve(mut endpoint: Endpoint) {
    let handle = endpoint.handle();
    while let Some(event) = endpoint.recv().await {
        respond(&handle, event).await;
    }
}

/// Handles one event the way [`serve`] does.
pub async fn respond(handle: &Handle, event: Event<crate::Flow>) {
    let agent = concat!("habla/", env!("CARGO_PKG_VERSION"));
    if let Event::Request { key, request, .. } = event {
        if let Some(response) = answer(&request, agent) {
            if let Err(e) = handle.send_response(key, response).await {
                tracing::debug!("cannot answer: {e}");
            }
        }
    }
}
