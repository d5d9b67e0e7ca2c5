//! The simulated board's control socket (`<runtime_dir>/sim-gpio.sock`):
//! the wires of a simulated house, driven from outside the process by
//! tests, the demo and VM tests.
//!
//! One command per line, one answer per line (`OK ...` or `ERR ...`):
//! - `set <sensor|pin> <open|closed|active|inactive|high|low>`
//! - `get <sensor|pin>`: the pin's level and what it means
//! - `outputs`: `siren=on buzzer=off`
//!
//! `vigil-sensord sim <command>` is the client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{debug, info};
use vigil_config::{Config, SensorConfig};
use vigil_domain::Level;

use crate::SensordError;
use crate::gpio::SimulatedGpio;

/// The longest command line accepted.
const MAX_LINE: u64 = 512;

/// The running server; dropping it stops serving and removes the socket.
#[derive(Debug)]
pub struct SimServer {
    task: tokio::task::JoinHandle<()>,
    path: std::path::PathBuf,
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the control socket for `sim`, resolving sensor names with the
/// latest config from `configs` (it follows reloads).
pub async fn serve(
    configs: watch::Receiver<Arc<Config>>,
    sim: Arc<SimulatedGpio>,
) -> Result<SimServer, SensordError> {
    let config = Arc::clone(&configs.borrow());
    let path = config.runtime.sim_gpio_socket();
    let err = |source| SensordError::SimSocket {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&config.runtime.runtime_dir).map_err(err)?;
    // Only one sensord owns the board; a leftover socket is stale.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    info!(socket = %path.display(), "simulated GPIO board ready");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (sim, configs) = (Arc::clone(&sim), configs.clone());
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = AsyncBufReader::new(read.take(MAX_LINE * 1024)).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let config = Arc::clone(&configs.borrow());
                    let answer = match execute(&line, &config, &sim) {
                        Ok(ok) => format!("OK {ok}\n"),
                        Err(e) => format!("ERR {e}\n"),
                    };
                    debug!(command = %line, answer = answer.trim_end(), "sim control");
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(SimServer { task, path })
}

const USAGE: &str = "commands: set <sensor|pin> <open|closed|active|inactive|high|low>, \
                     get <sensor|pin>, outputs";

/// Runs one command line against the board.
pub fn execute(line: &str, config: &Config, sim: &SimulatedGpio) -> Result<String, String> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    match words.as_slice() {
        ["set", target, value] => {
            let (pin, sensor) = resolve(target, config)?;
            let level = match (*value, sensor) {
                ("high", _) => Level::High,
                ("low", _) => Level::Low,
                ("open" | "active" | "on", Some(s)) => s.active_level,
                ("closed" | "inactive" | "off", Some(s)) => opposite(s.active_level),
                (v, None) => return Err(format!("GPIO {pin} takes high or low, not {v:?}")),
                (v, Some(_)) => {
                    return Err(format!(
                        "unknown value {v:?}; use open, closed, active, inactive, high or low"
                    ));
                }
            };
            sim.set_input(pin, level).map_err(|e| e.to_string())?;
            Ok(format!("GPIO {pin} {}", level.as_str()))
        }
        ["get", target] => {
            let (pin, sensor) = resolve(target, config)?;
            let level = sim
                .level(pin)
                .ok_or_else(|| format!("GPIO {pin} is not claimed"))?;
            Ok(match sensor {
                Some(s) => {
                    let active = level == s.active_level;
                    let (yes, no) = s.kind.state_words();
                    format!(
                        "GPIO {pin} {} ({})",
                        level.as_str(),
                        if active { yes } else { no }
                    )
                }
                None => format!("GPIO {pin} {}", level.as_str()),
            })
        }
        ["outputs"] => {
            let mut parts = Vec::new();
            for (name, output) in [
                ("siren", &config.outputs.siren),
                ("buzzer", &config.outputs.buzzer),
            ] {
                if let Some(o) = output {
                    let on = sim.level(o.pin) == Some(o.active_level);
                    parts.push(format!("{name}={}", if on { "on" } else { "off" }));
                }
            }
            Ok(parts.join(" "))
        }
        _ => Err(format!("cannot parse {line:?}; {USAGE}")),
    }
}

fn resolve<'c>(target: &str, config: &'c Config) -> Result<(u8, Option<&'c SensorConfig>), String> {
    if let Some((_, s)) = config.sensor(target) {
        if let Some(camera) = &s.camera {
            return Err(format!(
                "{target} is camera {camera}'s motion on video, not a wire: move something in \
                 front of the camera"
            ));
        }
        if let Some(device) = &s.zigbee {
            return Err(format!(
                "{target} is Zigbee device {device:?}, not a wire: publish its state to \
                 zigbee2mqtt's topic (docs/mqtt.md)"
            ));
        }
        return Ok((s.pin, Some(s)));
    }
    match target.parse::<u8>() {
        Ok(pin) => Ok((
            pin,
            config.sensors.iter().find(|s| s.pin == pin && s.is_gpio()),
        )),
        Err(_) => Err(format!(
            "no sensor named {target:?}; known: {}",
            config
                .sensors
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn opposite(level: Level) -> Level {
    match level {
        Level::High => Level::Low,
        Level::Low => Level::High,
    }
}

/// The client: sends `command` to the board at `socket`, returns the answer
/// without its `OK ` prefix, or the error.
pub fn send(socket: &Path, command: &str) -> Result<String, String> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the simulated board at {}: {e}; is sensord running with \
             gpio.backend = \"simulated\"?",
            socket.display()
        )
    })?;
    (&stream)
        .write_all(format!("{}\n", command.replace('\n', " ")).as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| e.to_string())?;
    let answer = answer.trim_end();
    match (answer.strip_prefix("OK"), answer.strip_prefix("ERR ")) {
        (Some(ok), _) => Ok(ok.trim_start().to_owned()),
        (_, Some(err)) => Err(err.to_owned()),
        _ => Err(format!("unexpected answer {answer:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpio::Gpio;

    #[test]
    fn commands_drive_the_board_by_name_or_pin() {
        let config = Config::parse(
            "[gpio]\nbackend = \"simulated\"\n\
             [[sensors]]\nname = \"front-door\"\nkind = \"door\"\npin = 17\n\
             [outputs]\nsiren = { pin = 23 }\nbuzzer = { pin = 24 }\n",
            "sim test",
        )
        .expect("the test's house");
        let sim = SimulatedGpio::default();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        for s in &config.sensors {
            let resting = opposite(s.active_level);
            sim.claim_input(s.pin, s.pull, resting, tx.clone())
                .expect("claim");
        }
        let siren = config.outputs.siren.as_ref().expect("siren");
        sim.claim_output(siren.pin, Level::Low).expect("siren");
        sim.claim_output(23 + 1, Level::Low).expect("buzzer");

        assert_eq!(
            execute("get front-door", &config, &sim),
            Ok("GPIO 17 low (closed)".into())
        );
        assert_eq!(
            execute("set front-door open", &config, &sim),
            Ok("GPIO 17 high".into())
        );
        assert_eq!(
            execute("get 17", &config, &sim),
            Ok("GPIO 17 high (open)".into())
        );
        assert_eq!(
            execute("outputs", &config, &sim),
            Ok("siren=off buzzer=off".into())
        );
        for bad in [
            "set garage open",
            "set front-door ajar",
            "dance",
            "set 4 high",
        ] {
            assert!(execute(bad, &config, &sim).is_err(), "{bad}");
        }
    }
}
