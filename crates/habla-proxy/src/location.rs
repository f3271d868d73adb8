//! The location service as the proxy sees it (RFC 3261 §10, §16.5): a
//! trait the binary implements over the registrar's store. The proxy does
//! not depend on the registrar: services never depend on each other.

use habla_message::Uri;

/// One registered contact of an address-of-record.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationContact {
    /// The contact URI (the new Request-URI, RFC 3261 §16.6 step 2).
    pub uri: Uri,
    /// Preference in thousandths (`q=0.5` is 500; 1000 when not given).
    /// Equal q values are tried in parallel, higher groups first
    /// (RFC 3261 §16.6).
    pub q: u16,
    /// The Path vector registered with it (RFC 3327), first element first:
    /// it becomes the Route set of the forwarded request.
    pub path: Vec<Uri>,
    /// The flow the contact registered over (RFC 5626), in the driver's
    /// own token format: the request goes back over it when there is no
    /// Path.
    pub flow: Option<String>,
}

impl LocationContact {
    /// A contact with q = 1, no Path and no flow.
    pub fn new(uri: Uri) -> Self {
        LocationContact {
            uri,
            q: 1000,
            path: Vec::new(),
            flow: None,
        }
    }
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Lookup {
    /// No such user: the proxy answers 404 Not Found.
    Unknown,
    /// The user exists but has no current binding: 480 Temporarily
    /// Unavailable.
    NotRegistered,
    /// Current bindings (an empty list counts as [`Lookup::NotRegistered`]).
    Contacts(Vec<LocationContact>),
}

/// Where the proxy finds the contacts of a Request-URI in one of its
/// domains (RFC 3261 §16.5). Called synchronously: a store that needs I/O
/// serves the proxy from memory (the registrar's hot table) and persists
/// on its own.
pub trait LocationLookup {
    /// The bindings of the address-of-record named by `request_uri` (a
    /// `sip:`/`sips:` URI in a local domain). The implementation derives its
    /// own key (the registrar's `address_of_record`).
    fn lookup(&mut self, request_uri: &Uri) -> Lookup;
}

impl<F: FnMut(&Uri) -> Lookup> LocationLookup for F {
    fn lookup(&mut self, request_uri: &Uri) -> Lookup {
        self(request_uri)
    }
}
