//! The end-to-end harness: real Vigil binaries as real processes, in a
//! private runtime directory, driven from outside as an operator would.
//!
//! Owns: finding the built binaries, writing a config, starting and killing
//! services (optionally as another user), reading their JSON log lines, the
//! simulated board's socket, and `vigilctl` as a third process.
//!
//! Must never: reach into a service's memory or fake an IPC mechanism; the
//! only shortcuts allowed are the simulated GPIO board and the logs.

#![forbid(unsafe_code)]

pub mod mqtt;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, User, chown};
use serde_json::Value;

/// How long a test waits for something a service should do quickly.
pub const WAIT: Duration = Duration::from_secs(10);

/// A config for tests: two doors, motion, a tamper loop, a siren; short
/// debounce; JSON logs.
pub const TEST_SENSORS: &str = r#"
[gpio]
backend = "simulated"

[[sensors]]
name = "front-door"
kind = "door"
pin = 17
debounce_ms = 10

[[sensors]]
name = "back-door"
kind = "door"
pin = 27
debounce_ms = 10

[[sensors]]
name = "hallway-motion"
kind = "motion"
pin = 5
pull = "down"
debounce_ms = 10

[[sensors]]
name = "siren-box-tamper"
kind = "tamper"
pin = 6
debounce_ms = 10

[outputs]
siren = { pin = 23 }
buzzer = { pin = 24 }

[telemetry]
log_format = "json"
log_filter = "info"
"#;

/// The alarm for tests: PIN 2468 (duress 1357), short delays.
pub const TEST_ALARM: &str = r#"
[[users]]
name = "alice"
role = "user"
pin_hash = "$argon2id$v=19$m=19456,t=2,p=1$V0vSInmKCPdzimuhwUUwsw$I1CZL27lla/QEjor55VWNTYHRjbEh+TcpiwAhmIy0es"
duress_pin_hash = "$argon2id$v=19$m=19456,t=2,p=1$CHM0bAAkUc1UANGs/5vOBw$1NfyKZa5v/DFcSmmhznBsxfztlNEaSzagn31zpNWkxY"

[alarm.modes.away]
exit_delay_secs = 1
entry_delay_secs = 2
trigger_secs = 120
"#;

/// The usual stack: the test house with its alarm, a hub and sensord
/// running (sensord joined), and this stack's vigilctl paired as `role`.
pub fn alarm_stack(role: &str) -> Result<(Stack, Service, Service)> {
    let stack = Stack::new(&format!("{TEST_SENSORS}{TEST_ALARM}"), RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let sensord = stack.start("vigil-sensord")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    stack.pair_here(role)?;
    Ok((stack, hub, sensord))
}

/// A free TCP port on loopback (free when asked).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A test-pattern camera `porch` (320x240, 15 fps) talking to a hub on
/// `port`, with key `key`; short pre-roll (2 s), post-capture (2 s) and
/// offline window (2 s); `tag` makes the recording semaphore's name unique.
pub fn test_camera(port: u16, key: &str, tag: &str) -> String {
    format!(
        "\n[[cameras]]\nname = \"porch\"\nsource = \"test\"\nwidth = 320\nheight = 240\n\
         framerate = 15\nbitrate_kbps = 300\nhub = \"127.0.0.1:{port}\"\nkey = \"{key}\"\n\n\
         [recording]\nlisten = \"127.0.0.1:{port}\"\nring_secs = 10\npre_roll_secs = 2\n\
         post_capture_secs = 2\noffline_after_secs = 2\nbeacon = \"off\"\n\
         semaphore = \"/vigil-e2e-rec-{tag}-{}\"\n",
        std::process::id()
    )
}

/// A hook that appends the alerts it reads (JSON lines) to `file`.
pub fn recording_hook(name: &str, file: &Path) -> String {
    format!(
        "[[hooks]]\nname = \"{name}\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"cat >> {}\"]\n",
        file.display()
    )
}

/// The JSON values of `text`'s lines (other lines skipped).
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `ok` every 100 ms until it says yes, or fails after `timeout`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut ok: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !ok()? {
        if Instant::now() > deadline {
            bail!("{what} did not happen within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// The directory of the workspace's built binaries: the test executable is
/// `<target>/<profile>/deps/<name>`, the binaries are in `<target>/<profile>`.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable has no target directory")?
        .to_owned();
    for name in ["vigil-hub", "vigil-sensord", "vigilctl"] {
        if !dir.join(name).exists() {
            bail!(
                "{} is missing: build the binaries first (cargo build --workspace --bins), \
                 as scripts/test does",
                dir.join(name).display()
            );
        }
    }
    Ok(dir)
}

/// Who the services run as.
#[derive(Clone, Debug)]
pub enum RunAs {
    /// The test's own user.
    Me,
    /// Another (unprivileged) user; needs root.
    User { uid: u32, gid: u32, name: String },
}

impl RunAs {
    /// `nobody` when running as root, else the test's own (already
    /// unprivileged) user: either way the services run without privileges.
    pub fn unprivileged() -> Result<RunAs> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(RunAs::Me);
        }
        let user = User::from_name("nobody")?.context("no user `nobody` on this machine")?;
        Ok(RunAs::User {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            name: user.name,
        })
    }

    fn apply(&self, command: &mut Command) {
        if let RunAs::User { uid, gid, .. } = self {
            // As root, std also drops the supplementary groups when uid is set.
            command.uid(*uid).gid(*gid);
        }
    }

    pub fn uid(&self) -> u32 {
        match self {
            RunAs::Me => nix::unistd::geteuid().as_raw(),
            RunAs::User { uid, .. } => *uid,
        }
    }
}

/// A private Vigil installation: a root directory with the config, the
/// runtime and state directories, the binaries and the logs.
#[derive(Debug)]
pub struct Stack {
    pub root: tempfile::TempDir,
    /// The hub's gRPC port: free when the stack was made, and the same for
    /// its whole life, so a restarted hub is found where clients paired.
    pub grpc_port: u16,
    pub config_path: PathBuf,
    pub run_as: RunAs,
    bin: PathBuf,
}

/// The longest a one-shot command (`vigilctl ...`) may take in a test.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A running service whose stderr goes to a log file.
#[derive(Debug)]
pub struct Service {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Leave no queue behind in the global namespace (a hub killed with
        // SIGKILL never removes its own): the stack's, and any the test's
        // config named itself. Leaked queues count against the user's
        // RLIMIT_MSGQUEUE until every later run fails to make one.
        let _ = nix::mqueue::mq_unlink(self.alert_queue().as_str());
        let config = std::fs::read_to_string(&self.config_path).unwrap_or_default();
        for line in config.lines() {
            if let Some(name) = line
                .trim()
                .strip_prefix("queue = \"")
                .and_then(|rest| rest.strip_suffix('"'))
            {
                let _ = nix::mqueue::mq_unlink(name);
            }
            // And the recording semaphore (glibc keeps named semaphores as
            // /dev/shm/sem.<name>).
            if let Some(name) = line
                .trim()
                .strip_prefix("semaphore = \"/")
                .and_then(|rest| rest.strip_suffix('"'))
            {
                let _ = std::fs::remove_file(format!("/dev/shm/sem.{name}"));
            }
        }
    }
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: Signal) -> Result<()> {
        kill(Pid::from_raw(self.child.id() as i32), signal)?;
        Ok(())
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) -> Result<()> {
        self.signal(Signal::SIGKILL)?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM; returns the exit code.
    pub fn terminate(&mut self) -> Result<Option<i32>> {
        self.signal(Signal::SIGTERM)?;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                bail!("{} did not stop within {WAIT:?} of SIGTERM", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to end by itself; returns how it ended.
    pub fn wait_exit(&mut self) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("{} did not end within {WAIT:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for a JSON log line after line `from` that satisfies `want`;
    /// returns it and the index of the next line.
    pub fn wait_log(
        &self,
        from: usize,
        what: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Result<(Value, usize)> {
        let deadline = Instant::now() + WAIT;
        loop {
            let lines = self.log_lines()?;
            for (i, line) in lines.iter().enumerate().skip(from) {
                if want(line) {
                    return Ok((line.clone(), i + 1));
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not log {what} within {WAIT:?}; its log:\n{}",
                    self.name,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log's JSON lines (non-JSON lines, e.g. a panic, are skipped).
    pub fn log_lines(&self) -> Result<Vec<Value>> {
        let file = File::open(&self.log)?;
        Ok(BufReader::new(file)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect())
    }

    /// The number of log lines so far (a cursor for [`Service::wait_log`]).
    pub fn log_len(&self) -> Result<usize> {
        Ok(self.log_lines()?.len())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A log line's message and fields.
pub fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

pub fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    &line["fields"][name]
}

impl Stack {
    /// A new installation with `config` (TOML without `[runtime]`, which the
    /// stack adds), whose services run as `run_as`.
    pub fn new(config: &str, run_as: RunAs) -> Result<Stack> {
        let root = tempfile::Builder::new().prefix("vigil-e2e-").tempdir()?;
        let config_path = root.path().join("vigil.toml");
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin)?;
        // Copies of the binaries: the build tree may not be readable by an
        // unprivileged user (a checkout under /root).
        let built = bin_dir()?;
        for name in [
            "vigil-hub",
            "vigil-sensord",
            "vigil-alertd",
            "vigil-reportd",
            "vigil-camd",
            "vigil-mqttd",
            "vigilctl",
        ] {
            std::fs::copy(built.join(name), bin.join(name))?;
            std::fs::set_permissions(bin.join(name), std::fs::Permissions::from_mode(0o755))?;
        }
        let grpc_port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let stack = Stack {
            grpc_port,
            config_path,
            run_as,
            bin,
            root,
        };
        stack.write_config(config)?;
        std::fs::set_permissions(stack.root.path(), std::fs::Permissions::from_mode(0o755))?;
        if let RunAs::User { uid, gid, .. } = &stack.run_as {
            chown(
                stack.root.path(),
                Some(nix::unistd::Uid::from_raw(*uid)),
                Some(nix::unistd::Gid::from_raw(*gid)),
            )?;
        }
        Ok(stack)
    }

    /// Replaces the config (for reload tests); the stack adds `[runtime]`
    /// and `[grpc]`.
    pub fn write_config(&self, config: &str) -> Result<()> {
        let mut text = format!(
            "{config}\n[runtime]\nruntime_dir = {:?}\nstate_dir = {:?}\n\n[grpc]\nlisten = \"127.0.0.1:{}\"\n",
            self.runtime_dir().display().to_string(),
            self.root.path().join("state").display().to_string(),
            self.grpc_port,
        );
        // Queue names are global: one per stack. Eight messages fit the
        // kernel's default fs.mqueue.msg_max (10) for unprivileged runs, and
        // small ones keep many parallel stacks within the user's
        // RLIMIT_MSGQUEUE (819 200 bytes by default, for all its queues).
        if !config.contains("[alerts]") {
            text.push_str(&format!(
                "\n[alerts]\nqueue = {:?}\ndepth = 8\nmsg_size = 2048\n",
                self.alert_queue()
            ));
        }
        std::fs::write(&self.config_path, text)?;
        std::fs::set_permissions(&self.config_path, std::fs::Permissions::from_mode(0o644))?;
        Ok(())
    }

    /// The kinds of the events in the hub's event log on disk, in order.
    pub fn logged_event_kinds(&self) -> Result<Vec<String>> {
        self.logged_kinds_in("events")
    }

    /// (sequence number, kind) of every event in the hub's log on disk.
    pub fn logged_events(&self) -> Result<Vec<(u64, String)>> {
        use prost::Message;
        let dir = self.root.path().join("state").join("events");
        let mut reader = vigil_eventlog::LogReader::open(&dir, 1)?;
        let mut events = Vec::new();
        while let Some(record) = reader.next_record()? {
            if record.kind == vigil_eventlog::kinds::EVENT {
                let event = vigil_proto::v1::Event::decode(record.payload.as_slice())?;
                events.push((record.seq, event.kind));
            }
        }
        Ok(events)
    }

    /// The same for a log directory under the state directory
    /// (`events-private` holds the silent events).
    pub fn logged_kinds_in(&self, log: &str) -> Result<Vec<String>> {
        use prost::Message;
        let dir = self.root.path().join("state").join(log);
        let mut reader = vigil_eventlog::LogReader::open(&dir, 1)?;
        let mut kinds = Vec::new();
        while let Some(record) = reader.next_record()? {
            let event = vigil_proto::v1::Event::decode(record.payload.as_slice())?;
            kinds.push(event.kind);
        }
        Ok(kinds)
    }

    /// This stack's alert queue name.
    pub fn alert_queue(&self) -> String {
        let suffix = self
            .root
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!("/{suffix}")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.root.path().join("state")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.root.path().join("run")
    }

    fn command(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin.join(name));
        command.arg("--config").arg(&self.config_path);
        command.env("VIGIL_LOG_FORMAT", "json");
        command.env("VIGIL_CREDENTIALS", self.root.path().join("credentials"));
        command.env_remove("RUST_LOG");
        self.run_as.apply(&mut command);
        command
    }

    /// Starts a service (`vigil-hub`, `vigil-sensord`, `vigil-alertd`); each
    /// start gets a new log file.
    pub fn start(&self, name: &'static str) -> Result<Service> {
        self.start_with_env(name, &[])
    }

    /// [`Stack::start`] with more environment variables (a failpoint).
    pub fn start_with_env(&self, name: &'static str, env: &[(&str, &str)]) -> Result<Service> {
        let mut n = 0;
        let log = loop {
            let candidate = self.root.path().join(format!("{name}.{n}.log"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let file = File::create(&log)?;
        let child = self
            .command(name)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Service { name, child, log })
    }

    /// Runs a command of `binary` to completion (vigilctl, `vigil-sensord sim`).
    pub fn run(&self, binary: &str, args: &[&str]) -> Result<Output> {
        // A command that never ends (a stream that is not closed) fails
        // the test after RUN_LIMIT instead of hanging it.
        let mut child = self
            .command(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let (mut stdout, mut stderr) = (
            child.stdout.take().context("stdout")?,
            child.stderr.take().context("stderr")?,
        );
        let out = std::thread::spawn(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut stdout, &mut buf).map(|_| buf)
        });
        let err = std::thread::spawn(move || {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut stderr, &mut buf).map(|_| buf)
        });
        let deadline = Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{binary} {args:?} did not end within {RUN_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let join = |t: std::thread::JoinHandle<std::io::Result<Vec<u8>>>| {
            t.join()
                .map_err(|_| anyhow::anyhow!("a reader thread panicked"))?
                .map_err(anyhow::Error::from)
        };
        Ok(Output {
            status,
            stdout: join(out)?,
            stderr: join(err)?,
        })
    }

    /// Starts `name` with another config file (a second camera, a wrong key).
    pub fn start_with_config(&self, name: &'static str, config: &Path) -> Result<Service> {
        let log = self.root.path().join(format!(
            "{name}.{}.log",
            config
                .file_stem()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        ));
        let file = File::create(&log)?;
        let mut command = Command::new(self.bin.join(name));
        command.arg("--config").arg(config);
        command.env("VIGIL_LOG_FORMAT", "json");
        command.env_remove("RUST_LOG");
        self.run_as.apply(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Service { name, child, log })
    }

    /// The first clip recorded for `reason` (`alarm`, `request`), waiting
    /// up to 20 s for it (as `vigilctl --json clips` shows it).
    pub fn wait_clip(&self, reason: &str) -> Result<Value> {
        let mut clip = Value::Null;
        wait_until(
            &format!("a clip ({reason})"),
            Duration::from_secs(20),
            || {
                let (_, out, _) = self.ctl(&["--json", "clips"])?;
                if let Some(c) = json_lines(&out).into_iter().find(|c| c["reason"] == reason) {
                    clip = c;
                    return Ok(true);
                }
                Ok(false)
            },
        )?;
        Ok(clip)
    }

    /// `vigilctl --json events --follow --after 0` in the background, its
    /// output going to `out`: a client watching everything from the start.
    pub fn follow_events(&self, out: &Path) -> Result<Child> {
        Ok(Command::new(self.bin.join("vigilctl"))
            .arg("--config")
            .arg(&self.config_path)
            .args(["--json", "events", "--follow", "--after", "0"])
            .env("VIGIL_CREDENTIALS", self.root.path().join("credentials"))
            .stdout(File::create(out)?)
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// `vigilctl ARGS` with this stack's config and pairing, to spawn as
    /// the test needs (its standard streams are the caller's to set).
    pub fn ctl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.bin.join("vigilctl"));
        command
            .arg("--config")
            .arg(&self.config_path)
            .args(args)
            .env("VIGIL_CREDENTIALS", self.credentials_dir());
        command
    }

    /// The camera named `porch` as `vigilctl cameras` lists it.
    pub fn porch(&self) -> Result<Value> {
        let (code, out, err) = self.ctl(&["--json", "cameras"])?;
        ensure!(code == 0, "vigilctl cameras: {err}");
        json_lines(&out)
            .into_iter()
            .find(|c| c["name"] == "porch")
            .context("porch is not listed")
    }

    /// Starts camd, pairs this stack's vigilctl as `role` and waits until
    /// `hub` has the porch camera and says it is online.
    pub fn camd_online(&self, hub: &Service, role: &str) -> Result<Service> {
        let camd = self.start("vigil-camd")?;
        hub.wait_log(0, "the camera", |l| message(l) == "camera connected")?;
        self.pair_here(role)?;
        wait_until("porch online", Duration::from_secs(10), || {
            Ok(self.porch()?["online"] == true)
        })?;
        Ok(camd)
    }

    /// Where this stack's vigilctl keeps its pairing (`VIGIL_CREDENTIALS`).
    pub fn credentials_dir(&self) -> PathBuf {
        self.root.path().join("credentials")
    }

    /// `vigilctl ARGS` as a third process: (exit code, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> Result<(i32, String, String)> {
        let out = self.run("vigilctl", args)?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `vigilctl --json ARGS`, which must succeed, as JSON.
    pub fn ctl_json(&self, args: &[&str]) -> Result<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = self.ctl(&all)?;
        if code != 0 {
            bail!("vigilctl {args:?} exited {code}: {stderr}");
        }
        Ok(serde_json::from_str(stdout.trim())?)
    }

    /// Pairs another client, `name` as `role`, whose credentials go to
    /// `dir` (`vigilctl --credentials DIR pair --here NAME`): the MQTT
    /// bridge's identity.
    pub fn pair_client(&self, dir: &Path, name: &str, role: &str) -> Result<()> {
        let dir = dir.display().to_string();
        let (code, _, stderr) = self.ctl(&[
            "--credentials",
            &dir,
            "pair",
            "--here",
            name,
            "--role",
            role,
        ])?;
        if code != 0 {
            bail!("vigilctl --credentials {dir} pair --here {name} failed ({code}): {stderr}");
        }
        Ok(())
    }

    /// Pairs this stack's vigilctl with the hub as `role`.
    pub fn pair_here(&self, role: &str) -> Result<()> {
        let (code, _, stderr) = self.ctl(&["pair", "--here", "e2e", "--role", role])?;
        if code != 0 {
            bail!("vigilctl pair --here failed ({code}): {stderr}");
        }
        Ok(())
    }

    /// Polls `vigilctl --json status` until `want` holds.
    pub fn wait_alarm(&self, what: &str, want: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match self.ctl_json(&["status"]) {
                Ok(status) if want(&status) => return Ok(status),
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("the alarm never showed {what}; last: {last}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Drives the simulated board; fails on an `ERR` answer.
    pub fn sim(&self, command: &str) -> Result<String> {
        let mut args = vec!["sim"];
        args.extend(command.split_whitespace());
        let out = self.run("vigil-sensord", &args)?;
        if !out.status.success() {
            bail!(
                "sim {command}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `vigilctl --json status --local`, run as a third process.
    pub fn local_status(&self) -> Result<Value> {
        let out = self.run("vigilctl", &["--json", "status", "--local"])?;
        if !out.status.success() {
            bail!(
                "vigilctl status --local failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// Polls `vigilctl status --local` until `want` holds.
    pub fn wait_status(&self, what: &str, want: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let last = match self.local_status() {
                Ok(status) if want(&status) => return Ok(status),
                Ok(status) => status.to_string(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                bail!("the table never showed {what}; last: {last}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The sensor named `name` in a `vigilctl --json status --local` answer.
pub fn sensor<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sensors"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name))
        .unwrap_or(&Value::Null)
}

/// One request an [`HttpSink`] received.
#[derive(Debug)]
pub struct HttpRequest {
    pub path: String,
    /// The request line and headers, as sent.
    pub head: String,
    pub body: Vec<u8>,
}

/// One span as an OTLP collector received it (ids in hex; an empty
/// parent for a root span).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedSpan {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
}

/// A minimal HTTP/1.1 server on loopback that answers every request with
/// 200 and hands it over: a webhook receiver or an OTLP collector for tests.
#[derive(Debug)]
pub struct HttpSink {
    pub port: u16,
    pub requests: std::sync::mpsc::Receiver<HttpRequest>,
}

impl HttpSink {
    /// As an OTLP collector: which of `services` exported spans of the
    /// trace `trace_id` (32 hex digits), reading exports until all have or
    /// none arrives for `quiet`. An OTLP/HTTP export names its service
    /// (resource `service.name`) and holds trace ids as 16 raw bytes.
    pub fn services_with_trace<'s>(
        &self,
        trace_id: &str,
        services: &[&'s str],
        quiet: Duration,
    ) -> Result<std::collections::BTreeSet<&'s str>> {
        let id: Vec<u8> = (0..trace_id.len() / 2)
            .filter_map(|i| u8::from_str_radix(trace_id.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        let contains = |body: &[u8], needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        let mut seen = std::collections::BTreeSet::new();
        while let Ok(request) = self.requests.recv_timeout(quiet) {
            ensure!(
                request.path == "/v1/traces",
                "an export to {}",
                request.path
            );
            if contains(&request.body, &id) {
                seen.extend(
                    services
                        .iter()
                        .filter(|s| contains(&request.body, s.as_bytes())),
                );
            }
            if seen.len() == services.len() {
                break;
            }
        }
        Ok(seen)
    }

    /// As an OTLP collector: every span exported until `want` holds of
    /// them all, or none arrives for `quiet` (then what came, for the
    /// caller to report).
    pub fn spans(
        &self,
        want: impl Fn(&[ExportedSpan]) -> bool,
        quiet: Duration,
    ) -> Result<Vec<ExportedSpan>> {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let mut spans = Vec::new();
        while let Ok(request) = self.requests.recv_timeout(quiet) {
            ensure!(
                request.path == "/v1/traces",
                "an export to {}",
                request.path
            );
            let export = ExportTraceServiceRequest::decode(request.body.as_slice())
                .context("an OTLP/HTTP trace export that is not protobuf")?;
            for resource in export.resource_spans {
                let service = resource
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|a| a.key == "service.name")
                    .and_then(|a| a.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                s,
                            ),
                        ) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                    spans.push(ExportedSpan {
                        service: service.clone(),
                        name: span.name,
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.span_id),
                        parent_span_id: hex(&span.parent_span_id),
                    });
                }
            }
            if want(&spans) {
                break;
            }
        }
        Ok(spans)
    }

    pub fn start() -> Result<HttpSink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (tx, requests) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = tx.clone();
                std::thread::spawn(move || serve_connection(stream, &tx));
            }
        });
        Ok(HttpSink { port, requests })
    }
}

/// Serves one keep-alive connection until the peer closes it.
fn serve_connection(stream: std::net::TcpStream, tx: &std::sync::mpsc::Sender<HttpRequest>) {
    use std::io::{Read, Write};
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = String::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            let end = line == "\r\n";
            head.push_str(&line);
            if end {
                break;
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let _ = reader
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        if tx.send(HttpRequest { path, head, body }).is_err() {
            return;
        }
    }
}
