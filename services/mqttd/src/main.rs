//! `vigil-mqttd`: parses flags and runs [`vigil_mqttd::run`]. Every error
//! knows its exit code ([`vigil_mqttd::MqttdError`]'s variants name
//! theirs): 0 clean, 1 runtime failure, 2 bad flags, 78 the configuration
//! or a file it names (no `[mqtt]`, the broker's CA, the credentials).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil_service::ConfigArgs;

const NAME: &str = "vigil-mqttd";

#[derive(Debug, Parser)]
#[command(
    name = "vigil-mqttd",
    version,
    about = "Vigil's MQTT bridge: Home Assistant, the event stream, Zigbee keypads"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    vigil_service::serve(NAME, &cli.config, vigil_service::Threads::One, |config| {
        vigil_mqttd::run(config, vigil_service::terminated())
    })
}
