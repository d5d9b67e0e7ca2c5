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
//! writer opens it, then reads lines until every writer has closed it.
//! Memory is bounded: a line longer than [`MAX_LINE`] is discarded as it
//! arrives (never held). A line left unfinished (its writer stopped
//! mid-line, or went away) is dropped as soon as the pipe is empty, so it
//! cannot glue itself to the next writer's line: write each line whole in
//! one write (see [`LineReader`]). Malformed lines are logged and ignored;
//! PINs are never logged.

use std::io::Read;
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

/// Bytes asked of each read: the default capacity of a pipe, so a read
/// that returns fewer has, in the usual case, emptied the pipe.
const READ_CHUNK: usize = 64 * 1024;

/// What the line reader made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    /// A whole line, without its newline.
    Line(String),
    /// A line longer than [`MAX_LINE`]: this many bytes of it were
    /// discarded, never held.
    TooLong(usize),
    /// A line its writer left unfinished (this many bytes): dropped so it
    /// cannot join the next writer's line.
    Partial(usize),
}

/// Splits the FIFO's bytes into lines in bounded memory: at most
/// [`MAX_LINE`] bytes of a line are ever held; the rest of a longer line is
/// counted and discarded.
///
/// A FIFO does not say which writer wrote which byte, but a write of up to
/// `PIPE_BUF` (4096) bytes is atomic, so a line written in one write (as
/// `echo` and any line-buffered writer do) arrives whole, never mixed with
/// another writer's bytes. A read that returns less than it asked for has
/// emptied the pipe; a line still unfinished then was left unfinished by
/// its writer (who wrote a half line, and may be holding the FIFO open), so
/// it is dropped there instead of waiting to glue itself to the next
/// writer's line.
#[derive(Debug, Default)]
struct LineReader {
    line: Vec<u8>,
    /// Bytes discarded of the current line once it passed [`MAX_LINE`].
    discarded: usize,
}

impl LineReader {
    /// Takes one read's bytes; `drained` when the read emptied the pipe.
    fn feed(&mut self, mut bytes: &[u8], drained: bool, out: &mut Vec<Piece>) {
        while !bytes.is_empty() {
            let (part, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            self.take(part);
            if ended {
                out.push(self.end_line());
            }
        }
        if drained {
            self.finish(out);
        }
    }

    /// Keeps what fits of `part`; counts the rest.
    fn take(&mut self, part: &[u8]) {
        if self.discarded > 0 {
            self.discarded += part.len();
            return;
        }
        let room = MAX_LINE - self.line.len();
        if part.len() > room {
            self.discarded = self.line.len() + part.len();
            self.line.clear();
        } else {
            self.line.extend_from_slice(part);
        }
    }

    fn end_line(&mut self) -> Piece {
        let piece = if self.discarded > 0 {
            Piece::TooLong(self.discarded)
        } else {
            Piece::Line(String::from_utf8_lossy(&self.line).into_owned())
        };
        self.line.clear();
        self.discarded = 0;
        piece
    }

    /// The writers stopped (the pipe is empty, or they all closed it): an
    /// unfinished line ends here.
    fn finish(&mut self, out: &mut Vec<Piece>) {
        if self.discarded > 0 {
            out.push(self.end_line());
        } else if !self.line.is_empty() {
            out.push(Piece::Partial(self.line.len()));
            self.line.clear();
        }
    }
}

/// Logs the first warning of each kind per opening of the FIFO and counts
/// the rest, so a writer pouring out garbage cannot flood the log.
#[derive(Debug, Default)]
struct Warnings {
    too_long: (u64, usize),
    partial: u64,
}

impl Warnings {
    fn too_long(&mut self, bytes: usize) {
        self.too_long.0 += 1;
        self.too_long.1 += bytes;
        if self.too_long.0 == 1 {
            warn!(
                "control FIFO: ignored a line longer than {MAX_LINE} bytes ({bytes} bytes discarded)"
            );
        }
    }

    fn partial(&mut self, bytes: usize) {
        self.partial += 1;
        if self.partial == 1 {
            warn!(
                "control FIFO: dropped a partial line ({bytes} bytes): its writer stopped or went \
                 away mid-line (write each line whole, newline included, in one write)"
            );
        }
    }

    /// The totals, once every writer has closed the FIFO.
    fn summary(&self) {
        if self.too_long.0 > 1 || self.partial > 1 {
            warn!(
                too_long = self.too_long.0,
                discarded_bytes = self.too_long.1,
                partial = self.partial,
                "control FIFO: these writers sent lines that were ignored"
            );
        }
    }
}

/// Reads lines until every writer has closed the FIFO.
fn read_writers(mut file: std::fs::File, engine: &HubHandle, runtime: &Handle) {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut lines = LineReader::default();
    let mut warnings = Warnings::default();
    let mut pieces = Vec::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                warn!("reading the control FIFO failed: {e}");
                break;
            }
        };
        if n == 0 {
            break; // every writer closed it
        }
        lines.feed(&buf[..n], n < buf.len(), &mut pieces);
        for piece in pieces.drain(..) {
            match piece {
                Piece::Line(line) => run_line(line.trim(), engine, runtime),
                Piece::TooLong(bytes) => warnings.too_long(bytes),
                Piece::Partial(bytes) => warnings.partial(bytes),
            }
        }
    }
    // What is left when every writer has closed it never had its newline.
    lines.finish(&mut pieces);
    for piece in pieces.drain(..) {
        match piece {
            Piece::TooLong(bytes) => warnings.too_long(bytes),
            Piece::Partial(bytes) => warnings.partial(bytes),
            Piece::Line(_) => {}
        }
    }
    warnings.summary();
}

fn run_line(line: &str, engine: &HubHandle, runtime: &Handle) {
    if line.is_empty() || line.starts_with('#') {
        return;
    }
    match parse(line) {
        Ok(command) => runtime.block_on(execute(command, engine)),
        Err(e) => warn!("control FIFO: ignored {:?}: {e}", redacted(line)),
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
    }

    fn pieces(reads: &[(&[u8], bool)]) -> Vec<Piece> {
        let mut reader = LineReader::default();
        let mut out = Vec::new();
        for (bytes, drained) in reads {
            reader.feed(bytes, *drained, &mut out);
        }
        reader.finish(&mut out);
        out
    }

    #[test]
    fn long_lines_are_discarded_in_bounded_memory_and_half_lines_never_join() {
        let line = |s: &str| Piece::Line(s.to_owned());
        // Two lines in one read, then one split over a full read.
        assert_eq!(
            pieces(&[(b"arm away\npanic\nsiren", false), (b" test\n", true)]),
            [line("arm away"), line("panic"), line("siren test")]
        );
        // A half line left when the pipe is empty is dropped there: the
        // next writer's line stands alone.
        assert_eq!(
            pieces(&[(b"arm aw", true), (b"disarm 1234\n", true)]),
            [Piece::Partial(6), line("disarm 1234")]
        );
        // A line far longer than MAX_LINE, in many reads: never held,
        // counted, and the line after it is whole.
        let mut reader = LineReader::default();
        let mut out = Vec::new();
        let chunk = vec![b'x'; READ_CHUNK];
        for _ in 0..100 {
            reader.feed(&chunk, false, &mut out);
            assert!(reader.line.capacity() <= MAX_LINE);
        }
        reader.feed(b"x\narm home\n", true, &mut out);
        assert_eq!(
            out,
            [Piece::TooLong(100 * READ_CHUNK + 1), line("arm home")]
        );
        // Exactly MAX_LINE bytes is still a line.
        let longest = "a".repeat(MAX_LINE);
        assert_eq!(
            pieces(&[(format!("{longest}\n").as_bytes(), true)]),
            [line(&longest)]
        );
        assert_eq!(redacted("make coffee"), "make (+1 words)");
    }
}
