//! # habla-dialog: SIP dialogs (RFC 3261 §12)
//!
//! A dialog is the peer-to-peer relationship two user agents keep for a
//! while: an INVITE session, a subscription. This crate holds its state
//! ([`Dialog`]: id, [`DialogState`], route set, remote target, local and
//! remote CSeq, secure flag), creates it from the messages that establish
//! it, builds the requests sent in it and checks those received in it.
//! [`DialogTable`] keeps a UA's dialogs by [`DialogId`] and applies the
//! forking rules: several early dialogs per INVITE, the first 2xx
//! confirming one, 2xx from other branches creating dialogs the UAC core
//! ACKs and BYEs (RFC 3261 §13.2.2.4).
//!
//! Nothing here reads a clock, draws a random number or touches a socket:
//! tags and Call-IDs are in the messages the caller built, branches are
//! passed in ([`LocalVia`]), and requests come out as
//! [`habla_message::RequestBuilder`]s the caller completes (Contact, body)
//! and hands to the transaction layer.
//!
//! ```
//! use habla_dialog::{Dialog, DialogState, InDialogDecision, LocalVia};
//! use habla_message::{Message, Method, RequestBuilder, Uri};
//!
//! let invite = RequestBuilder::new(Method::Invite, &Uri::parse("sip:bob@biloxi.com")?)
//!     .via("UDP", "pc33.atlanta.com", "z9hG4bK776asdhds", false)
//!     .max_forwards(70)
//!     .from("Alice <sip:alice@atlanta.com>;tag=1928301774")
//!     .to("Bob <sip:bob@biloxi.com>")
//!     .call_id("a84b4c76e66710@pc33.atlanta.com")
//!     .cseq(314159)
//!     .header("Contact", "<sip:alice@pc33.atlanta.com>")
//!     .build()?;
//! let ok = invite
//!     .response(200)
//!     .to_tag(&invite, "a6c85cf")
//!     .header("Contact", "<sip:bob@192.0.2.4>")
//!     .build()?;
//! // Both ends of the same exchange.
//! let mut alice = Dialog::from_uac_response(&invite, &ok)?;
//! let mut bob = Dialog::from_uas_response(&invite, &ok)?;
//! assert_eq!(alice.state(), DialogState::Confirmed);
//!
//! let bye = alice.bye(&LocalVia::new("UDP", "pc33.atlanta.com", "z9hG4bKnashds7"))?.build()?;
//! assert_eq!(bye.request_uri()?.as_str(), "sip:bob@192.0.2.4");
//! assert_eq!(bye.cseq()?.seq, 314160);
//! assert_eq!(bob.handle_request(&bye), InDialogDecision::Accept);
//! assert_eq!(bob.state(), DialogState::Terminated);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not here yet: RFC 2543 peers without tags, dialogs created by SUBSCRIBE
//! and REFER with their usages (RFC 5057, RFC 6665), reliable provisional
//! responses (RFC 3262), and the 64*T1 timer after the first 2xx, which
//! the caller runs and answers with [`DialogTable::terminate_early_dialogs`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dialog;
mod error;
mod table;

pub use dialog::{cancel_request, Dialog, DialogId, DialogState, InDialogDecision, LocalVia, Role};
pub use error::DialogError;
pub use table::{DialogTable, UacOutcome};
