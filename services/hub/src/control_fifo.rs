//! The control FIFO (`<runtime_dir>/control`): the Unix way to script the
//! alarm. `echo "arm away" > /run/vigil/control`.
//!
//! Commands, one per line: `arm <home|away|night|vacation> [force]`,
//! `disarm <PIN>`, `panic`, `bypass <sensor> [PIN]` (the PIN is needed
//! while armed), `bypass <sensor> off`, `siren test`.
//!
//! Who may write is decided by the FIFO's permissions: owner the service
//! user, group `vigil-control`, mode 0620. The hub makes it if it is
//! missing and otherwise uses it as it is (the NixOS module creates it with
//! systemd-tmpfiles).
//!
//! A dedicated thread opens the FIFO for reading, which blocks until a
//! writer opens it, then reads lines until every writer has closed it. A
//! line cut short because its writer went away is dropped at that end of
//! file, so it cannot glue itself to the next writer's line. Malformed
//! lines are logged and ignored; PINs are never logged.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use nix::sys::stat::Mode;
use tokio::runtime::Handle;
use tracing::{info, warn};
use vigil_alarm::Actor;
use vigil_domain::ArmedMode;

use crate::commands::{Command, HubHandle};

/// The longest line accepted.
const MAX_LINE: usize = 256;

/// A parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlLine {
    Arm {
        mode: ArmedMode,
        force: bool,
    },
    Disarm {
        pin: String,
    },
    Panic,
    /// `pin`: needed to bypass while armed.
    Bypass {
        sensor: String,
        on: bool,
        pin: Option<String>,
    },
    SirenTest,
}

/// Parses one line; the error says what is wrong for the log.
pub fn parse(line: &str) -> Result<ControlLine, String> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    match words.as_slice() {
        ["arm", mode] | ["arm", mode, "force"] => {
            let mode = ArmedMode::parse(mode)
                .filter(|m| *m != ArmedMode::Disarmed)
                .ok_or_else(|| {
                    format!("unknown mode {mode:?}; use home, away, night, vacation or custom")
                })?;
            Ok(ControlLine::Arm {
                mode,
                force: words.len() == 3,
            })
        }
        ["disarm", pin] => Ok(ControlLine::Disarm {
            pin: (*pin).to_owned(),
        }),
        ["panic"] => Ok(ControlLine::Panic),
        ["bypass", sensor, "off"] => Ok(ControlLine::Bypass {
            sensor: (*sensor).to_owned(),
            on: false,
            pin: None,
        }),
        ["bypass", sensor] | ["bypass", sensor, _] => Ok(ControlLine::Bypass {
            sensor: (*sensor).to_owned(),
            on: true,
            pin: words.get(2).map(|p| (*p).to_owned()),
        }),
        ["siren", "test"] => Ok(ControlLine::SirenTest),
        ["disarm", ..] => Err("disarm takes one PIN".to_owned()),
        _ => Err(
            "unknown command; use: arm MODE [force], disarm PIN, panic, bypass SENSOR [PIN], \
             bypass SENSOR off, siren test"
                .to_owned(),
        ),
    }
}

/// What the log may show of a line that did not parse: its first word
/// only, since anything after it could be a PIN in a misspelt command.
fn redacted(line: &str) -> String {
    let first: String = line
        .split_ascii_whitespace()
        .next()
        .unwrap_or("")
        .chars()
        .take(20)
        .collect();
    let rest = line.split_ascii_whitespace().count().saturating_sub(1);
    if rest == 0 {
        first
    } else {
        format!("{first} (+{rest} words)")
    }
}

/// Makes the FIFO (mode 0620) if it is missing.
pub fn ensure_fifo(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => Ok(()),
        Ok(_) => Err(format!(
            "{} exists and is not a FIFO; remove it and restart the hub",
            path.display()
        )),
        Err(_) => {
            nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o620))
                .map_err(|e| format!("cannot make the control FIFO {}: {e}", path.display()))?;
            // mkfifo applies the umask; set the mode we mean.
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o620))
                .map_err(|e| format!("cannot chmod {}: {e}", path.display()))
        }
    }
}

/// Starts the reader thread.
pub fn spawn(path: PathBuf, engine: HubHandle, runtime: Handle) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("control-fifo".into())
        .spawn(move || {
            loop {
                // Blocks until a writer opens the FIFO.
                let file = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) => {
                        warn!(
                            "cannot open the control FIFO {}: {e}; retrying",
                            path.display()
                        );
                        std::thread::sleep(std::time::Duration::from_secs(1));
                        continue;
                    }
                };
                read_writers(file, &engine, &runtime);
            }
        })
        .map(drop)
}

/// Reads lines until every writer has closed the FIFO.
fn read_writers(file: std::fs::File, engine: &HubHandle, runtime: &Handle) {
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Read at most one line, and at most MAX_LINE + 1 bytes of it.
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(n) => n,
            Err(e) => {
                warn!("reading the control FIFO failed: {e}");
                return;
            }
        };
        if n == 0 {
            return; // every writer closed it
        }
        if buf.last() != Some(&b'\n') {
            if buf.len() > MAX_LINE {
                warn!("control FIFO: ignored a line longer than {MAX_LINE} bytes");
                // Skip the rest of that line.
                let mut rest = Vec::new();
                let _ = reader.read_until(b'\n', &mut rest);
            } else {
                warn!(
                    "control FIFO: dropped a partial line ({} bytes): its writer went away \
                     mid-line",
                    buf.len()
                );
            }
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse(line) {
            Ok(command) => runtime.block_on(execute(command, engine)),
            Err(e) => warn!("control FIFO: ignored {:?}: {e}", redacted(line)),
        }
    }
}

async fn execute(command: ControlLine, engine: &HubHandle) {
    let by = Actor {
        user: None,
        source: "fifo".into(),
    };
    let result = match command.clone() {
        ControlLine::Arm { mode, force } => engine
            .ask(|reply| Command::Arm {
                mode,
                force,
                pin: None,
                by,
                reply,
            })
            .await
            .map(drop),
        ControlLine::Disarm { pin } => engine
            .ask(|reply| Command::Disarm {
                pin,
                source: "fifo".into(),
                reply,
            })
            .await
            .map(drop),
        ControlLine::Panic => engine.ask(|reply| Command::Panic { by, reply }).await,
        ControlLine::Bypass { sensor, on, pin } => {
            engine
                .ask(|reply| Command::Bypass {
                    sensor,
                    on,
                    pin,
                    by,
                    reply,
                })
                .await
        }
        ControlLine::SirenTest => engine.ask(|reply| Command::SirenTest { by, reply }).await,
    };
    let shown = match &command {
        // A PIN never reaches the log.
        ControlLine::Disarm { .. } => "disarm ****".to_owned(),
        ControlLine::Bypass {
            sensor,
            pin: Some(_),
            ..
        } => format!("bypass {} ****", vigil_domain::text::excerpt(sensor)),
        other => format!("{other:?}"),
    };
    match result {
        Ok(()) => info!("control FIFO: {shown} done"),
        Err(e) => warn!("control FIFO: {shown} refused: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_or_say_why_not() {
        assert_eq!(
            parse("arm away"),
            Ok(ControlLine::Arm {
                mode: ArmedMode::Away,
                force: false
            })
        );
        assert_eq!(
            parse("  arm night force "),
            Ok(ControlLine::Arm {
                mode: ArmedMode::Night,
                force: true
            })
        );
        assert_eq!(
            parse("disarm 1234"),
            Ok(ControlLine::Disarm { pin: "1234".into() })
        );
        assert_eq!(
            parse("bypass back-door off"),
            Ok(ControlLine::Bypass {
                sensor: "back-door".into(),
                on: false,
                pin: None,
            })
        );
        assert_eq!(
            parse("bypass back-door 2468"),
            Ok(ControlLine::Bypass {
                sensor: "back-door".into(),
                on: true,
                pin: Some("2468".into()),
            })
        );
        assert_eq!(parse("siren test"), Ok(ControlLine::SirenTest));
        for bad in [
            "arm disarmed",
            "arm",
            "disarm",
            "disarm 1 2",
            "reboot",
            "arm away now",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(redacted("Disarm 1234"), "Disarm (+1 words)");
        assert_eq!(redacted("make coffee"), "make (+1 words)");
    }
}
