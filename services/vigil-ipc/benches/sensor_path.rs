//! The sensor path, measured in one run beside raw baselines:
//!
//! - slot read and write (seqlock + semaphore) vs. plain loads and stores of
//!   the same words;
//! - doorbell latency, from the write of a slot in one process until another
//!   process, woken by the real-time signal on a signalfd in a tokio runtime
//!   (the hub's path), has read the slot; vs. a bare sigqueue to a process
//!   blocked in sigwaitinfo, and vs. a pipe round trip between two processes.
//!
//! `cargo bench -p vigil-ipc --bench sensor_path` (add `-- --quick` for a
//! short run). The child processes are this binary re-executed with
//! `VIGIL_BENCH_ROLE` set.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use vigil_domain::{SensorKind, SensorState, TraceContext};
use vigil_ipc::doorbell::{
    DoorbellReceiver, DoorbellSender, block_doorbell_signal, doorbell_signal,
};
use vigil_ipc::monotonic_ns;
use vigil_ipc::table::{SensorTable, SensorUpdate, SlotDescriptor, SystemUpdate};

const ROLE: &str = "VIGIL_BENCH_ROLE";
const COUNT: &str = "VIGIL_BENCH_COUNT";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("hub") => return child_hub(),
        Ok("sigwait") => return child_sigwait(),
        Ok("echo") => return child_echo(),
        _ => {}
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let (reads, rings) = if quick {
        (2_000_000, 2_000)
    } else {
        (20_000_000, 20_000)
    };

    println!(
        "Vigil sensor-path benchmark ({} samples of each latency)",
        rings
    );
    println!(
        "{:<44} {:>12}   {:<40} {:>12} {:>8}",
        "figure", "value", "baseline (same run)", "value", "ratio"
    );
    let (read_ns, raw_read_ns, write_ns, raw_write_ns) = slot_costs(reads);
    row(
        "slot read (seqlock), per read",
        read_ns,
        "plain loads of the same 8 words",
        raw_read_ns,
        "ns",
    );
    row(
        "slot write (semaphore + seqlock)",
        write_ns,
        "plain stores of the same 8 words",
        raw_write_ns,
        "ns",
    );

    let doorbell = doorbell_latency(rings);
    let sigwait = sigqueue_latency(rings);
    let pipe = pipe_round_trip(rings);
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (0.999, "p99.9")] {
        let d = doorbell.value_at_quantile(q) as f64 / 1000.0;
        row(
            &format!("doorbell latency {label} (write -> hub read)"),
            d,
            &format!("sigqueue -> sigwaitinfo {label}"),
            sigwait.value_at_quantile(q) as f64 / 1000.0,
            "us",
        );
        row(
            "",
            d,
            &format!("pipe round trip {label}"),
            pipe.value_at_quantile(q) as f64 / 1000.0,
            "us",
        );
    }
    println!(
        "targets: slot read <= 100 ns; doorbell p99 <= 50 us. max doorbell {:.1} us",
        doorbell.max() as f64 / 1000.0
    );
}

fn row(figure: &str, value: f64, baseline: &str, base: f64, unit: &str) {
    println!(
        "{:<44} {:>9.1} {unit}   {:<40} {:>9.1} {unit} {:>7.2}x",
        figure,
        value,
        baseline,
        base,
        value / base
    );
}

fn slots(n: usize) -> Vec<SlotDescriptor> {
    (0..n)
        .map(|i| SlotDescriptor {
            name: format!("sensor-{i}"),
            kind: SensorKind::Door,
        })
        .collect()
}

fn update(i: u64) -> SensorUpdate {
    SensorUpdate {
        state: if i.is_multiple_of(2) {
            SensorState::Active
        } else {
            SensorState::Inactive
        },
        fault: false,
        tamper: false,
        bypassed: false,
        trace: TraceContext::default(),
    }
}

/// (read ns, raw read ns, write ns, raw write ns), each per operation.
fn slot_costs(reads: u64) -> (f64, f64, f64, f64) {
    let table = SensorTable::create(&slots(8), std::process::id()).expect("table");
    table.write_sensor(3, &update(0)).expect("write");
    let start = Instant::now();
    for _ in 0..reads {
        black_box(table.read_sensor(black_box(3)).expect("read"));
    }
    let read_ns = start.elapsed().as_nanos() as f64 / reads as f64;

    let words: Vec<AtomicU64> = (0..8).map(AtomicU64::new).collect();
    let start = Instant::now();
    for _ in 0..reads {
        let mut copy = [0u64; 8];
        for (c, w) in copy.iter_mut().zip(black_box(&words)) {
            *c = w.load(Ordering::Relaxed);
        }
        black_box(copy);
    }
    let raw_read_ns = start.elapsed().as_nanos() as f64 / reads as f64;

    let writes = reads / 10;
    let start = Instant::now();
    for i in 0..writes {
        table.write_sensor(black_box(3), &update(i)).expect("write");
    }
    let write_ns = start.elapsed().as_nanos() as f64 / writes as f64;
    let start = Instant::now();
    for i in 0..writes {
        for w in black_box(&words) {
            w.store(i, Ordering::Relaxed);
        }
    }
    let raw_write_ns = start.elapsed().as_nanos() as f64 / writes as f64;
    (read_ns, raw_read_ns, write_ns, raw_write_ns)
}

fn spawn_child(role: &str, rings: u64) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("exe"));
    c.env(ROLE, role).env(COUNT, rings.to_string());
    c
}

fn histogram(samples: &[u64]) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for &s in samples {
        h.record(s.max(1)).expect("record");
    }
    h
}

/// The hub's path: the child blocks the signal, reads rings from a signalfd
/// on a tokio runtime, reads the slot and acknowledges through the system
/// slot; the latency is its read time minus the slot's write time.
fn doorbell_latency(rings: u64) -> Histogram<u64> {
    let table = SensorTable::create(&slots(8), 0).expect("table");
    // The child gets the table's sealed memfd as its stdin, as a service
    // gets it from the hub (a descriptor, checked before it is mapped).
    let table_fd = table.fd().try_clone_to_owned().expect("dup table");
    let mut child = spawn_child("hub", rings)
        .stdin(Stdio::from(table_fd))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let doorbell = DoorbellSender::new(pid).expect("doorbell");
    // Wait until the child is listening (it acknowledges once at start).
    wait_ack(&table, 1);
    for i in 0..rings {
        table.write_sensor(5, &update(i)).expect("write");
        doorbell.ring(5).expect("ring");
        wait_ack(&table, i + 2);
    }
    let out = child.wait_with_output_stdout();
    histogram(&out)
}

fn wait_ack(table: &SensorTable, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while table.read_system().expect("system").change_count < count {
        assert!(Instant::now() < deadline, "the child stopped answering");
        std::hint::spin_loop();
    }
}

trait ChildOutput {
    fn wait_with_output_stdout(&mut self) -> Vec<u64>;
}

impl ChildOutput for std::process::Child {
    fn wait_with_output_stdout(&mut self) -> Vec<u64> {
        let mut text = String::new();
        if let Some(out) = self.stdout.as_mut() {
            out.read_to_string(&mut text).expect("read");
        }
        assert!(self.wait().expect("wait").success(), "child failed");
        text.split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect()
    }
}

fn child_hub() {
    block_doorbell_signal().expect("block");
    let rings: u64 = std::env::var(COUNT).expect("count").parse().expect("count");
    let stdin = std::io::stdin().as_fd().try_clone_to_owned().expect("dup");
    let table = SensorTable::from_fd(stdin).expect("map");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut latencies = Vec::with_capacity(rings as usize);
    runtime.block_on(async {
        let receiver = DoorbellReceiver::new().expect("receiver");
        let ack = |t: &SensorTable| {
            t.write_system(&SystemUpdate {
                mode: vigil_domain::ArmedMode::Disarmed,
                alarm: vigil_domain::AlarmState::Idle,
                trace: TraceContext::default(),
            })
            .expect("ack")
        };
        ack(&table);
        let mut batch = Vec::new();
        while (latencies.len() as u64) < rings {
            receiver.recv(&mut batch).await.expect("recv");
            for ring in batch.drain(..) {
                let slot = table.read_sensor(ring.value as usize).expect("read");
                latencies.push(monotonic_ns() - slot.changed_mono_ns);
                ack(&table);
            }
        }
    });
    print_samples(&latencies);
}

fn print_samples(samples: &[u64]) {
    let mut out = std::io::stdout().lock();
    for s in samples {
        writeln!(out, "{s}").expect("stdout");
    }
}

/// A bare real-time signal: sigqueue with the send time as the value, to a
/// process blocked in sigwaitinfo.
fn sigqueue_latency(rings: u64) -> Histogram<u64> {
    let mut child = spawn_child("sigwait", rings)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut ready = [0u8; 1];
    let mut stdout = child.stdout.take().expect("stdout");
    stdout.read_exact(&mut ready).expect("ready");
    for _ in 0..rings {
        let value = libc::sigval {
            sival_ptr: monotonic_ns() as usize as *mut libc::c_void,
        };
        // SAFETY: sigqueue with a valid pid and signal; the child blocks the
        // signal and waits for it, so it cannot kill the child.
        let rc = unsafe { libc::sigqueue(pid, doorbell_signal(), value) };
        assert_eq!(rc, 0, "sigqueue: {}", std::io::Error::last_os_error());
        // The child acknowledges each with one byte on its stdout.
        stdout.read_exact(&mut ready).expect("ack");
    }
    let mut text = String::new();
    stdout.read_to_string(&mut text).expect("samples");
    assert!(child.wait().expect("wait").success());
    histogram(
        &text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect::<Vec<_>>(),
    )
}

fn child_sigwait() {
    block_doorbell_signal().expect("block");
    let rings: u64 = std::env::var(COUNT).expect("count").parse().expect("count");
    let mut out = std::io::stdout().lock();
    out.write_all(b"r").expect("ready");
    out.flush().expect("flush");
    // SAFETY: a zeroed sigset initialised by sigemptyset/sigaddset.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, doorbell_signal());
        set
    };
    let mut samples = Vec::with_capacity(rings as usize);
    for _ in 0..rings {
        // SAFETY: `info` is a writable siginfo_t; `set` is initialised and
        // its signal is blocked in this (only) thread.
        let value = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            assert_eq!(sig, doorbell_signal());
            info.si_value().sival_ptr as usize as u64
        };
        samples.push(monotonic_ns() - value);
        out.write_all(b"a").expect("ack");
        out.flush().expect("flush");
    }
    for s in samples {
        writeln!(out, "{s}").expect("stdout");
    }
}

/// Two processes, one byte each way over two pipes; the figure is the whole
/// round trip.
fn pipe_round_trip(rings: u64) -> Histogram<u64> {
    let mut child = spawn_child("echo", rings)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut from_child = child.stdout.take().expect("stdout");
    let mut samples = Vec::with_capacity(rings as usize);
    let mut byte = [0u8; 1];
    for _ in 0..rings {
        let start = monotonic_ns();
        to_child.write_all(b"x").expect("write");
        from_child.read_exact(&mut byte).expect("read");
        samples.push(monotonic_ns() - start);
    }
    drop(to_child);
    assert!(child.wait().expect("wait").success());
    histogram(&samples)
}

fn child_echo() {
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut byte = [0u8; 1];
    while stdin.read_exact(&mut byte).is_ok() {
        stdout.write_all(&byte).expect("write");
        stdout.flush().expect("flush");
    }
}
