//! A real Mosquitto broker for the MQTT tests: started by the test on a
//! port of its own, TLS with a CA made for it (openssl), a password file
//! (mosquitto_passwd), no anonymous clients, nothing persisted (so a
//! restart loses every retained message, as a broker's crash without
//! persistence would). Clients are Mosquitto's own `mosquitto_pub` and
//! `mosquitto_sub`: what zigbee2mqtt and Home Assistant would send, sent
//! by a third process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;

use crate::{RunAs, Service, Stack, TEST_ALARM, message};

/// The broker's users, each with the topics docs/mqtt.md's ACL gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// Vigil: the bridge and sensord.
    Vigil,
    /// Home Assistant: reads Vigil's topics, sends commands.
    HomeAssistant,
    /// zigbee2mqtt: the only writer of its devices' topics.
    Zigbee2mqtt,
    /// The tests' subscriber: reads everything, writes nothing.
    Observer,
}

impl User {
    pub const ALL: [User; 4] = [
        User::Vigil,
        User::HomeAssistant,
        User::Zigbee2mqtt,
        User::Observer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            User::Vigil => "vigil",
            User::HomeAssistant => "homeassistant",
            User::Zigbee2mqtt => "zigbee2mqtt",
            User::Observer => "observer",
        }
    }

    pub fn password(self) -> String {
        format!("{}-test-password", self.name())
    }
}

/// A code block of docs/mqtt.md: the one after `<!-- tested: NAME -->`,
/// its indentation removed. The walk-throughs' configs are the tests'.
pub fn doc_block(name: &str) -> Result<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/mqtt.md");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let marker = format!("<!-- tested: {name} -->");
    let after = text
        .split_once(&marker)
        .with_context(|| format!("docs/mqtt.md has no {marker}"))?
        .1;
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().context("nothing after the marker")?;
    ensure!(
        fence.trim_start().starts_with("```"),
        "no code block after {marker}"
    );
    let indent = fence.len() - fence.trim_start().len();
    let mut block = String::new();
    for line in lines {
        if line.trim_start().starts_with("```") {
            return Ok(block);
        }
        block.push_str(line.get(indent..).unwrap_or(line.trim_start()));
        block.push('\n');
    }
    bail!("the code block after {marker} never ends")
}

#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn run(command: &mut Command) -> Result<Output> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

fn mosquitto_binary() -> PathBuf {
    for candidate in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    PathBuf::from("mosquitto")
}

impl Broker {
    /// Makes the CA, the server's certificate and the password file, and
    /// starts the broker.
    pub fn start() -> Result<Broker> {
        let dir = tempfile::Builder::new().prefix("vigil-mqtt-").tempdir()?;
        let d = dir.path();
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=vigil-test-broker-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ])?;
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        let passwd = d.join("passwd");
        for (i, user) in User::ALL.into_iter().enumerate() {
            let mut command = Command::new("mosquitto_passwd");
            command.arg("-b");
            if i == 0 {
                command.arg("-c");
            }
            run(command.arg(&passwd).args([user.name(), &user.password()]))?;
        }
        // The ACL docs/mqtt.md gives, as it gives it.
        std::fs::write(d.join("acl"), doc_block("mosquitto-acl")?)?;
        std::fs::write(
            d.join("vigil-credentials"),
            format!("{}:{}\n", User::Vigil.name(), User::Vigil.password()),
        )?;
        // Mosquitto drops privileges to `mosquitto` when started as root:
        // it must read its files.
        for f in ["ca.pem", "server.pem", "server.key", "passwd", "acl"] {
            std::fs::set_permissions(
                d.join(f),
                std::os::unix::fs::PermissionsExt::from_mode(0o644),
            )?;
        }
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        let port = crate::free_port()?;
        std::fs::write(
            d.join("mosquitto.conf"),
            format!(
                "per_listener_settings false\nallow_anonymous false\npassword_file {}\n\
                 acl_file {}\nmax_packet_size 1048576\nset_tcp_nodelay true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n\
                 log_type notice\nlog_type information\nconnection_messages true\n\
                 user root\n\
                 listener {port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                passwd.display(),
                d.join("acl").display(),
                d.join("ca.pem").display(),
                d.join("server.pem").display(),
                d.join("server.key").display(),
            ),
        )?;
        let mut broker = Broker {
            port,
            dir,
            child: None,
        };
        broker.restart()?;
        Ok(broker)
    }

    /// (Re)starts the broker on its port; waits until it accepts clients.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))?;
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting mosquitto (Debian's mosquitto package)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let probe = self
                .pub_command(User::Zigbee2mqtt)
                .args(["-t", "zigbee2mqtt/bridge/probe", "-m", "probe"])
                .output()?;
            if probe.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "mosquitto never accepted a client: {}; its log: {}",
                    String::from_utf8_lossy(&probe.stderr),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the broker (SIGKILL: a crash, no goodbye to anyone).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `username:password` for Vigil, as `[mqtt] credentials_file` reads it.
    pub fn vigil_credentials_file(&self) -> PathBuf {
        self.dir.path().join("vigil-credentials")
    }

    /// The `[mqtt]` table for this broker (without keypads).
    pub fn config(&self, hub_credentials: &Path, grpc_port: u16) -> String {
        format!(
            "\n[mqtt]\nbroker = \"localhost:{}\"\nca_file = {:?}\ncredentials_file = {:?}\n\
             hub = \"127.0.0.1:{grpc_port}\"\nhub_credentials = {:?}\n",
            self.port,
            self.ca_file().display().to_string(),
            self.vigil_credentials_file().display().to_string(),
            hub_credentials.display().to_string(),
        )
    }

    fn client_args(&self, command: &mut Command, user: User) {
        command
            .args(["-h", "localhost", "-p", &self.port.to_string(), "--cafile"])
            .arg(self.ca_file())
            .args(["-u", user.name(), "-P", &user.password()]);
    }

    fn pub_command(&self, user: User) -> Command {
        let mut command = Command::new("mosquitto_pub");
        self.client_args(&mut command, user);
        command
    }

    /// Publishes `payload` on `topic` as `user` (QoS 1). A topic the ACL
    /// does not give `user` is dropped by the broker, silently, as MQTT
    /// 3.1.1 has it.
    pub fn publish(&self, user: User, topic: &str, payload: &[u8], retain: bool) -> Result<()> {
        let file = self.dir.path().join("payload");
        std::fs::write(&file, payload)?;
        let mut command = self.pub_command(user);
        command.args(["-q", "1", "-t", topic, "-f"]).arg(&file);
        if retain {
            command.arg("-r");
        }
        run(&mut command)?;
        Ok(())
    }

    /// A subscriber to `filters` (a third process) writing every message
    /// to a file as it arrives.
    pub fn subscribe(&self, filters: &[&str]) -> Result<Subscriber> {
        let n = std::fs::read_dir(self.dir.path())?.count();
        let out = self.dir.path().join(format!("sub-{n}.log"));
        let mut command = Command::new("mosquitto_sub");
        self.client_args(&mut command, User::Observer);
        // One line per message: retained flag, topic, payload in hex (a
        // JPEG or a payload with newlines stays on its line).
        command.args(["-q", "1", "-F", "%r %t %x"]);
        for f in filters {
            command.args(["-t", f]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&out)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto_sub (Debian's mosquitto-clients)")?;
        Ok(Subscriber { child, out })
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One message as a subscriber saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub retained: bool,
    pub topic: String,
    /// The payload as text (lossy for binary payloads).
    pub payload: String,
    pub bytes: Vec<u8>,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.payload).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug)]
pub struct Subscriber {
    child: Child,
    out: PathBuf,
}

impl Subscriber {
    /// Every message so far, in order.
    pub fn messages(&self) -> Result<Vec<Message>> {
        let text = std::fs::read_to_string(&self.out)?;
        Ok(text
            .lines()
            .filter_map(|line| {
                let (retained, rest) = line.split_once(' ')?;
                let (topic, hex) = rest.split_once(' ').unwrap_or((rest, ""));
                let bytes: Vec<u8> = (0..hex.len() / 2)
                    .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
                    .collect();
                Some(Message {
                    retained: retained == "1",
                    topic: topic.to_owned(),
                    payload: String::from_utf8_lossy(&bytes).into_owned(),
                    bytes,
                })
            })
            .collect())
    }

    /// Messages on `topic`.
    pub fn on(&self, topic: &str) -> Result<Vec<Message>> {
        Ok(self
            .messages()?
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect())
    }

    /// Waits (up to `crate::WAIT`) for a message after the first `skip`
    /// for which `want` holds.
    pub fn wait(
        &self,
        what: &str,
        skip: usize,
        want: impl Fn(&Message) -> bool,
    ) -> Result<Message> {
        let deadline = Instant::now() + crate::WAIT;
        loop {
            let all = self.messages()?;
            if let Some(m) = all.iter().skip(skip).find(|m| want(m)) {
                return Ok(m.clone());
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = all
                    .iter()
                    .rev()
                    .take(15)
                    .map(|m| format!("{} {}", m.topic, vigil_domain::text::excerpt(&m.payload)))
                    .collect();
                bail!("no MQTT message showed {what}; the last ones (newest first): {tail:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many messages so far (to wait for newer ones).
    pub fn count(&self) -> Result<usize> {
        Ok(self.messages()?.len())
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A house on MQTT: the broker, the stack with `[mqtt]` (plus `extra`),
/// hub, sensord and the bridge (paired as `mqtt`, role user) running.
#[derive(Debug)]
pub struct House {
    pub broker: Broker,
    pub stack: Stack,
    pub hub: Service,
    pub sensord: Service,
    pub bridge: Service,
    pub hub_id: String,
}

impl House {
    /// As [`House::start_as`], the services running as the test's user.
    pub fn start(sensors: &str, extra: &str) -> Result<House> {
        House::start_as(sensors, extra, RunAs::Me)
    }

    /// `sensors` (TOML: `[gpio]`, `[[sensors]]`...) with `TEST_ALARM` and
    /// this broker's `[mqtt]`, then `extra`; the services run as `run_as`.
    pub fn start_as(sensors: &str, extra: &str, run_as: RunAs) -> Result<House> {
        let broker = Broker::start()?;
        let stack = Stack::new(&format!("{sensors}{TEST_ALARM}"), run_as)?;
        let bridge_credentials = stack.root.path().join("mqtt-credentials");
        let config = format!(
            "{sensors}{TEST_ALARM}{}{extra}",
            broker.config(&bridge_credentials, stack.grpc_port)
        );
        stack.write_config(&config)?;
        let hub = stack.start("vigil-hub")?;
        let sensord = stack.start("vigil-sensord")?;
        hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
        stack.pair_here("admin")?;
        stack.pair_client(&bridge_credentials, "mqtt", "user")?;
        let bridge = stack.start("vigil-mqttd")?;
        let hub_id = stack.ctl_json(&["system"])?["hub_id"]
            .as_str()
            .context("status has no hub_id")?
            .to_owned();
        Ok(House {
            broker,
            stack,
            hub,
            sensord,
            bridge,
            hub_id,
        })
    }

    pub fn topic(&self, rest: &str) -> String {
        format!("vigil/{}/{rest}", self.hub_id)
    }

    pub fn subscribe_all(&self) -> Result<Subscriber> {
        self.broker
            .subscribe(&["vigil/#", "homeassistant/#", "zigbee2mqtt/+/set"])
    }

    /// The latest payload on `topic` once `want` holds for it.
    pub fn wait_topic(
        &self,
        sub: &Subscriber,
        topic: &str,
        want: impl Fn(&str) -> bool,
    ) -> Result<Message> {
        let topic = self.topic(topic);
        sub.wait(&format!("{topic} as wanted"), 0, |m| {
            m.topic == topic && want(&m.payload)
        })
    }

    pub fn command(&self, payload: Value) -> Result<()> {
        self.broker.publish(
            User::HomeAssistant,
            &self.topic("alarm/set"),
            payload.to_string().as_bytes(),
            false,
        )
    }

    /// The next answer on alarm/result after the first `skip` messages.
    pub fn result_after(&self, sub: &Subscriber, skip: usize) -> Result<Value> {
        let topic = self.topic("alarm/result");
        Ok(sub
            .wait("a command's answer", skip, |m| m.topic == topic)?
            .json())
    }
}
