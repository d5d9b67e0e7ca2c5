//! The configuration file (`Config::parse`: TOML, then every check), as
//! an administrator, the NixOS module or a hand-edited file gives it to
//! every service at start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text, "fuzz") {
        // What the services do first with a valid configuration.
        let _ = config.sensors_by_pin();
        for s in &config.sensors {
            assert!(config.sensor(&s.name).is_some());
        }
    }
});
