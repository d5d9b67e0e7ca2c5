//! The alert path end to end, in one run: from the simulated GPIO edge of a
//! 24-hour zone (a panic button) through sensord, the shared table and the
//! doorbell, the hub's alarm, the POSIX queue, alertd and the pipe, until
//! the hook program has read the alert. Beside it, raw baselines measured
//! in the same run: a POSIX message queue send/receive and a pipe
//! write/read, each between two processes.
//!
//! Between samples the system is disarmed through the control FIFO and left
//! idle 50 ms (a second run: 5 ms, CPUs warm). The simulated board is
//! driven over one connection for the whole run, and the hook writes its
//! times into a FIFO the bench blocks on, so measuring takes no CPU from
//! what is measured.
//!
//! cargo build --release --workspace --bins
//! cargo bench -p vigil-e2e --bench alert_path [-- --quick]

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use vigil_e2e::{RunAs, Stack, TEST_ALARM, message};
use vigil_ipc::monotonic_ns;

const HOOK_FLAG: &str = "--hook-out";
/// The pause between one sample's disarm and the next alarm: the system
/// is idle when an alarm comes, as at home.
const SETTLE: Duration = Duration::from_millis(50);
/// The pause of the second run, alarms in quick succession: what Vigil's
/// own work costs when the CPUs have not gone idle in between (on a
/// virtual machine, a vCPU idle for long takes a hypervisor exit to wake,
/// paid at every hop of the path; see docs/benchmarks.md).
const SETTLE_WARM: Duration = Duration::from_millis(5);

const SENSORS: &str = r#"
[gpio]
backend = "simulated"

[[sensors]]
name = "panic-button"
kind = "panic"
pin = 13
debounce_ms = 0

[outputs]
siren = { pin = 23 }

[telemetry]
log_format = "json"
log_filter = "info,vigil_hub::alerts=debug"
"#;

/// The hook: appends "<monotonic ns> <kind>" per alert it reads.
fn hook(out: &Path) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)?;
    for line in std::io::stdin().lock().lines() {
        let at = monotonic_ns();
        let alert: serde_json::Value = serde_json::from_str(&line?)?;
        writeln!(file, "{at} {}", alert["kind"].as_str().unwrap_or("?"))?;
        file.flush()?;
    }
    Ok(())
}

/// The hook's lines as they come: `out` is a FIFO, read by a thread of
/// the bench's that blocks on it (polling a file would take CPU from the
/// processes being measured, on a machine of two cores).
fn hook_lines(out: &Path) -> Result<std::sync::mpsc::Receiver<(u64, String)>> {
    nix::unistd::mkfifo(out, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let out = out.to_owned();
    std::thread::spawn(move || {
        // Reopened whenever the hook closes it (a restarted hook).
        while let Ok(fifo) = std::fs::File::open(&out) {
            for line in std::io::BufReader::new(fifo).lines() {
                let Ok(line) = line else { break };
                let Some((t, k)) = line.split_once(' ') else {
                    continue;
                };
                let Ok(t) = t.parse() else { continue };
                if tx.send((t, k.to_owned())).is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// The hook's time of reading the next alert of `kind` (others are
/// skipped).
fn wait_for(lines: &std::sync::mpsc::Receiver<(u64, String)>, kind: &str) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok((t, k)) if k == kind => return Ok(t),
            Ok(_) => {}
            Err(_) => bail!("the hook never read a {kind} alert"),
        }
    }
}

/// Where the time of one alarm goes, in microseconds: the simulated edge
/// until sensord has written the slot; the slot until the hub reads it
/// (the doorbell); the hub's read until it has posted the alert (the
/// engine); the post until the hook has read it (queue, alertd, pipe).
#[derive(Debug)]
struct Stages {
    edge_to_table: Histogram<u64>,
    table_to_hub: Histogram<u64>,
    hub_to_posted: Histogram<u64>,
    posted_to_hook: Histogram<u64>,
}

impl Stages {
    fn new() -> Result<Stages> {
        Ok(Stages {
            edge_to_table: Histogram::new(3)?,
            table_to_hub: Histogram::new(3)?,
            hub_to_posted: Histogram::new(3)?,
            posted_to_hook: Histogram::new(3)?,
        })
    }

    /// Places each sample's change and post, from the hub's log, between
    /// its edge and the hook's read.
    fn record(&mut self, hub: &vigil_e2e::Service, edges: &[(u64, u64)]) -> Result<()> {
        let lines = hub.log_lines()?;
        let field = |l: &serde_json::Value, k: &str| l["fields"][k].as_u64();
        let changes: Vec<(u64, u64)> = lines
            .iter()
            .filter(|l| message(l) == "sensor changed" && l["fields"]["state"] == "pressed")
            .filter_map(|l| Some((field(l, "changed_mono_ns")?, field(l, "latency_us")?)))
            .collect();
        let posts: Vec<u64> = lines
            .iter()
            .filter(|l| message(l) == "alert posted" && l["fields"]["kind"] == "triggered")
            .filter_map(|l| field(l, "mono_ns"))
            .collect();
        for (((edge, read), (changed, latency_us)), posted) in edges.iter().zip(changes).zip(posts)
        {
            let seen = changed + latency_us * 1000;
            self.edge_to_table
                .record(changed.saturating_sub(*edge) / 1000)?;
            self.table_to_hub.record(latency_us)?;
            self.hub_to_posted
                .record(posted.saturating_sub(seen) / 1000)?;
            self.posted_to_hook
                .record(read.saturating_sub(posted) / 1000)?;
        }
        Ok(())
    }
}

fn alert_path(samples: usize, settle: Duration) -> Result<(Histogram<u64>, Stages)> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("hook.fifo");
    let lines = hook_lines(&out)?;
    let exe = std::env::current_exe()?;
    let config = format!(
        "{SENSORS}{TEST_ALARM}\n[[hooks]]\nname = \"timer\"\ncommand = {:?}\nargs = [\"{HOOK_FLAG}\", {:?}]\n",
        exe.display().to_string(),
        out.display().to_string()
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    let _alertd = stack.start("vigil-alertd")?;
    for role in ["sensord", "alertd"] {
        hub.wait_log(0, role, |l| {
            message(l) == "service joined" && l["fields"]["role"] == role
        })?;
    }
    let sim = stack.runtime_dir().join("sim-gpio.sock");
    let fifo = stack.runtime_dir().join("control");
    let mut h = Histogram::<u64>::new(3)?;
    let mut edges = Vec::with_capacity(samples);
    // One connection to the simulated board for the whole run, as a GPIO
    // line is always there: its connection is not part of the alert path.
    // The board's answer is read after the hook has the alert, so that
    // reading it wakes nobody while the alert is on its way.
    let board = std::os::unix::net::UnixStream::connect(&sim)?;
    let mut answers = std::io::BufReader::new(board.try_clone()?);
    let set = |level: &str| -> Result<()> {
        (&board).write_all(format!("set panic-button {level}\n").as_bytes())?;
        Ok(())
    };
    let mut answer = || -> Result<()> {
        let mut line = String::new();
        answers.read_line(&mut line)?;
        if !line.starts_with("OK") {
            bail!("the simulated board answered {line:?}");
        }
        Ok(())
    };
    for _ in 0..samples {
        let edge = monotonic_ns();
        set("active")?;
        let read = wait_for(&lines, "triggered")?;
        answer()?;
        h.record((read - edge) / 1000)?;
        edges.push((edge, read));
        set("inactive")?;
        answer()?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)?
            .write_all(b"disarm 2468\n")?;
        wait_for(&lines, "disarmed").context("disarm")?;
        // The hook has the disarm's alert before the hub has synced the
        // disarm (alerts go out before any disk wait): let the hub finish
        // its writes, so each alarm starts from an idle hub, as an alarm
        // does at home, rather than queueing behind the last sample's fsyncs.
        std::thread::sleep(settle);
    }
    let mut stages = Stages::new()?;
    stages.record(&hub, &edges)?;
    Ok((h, stages))
}

/// A child that receives `n` timestamped messages from the queue `name`
/// and prints their one-way latencies in microseconds.
fn mq_child(name: &str, n: usize) -> Result<()> {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_open, mq_receive};
    let attr = MqAttr::new(0, 8, 64, 0);
    let q = mq_open(
        name,
        MQ_OFlag::O_CREAT | MQ_OFlag::O_RDONLY,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        Some(&attr),
    )?;
    let mut buf = [0u8; 64];
    let mut prio = 0;
    let mut out = String::new();
    println!("ready");
    std::io::stdout().flush()?;
    for _ in 0..n {
        let len = mq_receive(&q, &mut buf, &mut prio)?;
        let at = monotonic_ns();
        let sent: u64 = std::str::from_utf8(&buf[..len])?.parse()?;
        out.push_str(&format!("{}\n", (at - sent) / 1000));
    }
    print!("{out}");
    Ok(())
}

fn mq_baseline(n: usize) -> Result<Histogram<u64>> {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_open, mq_send, mq_unlink};
    let name = format!("/vigil-bench-{}", std::process::id());
    let _ = mq_unlink(name.as_str());
    let attr = MqAttr::new(0, 8, 64, 0);
    let q = mq_open(
        name.as_str(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_WRONLY,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        Some(&attr),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--mq-child", &name, &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdout = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut ready = String::new();
    stdout.read_line(&mut ready)?;
    for _ in 0..n {
        std::thread::sleep(Duration::from_micros(500));
        mq_send(&q, monotonic_ns().to_string().as_bytes(), 30)?;
    }
    let mut text = String::new();
    stdout.read_to_string(&mut text)?;
    child.wait()?;
    let _ = mq_unlink(name.as_str());
    histogram(&text)
}

fn pipe_child(n: usize) -> Result<()> {
    let mut out = String::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for _ in 0..n {
        let line = lines.next().context("eof")??;
        let at = monotonic_ns();
        let sent: u64 = line.trim().parse()?;
        out.push_str(&format!("{}\n", (at - sent) / 1000));
    }
    print!("{out}");
    Ok(())
}

fn pipe_baseline(n: usize) -> Result<Histogram<u64>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--pipe-child", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    for _ in 0..n {
        std::thread::sleep(Duration::from_micros(500));
        stdin.write_all(format!("{}\n", monotonic_ns()).as_bytes())?;
        stdin.flush()?;
    }
    let mut text = String::new();
    child
        .stdout
        .take()
        .context("stdout")?
        .read_to_string(&mut text)?;
    child.wait()?;
    histogram(&text)
}

fn histogram(text: &str) -> Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new(3)?;
    for v in text.split_whitespace() {
        h.record(v.parse::<u64>()?.max(1))?;
    }
    Ok(h)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == HOOK_FLAG) {
        return hook(Path::new(&args[i + 1]));
    }
    if args.get(1).map(String::as_str) == Some("--mq-child") {
        return mq_child(&args[2], args[3].parse()?);
    }
    if args.get(1).map(String::as_str) == Some("--pipe-child") {
        return pipe_child(args[2].parse()?);
    }
    let quick = args.iter().any(|a| a == "--quick");
    let samples = if quick { 30 } else { 200 };
    let (path, stages) = alert_path(samples, SETTLE)?;
    let (warm, _) = alert_path(samples, SETTLE_WARM)?;
    let mq = mq_baseline(samples * 10)?;
    let pipe = pipe_baseline(samples * 10)?;
    println!(
        "Vigil alert path ({samples} alarms; baselines {} messages each)",
        samples * 10
    );
    println!("{:<58} {:>9} {:>9} {:>9}", "", "p50 us", "p99 us", "max us");
    for (name, h) in [
        (
            "GPIO edge of a 24-hour zone -> hook has read the alert",
            &path,
        ),
        (
            "  of which: edge -> sensord wrote the slot",
            &stages.edge_to_table,
        ),
        (
            "  of which: slot -> the hub read it (doorbell)",
            &stages.table_to_hub,
        ),
        (
            "  of which: the hub read it -> alert posted",
            &stages.hub_to_posted,
        ),
        (
            "  of which: posted -> hook read it (mq, alertd, pipe)",
            &stages.posted_to_hook,
        ),
        (
            "the same, alarms 5 ms after the last disarm (CPUs warm)",
            &warm,
        ),
        ("baseline: POSIX mq send -> receive (two processes)", &mq),
        ("baseline: pipe write -> read (two processes)", &pipe),
    ] {
        println!(
            "{:<58} {:>9} {:>9} {:>9}",
            name,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.max()
        );
    }
    println!(
        "ratio of the alert path to the mq baseline: p50 {:.1}x, p99 {:.1}x (target: alert path p99 <= 1 000 us)",
        path.value_at_quantile(0.5) as f64 / mq.value_at_quantile(0.5) as f64,
        path.value_at_quantile(0.99) as f64 / mq.value_at_quantile(0.99) as f64
    );
    Ok(())
}
