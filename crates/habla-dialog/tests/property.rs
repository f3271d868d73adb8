//! Property-style test with a seeded PRNG: random sequences of operations
//! in one call keep each side's local CSeq strictly increasing, give the
//! RFC 3261 §12.2.2 decisions a simple model predicts, and never panic.

mod common;
use common::*;
use habla_dialog::{Dialog, DialogError, DialogState, DialogTable, InDialogDecision};
use habla_message::Message;

struct Side {
    dialog: Dialog,
    last_seq: u32,
}

impl Side {
    /// Sends a random in-dialog request; checks the CSeq rule.
    fn send(&mut self, rng: &mut Rng, branch: &str) -> Option<Message> {
        let v = via(branch);
        let before = self.dialog.local_seq();
        let r = match rng.below(7) {
            0 => self.dialog.info(&v),
            1 => self.dialog.message(&v),
            2 => self.dialog.notify(&v),
            3 => self.dialog.update(&v, ALICE_CONTACT),
            4 => self.dialog.reinvite(&v, ALICE_CONTACT),
            5 if rng.below(8) == 0 => self.dialog.bye(&v),
            _ => self.dialog.info(&v),
        };
        match r {
            Ok(b) => {
                let m = b.build().expect("a dialog builds valid requests");
                let seq = m.cseq().unwrap().seq;
                assert!(seq > self.last_seq, "CSeq {seq} after {}", self.last_seq);
                assert_eq!(self.dialog.local_seq(), Some(seq));
                self.last_seq = seq;
                Some(m)
            }
            Err(e) => {
                assert_eq!(e, DialogError::Terminated);
                assert_eq!(
                    self.dialog.local_seq(),
                    before,
                    "a refused request moved CSeq"
                );
                None
            }
        }
    }
}

#[test]
fn random_in_dialog_operations_keep_cseq_increasing() {
    let mut seen = [0usize; 3]; // accepted, 500, 481
    for seed in 0..300u64 {
        let mut rng = Rng::new(seed);
        let inv = invite(&["<sip:p1.atlanta.com;lr>"]);
        let ok = answer(&inv, 200, "bobtag", Some(BOB_CONTACT));
        let mut alice = Side {
            dialog: Dialog::from_uac_response(&inv, &ok).unwrap(),
            last_seq: 314159,
        };
        let mut bob_table = DialogTable::new();
        let bob_id = bob_table.handle_uas_response(&inv, &ok).unwrap().unwrap();
        let mut bob = Side {
            dialog: bob_table.get(&bob_id).unwrap().clone(),
            last_seq: 0,
        };
        // Requests Alice sent, not yet delivered to Bob (delivery order is
        // random: out-of-order arrival must give 500).
        let mut in_flight: Vec<Message> = Vec::new();
        // The model of Bob's dialog.
        let mut bob_remote = 314159u32;
        let mut bob_terminated = false;
        for step in 0..150 {
            let branch = format!("z9hG4bK{seed}x{step}");
            match rng.below(10) {
                0..=2 => {
                    if let Some(m) = alice.send(&mut rng, &branch) {
                        in_flight.push(m);
                    }
                }
                3..=5 if !in_flight.is_empty() => {
                    let i = rng.below(in_flight.len() as u64) as usize;
                    // Sometimes a duplicate arrives: keep it in flight.
                    let m = if rng.below(5) == 0 {
                        in_flight[i].clone()
                    } else {
                        in_flight.swap_remove(i)
                    };
                    let seq = m.cseq().unwrap().seq;
                    let d = bob_table.handle_request(&m);
                    let want = if bob_terminated {
                        InDialogDecision::Reject(481)
                    } else if seq < bob_remote {
                        InDialogDecision::Reject(500)
                    } else {
                        InDialogDecision::Accept
                    };
                    assert_eq!(d, want, "seed {seed} step {step}");
                    seen[match d {
                        InDialogDecision::Accept => 0,
                        InDialogDecision::Reject(500) => 1,
                        InDialogDecision::Reject(_) => 2,
                    }] += 1;
                    if d == InDialogDecision::Accept {
                        bob_remote = seq;
                        if m.method() == Some(&habla_message::Method::Bye) {
                            bob_terminated = true;
                        }
                    }
                    let bd = bob_table.get(&bob_id).unwrap();
                    assert_eq!(bd.remote_seq(), Some(bob_remote));
                    assert_eq!(bd.state() == DialogState::Terminated, bob_terminated);
                }
                6 => {
                    // Bob's own requests (his CSeq space starts empty).
                    let _ = bob.send(&mut rng, &branch);
                }
                7 => {
                    // A response to Alice's last request.
                    if let Some(m) = in_flight.last() {
                        let code = [200, 200, 488, 491, 481, 408][rng.below(6) as usize];
                        let r = answer_with(m, code, None, &[("Contact", BOB_CONTACT)]);
                        alice.dialog.handle_response(&r).unwrap();
                        if code == 481 || code == 408 {
                            assert_eq!(alice.dialog.state(), DialogState::Terminated);
                        }
                    }
                }
                8 => {
                    // ACK for the 2xx, any time: never moves the CSeq.
                    let before = alice.dialog.local_seq();
                    let ack = alice
                        .dialog
                        .ack(&ok, &via(&branch))
                        .unwrap()
                        .build()
                        .unwrap();
                    assert_eq!(ack.cseq().unwrap().seq, 314159);
                    assert_eq!(alice.dialog.local_seq(), before);
                    let _ = bob_table.handle_request(&ack);
                }
                _ => {
                    let _ = alice.send(&mut rng, &branch);
                }
            }
        }
    }
    // The sequences reach every decision.
    assert!(seen.iter().all(|&n| n > 50), "decisions seen: {seen:?}");
}
