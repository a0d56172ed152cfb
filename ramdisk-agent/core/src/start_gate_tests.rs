use crate::start_gate::*;
use crate::startup_table::{NONCE_LEN, RootMode, TableEntry, WRAPPED_LEN};

fn entry() -> TableEntry {
    TableEntry {
        lease: "l-1".into(),
        image: [1; 16],
        epoch: 1,
        not_after_ms: 10_000,
        root: RootMode::Tpm,
        signing_key: [2; 32],
        nonce: [0; NONCE_LEN],
        wrapped: [0; WRAPPED_LEN],
    }
}

/// Fails at `fail_at` (if any) and records the calls.
struct Fake {
    fail_at: Option<GateStep>,
    calls: Vec<GateStep>,
}

impl Fake {
    fn step(&mut self, s: GateStep) -> Result<(), String> {
        self.calls.push(s);
        if self.fail_at == Some(s) {
            Err(format!("{} broke", s.as_str()))
        } else {
            Ok(())
        }
    }
}

impl GateChecks for Fake {
    type Key = ();
    type Slot = ();
    type Image = &'static str;
    fn key_entry(&mut self) -> Result<TableEntry, String> {
        self.step(GateStep::KeyEntry).map(|()| entry())
    }
    fn unwrap_key(&mut self, _: &TableEntry) -> Result<(), String> {
        self.step(GateStep::KeyUnwraps)
    }
    fn image_slot(&mut self, _: &TableEntry) -> Result<(), String> {
        self.step(GateStep::ImageSlot)
    }
    fn verify(&mut self, _: &TableEntry, _: &(), _: ()) -> Result<&'static str, String> {
        self.step(GateStep::ImageVerifies).map(|()| "image")
    }
    fn lease_valid(&mut self, _: &TableEntry) -> Result<(), String> {
        self.step(GateStep::LeaseValid)
    }
}

#[test]
fn the_steps_run_in_order_and_stop_at_the_first_failure() {
    let mut f = Fake {
        fail_at: None,
        calls: vec![],
    };
    let mut seen = vec![];
    assert_eq!(run(&mut f, &mut |s| seen.push(s)), Ok("image"));
    assert_eq!(f.calls, GateStep::ALL[..5]);
    assert_eq!(seen, GateStep::ALL[..5]);
    for (i, at) in GateStep::ALL[..5].iter().copied().enumerate() {
        let mut f = Fake {
            fail_at: Some(at),
            calls: vec![],
        };
        let mut seen = vec![];
        let r = run(&mut f, &mut |s| seen.push(s)).unwrap_err();
        assert_eq!(r.step, at);
        assert_eq!(f.calls, GateStep::ALL[..=i], "nothing after {at:?} ran");
        assert_eq!(seen, GateStep::ALL[..i]);
        assert!(r.to_string().contains(at.describe()), "{r}");
    }
}

#[test]
fn the_lease_must_be_confirmed_and_not_over() {
    let e = entry();
    assert!(lease_valid(&e, &LeaseWord::Continue { ends_ms: 20_000 }, 9_999).is_ok());
    let over_cert = lease_valid(&e, &LeaseWord::Continue { ends_ms: 20_000 }, 10_000);
    assert!(over_cert.unwrap_err().contains("ended at 10000"));
    let over_lm = lease_valid(&e, &LeaseWord::Continue { ends_ms: 5_000 }, 6_000);
    assert!(over_lm.unwrap_err().contains("ended at 5000"));
    assert!(
        lease_valid(&e, &LeaseWord::Release, 0)
            .unwrap_err()
            .contains("released")
    );
    let off = lease_valid(&e, &LeaseWord::Unreachable("timeout".into()), 0).unwrap_err();
    assert!(
        off.contains("fails closed") && off.contains("timeout"),
        "{off}"
    );
}
