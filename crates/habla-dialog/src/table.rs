//! All the dialogs of a user agent, keyed by dialog id, with the forking
//! rules of RFC 3261 §12.1.2 and §13.2.2.4.

use crate::dialog::{Dialog, DialogId, DialogState, InDialogDecision};
use crate::error::DialogError;
use habla_message::Message;
use std::collections::BTreeMap;
use std::ops::Bound;

/// What a response the UAC received did to its dialogs
/// ([`DialogTable::handle_uac_response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum UacOutcome {
    /// The response creates no dialog: a 100, a provisional without To
    /// tag, or a final non-2xx when no early dialog existed.
    NoDialog,
    /// A provisional response with a To tag: an early dialog was created
    /// (`created`) or already existed (RFC 3261 §12.1.2). Forking gives one
    /// per To tag.
    Early {
        /// The early dialog.
        id: DialogId,
        /// Whether this response created it.
        created: bool,
    },
    /// The first 2xx to the request: it created a dialog or confirmed an
    /// early one (RFC 3261 §13.2.2.4). The UAC core ACKs it.
    Confirmed(DialogId),
    /// A 2xx from another branch after the first 2xx: a dialog was created
    /// (or confirmed) for it as RFC 3261 §13.2.2.4 requires, and the UAC
    /// core, having its session already, ACKs it and then sends a BYE.
    AdditionalDialog(DialogId),
    /// A 2xx for a dialog a 2xx confirmed already: a retransmission the UAC
    /// core ACKs again (RFC 3261 §13.2.2.4).
    Retransmitted2xx(DialogId),
    /// A final non-2xx to the creating request: these early dialogs were
    /// terminated and removed (RFC 3261 §12.3, §13.2.2.3).
    EarlyTerminated(Vec<DialogId>),
    /// The response answered a request sent in this dialog, and was applied
    /// to it (target refresh, termination on 481/408: see
    /// [`Dialog::handle_response`]).
    InDialog(DialogId),
}

/// The dialogs of a user agent, keyed by [`DialogId`], with bounds on how
/// many it holds in all and how many one request may create by forking.
#[derive(Debug, Clone)]
pub struct DialogTable {
    dialogs: BTreeMap<DialogId, Dialog>,
    max_dialogs: usize,
    max_forks: usize,
}

impl Default for DialogTable {
    fn default() -> Self {
        DialogTable::new()
    }
}

impl DialogTable {
    /// Default limits: 65 536 dialogs, 32 per dialog-creating request.
    pub const DEFAULT_MAX_DIALOGS: usize = 65_536;
    /// Default bound on the dialogs forking can create for one request.
    pub const DEFAULT_MAX_FORKS: usize = 32;

    /// An empty table with the default limits.
    pub fn new() -> Self {
        DialogTable::with_limits(Self::DEFAULT_MAX_DIALOGS, Self::DEFAULT_MAX_FORKS)
    }

    /// An empty table holding at most `max_dialogs` dialogs, at most
    /// `max_forks` of them created by one request (hostile forking cannot
    /// make it grow without bound).
    pub fn with_limits(max_dialogs: usize, max_forks: usize) -> Self {
        DialogTable {
            dialogs: BTreeMap::new(),
            max_dialogs,
            max_forks,
        }
    }

    /// Number of dialogs held.
    pub fn len(&self) -> usize {
        self.dialogs.len()
    }
    /// Whether no dialog is held.
    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }
    /// A dialog by id.
    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id)
    }
    /// A dialog by id, to build requests in it.
    pub fn get_mut(&mut self, id: &DialogId) -> Option<&mut Dialog> {
        self.dialogs.get_mut(id)
    }
    /// Removes a dialog.
    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.dialogs.remove(id)
    }
    /// Every dialog, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Dialog> + '_ {
        self.dialogs.values()
    }
    /// Adds a dialog made elsewhere; refused when the table is full.
    pub fn insert(&mut self, dialog: Dialog) -> Result<(), DialogError> {
        if !self.dialogs.contains_key(dialog.id()) && self.dialogs.len() >= self.max_dialogs {
            return Err(DialogError::TooManyDialogs {
                limit: self.max_dialogs,
            });
        }
        self.dialogs.insert(dialog.id().clone(), dialog);
        Ok(())
    }
    /// Removes the terminated dialogs (after a BYE and its response, say)
    /// and returns their ids.
    pub fn remove_terminated(&mut self) -> Vec<DialogId> {
        let ids: Vec<DialogId> = self
            .dialogs
            .values()
            .filter(|d| d.state() == DialogState::Terminated)
            .map(|d| d.id().clone())
            .collect();
        for id in &ids {
            self.dialogs.remove(id);
        }
        ids
    }

    /// The dialogs sharing a Call-ID and local tag: those forking created
    /// from one request (RFC 3261 §12.1.2).
    pub fn dialogs_of(&self, call_id: &str, local_tag: &str) -> impl Iterator<Item = &Dialog> + '_ {
        let start = DialogId {
            call_id: call_id.to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: String::new(),
        };
        self.dialogs
            .range((Bound::Included(start.clone()), Bound::Unbounded))
            .take_while(move |(id, _)| {
                id.call_id == start.call_id && id.local_tag == start.local_tag
            })
            .map(|(_, d)| d)
    }

    /// The dialogs the request with this Call-ID, local tag and CSeq created.
    fn created_by(&self, call_id: &str, local_tag: &str, seq: u32) -> Vec<&Dialog> {
        self.dialogs_of(call_id, local_tag)
            .filter(|d| d.creating_request().1 == seq)
            .collect()
    }

    /// Terminates and removes the early dialogs a request created: on its
    /// final non-2xx, on a transaction timeout, or 64*T1 after the first
    /// 2xx (RFC 3261 §13.2.2.4). `request` is the one this UAC sent.
    pub fn terminate_early_dialogs(
        &mut self,
        request: &Message,
    ) -> Result<Vec<DialogId>, DialogError> {
        let call_id = request
            .call_id()
            .map_err(DialogError::malformed("Call-ID"))?
            .as_str()
            .to_owned();
        let local_tag = match request
            .from()
            .map_err(DialogError::malformed("From"))?
            .tag()
        {
            Some(t) => t.to_owned(),
            None => return Err(DialogError::MissingTag("From")),
        };
        let seq = request.cseq().map_err(DialogError::malformed("CSeq"))?.seq;
        Ok(self.remove_early(&call_id, &local_tag, seq))
    }

    fn remove_early(&mut self, call_id: &str, local_tag: &str, seq: u32) -> Vec<DialogId> {
        let ids: Vec<DialogId> = self
            .created_by(call_id, local_tag, seq)
            .into_iter()
            .filter(|d| d.state() == DialogState::Early)
            .map(|d| d.id().clone())
            .collect();
        for id in &ids {
            self.dialogs.remove(id);
        }
        ids
    }

    fn insert_new(&mut self, dialog: Dialog) -> Result<(), DialogError> {
        let id = dialog.id();
        let forks = self
            .created_by(&id.call_id, &id.local_tag, dialog.creating_request().1)
            .len();
        if forks >= self.max_forks {
            return Err(DialogError::TooManyDialogs {
                limit: self.max_forks,
            });
        }
        self.insert(dialog)
    }

    // ----- UAC --------------------------------------------------------------

    /// Applies a response this UAC received to `request`, the request it
    /// answers (RFC 3261 §12.1.2, §12.2.1.2, §13.2.2.4).
    ///
    /// For a request sent outside a dialog (no To tag), the response may
    /// create an early dialog (1xx with To tag), create or confirm one
    /// (2xx: the first is [`UacOutcome::Confirmed`], 2xx from other branches
    /// [`UacOutcome::AdditionalDialog`]), or end the early ones (final
    /// non-2xx). For a request sent in a dialog, the response updates that
    /// dialog ([`Dialog::handle_response`]).
    pub fn handle_uac_response(
        &mut self,
        request: &Message,
        response: &Message,
    ) -> Result<UacOutcome, DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongKind("response"))?;
        if !request.is_request() {
            return Err(DialogError::WrongKind("request"));
        }
        let in_dialog = request
            .to()
            .map_err(DialogError::malformed("To"))?
            .tag()
            .is_some();
        if in_dialog {
            let id = DialogId::at_uac(response)?;
            let d = self
                .dialogs
                .get_mut(&id)
                .ok_or(DialogError::Mismatch("no such dialog"))?;
            d.handle_response(response)?;
            return Ok(UacOutcome::InDialog(id));
        }
        let request_seq = request.cseq().map_err(DialogError::malformed("CSeq"))?.seq;
        if response.cseq().map_err(DialogError::malformed("CSeq"))?.seq != request_seq {
            return Err(DialogError::Mismatch(
                "CSeq of the response differs from the request's",
            ));
        }
        let to_tag = response
            .to()
            .map_err(DialogError::malformed("To"))?
            .tag()
            .is_some();
        if status >= 300 {
            let id = DialogId::at_uac(request).or_else(|_| {
                // The request has no To tag: build the set key by hand.
                let call_id = request
                    .call_id()
                    .map_err(DialogError::malformed("Call-ID"))?
                    .as_str()
                    .to_owned();
                let local_tag = request
                    .from()
                    .map_err(DialogError::malformed("From"))?
                    .tag()
                    .ok_or(DialogError::MissingTag("From"))?
                    .to_owned();
                Ok::<_, DialogError>(DialogId {
                    call_id,
                    local_tag,
                    remote_tag: String::new(),
                })
            })?;
            let ids = self.remove_early(&id.call_id, &id.local_tag, request_seq);
            return Ok(if ids.is_empty() {
                UacOutcome::NoDialog
            } else {
                UacOutcome::EarlyTerminated(ids)
            });
        }
        if status == 100 || (status < 200 && !to_tag) {
            return Ok(UacOutcome::NoDialog);
        }
        let id = DialogId::at_uac(response)?;
        let is_2xx = status >= 200;
        // RFC 3261 §13.2.2.4: was another branch's 2xx here first?
        let other_confirmed = is_2xx
            && self
                .created_by(&id.call_id, &id.local_tag, request_seq)
                .iter()
                .any(|d| d.id() != &id && d.was_confirmed());
        let established = if other_confirmed {
            UacOutcome::AdditionalDialog(id.clone())
        } else {
            UacOutcome::Confirmed(id.clone())
        };
        if let Some(d) = self.dialogs.get_mut(&id) {
            if !is_2xx {
                d.handle_response(response)?;
                return Ok(UacOutcome::Early { id, created: false });
            }
            if d.was_confirmed() {
                return Ok(UacOutcome::Retransmitted2xx(id));
            }
            d.handle_response(response)?;
            return Ok(established);
        }
        self.insert_new(Dialog::from_uac_response(request, response)?)?;
        Ok(if is_2xx {
            established
        } else {
            UacOutcome::Early { id, created: true }
        })
    }

    // ----- UAS --------------------------------------------------------------

    /// Applies a response this UAS is sending to `request`, the request it
    /// received (RFC 3261 §12.1.1): a 101-199 with a To tag creates an early
    /// dialog, a 2xx creates a confirmed one or confirms the early one, a
    /// final non-2xx terminates and removes the early one. For a request
    /// received in a dialog, the response is applied to it.
    ///
    /// Returns the dialog the response belongs to, `None` if none (any
    /// more).
    pub fn handle_uas_response(
        &mut self,
        request: &Message,
        response: &Message,
    ) -> Result<Option<DialogId>, DialogError> {
        let status = response
            .status()
            .ok_or(DialogError::WrongKind("response"))?;
        if !request.is_request() {
            return Err(DialogError::WrongKind("request"));
        }
        let to_tag = |m: &Message| -> Result<bool, DialogError> {
            Ok(m.to()
                .map_err(DialogError::malformed("To"))?
                .tag()
                .is_some())
        };
        if to_tag(request)? {
            let id = DialogId::at_uas(response)?;
            let d = self
                .dialogs
                .get_mut(&id)
                .ok_or(DialogError::Mismatch("no such dialog"))?;
            d.handle_sent_response(response)?;
            return Ok(Some(id));
        }
        if status == 100 || !to_tag(response)? {
            return Ok(None);
        }
        let id = DialogId::at_uas(response)?;
        if let Some(d) = self.dialogs.get_mut(&id) {
            d.handle_sent_response(response)?;
            if d.state() == DialogState::Terminated {
                self.dialogs.remove(&id);
                return Ok(None);
            }
            return Ok(Some(id));
        }
        if status >= 300 {
            return Ok(None);
        }
        self.insert_new(Dialog::from_uas_response(request, response)?)?;
        Ok(Some(id))
    }

    /// Checks a request received with a To tag against the dialog it names
    /// (RFC 3261 §12.2.2): 481 when there is no such dialog, otherwise
    /// [`Dialog::handle_request`]. A request without To tag is outside any
    /// dialog: it gets 481 here, so pass only mid-dialog requests.
    pub fn handle_request(&mut self, request: &Message) -> InDialogDecision {
        match DialogId::at_uas(request) {
            Ok(id) => match self.dialogs.get_mut(&id) {
                Some(d) => d.handle_request(request),
                None => InDialogDecision::Reject(481),
            },
            Err(DialogError::MissingTag(_)) => InDialogDecision::Reject(481),
            Err(_) => InDialogDecision::Reject(400),
        }
    }
}
