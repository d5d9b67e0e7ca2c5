//! `vigil-demo`: the whole stack on a simulated house, no config to write.
//!
//! Writes its house to `ROOT/vigil.toml` ([`house`]), starts every built
//! service as a real child process on it (`--demo ROOT`), restarts any that
//! dies (as systemd's Restart=always would), drives the simulated house on
//! a schedule, prints what to try, and on Ctrl-C stops everything with
//! SIGTERM and waits.

#![forbid(unsafe_code)]

mod house;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[derive(Debug, Parser)]
#[command(name = "vigil-demo", version, about = "Run Vigil on a simulated house")]
struct Cli {
    /// Where the demo writes its house (ROOT/vigil.toml) and keeps its
    /// runtime and state files.
    #[arg(long, default_value = "/tmp/vigil-demo")]
    root: PathBuf,
    /// Stop by itself after this many seconds (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    seconds: u64,
    /// Do not move doors and motion on a schedule.
    #[arg(long)]
    quiet_house: bool,
}

/// The services the demo runs, in start order. Any order works (each
/// rejoins the hub by itself); this one just makes the first screen tidy.
const SERVICES: [&str; 5] = [
    "vigil-hub",
    "vigil-sensord",
    "vigil-alertd",
    "vigil-reportd",
    "vigil-camd",
];

/// The simulated house's day: (seconds into the cycle, command).
const SCHEDULE: [(u64, &str); 6] = [
    (3, "set front-door open"),
    (5, "set front-door closed"),
    (8, "set hallway-motion active"),
    (9, "set hallway-motion inactive"),
    (14, "set living-room-window open"),
    (18, "set living-room-window closed"),
];
const CYCLE: u64 = 20;

struct Service {
    name: &'static str,
    child: Child,
    restarts: u32,
}

fn spawn(bin_dir: &Path, name: &str, root: &Path) -> Result<Child> {
    let path = bin_dir.join(name);
    if !path.exists() {
        bail!(
            "{} is missing; build the workspace first (cargo build --workspace --bins)",
            path.display()
        );
    }
    Command::new(&path)
        .arg("--demo")
        .arg(root)
        // Their own process group: Ctrl-C reaches the demo only, which then
        // stops them in order with SIGTERM.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", path.display()))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("the demo binary has no directory")?
        .to_owned();
    // Absolute: the services resolve the root from their own directories,
    // and the config refuses relative runtime and state directories.
    let root = std::path::absolute(&cli.root)
        .with_context(|| format!("cannot resolve {}", cli.root.display()))?;
    let (house_file, config) = house::write(&root)?;

    // SIGINT/SIGTERM set `stop` (tokio's handlers, not a blocked mask: a
    // mask would be inherited by the services across exec).
    let stop = Arc::new(AtomicBool::new(false));
    let signals = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let flag = Arc::clone(&stop);
    std::thread::spawn(move || {
        signals.block_on(vigil_service::terminated());
        flag.store(true, Ordering::Relaxed);
    });

    let mut services = Vec::new();
    for name in SERVICES {
        services.push(Service {
            name,
            child: spawn(&bin_dir, name, &root)?,
            restarts: 0,
        });
        std::thread::sleep(Duration::from_millis(300));
    }
    let ctl = |args: &str| {
        format!(
            "{} --demo {} {args}",
            bin_dir.join("vigilctl").display(),
            root.display()
        )
    };
    let sim = |args: &str| {
        format!(
            "{} --demo {} sim {args}",
            bin_dir.join("vigil-sensord").display(),
            root.display()
        )
    };
    println!(
        "\nVigil demo: a simulated house (8 sensors, a siren, a buzzer, a test-pattern camera); PIN 1234."
    );
    for s in &services {
        println!("  {:<14} pid {}", s.name, s.child.id());
    }
    println!("House: {} (written at every start)", house_file.display());
    println!("Runtime files: {}", config.runtime.runtime_dir.display());
    println!("gRPC API: {} (TLS; pair first)", config.grpc.listen);
    println!(
        "Control FIFO: echo \"arm away\" > {}",
        config.runtime.runtime_dir.join("control").display()
    );
    println!("\nTry, in another terminal:");
    println!("  {}", ctl("pair --here me --role admin"));
    println!("  {}", ctl("arm away"));
    println!("  {}", sim("set back-door open"));
    println!("  {}", ctl("status"));
    println!("  {}", ctl("disarm --pin 1234"));
    println!("  {}", ctl("events --follow"));
    println!("  {}", ctl("history --kind triggered,armed,disarmed"));
    println!("  {}", ctl("cameras"));
    println!("  {}", ctl("snapshot porch -o porch.jpg"));
    println!("  {}", ctl("clips"));
    println!(
        "  clips (MP4, recorded on every alarm): {}",
        config.runtime.state_dir.join("clips").display()
    );
    println!("  {}", ctl("report --weekly"));
    println!(
        "  reports (HTML and JSON, rewritten every 5 minutes): {}",
        config.runtime.state_dir.join("reports").display()
    );
    println!("  {}", ctl("status --local"));
    println!("  {}", sim("set panic-button active"));
    println!("  {}", sim("outputs"));
    println!("  kill -9 <hub pid>   (the demo restarts it; sensord rejoins by itself)");
    if !cli.quiet_house {
        println!("\nThe house moves by itself every {CYCLE} s (doors, motion, a window).");
    }
    println!("Ctrl-C stops everything.\n");

    let started = Instant::now();
    let mut next_step = 0usize;
    let mut cycle_start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if cli.seconds > 0 && started.elapsed() >= Duration::from_secs(cli.seconds) {
            break;
        }
        // Restart what died, as systemd would.
        for s in &mut services {
            if let Ok(Some(status)) = s.child.try_wait() {
                s.restarts += 1;
                eprintln!("vigil-demo: {} exited ({status}); restarting", s.name);
                s.child = spawn(&bin_dir, s.name, &root)?;
            }
        }
        if !cli.quiet_house {
            let elapsed = cycle_start.elapsed().as_secs();
            if next_step < SCHEDULE.len() && elapsed >= SCHEDULE[next_step].0 {
                let command = SCHEDULE[next_step].1;
                if let Err(e) =
                    vigil_sensord::sim_control::send(&config.runtime.sim_gpio_socket(), command)
                {
                    eprintln!("vigil-demo: {command}: {e}");
                }
                next_step += 1;
            }
            if elapsed >= CYCLE {
                cycle_start = Instant::now();
                next_step = 0;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    println!("\nvigil-demo: stopping every service");
    for s in &services {
        let _ = kill(Pid::from_raw(s.child.id() as i32), Signal::SIGTERM);
    }
    let mut clean = true;
    for s in &mut services {
        let status = s.child.wait()?;
        println!("  {:<14} {status} (restarted {} times)", s.name, s.restarts);
        clean &= status.success();
    }
    if !clean {
        bail!("a service did not stop cleanly");
    }
    Ok(())
}
