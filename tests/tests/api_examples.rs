//! docs/api.md's worked examples, run against a real hub by a client that
//! shares no code with vigilctl: Python's grpcio, with stubs that protoc
//! (and grpc_python_plugin) generate from proto/ at test time into a
//! temporary directory (tests/python/run_examples.py). The
//! same script checks that a client speaking only grpc.reflection.v1alpha
//! can list the services, fetch their files and call a method from the
//! reflected descriptors alone, as grpcurl does.
//!
//! The hub is the usual test house with its alarm (alice, PIN 2468), a
//! test-pattern camera `porch` and vigil-reportd, so that every service's
//! example runs for real; this stack's vigilctl is paired as admin and its
//! credentials are what the script uses.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use vigil_e2e::{
    RunAs, Stack, TEST_ALARM, TEST_SENSORS, free_port, message, test_camera, wait_until,
};

/// How long the whole script may take (it records a clip and waits for
/// reportd; it takes some 10 s).
const SCRIPT_LIMIT: Duration = Duration::from_secs(240);

/// What the script needs of Python (the stub compiler it finds itself,
/// and says so if it cannot).
const PYTHON_CHECK: &str = "import grpc, google.protobuf, cryptography";

/// The first Python 3 that has grpcio, protobuf and cryptography:
/// `VIGIL_PYTHON` if set, else `python3` on the PATH, else Debian's own
/// (`/usr/bin/python3`, which scripts/deps equips, when another one such
/// as pyenv's comes first on the PATH).
fn python() -> Result<String> {
    let candidates = match std::env::var("VIGIL_PYTHON") {
        Ok(python) => vec![python],
        Err(_) => vec!["python3".to_owned(), "/usr/bin/python3".to_owned()],
    };
    for python in &candidates {
        let ok = Command::new(python)
            .args(["-c", PYTHON_CHECK])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(python.clone());
        }
    }
    bail!(
        "no Python 3 with grpcio, protobuf and cryptography (tried {candidates:?}): run \
         scripts/deps as root, or `apt-get install python3-grpcio python3-protobuf \
         python3-cryptography protobuf-compiler protobuf-compiler-grpc`; to use another \
         interpreter that has them, set VIGIL_PYTHON"
    )
}

#[test]
fn the_api_docs_examples_run_against_a_real_hub_from_python() -> Result<()> {
    let python = python()?;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace root")?
        .to_owned();

    let port = free_port()?;
    let stack = Stack::new(
        &format!(
            "{TEST_SENSORS}{TEST_ALARM}{}",
            test_camera(port, "s3cret", "apidocs")
        ),
        RunAs::Me,
    )?;
    let hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    let _reportd = stack.start("vigil-reportd")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    let _camd = stack.camd_online(&hub, "admin")?;

    // Sensor events for the examples to find: the front door opens and
    // closes (the examples arm over it, so it must end closed).
    stack.sim("set front-door open")?;
    stack.wait_alarm("the front door open", |s| {
        s["open"].to_string().contains("front-door")
    })?;
    stack.sim("set front-door closed")?;
    stack.wait_alarm("the front door closed", |s| {
        !s["open"].to_string().contains("front-door")
    })?;
    // reportd has made its index (QueryEvents is UNAVAILABLE before).
    let index = stack.state_dir().join("reports.db");
    wait_until("reportd's index", Duration::from_secs(20), || {
        Ok(index.exists())
    })?;

    let creds = stack.credentials_dir();
    let address = std::fs::read_to_string(creds.join("hub"))?
        .trim()
        .to_owned();
    let out_path = stack.root.path().join("run_examples.out");
    let out = std::fs::File::create(&out_path)?;
    let mut child = Command::new(&python)
        .arg(repo.join("tests/python/run_examples.py"))
        .current_dir(&repo)
        .env("VIGIL_HUB", &address)
        .env("VIGIL_CA", creds.join("ca.pem"))
        .env("VIGIL_CERT", creds.join("client.pem"))
        .env("VIGIL_KEY", creds.join("client.key"))
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {python}"))?;
    let deadline = Instant::now() + SCRIPT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    match status {
        Some(status) if status.success() => {
            println!("{output}");
            Ok(())
        }
        Some(status) => bail!(
            "tests/python/run_examples.py failed ({status}) against the hub at {address}:\n\
             {output}\nthe hub's log:\n{}",
            std::fs::read_to_string(&hub.log).unwrap_or_default()
        ),
        None => bail!(
            "tests/python/run_examples.py did not end within {SCRIPT_LIMIT:?}; its output:\n{output}"
        ),
    }
}
