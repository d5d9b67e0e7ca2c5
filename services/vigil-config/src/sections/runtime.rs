//! `[runtime]`: where the services keep their sockets and their state; and
//! `[gpio]`: which board the sensors are read from.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{Checker, words};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuntimeFile {
    runtime_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    reports_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeConfig {
    /// Sockets, the control FIFO and the hub's rendezvous live here (`/run/vigil`).
    pub runtime_dir: PathBuf,
    /// Durable state: the event log, the database, clips (`/var/lib/vigil`).
    pub state_dir: PathBuf,
    /// reportd's own directory: `reports.db`, `reports/`, `reports.lock`.
    /// The state directory unless set; NixOS gives reportd, which runs
    /// under a uid of its own, its own (`/var/lib/vigil-reportd`), so that
    /// it needs no write access to the hub's state.
    pub reports_dir: PathBuf,
}

impl RuntimeConfig {
    /// The hub's well-known rendezvous socket.
    pub fn hub_socket(&self) -> PathBuf {
        self.runtime_dir.join("hub.sock")
    }

    /// reportd's index, which the hub reads.
    pub fn reports_db(&self) -> PathBuf {
        self.reports_dir.join("reports.db")
    }

    /// The simulated GPIO backend's control socket.
    pub fn sim_gpio_socket(&self) -> PathBuf {
        self.runtime_dir.join("sim-gpio.sock")
    }
}

pub(crate) fn check(c: &mut Checker, f: RuntimeFile) -> RuntimeConfig {
    let state_dir = f
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/vigil"));
    let runtime = RuntimeConfig {
        runtime_dir: f.runtime_dir.unwrap_or_else(|| PathBuf::from("/run/vigil")),
        reports_dir: f.reports_dir.unwrap_or_else(|| state_dir.clone()),
        state_dir,
    };
    for (key, dir) in [
        ("runtime.runtime_dir", &runtime.runtime_dir),
        ("runtime.state_dir", &runtime.state_dir),
        ("runtime.reports_dir", &runtime.reports_dir),
    ] {
        // Every service resolves them on its own, from its own working
        // directory: a relative path would name a different place in each.
        if !dir.is_absolute() {
            c.report(
                key,
                format!("{} is a relative path", dir.display()),
                "use an absolute path",
            );
        }
    }
    runtime
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GpioFile {
    backend: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpioBackendKind {
    /// The Raspberry Pi's GPIO through rppal (`/dev/gpiomem`).
    Rppal,
    /// A simulated board driven through a control socket.
    Simulated,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GpioConfig {
    pub backend: GpioBackendKind,
}

words! { GpioBackendKind, "backend", ["rppal" => GpioBackendKind::Rppal, "simulated" => GpioBackendKind::Simulated],
hint "rppal on a Raspberry Pi, simulated elsewhere" }

pub(crate) fn check_gpio(c: &mut Checker, f: GpioFile) -> GpioConfig {
    let backend = c.word("gpio.backend", f.backend.as_deref(), GpioBackendKind::Rppal);
    GpioConfig { backend }
}
