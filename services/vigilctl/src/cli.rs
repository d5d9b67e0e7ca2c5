//! vigilctl's commands: flags (clap) and what each does. `main` only parses
//! and calls [`run`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use tonic::transport::Channel;
use vigil_config::Config;
use vigil_proto::v1 as pb;
use vigil_proto::v1::admin_service_client::AdminServiceClient;
use vigil_proto::v1::alarm_service_client::AlarmServiceClient;
use vigil_proto::v1::camera_service_client::CameraServiceClient;
use vigil_proto::v1::report_service_client::ReportServiceClient;
use vigil_service::ConfigArgs;

use crate::remote::{self, Credentials, RemoteError, Token, exit};

const LOCAL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Parser)]
#[command(
    name = "vigilctl",
    version,
    about = "Command-line client of Vigil",
    after_help = "Exit codes: 0 ok, 1 failed, 2 bad flags, 3 hub unreachable, 4 not paired, \
                  5 wrong PIN or role, 6 locked out, 7 refused by the alarm's rules, 78 bad config"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON instead of text (one object per line for `events`).
    #[arg(long, global = true)]
    pub json: bool,
    /// The hub's address (host:port); default: the one stored at pairing.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub hub: Option<String>,
    /// The credentials directory; default $VIGIL_CREDENTIALS or ~/.config/vigil.
    #[arg(long, global = true, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Home,
    Away,
    Night,
    Vacation,
    Custom,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Guest,
    User,
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Guest => "guest",
            RoleArg::User => "user",
            RoleArg::Admin => "admin",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The mode, the alarm state, timers, open and bypassed sensors.
    Status {
        /// Read the shared sensor table on the hub machine instead (needs
        /// the hub's user or root; no pairing).
        #[arg(long)]
        local: bool,
    },
    /// Arm in MODE.
    Arm {
        #[arg(value_enum)]
        mode: ModeArg,
        /// Bypass open sensors instead of refusing.
        #[arg(long)]
        force: bool,
        /// A PIN, where the hub requires one to arm.
        #[arg(long)]
        pin: Option<String>,
    },
    /// Disarm (and silence the siren) with a PIN.
    Disarm {
        /// The PIN; `-` reads it from standard input.
        #[arg(long)]
        pin: String,
    },
    /// Sound the siren now.
    Panic,
    /// Bypass a sensor until the next disarm (or restore it with --off).
    Bypass {
        sensor: String,
        #[arg(long)]
        off: bool,
    },
    /// Every sensor and its live state.
    Sensors,
    /// The event stream.
    Events {
        /// Keep following new events (resumes by itself after a hub restart).
        #[arg(long)]
        follow: bool,
        /// Start after this sequence number (older events come from the
        /// hub's event log; 0: every event the hub keeps in memory).
        /// Default: the last 20 without --follow, only new ones with it.
        #[arg(long)]
        after: Option<u64>,
    },
    /// A daily or weekly report (alarms, who armed and disarmed, sensors,
    /// faults, cameras, busiest hours), as text, JSON or an HTML page.
    Report {
        /// The ISO week instead of the day.
        #[arg(long)]
        weekly: bool,
        /// A day in the period (YYYY-MM-DD, or YYYY-Www); default: today.
        #[arg(long, default_value = "")]
        date: String,
        /// Write the HTML page (with charts) to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<std::path::PathBuf>,
    },
    /// Past events from the hub's index, filtered, oldest first.
    History {
        /// Since (RFC 3339 time, or a duration ago such as 2h or 7days).
        #[arg(long)]
        since: Option<String>,
        /// Until (RFC 3339 time, or a duration ago).
        #[arg(long)]
        until: Option<String>,
        /// Only these kinds (repeat, or comma-separate): triggered, armed...
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        #[arg(long)]
        sensor: Option<String>,
        #[arg(long)]
        user: Option<String>,
        /// Newest first.
        #[arg(long)]
        newest_first: bool,
        /// At most this many events (all pages are fetched up to it).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The cameras and whether they are online.
    Cameras,
    /// Save a JPEG of a camera's newest key frame.
    Snapshot {
        camera: String,
        /// Where to write the JPEG.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: std::path::PathBuf,
    },
    /// Watch a camera's live H.264: print each frame (or write the raw
    /// Annex B stream to --output, playable with ffplay or gst-play-1.0).
    Live {
        camera: String,
        /// Stop after this many frames (default: run until Ctrl-C).
        #[arg(long)]
        frames: Option<u64>,
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<std::path::PathBuf>,
    },
    /// Record a clip now (pre-roll and post-capture as configured).
    Record { camera: String },
    /// The recorded clips, newest first.
    Clips,
    /// Download a clip (MP4).
    Clip {
        name: String,
        #[arg(long, short = 'o', value_name = "FILE")]
        output: std::path::PathBuf,
    },
    /// Pair a client. On the hub (as its user or root): make a one-time
    /// token, and with --here pair this machine too. Elsewhere: --token.
    Pair {
        /// The pairing token shown on the hub.
        #[arg(long, conflicts_with_all = ["role", "address"])]
        token: Option<String>,
        /// This client's name (with --token or --here).
        #[arg(long)]
        name: Option<String>,
        /// The role of the client the token is for.
        #[arg(long, value_enum, default_value = "user")]
        role: RoleArg,
        /// The hub address to put in the token (default: this host's name
        /// and the gRPC port).
        #[arg(long)]
        address: Option<String>,
        /// Pair this machine right away, under NAME.
        #[arg(long, value_name = "NAME")]
        here: Option<String>,
    },
    /// Paired clients (admin).
    Clients,
    /// Forget a paired client (admin).
    Revoke { name: String },
    /// Keypad users (admin).
    Users,
    /// Print the argon2 hash of a PIN read from standard input, for the config.
    HashPin,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn local_error(e: impl std::fmt::Display) -> RemoteError {
    RemoteError {
        code: exit::UNREACHABLE,
        message: e.to_string(),
    }
}

fn failed(message: impl Into<String>) -> RemoteError {
    RemoteError {
        code: exit::FAILED,
        message: message.into(),
    }
}

/// Reads a secret: without echo from a terminal, else one line of stdin.
fn read_secret_line(what: &str) -> Result<String, RemoteError> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("{what}: "))
            .map(|s| s.trim().to_owned())
            .map_err(|e| failed(format!("cannot read the {what}: {e}")));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| failed(format!("cannot read the {what}: {e}")))?;
    Ok(line.trim().to_owned())
}

fn mode_name(mode: i32) -> &'static str {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Disarmed) => "disarmed",
        Ok(pb::Mode::Home) => "armed home",
        Ok(pb::Mode::Away) => "armed away",
        Ok(pb::Mode::Night) => "armed night",
        Ok(pb::Mode::Vacation) => "armed vacation",
        Ok(pb::Mode::Custom) => "armed custom",
        _ => "unknown",
    }
}

fn state_name(state: i32) -> &'static str {
    match pb::AlarmState::try_from(state) {
        Ok(pb::AlarmState::Idle) => "idle",
        Ok(pb::AlarmState::Arming) => "arming",
        Ok(pb::AlarmState::Pending) => "pending",
        Ok(pb::AlarmState::Triggered) => "triggered",
        _ => "unknown",
    }
}

fn to_pb_mode(mode: ModeArg) -> pb::Mode {
    match mode {
        ModeArg::Home => pb::Mode::Home,
        ModeArg::Away => pb::Mode::Away,
        ModeArg::Night => pb::Mode::Night,
        ModeArg::Vacation => pb::Mode::Vacation,
        ModeArg::Custom => pb::Mode::Custom,
    }
}

fn seconds_until(unix_ms: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    (unix_ms - now).max(0).unsigned_abs().div_ceil(1000)
}

fn status_json(s: &pb::Status) -> serde_json::Value {
    json!({
        "mode": mode_name(s.mode).trim_start_matches("armed "),
        "state": state_name(s.state),
        "deadline_unix_ms": (s.deadline_unix_ms != 0).then_some(s.deadline_unix_ms),
        "siren": s.siren,
        "buzzer": s.buzzer,
        "bypassed": s.bypassed,
        "open": s.open,
        "faults": s.faults,
        "locked_until_unix_ms": (s.locked_until_unix_ms != 0).then_some(s.locked_until_unix_ms),
        "last_event_seq": s.last_event_seq,
    })
}

fn status_text(s: &pb::Status) -> String {
    let mut out = format!("{}, {}", mode_name(s.mode), state_name(s.state));
    if s.deadline_unix_ms != 0 {
        let what = match pb::AlarmState::try_from(s.state) {
            Ok(pb::AlarmState::Arming) => "exit delay ends",
            Ok(pb::AlarmState::Pending) => "entry delay ends",
            _ => "siren stops",
        };
        out.push_str(&format!(
            " ({what} in {} s)",
            seconds_until(s.deadline_unix_ms)
        ));
    }
    out.push('\n');
    out.push_str(&format!(
        "siren {}, buzzer {}\n",
        if s.siren { "ON" } else { "off" },
        if s.buzzer { "on" } else { "off" }
    ));
    for (label, list) in [
        ("open", &s.open),
        ("bypassed", &s.bypassed),
        ("faults", &s.faults),
    ] {
        if !list.is_empty() {
            out.push_str(&format!("{label}: {}\n", list.join(", ")));
        }
    }
    if s.locked_until_unix_ms != 0 {
        out.push_str(&format!(
            "PINs locked out for {} s\n",
            seconds_until(s.locked_until_unix_ms)
        ));
    }
    out
}

/// Prints one line per row: its JSON object with `--json`, else its text.
fn print_rows(json: bool, rows: impl IntoIterator<Item = (serde_json::Value, String)>) {
    for (object, text) in rows {
        if json {
            println!("{object}");
        } else {
            println!("{text}");
        }
    }
}

fn print_status(json: bool, status: &pb::Status) {
    if json {
        println!("{}", status_json(status));
    } else {
        print!("{}", status_text(status));
    }
}

pub(crate) fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Admin) => "admin",
        Ok(pb::Role::User) => "user",
        Ok(pb::Role::Guest) => "guest",
        _ => "unknown",
    }
}

fn event_json(e: &pb::Event) -> serde_json::Value {
    json!({
        "seq": e.seq,
        "unix_ms": e.unix_ms,
        "kind": e.kind,
        "sensor": (!e.sensor.is_empty()).then_some(&e.sensor),
        "mode": mode_name(e.mode).trim_start_matches("armed "),
        "state": state_name(e.state),
        "user": (!e.user.is_empty()).then_some(&e.user),
        "source": e.source,
        "message": e.message,
        "trace_id": (!e.trace_id.is_empty()).then_some(&e.trace_id),
    })
}

fn event_text(e: &pb::Event) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(e.unix_ms.max(0).unsigned_abs());
    format!(
        "{:>6}  {}  {}",
        e.seq,
        humantime::format_rfc3339_seconds(t),
        e.message
    )
}

struct Hub {
    alarm: AlarmServiceClient<Channel>,
    admin: AdminServiceClient<Channel>,
    reports: ReportServiceClient<Channel>,
    cameras: CameraServiceClient<Channel>,
    address: String,
}

impl Hub {
    async fn connect(cli: &Cli) -> Result<Hub, RemoteError> {
        let creds = Credentials::locate(cli.credentials.clone());
        let (channel, address) = remote::connect(&creds, cli.hub.as_deref()).await?;
        Ok(Hub {
            alarm: AlarmServiceClient::new(channel.clone()),
            admin: AdminServiceClient::new(channel.clone()),
            reports: ReportServiceClient::new(channel.clone()),
            cameras: CameraServiceClient::new(channel),
            address,
        })
    }

    fn error(&self, status: tonic::Status) -> RemoteError {
        RemoteError::from_status(&status, &self.address)
    }
}

fn load_config(cli: &Cli) -> Result<Config, RemoteError> {
    cli.config.source().load().map_err(|e| RemoteError {
        code: vigil_service::EX_CONFIG,
        message: e.to_string(),
    })
}

/// Runs one command; the error carries the exit code.
pub async fn run(cli: Cli) -> Result<(), RemoteError> {
    let json = cli.json;
    match &cli.command {
        Command::Status { local: true } => {
            let config = load_config(&cli)?;
            let status =
                tokio::task::spawn_blocking(move || crate::local_status(&config, LOCAL_TIMEOUT))
                    .await
                    .map_err(failed_join)?
                    .map_err(local_error)?;
            if json {
                println!("{}", status.to_json());
            } else {
                print!("{}", status.render(SystemTime::now()));
            }
        }
        Command::Status { local: false } => {
            let mut hub = Hub::connect(&cli).await?;
            let answer = hub.alarm.get_status(pb::GetStatusRequest {}).await;
            let status = answer
                .map_err(|s| hub.error(s))?
                .into_inner()
                .status
                .unwrap_or_default();
            print_status(json, &status);
        }
        Command::Arm { mode, force, pin } => {
            let mut hub = Hub::connect(&cli).await?;
            let request = pb::ArmRequest {
                mode: to_pb_mode(*mode) as i32,
                force: *force,
                pin: pin.clone().unwrap_or_default(),
            };
            let answer = hub
                .alarm
                .arm(request)
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            let status = answer.status.unwrap_or_default();
            if json {
                println!(
                    "{}",
                    json!({"status": status_json(&status), "bypassed": answer.bypassed})
                );
            } else {
                if !answer.bypassed.is_empty() {
                    println!("bypassed: {}", answer.bypassed.join(", "));
                }
                print!("{}", status_text(&status));
            }
        }
        Command::Disarm { pin } => {
            let pin = if pin == "-" {
                read_secret_line("PIN")?
            } else {
                pin.clone()
            };
            let mut hub = Hub::connect(&cli).await?;
            let answer = hub
                .alarm
                .disarm(pb::DisarmRequest { pin })
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            let status = answer.status.unwrap_or_default();
            if json {
                println!(
                    "{}",
                    json!({"status": status_json(&status), "user": answer.user})
                );
            } else {
                println!("disarmed by {}", answer.user);
                print!("{}", status_text(&status));
            }
        }
        Command::Panic => {
            let mut hub = Hub::connect(&cli).await?;
            let answer = hub
                .alarm
                .panic(pb::PanicRequest {})
                .await
                .map_err(|s| hub.error(s))?;
            let status = answer.into_inner().status.unwrap_or_default();
            print_status(json, &status);
        }
        Command::Bypass { sensor, off } => {
            let mut hub = Hub::connect(&cli).await?;
            let request = pb::BypassRequest {
                sensor: sensor.clone(),
                bypass: !off,
            };
            let answer = hub.alarm.bypass(request).await.map_err(|s| hub.error(s))?;
            let status = answer.into_inner().status.unwrap_or_default();
            print_status(json, &status);
        }
        Command::Sensors => {
            let mut hub = Hub::connect(&cli).await?;
            let answer = hub
                .alarm
                .list_sensors(pb::ListSensorsRequest {})
                .await
                .map_err(|s| hub.error(s))?;
            let sensors = answer.into_inner().sensors;
            if json {
                let list: Vec<_> = sensors
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name, "kind": s.kind, "state": s.state,
                            "active": s.active, "fault": s.fault, "tamper": s.tamper,
                            "bypassed": s.bypassed, "twenty_four_hour": s.twenty_four_hour,
                            "modes": s.modes.iter().map(|m| mode_name(*m).trim_start_matches("armed ")).collect::<Vec<_>>(),
                            "change_count": s.change_count,
                            "last_change_unix_ms": s.last_change_unix_ms,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                println!(
                    "{:<22} {:<7} {:<9} {:<16} MODES",
                    "SENSOR", "KIND", "STATE", "FLAGS"
                );
                for s in &sensors {
                    let flags: Vec<&str> = [
                        (s.fault, "fault"),
                        (s.tamper, "tamper"),
                        (s.bypassed, "bypassed"),
                    ]
                    .into_iter()
                    .filter_map(|(on, f)| on.then_some(f))
                    .collect();
                    let modes = if s.twenty_four_hour {
                        "24-hour".to_owned()
                    } else {
                        s.modes
                            .iter()
                            .map(|m| mode_name(*m).trim_start_matches("armed "))
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    println!(
                        "{:<22} {:<7} {:<9} {:<16} {modes}",
                        s.name,
                        s.kind,
                        s.state,
                        if flags.is_empty() {
                            "-".to_owned()
                        } else {
                            flags.join(",")
                        },
                    );
                }
            }
        }
        Command::Events { follow, after } => {
            events(&cli, *follow, *after, json).await?;
        }
        Command::Cameras
        | Command::Snapshot { .. }
        | Command::Live { .. }
        | Command::Record { .. }
        | Command::Clips
        | Command::Clip { .. } => cameras(&cli, json).await?,
        Command::Report { weekly, date, html } => {
            report(&cli, *weekly, date, html.as_deref(), json).await?;
        }
        Command::History {
            since,
            until,
            kind,
            sensor,
            user,
            newest_first,
            limit,
        } => {
            let request = pb::QueryEventsRequest {
                from_unix_ms: since.as_deref().map(parse_when).transpose()?.unwrap_or(0),
                to_unix_ms: until.as_deref().map(parse_when).transpose()?.unwrap_or(0),
                kinds: kind.clone(),
                sensor: sensor.clone().unwrap_or_default(),
                user: user.clone().unwrap_or_default(),
                newest_first: *newest_first,
                page_size: 0,
                page_token: String::new(),
            };
            history(&cli, request, *limit, json).await?;
        }
        Command::Pair {
            token: Some(token),
            name,
            ..
        } => {
            let name = name
                .clone()
                .ok_or_else(|| failed("give this client a --name"))?;
            let token = Token::parse(token)?;
            let creds = Credentials::locate(cli.credentials.clone());
            let role = remote::pair(&creds, &token, &name).await?;
            if json {
                println!(
                    "{}",
                    json!({"paired": name, "role": role, "hub": token.hub})
                );
            } else {
                println!(
                    "paired as {name} ({role}) with the hub at {}; credentials in {}",
                    token.hub,
                    creds.dir.display()
                );
            }
        }
        Command::Pair {
            token: None,
            role,
            address,
            here,
            ..
        } => {
            let config = load_config(&cli)?;
            let role_name = role.as_str();
            let code = tokio::task::spawn_blocking(move || {
                crate::request_pairing_code(&config, role_name, LOCAL_TIMEOUT)
            })
            .await
            .map_err(failed_join)?
            .map_err(local_error)?;
            let listen: std::net::SocketAddr = code
                .grpc_listen
                .parse()
                .map_err(|_| failed(format!("the hub listens on {:?}", code.grpc_listen)))?;
            let local = if listen.ip().is_unspecified() {
                format!("127.0.0.1:{}", listen.port())
            } else {
                listen.to_string()
            };
            let public = address.clone().unwrap_or_else(|| {
                if listen.ip().is_unspecified() {
                    let host = nix::unistd::gethostname()
                        .ok()
                        .and_then(|h| h.into_string().ok())
                        .unwrap_or_else(|| "localhost".into());
                    format!("{host}:{}", listen.port())
                } else {
                    listen.to_string()
                }
            });
            let token = Token {
                hub: public,
                code: code.code.clone(),
                ca_sha256: code.ca_sha256.clone(),
            };
            if let Some(name) = here {
                let creds = Credentials::locate(cli.credentials.clone());
                let local_token = Token {
                    hub: local,
                    ..token.clone()
                };
                let role = remote::pair(&creds, &local_token, name).await?;
                if json {
                    println!(
                        "{}",
                        json!({"paired": name, "role": role, "hub": local_token.hub})
                    );
                } else {
                    println!(
                        "paired this machine as {name} ({role}); credentials in {}",
                        creds.dir.display()
                    );
                }
            } else if json {
                println!(
                    "{}",
                    json!({"token": token.encode(), "code": code.code, "role": code.role,
                           "expires_unix_ms": code.expires_unix_ms, "ca_sha256": code.ca_sha256})
                );
            } else {
                println!(
                    "Pairing code for a {} client, valid for 10 minutes and one use:\n\n  {}\n",
                    code.role, code.code
                );
                println!(
                    "On the client:\n\n  vigilctl pair --name NAME --token '{}'\n",
                    token.encode()
                );
                if let Some(qr) = remote::qr(&token.encode()) {
                    println!("or scan this in the app:\n{qr}");
                }
            }
        }
        Command::Clients => {
            let mut hub = Hub::connect(&cli).await?;
            let answer = hub
                .admin
                .list_clients(pb::ListClientsRequest {})
                .await
                .map_err(|s| hub.error(s))?;
            print_rows(
                json,
                answer.into_inner().clients.into_iter().map(|c| {
                    let role = role_name(c.role);
                    let text = format!("{:<24} {:<11} {}", c.name, role, c.certificate_sha256);
                    let object = json!({"name": c.name, "role": role,
                        "certificate_sha256": c.certificate_sha256,
                        "paired_unix_ms": c.paired_unix_ms});
                    (object, text)
                }),
            );
        }
        Command::Revoke { name } => {
            let mut hub = Hub::connect(&cli).await?;
            hub.admin
                .revoke_client(pb::RevokeClientRequest { name: name.clone() })
                .await
                .map_err(|s| hub.error(s))?;
            println!("revoked {name}");
        }
        Command::Users => {
            let mut hub = Hub::connect(&cli).await?;
            let answer = hub
                .admin
                .list_users(pb::ListUsersRequest {})
                .await
                .map_err(|s| hub.error(s))?;
            print_rows(
                json,
                answer.into_inner().users.into_iter().map(|u| {
                    let role = role_name(u.role);
                    let duress = if u.has_duress_code {
                        " (duress code set)"
                    } else {
                        ""
                    };
                    let text = format!("{:<24} {role}{duress}", u.name);
                    let object =
                        json!({"name": u.name, "role": role, "has_duress_code": u.has_duress_code});
                    (object, text)
                }),
            );
        }
        Command::HashPin => {
            let pin = read_secret_line("PIN")?;
            let hash = vigil_alarm::users::hash_pin(&pin).map_err(|e| failed(e.to_string()))?;
            println!("{hash}");
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "vigilctl", &mut std::io::stdout());
        }
    }
    Ok(())
}

fn failed_join(e: tokio::task::JoinError) -> RemoteError {
    failed(format!("internal task failed: {e}"))
}

/// The camera commands.
async fn cameras(cli: &Cli, json: bool) -> Result<(), RemoteError> {
    let mut hub = Hub::connect(cli).await?;
    let write = |path: &std::path::Path, bytes: &[u8]| {
        std::fs::write(path, bytes)
            .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))
    };
    match &cli.command {
        Command::Cameras => {
            let list = hub
                .cameras
                .list_cameras(pb::ListCamerasRequest {})
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            print_rows(
                json,
                list.cameras.into_iter().map(|c| {
                    let text = format!(
                        "{:<16} {:<8} {}x{}@{} {} frames, {:.1} s buffered",
                        c.name,
                        if c.online { "online" } else { "OFFLINE" },
                        c.width,
                        c.height,
                        c.fps,
                        c.frames,
                        c.buffered_seconds
                    );
                    let object = serde_json::json!({
                        "name": c.name, "online": c.online, "width": c.width,
                        "height": c.height, "fps": c.fps, "frames": c.frames,
                        "last_seen_unix_ms": c.last_seen_unix_ms,
                        "buffered_seconds": c.buffered_seconds,
                        "buffered_bytes": c.buffered_bytes,
                    });
                    (object, text)
                }),
            );
        }
        Command::Snapshot { camera, output } => {
            let shot = hub
                .cameras
                .snapshot(pb::SnapshotRequest {
                    camera: camera.clone(),
                })
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            write(output, &shot.jpeg)?;
            println!(
                "wrote a {} byte JPEG to {}",
                shot.jpeg.len(),
                output.display()
            );
        }
        Command::Live {
            camera,
            frames,
            output,
        } => {
            let mut stream = hub
                .cameras
                .watch_live(pb::WatchLiveRequest {
                    camera: camera.clone(),
                })
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            let mut file = match output {
                Some(p) => Some(
                    std::fs::File::create(p)
                        .map_err(|e| failed(format!("cannot create {}: {e}", p.display())))?,
                ),
                None => None,
            };
            let mut seen = 0u64;
            while frames.is_none_or(|n| seen < n) {
                let Some(frame) = stream.message().await.map_err(|s| hub.error(s))? else {
                    break;
                };
                seen += 1;
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    f.write_all(&frame.data)
                        .map_err(|e| failed(format!("writing the stream: {e}")))?;
                } else if json {
                    println!(
                        "{}",
                        serde_json::json!({"pts_us": frame.pts_us, "key": frame.key, "bytes": frame.data.len()})
                    );
                } else {
                    println!(
                        "{:>12} us {} {} bytes",
                        frame.pts_us,
                        if frame.key { "KEY  " } else { "delta" },
                        frame.data.len()
                    );
                }
            }
        }
        Command::Record { camera } => {
            let clip = hub
                .cameras
                .record_clip(pb::RecordClipRequest {
                    camera: camera.clone(),
                })
                .await
                .map_err(|s| hub.error(s))?
                .into_inner()
                .clip
                .unwrap_or_default();
            if json {
                println!("{}", clip_json(&clip));
            } else {
                println!(
                    "recorded {} ({:.1} s, {} bytes)",
                    clip.name, clip.seconds, clip.bytes
                );
            }
        }
        Command::Clips => {
            let list = hub
                .cameras
                .list_clips(pb::ListClipsRequest {})
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            print_rows(
                json,
                list.clips.iter().map(|clip| {
                    let text =
                        format!("{}  {:.1} s  {} bytes", clip.name, clip.seconds, clip.bytes);
                    (clip_json(clip), text)
                }),
            );
        }
        Command::Clip { name, output } => {
            let mut stream = hub
                .cameras
                .get_clip(pb::GetClipRequest { name: name.clone() })
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.message().await.map_err(|s| hub.error(s))? {
                bytes.extend_from_slice(&chunk.data);
            }
            write(output, &bytes)?;
            println!("wrote {} ({} bytes)", output.display(), bytes.len());
        }
        _ => {}
    }
    Ok(())
}

fn clip_json(clip: &pb::Clip) -> serde_json::Value {
    serde_json::json!({
        "name": clip.name, "camera": clip.camera, "reason": clip.reason,
        "unix_ms": clip.unix_ms, "bytes": clip.bytes, "seconds": clip.seconds,
    })
}

/// A time given on the command line: RFC 3339, or a duration ago.
fn parse_when(text: &str) -> Result<i64, RemoteError> {
    let bad = || RemoteError {
        code: exit::USAGE,
        message: format!(
            "{text:?} is not a time: give an RFC 3339 time (2026-11-24T08:00:00Z) or a duration \
             ago (90m, 2h, 7days)"
        ),
    };
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| bad())?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(bad)?
        }
    };
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis();
    i64::try_from(ms).map_err(|_| bad())
}

/// Prints a report: a summary as text, the JSON, or the HTML page to a file.
async fn report(
    cli: &Cli,
    weekly: bool,
    date: &str,
    html: Option<&std::path::Path>,
    json: bool,
) -> Result<(), RemoteError> {
    let mut hub = Hub::connect(cli).await?;
    let format = if html.is_some() {
        pb::ReportFormat::Html
    } else {
        pb::ReportFormat::Json
    };
    let response = hub
        .reports
        .get_report(pb::GetReportRequest {
            period: if weekly {
                pb::ReportPeriod::Weekly
            } else {
                pb::ReportPeriod::Daily
            }
            .into(),
            date: date.to_owned(),
            format: format.into(),
        })
        .await
        .map_err(|s| hub.error(s))?
        .into_inner();
    if let Some(path) = html {
        std::fs::write(path, &response.body)
            .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
        println!("wrote the report {} to {}", response.label, path.display());
        return Ok(());
    }
    let body = String::from_utf8_lossy(&response.body);
    if json {
        println!("{body}");
        return Ok(());
    }
    let report: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| failed(format!("the hub sent a report that is not JSON: {e}")))?;
    let totals = &report["totals"];
    println!(
        "Report {} (indexed through event {})",
        response.label, response.indexed_through_seq
    );
    println!(
        "events {}  alarms {}  armed {}  disarmed {}  faults {}  tamper {}",
        totals["events"],
        totals["alarms"],
        totals["arms"],
        totals["disarms"],
        totals["faults"],
        totals["tampers"]
    );
    for alarm in report["alarms"].as_array().into_iter().flatten() {
        println!(
            "ALARM at {}: {} (disarmed by {})",
            time_text(alarm["unix_ms"].as_i64().unwrap_or(0)),
            alarm["message"].as_str().unwrap_or(""),
            alarm["disarmed_by"].as_str().unwrap_or("nobody yet")
        );
    }
    for entry in report["timeline"].as_array().into_iter().flatten() {
        println!(
            "{}  {:<9} {:<8} by {} ({})",
            time_text(entry["unix_ms"].as_i64().unwrap_or(0)),
            entry["kind"].as_str().unwrap_or(""),
            entry["mode"].as_str().unwrap_or(""),
            entry["user"].as_str().unwrap_or("-"),
            entry["source"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

fn time_text(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Pages through QueryEvents up to `limit` events.
async fn history(
    cli: &Cli,
    mut request: pb::QueryEventsRequest,
    limit: usize,
    json: bool,
) -> Result<(), RemoteError> {
    let mut hub = Hub::connect(cli).await?;
    let mut printed = 0;
    while printed < limit {
        request.page_size = u32::try_from((limit - printed).min(1000)).unwrap_or(1000);
        let page = hub
            .reports
            .query_events(request.clone())
            .await
            .map_err(|s| hub.error(s))?
            .into_inner();
        for event in &page.events {
            if json {
                println!("{}", event_json(event));
            } else {
                println!("{}", event_text(event));
            }
        }
        printed += page.events.len();
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    Ok(())
}

/// Without `follow`: the events after `after` (default: the last 20) up to
/// now. With `follow`: from `after` on, for ever, reconnecting and resuming
/// after the last event seen whenever the stream ends (a hub restart, or
/// falling behind).
async fn events(
    cli: &Cli,
    follow: bool,
    after: Option<u64>,
    json: bool,
) -> Result<(), RemoteError> {
    let mut last = after;
    let mut until = None;
    if !follow {
        let mut hub = Hub::connect(cli).await?;
        let status = hub
            .alarm
            .get_status(pb::GetStatusRequest {})
            .await
            .map_err(|s| hub.error(s))?
            .into_inner()
            .status
            .unwrap_or_default();
        let newest = status.last_event_seq;
        let start = after.unwrap_or(newest.saturating_sub(20));
        if start >= newest {
            return Ok(());
        }
        last = Some(start);
        until = Some(newest);
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        let result: Result<(), RemoteError> = async {
            let mut hub = Hub::connect(cli).await?;
            let mut stream = hub
                .alarm
                .watch_events(pb::WatchEventsRequest { after_seq: last })
                .await
                .map_err(|s| hub.error(s))?
                .into_inner();
            backoff = Duration::from_millis(100);
            loop {
                match stream.message().await {
                    Ok(Some(event)) => {
                        last = Some(event.seq);
                        if json {
                            println!("{}", event_json(&event));
                        } else {
                            println!("{}", event_text(&event));
                        }
                        if until.is_some_and(|u| event.seq >= u) {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Ok(()),
                    Err(status) => return Err(hub.error(status)),
                }
            }
        }
        .await;
        match result {
            Ok(()) if !follow => return Ok(()),
            Err(e) if !follow => return Err(e),
            Err(e) if e.code == exit::NOT_PAIRED || e.code == exit::DENIED => return Err(e),
            _ => {
                eprintln!(
                    "vigilctl: event stream interrupted; resuming after {}",
                    last.map_or("now".to_owned(), |l| l.to_string())
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
