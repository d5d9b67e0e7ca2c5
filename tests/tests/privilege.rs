//! Issue 14, finding 13: least privilege. Every service and the hooks
//! shared one uid, so a compromised hook could do everything the services
//! can. Here, as the NixOS module does (ARCHITECTURE.md, "Users and
//! groups"), the hub and sensord run as one user, alertd, reportd and the
//! hook each as their own, with groups for what they share; an alarm still
//! reaches the hook, and the hook's uid can reach none of the rest.
//!
//! Needs root, to make the users and start each service as its own (CI
//! runs as root): without it the test fails, unless
//! `VIGIL_E2E_ALLOW_SKIP=1` says a skip is allowed (a developer's
//! unprivileged run).

use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use vigil_e2e::{RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message, wait_until};

/// The users and groups, named like the NixOS module's with a prefix.
const HUB_USER: &str = "vigil-e2e-hub";
const ALERTD_USER: &str = "vigil-e2e-alertd";
const REPORTD_USER: &str = "vigil-e2e-reportd";
const HOOK_USER: &str = "vigil-e2e-hook";
/// May read the alert queue and join `hub.sock` as alertd.
const ALERTS_GROUP: &str = "vigil-e2e-alerts";
/// May read the event log.
const LOG_GROUP: &str = "vigil-e2e-log";

/// The env var a probe reads (see [`privilege_probe_helper`]).
const PROBE: &str = "VIGIL_E2E_PROBE";

/// Makes the users and groups once per test binary (tests run in threads).
static USERS: Mutex<bool> = Mutex::new(false);

/// Root, or a clear failure: a skip only where `VIGIL_E2E_ALLOW_SKIP=1`.
fn need_root() -> Result<bool> {
    if nix::unistd::geteuid().is_root() {
        return Ok(true);
    }
    if std::env::var("VIGIL_E2E_ALLOW_SKIP").as_deref() == Ok("1") {
        eprintln!("skipped: needs root to make users (VIGIL_E2E_ALLOW_SKIP=1)");
        return Ok(false);
    }
    bail!("this test makes users and runs each service as its own: run it as root (CI does)")
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(program).args(args).output()?;
    ensure!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn group_exists(name: &str) -> Result<bool> {
    Ok(nix::unistd::Group::from_name(name)?.is_some())
}

/// The module's users and groups: hub (and sensord) in alertd's group (to
/// give it the queue and `hub.sock`) and in reportd's (to read its index);
/// alertd in the alerts group; reportd in the log group; the hook in none.
fn make_users() -> Result<()> {
    let mut made = USERS.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    if *made {
        return Ok(());
    }
    for group in [ALERTS_GROUP, LOG_GROUP] {
        if !group_exists(group)? {
            run("groupadd", &["--system", group])?;
        }
    }
    for user in [HUB_USER, ALERTD_USER, REPORTD_USER, HOOK_USER] {
        if nix::unistd::User::from_name(user)?.is_none() {
            run(
                "useradd",
                &[
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    user,
                ],
            )?;
        }
    }
    for (user, groups) in [
        (HUB_USER, format!("{ALERTS_GROUP},{REPORTD_USER}")),
        (ALERTD_USER, ALERTS_GROUP.to_owned()),
        (REPORTD_USER, LOG_GROUP.to_owned()),
    ] {
        run("usermod", &["--append", "--groups", &groups, user])?;
    }
    *made = true;
    Ok(())
}

fn user(name: &str) -> Result<nix::unistd::User> {
    nix::unistd::User::from_name(name)?.with_context(|| format!("no user {name}"))
}

fn gid(name: &str) -> Result<nix::unistd::Gid> {
    Ok(nix::unistd::Group::from_name(name)?
        .with_context(|| format!("no group {name}"))?
        .gid)
}

/// `path` made (if missing) with `owner`, `group` and `mode`, as the
/// module's tmpfiles rules make it.
fn dir(path: &Path, owner: &str, group: &str, mode: u32) -> Result<()> {
    if !path.exists() {
        std::fs::create_dir(path)?;
    }
    nix::unistd::chown(path, Some(user(owner)?.uid), Some(gid(group)?))?;
    // After the chown, which clears the setgid bit.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// `command` as `user` with the groups the group database gives it (as
/// systemd's User= does), the units' umask 0007.
fn as_user(user: &str, program: &Path, args: &[&str]) -> Command {
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .arg("/bin/sh")
        .args(["-c", "umask 0007; exec \"$@\"", "sh"])
        .arg(program)
        .args(args);
    command
}

/// A private installation laid out as the NixOS module lays out its own.
struct Install {
    stack: Stack,
    hook_out: PathBuf,
    hook_socket: PathBuf,
    reports_dir: PathBuf,
}

impl Install {
    fn new() -> Result<Install> {
        make_users()?;
        // The stack makes the directory, the binaries and the queue's name;
        // the services are started here, each as its own user.
        let stack = Stack::new("", RunAs::Me)?;
        let root = stack.root.path().to_owned();
        // /run/vigil: traversable, listable only by the hub's user.
        dir(&stack.runtime_dir(), HUB_USER, HUB_USER, 0o711)?;
        // /var/lib/vigil: entered by the log's group, which reads events/
        // (setgid: every segment gets the group).
        dir(&stack.state_dir(), HUB_USER, LOG_GROUP, 0o710)?;
        dir(
            &stack.state_dir().join("events"),
            HUB_USER,
            LOG_GROUP,
            0o2750,
        )?;
        // /var/lib/vigil-reportd: reportd's, read by the hub (its group).
        let reports_dir = root.join("reports");
        dir(&reports_dir, REPORTD_USER, REPORTD_USER, 0o770)?;
        // The hook's own place to write, and the socket systemd would hold.
        let hook_dir = root.join("hook");
        dir(&hook_dir, HOOK_USER, HOOK_USER, 0o700)?;
        let hook_socket = root.join("hook.sock");
        let install = Install {
            hook_out: hook_dir.join("alerts.jsonl"),
            hook_socket,
            reports_dir,
            stack,
        };
        let config = format!(
            "{TEST_SENSORS}{TEST_ALARM}\n\
             [[hooks]]\nname = \"recorder\"\nsocket = {socket:?}\n\n\
             [runtime]\nruntime_dir = {run:?}\nstate_dir = {state:?}\nreports_dir = {reports:?}\n\n\
             [grpc]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [alerts]\nqueue = {queue:?}\ndepth = 8\nmsg_size = 2048\ngroup = {ALERTS_GROUP:?}\n",
            socket = install.hook_socket.display().to_string(),
            run = install.stack.runtime_dir().display().to_string(),
            state = install.stack.state_dir().display().to_string(),
            reports = install.reports_dir.display().to_string(),
            port = install.stack.grpc_port,
            queue = install.stack.alert_queue(),
        );
        std::fs::write(&install.stack.config_path, config)?;
        std::fs::set_permissions(
            &install.stack.config_path,
            std::fs::Permissions::from_mode(0o644),
        )?;
        Ok(install)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.stack.root.path().join("bin").join(name)
    }

    /// Starts service `name` as `user`, its stderr in a log of its own.
    fn start(&self, name: &'static str, user: &str) -> Result<Service> {
        let log = self.stack.root.path().join(format!("{name}.log"));
        let config = self.stack.config_path.display().to_string();
        let child = as_user(user, &self.bin(name), &["--config", &config])
            .env("VIGIL_LOG_FORMAT", "json")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting {name} as {user}"))?;
        Ok(Service { name, child, log })
    }

    /// What systemd's `vigil-hook-recorder.socket` (`Accept=yes`) does: a
    /// socket only alertd may connect to, and for each connection the hook
    /// program, as the hook user, with the connection as its stdin. The
    /// program notes its uid, then appends what it reads.
    fn serve_hook(&self) -> Result<()> {
        let listener = UnixListener::bind(&self.hook_socket)?;
        nix::unistd::chown(
            &self.hook_socket,
            Some(user(ALERTD_USER)?.uid),
            Some(gid(ALERTD_USER)?),
        )?;
        std::fs::set_permissions(&self.hook_socket, std::fs::Permissions::from_mode(0o600))?;
        let out = self.hook_out.display().to_string();
        let script = format!("id -u > {out}.uid; cat >> {out}");
        std::thread::spawn(move || {
            for connection in listener.incoming() {
                let Ok(connection) = connection else { return };
                let stdin = Stdio::from(OwnedFd::from(connection));
                let _ = as_user(HOOK_USER, Path::new("/bin/sh"), &["-c", &script])
                    .stdin(stdin)
                    .stdout(Stdio::null())
                    .spawn();
            }
        });
        Ok(())
    }

    /// Runs a probe (see [`privilege_probe_helper`]) as `user`: Ok(()) if
    /// the kernel allowed `what`, Err(the error) if it refused.
    fn probe(&self, user: &str, what: &str) -> Result<std::result::Result<(), String>> {
        let exe = self.bin("probe");
        if !exe.exists() {
            std::fs::copy(std::env::current_exe()?, &exe)?;
            std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
        }
        let out = as_user(
            user,
            &exe,
            &[
                "--exact",
                "privilege_probe_helper",
                "--nocapture",
                "--test-threads=1",
            ],
        )
        .env(PROBE, what)
        .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("PROBE ALLOWED") {
            Ok(Ok(()))
        } else if let Some(at) = text.find("PROBE REFUSED ") {
            let rest = &text[at + "PROBE REFUSED ".len()..];
            Ok(Err(rest.lines().next().unwrap_or_default().to_owned()))
        } else {
            bail!(
                "the probe {what:?} as {user} said nothing: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        }
    }

    /// The newest segment of the event log.
    fn segment(&self) -> Result<PathBuf> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(self.stack.state_dir().join("events"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "vlog"))
            .collect();
        segments.sort();
        segments.pop().context("no log segment")
    }
}

/// Not a test of its own: the probe the test above runs as another user
/// (this same binary, through setpriv). Without `VIGIL_E2E_PROBE` it does
/// nothing. With it, it tries one thing and prints whether the kernel let
/// it: `mq-read:NAME`, `mq-post:NAME`, `connect:PATH`, `write:PATH`,
/// `read:PATH`, `signal:PID`.
#[test]
fn privilege_probe_helper() {
    let Ok(what) = std::env::var(PROBE) else {
        return;
    };
    let result: std::result::Result<(), String> = match what.split_once(':') {
        Some(("mq-read", name)) => open_queue(name, nix::mqueue::MQ_OFlag::O_RDONLY),
        Some(("mq-post", name)) => open_queue(name, nix::mqueue::MQ_OFlag::O_WRONLY),
        Some(("connect", path)) => std::os::unix::net::UnixStream::connect(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        Some(("write", path)) => std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        Some(("read", path)) => std::fs::File::open(path)
            .map(drop)
            .map_err(|e| e.to_string()),
        Some(("signal", pid)) => match pid.parse::<i32>() {
            // Signal 0: the permission check alone, harmless if allowed.
            Ok(pid) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        },
        _ => Err(format!("unknown probe {what:?}")),
    };
    match result {
        Ok(()) => println!("PROBE ALLOWED"),
        Err(e) => println!("PROBE REFUSED {e}"),
    }
}

fn open_queue(name: &str, flags: nix::mqueue::MQ_OFlag) -> std::result::Result<(), String> {
    nix::mqueue::mq_open(name, flags, nix::sys::stat::Mode::empty(), None)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The probe was refused with permission denied (EACCES or EPERM).
fn refused(result: std::result::Result<(), String>, what: &str) -> Result<()> {
    match result {
        Ok(()) => bail!("{what}: allowed"),
        Err(e) if e.contains("ermission denied") || e.contains("Operation not permitted") => Ok(()),
        Err(e) => bail!("{what}: refused, but not for want of permission: {e}"),
    }
}

#[test]
fn an_alarm_reaches_a_hook_that_can_reach_nothing_else() -> Result<()> {
    if !need_root()? {
        return Ok(());
    }
    let install = Install::new()?;
    install.serve_hook()?;
    let stack = &install.stack;
    let hub = install.start("vigil-hub", HUB_USER)?;
    let _sensord = install.start("vigil-sensord", HUB_USER)?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    let alertd = install.start("vigil-alertd", ALERTD_USER)?;
    let _reportd = install.start("vigil-reportd", REPORTD_USER)?;
    // alertd, under a uid of its own, joins through alertd's group.
    hub.wait_log(0, "alertd joining", |l| {
        message(l) == "service joined" && l.to_string().contains("alertd")
    })?;

    // The objects are the groups' as the module has them.
    let sock = std::fs::metadata(stack.runtime_dir().join("hub.sock"))?;
    ensure!(
        sock.gid() == gid(ALERTS_GROUP)?.as_raw() && sock.mode() & 0o777 == 0o660,
        "hub.sock: gid {} mode {:o}",
        sock.gid(),
        sock.mode()
    );

    // An alarm reaches the hook, which runs as the hook user.
    stack.pair_here("user")?;
    let (code, _, stderr) = stack.ctl(&["panic"])?;
    ensure!(code == 0, "vigilctl panic: {stderr}");
    wait_until("the panic at the hook", Duration::from_secs(15), || {
        Ok(std::fs::read_to_string(&install.hook_out)
            .is_ok_and(|text| text.contains("\"priority\":\"alarm\"")))
    })?;
    let hook_uid = std::fs::read_to_string(format!("{}.uid", install.hook_out.display()))?;
    ensure!(
        hook_uid.trim() == user(HOOK_USER)?.uid.to_string(),
        "the hook ran as uid {hook_uid}"
    );
    alertd.wait_log(0, "alertd's session", |l| message(l) == "joined the hub")?;
    // reportd, under its own uid, indexed the log; the hub reads its index.
    wait_until("the panic in the history", Duration::from_secs(15), || {
        let (code, out, _) = stack.ctl(&["--json", "history", "--kind", "triggered"])?;
        Ok(code == 0 && out.contains("triggered"))
    })?;
    ensure!(install.reports_dir.join("reports.db").exists());

    // What the hook's uid cannot reach.
    let queue = stack.alert_queue();
    let segment = install.segment()?;
    let state = stack.state_dir().join("alarm-state.json");
    ensure!(state.exists(), "no alarm state at {}", state.display());
    let hub_sock = stack.runtime_dir().join("hub.sock");
    for (what, probe) in [
        ("read the alert queue", format!("mq-read:{queue}")),
        ("post to the alert queue", format!("mq-post:{queue}")),
        (
            "connect to hub.sock",
            format!("connect:{}", hub_sock.display()),
        ),
        (
            "write the event log",
            format!("write:{}", segment.display()),
        ),
        ("read the event log", format!("read:{}", segment.display())),
        (
            "write the alarm state",
            format!("write:{}", state.display()),
        ),
        ("signal the hub", format!("signal:{}", hub.pid())),
        ("signal alertd", format!("signal:{}", alertd.pid())),
        (
            "write reportd's index",
            format!("write:{}", install.reports_dir.join("reports.db").display()),
        ),
    ] {
        refused(
            install.probe(HOOK_USER, &probe)?,
            &format!("the hook's uid may {what}"),
        )?;
    }

    // Each service's uid has what it needs and no more: alertd reads the
    // queue but cannot post a forged alert; reportd reads the log but
    // cannot write it, nor the alarm state.
    ensure!(
        install
            .probe(ALERTD_USER, &format!("mq-read:{queue}"))?
            .is_ok(),
        "alertd's uid cannot open the queue to read"
    );
    refused(
        install.probe(ALERTD_USER, &format!("mq-post:{queue}"))?,
        "alertd's uid may post to the queue",
    )?;
    refused(
        install.probe(ALERTD_USER, &format!("signal:{}", hub.pid()))?,
        "alertd's uid may signal the hub",
    )?;
    ensure!(
        install
            .probe(REPORTD_USER, &format!("read:{}", segment.display()))?
            .is_ok(),
        "reportd's uid cannot read the log"
    );
    refused(
        install.probe(REPORTD_USER, &format!("write:{}", segment.display()))?,
        "reportd's uid may write the event log",
    )?;
    refused(
        install.probe(REPORTD_USER, &format!("write:{}", state.display()))?,
        "reportd's uid may write the alarm state",
    )?;
    refused(
        install.probe(
            REPORTD_USER,
            &format!(
                "write:{}",
                stack
                    .state_dir()
                    .join("events")
                    .join("writer.lock")
                    .display()
            ),
        )?,
        "reportd's uid may open the log's writer lock",
    )?;

    // alertd's uid may join hub.sock as alertd only: as a reader (what
    // `vigilctl status --local` asks) the hub refuses it by name.
    let out = as_user(
        ALERTD_USER,
        &install.bin("vigilctl"),
        &[
            "--config",
            &stack.config_path.display().to_string(),
            "status",
            "--local",
        ],
    )
    .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("may join only as alertd"),
        "alertd's uid read the sensor table: {stderr}"
    );
    Ok(())
}
