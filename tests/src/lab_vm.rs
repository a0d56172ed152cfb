//! A VM registered with the lab: its spec and its power state, shared by the WoL listener
//! (which powers it on) and the test (which waits for it to start and for console markers);
//! and the record of what the lab did with each magic packet.
//! Each power-on is a new [`Vm`] (a new QEMU process, a new console log); earlier boots are
//! kept for inspection.
//!
//! Does IO (starts and stops QEMU).

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use lm_api::MacAddr;

use crate::log_capture::LogLine;
use crate::qemu::{Vm, VmSpec};
use crate::wol::WakeVia;

/// What the lab did with a magic packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeOutcome {
    /// It powered on this VM (boot number, 1-based).
    Started { vm: String, boot: u32 },
    /// The VM was running already; nothing was done.
    AlreadyRunning { vm: String },
    /// No registered VM has this MAC; nothing was done.
    Unregistered,
    /// Starting QEMU failed.
    Failed { vm: String, error: String },
}

/// One magic packet seen on the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeEvent {
    /// Time since the lab started.
    pub at: Duration,
    /// Target MAC.
    pub mac: MacAddr,
    /// How it came.
    pub via: WakeVia,
    /// What the lab did.
    pub outcome: WakeOutcome,
}

/// What a power-on request did.
#[derive(Debug, Clone)]
pub enum PowerOn {
    /// A new QEMU was started.
    Started(Arc<Vm>),
    /// QEMU was already running; nothing was done.
    AlreadyRunning(Arc<Vm>),
}

#[derive(Debug, Default)]
struct PowerState {
    boots: Vec<Arc<Vm>>,
    closed: bool,
}

#[derive(Debug)]
struct Slot {
    spec: VmSpec,
    netns: String,
    state: Mutex<PowerState>,
    changed: Condvar,
}

/// A registered VM; cheap to clone.
#[derive(Debug, Clone)]
pub struct VmHandle(Arc<Slot>);

impl VmHandle {
    pub(crate) fn new(spec: VmSpec, netns: &str) -> Self {
        VmHandle(Arc::new(Slot {
            spec,
            netns: netns.to_owned(),
            state: Mutex::new(PowerState::default()),
            changed: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, PowerState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The VM's name.
    pub fn name(&self) -> &str {
        &self.0.spec.name
    }

    /// Its NIC's MAC (what a magic packet must carry).
    pub fn mac(&self) -> MacAddr {
        self.0.spec.mac
    }

    /// The spec as registered (tap and log folder filled in by the lab).
    pub fn spec(&self) -> &VmSpec {
        &self.0.spec
    }

    /// Starts QEMU unless it is running (what a wake does).
    pub fn power_on(&self) -> Result<PowerOn> {
        let mut st = self.lock();
        if st.closed {
            bail!("VM {}: the lab is shut down", self.name());
        }
        if let Some(vm) = st.boots.last().filter(|vm| vm.is_running()) {
            return Ok(PowerOn::AlreadyRunning(vm.clone()));
        }
        if let Some(previous) = st.boots.last() {
            // QEMU has exited; its swtpm must be gone too before the next one takes the state.
            previous.power_off();
        }
        let boot = st.boots.len() as u32 + 1;
        let vm = Arc::new(Vm::start(&self.0.spec, Some(&self.0.netns), boot)?);
        tracing::info!(
            vm = self.name(),
            boot,
            pid = vm.console().pid(),
            "powered on"
        );
        st.boots.push(vm.clone());
        self.0.changed.notify_all();
        Ok(PowerOn::Started(vm))
    }

    /// Pulls the plug if it runs; returns once QEMU is gone.
    pub fn power_off(&self) {
        if let Some(vm) = self.current() {
            vm.power_off();
        }
    }

    /// True while the latest boot's QEMU runs.
    pub fn is_running(&self) -> bool {
        self.lock().boots.last().is_some_and(|vm| vm.is_running())
    }

    /// How many times it was powered on.
    pub fn boots(&self) -> u32 {
        self.lock().boots.len() as u32
    }

    /// Boot number `n` (1-based), if it happened.
    pub fn boot(&self, n: u32) -> Option<Arc<Vm>> {
        let i = usize::try_from(n.checked_sub(1)?).ok()?;
        self.lock().boots.get(i).cloned()
    }

    /// The latest boot, running or not.
    pub fn current(&self) -> Option<Arc<Vm>> {
        self.lock().boots.last().cloned()
    }

    /// Waits until boot number `n` (1-based) has started.
    pub fn wait_boot(&self, n: u32, timeout: Duration) -> Result<Arc<Vm>> {
        let i = usize::try_from(n.max(1) - 1)?;
        let st = self.lock();
        let (st, _) = self
            .0
            .changed
            .wait_timeout_while(st, timeout, |s| s.boots.len() <= i && !s.closed)
            .unwrap_or_else(|p| p.into_inner());
        st.boots.get(i).cloned().ok_or_else(|| {
            anyhow!(
                "VM {}: boot {n} did not start within {timeout:?} ({} so far)",
                self.name(),
                st.boots.len()
            )
        })
    }

    /// Waits for boot `n` to start and then for a console line with `marker` in it; one
    /// `timeout` covers both.
    pub fn wait_marker(&self, n: u32, marker: &str, timeout: Duration) -> Result<LogLine> {
        let start = Instant::now();
        let vm = self.wait_boot(n, timeout)?;
        Ok(vm.wait_for(marker, timeout.saturating_sub(start.elapsed()))?)
    }

    /// Waits for the VM to have started at least once and then for `marker` on the latest
    /// boot at that moment.
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<LogLine> {
        let start = Instant::now();
        self.wait_boot(1, timeout)?;
        let vm = self
            .current()
            .ok_or_else(|| anyhow!("VM {} has no boot", self.name()))?;
        Ok(vm.wait_for(marker, timeout.saturating_sub(start.elapsed()))?)
    }

    /// The complete console line (from `seq` on, the latest boot) with `text`: a marker found
    /// by [`VmHandle::wait_for`] may sit on a line still being written, and the line list lags
    /// behind it; waits up to `timeout` for the line to end.
    pub fn complete_line(&self, seq: u64, text: &str, timeout: Duration) -> Result<String> {
        let t = Instant::now();
        loop {
            let lines = self
                .current()
                .map(|b| b.console().lines_from(seq))
                .unwrap_or_default();
            if let Some(l) = lines.iter().find(|l| l.text.contains(text)) {
                return Ok(l.text.clone());
            }
            if t.elapsed() > timeout {
                return Err(anyhow!(
                    "no complete console line with {text:?} within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Refuses further power-ons and powers off every boot.
    pub(crate) fn shut_down(&self) -> Vec<Arc<Vm>> {
        let boots = {
            let mut st = self.lock();
            st.closed = true;
            self.0.changed.notify_all();
            st.boots.clone()
        };
        for vm in &boots {
            vm.power_off();
        }
        boots
    }
}
