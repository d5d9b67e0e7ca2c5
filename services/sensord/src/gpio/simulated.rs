//! A simulated GPIO board. Inputs rest at their sensor's resting level until
//! someone outside sets them through the control socket; outputs remember
//! their level so tests can read the siren.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use vigil_domain::{Level, Pull};

use super::{Edge, EdgeSink, Gpio, GpioError};

#[derive(Debug)]
enum SimPin {
    Input {
        level: Level,
        edges: Option<EdgeSink>,
    },
    Output {
        level: Level,
    },
}

/// The simulated board; levels survive a re-claim (a config reload).
#[derive(Debug, Default)]
pub struct SimulatedGpio {
    pins: Mutex<BTreeMap<u8, SimPin>>,
}

impl SimulatedGpio {
    /// Drives input `pin` to `level`, as a wire would; an edge is delivered
    /// only if the level changes.
    pub fn set_input(&self, pin: u8, level: Level) -> Result<(), GpioError> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        match pins.get_mut(&pin) {
            Some(SimPin::Input { level: l, edges }) => {
                if *l != level {
                    *l = level;
                    if let Some(sink) = edges {
                        let _ = sink.send(Edge {
                            pin,
                            level,
                            at: Instant::now(),
                        });
                    }
                }
                Ok(())
            }
            _ => Err(GpioError::NotClaimed {
                pin,
                what: "an input",
            }),
        }
    }

    /// The level of any claimed pin.
    pub fn level(&self, pin: u8) -> Option<Level> {
        let pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        pins.get(&pin).map(|p| match p {
            SimPin::Input { level, .. } | SimPin::Output { level } => *level,
        })
    }
}

impl Gpio for SimulatedGpio {
    fn claim_input(
        &self,
        pin: u8,
        _pull: Pull,
        resting: Level,
        edges: EdgeSink,
    ) -> Result<Level, GpioError> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        let entry = pins.entry(pin).or_insert(SimPin::Input {
            level: resting,
            edges: None,
        });
        match entry {
            SimPin::Input { level, edges: sink } => {
                *sink = Some(edges);
                Ok(*level)
            }
            SimPin::Output { .. } => Err(GpioError::Pin {
                pin,
                message: "already claimed as an output".into(),
            }),
        }
    }

    fn claim_output(&self, pin: u8, initial: Level) -> Result<(), GpioError> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        pins.insert(pin, SimPin::Output { level: initial });
        Ok(())
    }

    fn set_output(&self, pin: u8, level: Level) -> Result<(), GpioError> {
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        match pins.get_mut(&pin) {
            Some(SimPin::Output { level: l }) => {
                *l = level;
                Ok(())
            }
            _ => Err(GpioError::NotClaimed {
                pin,
                what: "an output",
            }),
        }
    }

    fn release_all(&self) {
        // Keep the levels (the wires did not move); drop the edge sinks.
        let mut pins = self.pins.lock().unwrap_or_else(|p| p.into_inner());
        for pin in pins.values_mut() {
            if let SimPin::Input { edges, .. } = pin {
                *edges = None;
            }
        }
    }

    fn name(&self) -> &'static str {
        "simulated"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_float_to_their_pull_and_edges_fire_only_on_change() {
        let sim = SimulatedGpio::default();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let level = sim
            .claim_input(17, Pull::Up, Level::High, tx)
            .expect("claim");
        assert_eq!(level, Level::High);
        sim.set_input(17, Level::High).expect("same level");
        assert!(rx.try_recv().is_err(), "no edge without a change");
        sim.set_input(17, Level::Low).expect("set");
        assert_eq!(rx.try_recv().expect("edge").level, Level::Low);
        assert!(sim.set_input(4, Level::Low).is_err(), "unclaimed pin");
    }

    #[test]
    fn outputs_remember_their_level() {
        let sim = SimulatedGpio::default();
        sim.claim_output(23, Level::Low).expect("claim");
        sim.set_output(23, Level::High).expect("set");
        assert_eq!(sim.level(23), Some(Level::High));
        assert!(sim.set_output(24, Level::High).is_err());
    }
}
