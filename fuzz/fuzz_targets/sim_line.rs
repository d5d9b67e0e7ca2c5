//! The simulated board's control lines (`sim_control::execute`), as any
//! client of `sim-gpio.sock` writes them, against a small house.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vigil_config::Config;
use vigil_domain::Level;
use vigil_sensord::gpio::{Gpio, SimulatedGpio};
use vigil_sensord::sim_control::execute;

struct House {
    config: Config,
    sim: SimulatedGpio,
}

static HOUSE: LazyLock<House> = LazyLock::new(|| {
    let config = Config::parse(
        "[gpio]\nbackend = \"simulated\"\n\
         [[sensors]]\nname = \"front-door\"\nkind = \"door\"\npin = 17\n\
         [[sensors]]\nname = \"hall-motion\"\nkind = \"motion\"\npin = 27\nactive = \"low\"\n\
         [outputs]\nsiren = { pin = 23 }\nbuzzer = { pin = 24 }\n",
        "fuzz house",
    )
    .expect("the fuzz house");
    let sim = SimulatedGpio::default();
    // The receiving end is dropped: edges are sent to nobody (the sender
    // ignores that), so nothing piles up over millions of runs.
    let (tx, _) = tokio::sync::mpsc::unbounded_channel();
    for s in &config.sensors {
        sim.claim_input(s.pin, s.pull, Level::Low, tx.clone())
            .expect("claim an input");
    }
    sim.claim_output(23, Level::Low).expect("siren");
    sim.claim_output(24, Level::Low).expect("buzzer");
    House { config, sim }
});

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let _ = execute(line, &HOUSE.config, &HOUSE.sim);
});
