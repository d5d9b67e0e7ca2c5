//! The Raspberry Pi backend: rppal's GPIO character-device interrupts for
//! inputs (edges arrive on rppal's interrupt thread), plain outputs for the
//! siren relay and the buzzer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use rppal::gpio::{self, InputPin, OutputPin, Trigger};
use vigil_domain::{Level, Pull};

use super::{Edge, EdgeSink, Gpio, GpioError};

/// rppal's [`gpio::Gpio`] with the pins sensord has claimed.
pub struct RppalGpio {
    chip: gpio::Gpio,
    /// Claimed inputs; dropping one clears its interrupt.
    inputs: Mutex<HashMap<u8, InputPin>>,
    outputs: Mutex<HashMap<u8, OutputPin>>,
}

impl std::fmt::Debug for RppalGpio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RppalGpio").finish_non_exhaustive()
    }
}

impl RppalGpio {
    pub fn open() -> Result<RppalGpio, GpioError> {
        let chip = gpio::Gpio::new().map_err(|e| GpioError::Open(e.to_string()))?;
        Ok(RppalGpio {
            chip,
            inputs: Mutex::new(HashMap::new()),
            outputs: Mutex::new(HashMap::new()),
        })
    }
}

fn to_level(l: gpio::Level) -> Level {
    match l {
        gpio::Level::High => Level::High,
        gpio::Level::Low => Level::Low,
    }
}

impl Gpio for RppalGpio {
    fn claim_input(
        &self,
        pin: u8,
        pull: Pull,
        _resting: Level,
        edges: EdgeSink,
    ) -> Result<Level, GpioError> {
        let err = |e: gpio::Error| GpioError::Pin {
            pin,
            message: e.to_string(),
        };
        let raw = self.chip.get(pin).map_err(err)?;
        let mut input = match pull {
            Pull::Up => raw.into_input_pullup(),
            Pull::Down => raw.into_input_pulldown(),
            Pull::Off => raw.into_input(),
        };
        // Debouncing is sensord's (per sensor, observable); rppal's is off.
        input
            .set_async_interrupt(Trigger::Both, None, move |event| {
                let level = match event.trigger {
                    Trigger::RisingEdge => Level::High,
                    _ => Level::Low,
                };
                // The receiver is gone only while sensord shuts down.
                let _ = edges.send(Edge {
                    pin,
                    level,
                    at: Instant::now(),
                });
            })
            .map_err(err)?;
        let level = to_level(input.read());
        self.inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pin, input);
        Ok(level)
    }

    fn claim_output(&self, pin: u8, initial: Level) -> Result<(), GpioError> {
        let raw = self.chip.get(pin).map_err(|e| GpioError::Pin {
            pin,
            message: e.to_string(),
        })?;
        let output = match initial {
            Level::High => raw.into_output_high(),
            Level::Low => raw.into_output_low(),
        };
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pin, output);
        Ok(())
    }

    fn set_output(&self, pin: u8, level: Level) -> Result<(), GpioError> {
        let mut outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        let out = outputs.get_mut(&pin).ok_or(GpioError::NotClaimed {
            pin,
            what: "an output",
        })?;
        match level {
            Level::High => out.set_high(),
            Level::Low => out.set_low(),
        }
        Ok(())
    }

    fn release_all(&self) {
        self.inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn name(&self) -> &'static str {
        "rppal"
    }
}
