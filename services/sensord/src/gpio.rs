//! The GPIO edge of sensord: a small backend trait, the Raspberry Pi
//! backend (rppal) and a simulated board for tests, the demo and VM tests.
//!
//! Architecture invariant: nothing above this module knows which backend
//! runs; the simulated board is driven only from outside the process (its
//! control socket), exactly as a real wire would be.

mod rppal_backend;
pub mod simulated;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;
use vigil_config::{Config, GpioBackendKind};
use vigil_domain::{Level, Pull};

pub use rppal_backend::RppalGpio;
pub use simulated::SimulatedGpio;

/// A level change seen on an input pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub pin: u8,
    pub level: Level,
    pub at: Instant,
}

/// Where a backend delivers edges, from whatever thread it runs them on.
pub type EdgeSink = UnboundedSender<Edge>;

#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error(
        "cannot open the GPIO chip: {0}; on a Raspberry Pi, run sensord in the `gpio` group \
         (the NixOS module does); elsewhere set gpio.backend = \"simulated\""
    )]
    Open(String),
    #[error("GPIO {pin}: {message}")]
    Pin { pin: u8, message: String },
    #[error("GPIO {pin} is not claimed as {what}")]
    NotClaimed { pin: u8, what: &'static str },
}

/// A GPIO board.
pub trait Gpio: Send + Sync + std::fmt::Debug {
    /// Claims `pin` as an input with `pull`, delivering every edge to
    /// `edges`; returns the level it reads now. `resting` is the level the
    /// wire shows when its sensor is at rest: a real board reads the wire
    /// and ignores it; the simulated board starts there.
    fn claim_input(
        &self,
        pin: u8,
        pull: Pull,
        resting: Level,
        edges: EdgeSink,
    ) -> Result<Level, GpioError>;
    /// Claims `pin` as an output at `initial`.
    fn claim_output(&self, pin: u8, initial: Level) -> Result<(), GpioError>;
    /// Drives a claimed output.
    fn set_output(&self, pin: u8, level: Level) -> Result<(), GpioError>;
    /// Releases every claimed pin (before re-claiming after a reload).
    fn release_all(&self);
    /// The backend's name, for logs.
    fn name(&self) -> &'static str;
}

/// An opened board.
#[derive(Debug)]
pub struct OpenedGpio {
    pub gpio: Arc<dyn Gpio>,
    /// The same board when it is simulated, for its control socket.
    pub simulated: Option<Arc<SimulatedGpio>>,
}

/// The backend the config asks for.
pub fn open(config: &Config) -> Result<OpenedGpio, GpioError> {
    match config.gpio.backend {
        GpioBackendKind::Rppal => Ok(OpenedGpio {
            gpio: Arc::new(RppalGpio::open()?),
            simulated: None,
        }),
        GpioBackendKind::Simulated => {
            let sim = Arc::new(SimulatedGpio::default());
            Ok(OpenedGpio {
                gpio: sim.clone(),
                simulated: Some(sim),
            })
        }
    }
}
