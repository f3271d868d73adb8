//! Requests the transaction layer (or its TU) derives from other messages:
//! the ACK for a non-2xx final response, CANCEL, and the overload 503.

use bytes::Bytes;
use habla_message::{Error as MessageError, HeaderName, Message, Method, RequestBuilder};

/// The ACK a client INVITE transaction sends for a 300-699 response
/// (RFC 3261 §17.1.1.3): the Request-URI, Call-ID, From and top Via of the
/// original request, the To of the response (with its tag), CSeq with the
/// original number and method ACK, and the original's Route headers.
pub fn ack_for_non_2xx(invite: &Message, response: &Message) -> Result<Bytes, MessageError> {
    let uri = invite.request_uri()?;
    let via = invite.top_via()?;
    let seq = invite.cseq()?.seq;
    let from = first(invite, HeaderName::From)?;
    let call_id = invite.call_id()?;
    // RFC 3261 §17.1.1.3: "The To header field in the ACK MUST equal the To
    // header field in the response being acknowledged".
    let to = first(response, HeaderName::To)?;
    let mut b = RequestBuilder::new(Method::Ack, uri)
        // "The ACK MUST contain a single Via header field, and this MUST be
        // equal to the top Via header field of the original request."
        .header("Via", via.as_str())
        .max_forwards(70)
        .from(&from)
        .to(&to)
        .call_id(call_id)
        .cseq(seq);
    // "If the INVITE request whose response is being acknowledged had Route
    // header fields, those header fields MUST appear in the ACK."
    for route in invite.typed_values(HeaderName::Route) {
        b = b.header("Route", &route);
    }
    b.to_bytes()
}

/// A CANCEL for a request sent earlier (RFC 3261 §9.1): same Request-URI,
/// Call-ID, To, From and CSeq number, method CANCEL, a single Via equal to
/// the request's top Via (so it carries the same branch, which is how the
/// server matches it, §9.2), and the request's Route headers.
pub fn cancel_for(request: &Message) -> Result<Message, MessageError> {
    let uri = request.request_uri()?;
    let via = request.top_via()?;
    let seq = request.cseq()?.seq;
    let mut b = RequestBuilder::new(Method::Cancel, uri)
        .header("Via", via.as_str())
        .max_forwards(70)
        .from(&first(request, HeaderName::From)?)
        .to(&first(request, HeaderName::To)?)
        .call_id(request.call_id()?)
        .cseq(seq);
    for route in request.typed_values(HeaderName::Route) {
        b = b.header("Route", &route);
    }
    b.build().map_err(|e| e.error().clone())
}

/// `503 Service Unavailable` with `Retry-After` (RFC 3261 §21.5.4, §20.33),
/// the answer to a request refused because the transaction limit is reached.
pub fn overload_response(request: &Message, retry_after: u32) -> Result<Bytes, MessageError> {
    request
        .response(503)
        .header("Retry-After", &retry_after.to_string())
        .to_bytes()
}

/// `100 Trying` for a request (RFC 3261 §8.2.6.1: no To tag is added).
pub(crate) fn trying(request: &Message) -> Result<Bytes, MessageError> {
    let mut b = request.response(100);
    // RFC 3261 §8.2.6.1: a Timestamp in the request is copied into the 100.
    if let Some(ts) = request.header("Timestamp") {
        b = b.header("Timestamp", ts);
    }
    b.to_bytes()
}

/// A `408 Request Timeout` standing for a timed-out client transaction
/// (RFC 3261 §8.1.3.1: a timeout is treated as a 408).
pub(crate) fn timeout_response(request: &Message) -> Option<Message> {
    request.response(408).build().ok()
}

fn first(m: &Message, name: HeaderName) -> Result<String, MessageError> {
    m.typed_values(name)
        .next()
        .map(|v| v.to_string())
        .ok_or(MessageError::Missing(name.as_str()))
}
