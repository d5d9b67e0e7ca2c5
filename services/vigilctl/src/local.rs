//! The views on the hub machine itself, which need its user or root and no
//! pairing: the shared sensor table (`status --local`) and a pairing code
//! asked for over the bootstrap socket (`pair`). Both only read or ask:
//! vigilctl never writes the table.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use vigil_bootstrap::{BootstrapError, ServiceRole};
use vigil_config::Config;
use vigil_ipc::table::{SensorReading, SensorTable, SlotDescriptor, SystemReading, TableError};

/// How long to wait for the hub's socket to answer: it is on this machine,
/// so a slow answer means a stuck hub.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The hub machine's socket or table could not be used (vigilctl exits 3:
/// for this client, the hub is as good as unreachable).
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("the hub's sensor table cannot be read: {0}")]
    Table(#[from] TableError),
    #[error("the hub refused: {0}")]
    Refused(String),
}

/// One sensor as read from the table.
#[derive(Clone, Debug)]
pub struct SensorStatus {
    pub slot: usize,
    pub descriptor: SlotDescriptor,
    pub reading: SensorReading,
}

/// A snapshot of the table.
#[derive(Clone, Debug)]
pub struct LocalStatus {
    pub hub_pid: u32,
    pub generation: u64,
    pub created_unix_ns: u64,
    pub system: SystemReading,
    pub sensors: Vec<SensorStatus>,
}

/// Asks the local hub for a one-time pairing code for a client of `role`.
pub fn request_pairing_code(
    config: &Config,
    role: &str,
    user: Option<String>,
    timeout: Duration,
) -> Result<vigil_bootstrap::PairingCode, LocalError> {
    let session =
        vigil_bootstrap::connect(&config.runtime.hub_socket(), ServiceRole::Reader, timeout)?;
    session
        .to_hub
        .send(vigil_bootstrap::ServiceMessage::CreatePairingCode {
            role: role.to_owned(),
            user,
        })
        .map_err(|_| LocalError::Bootstrap(BootstrapError::Disconnected { step: "asking" }))?;
    match session.from_hub.try_recv_timeout(timeout) {
        Ok(vigil_bootstrap::HubMessage::PairingCode(code)) => Ok(code),
        Ok(vigil_bootstrap::HubMessage::Refused { reason }) => Err(LocalError::Refused(reason)),
        _ => Err(LocalError::Bootstrap(BootstrapError::Timeout {
            step: "waiting for a pairing code",
        })),
    }
}

/// Joins the hub as a reader and reads the whole table.
pub fn local_status(config: &Config, timeout: Duration) -> Result<LocalStatus, LocalError> {
    let session =
        vigil_bootstrap::connect(&config.runtime.hub_socket(), ServiceRole::Reader, timeout)?;
    let table = SensorTable::from_fd(session.table)?;
    read_table(&table)
}

/// Reads every slot of `table`.
pub fn read_table(table: &SensorTable) -> Result<LocalStatus, LocalError> {
    let mut sensors = Vec::with_capacity(table.slot_count());
    for slot in 0..table.slot_count() {
        sensors.push(SensorStatus {
            slot,
            descriptor: table.descriptor(slot)?,
            reading: table.read_sensor(slot)?,
        });
    }
    Ok(LocalStatus {
        hub_pid: table.hub_pid(),
        generation: table.generation(),
        created_unix_ns: table.created_unix_ns(),
        system: table.read_system()?,
        sensors,
    })
}

fn rfc3339(unix_ns: u64) -> String {
    if unix_ns == 0 {
        return "never".to_owned();
    }
    let t = UNIX_EPOCH + Duration::from_nanos(unix_ns);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn ago(unix_ns: u64, now: SystemTime) -> String {
    if unix_ns == 0 {
        return "never".to_owned();
    }
    let t = UNIX_EPOCH + Duration::from_nanos(unix_ns);
    match now.duration_since(t) {
        Ok(d) => format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        ),
        Err(_) => "just now".to_owned(),
    }
}

impl LocalStatus {
    /// The status as JSON, for scripts. Field names are a stable interface.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "hub_pid": self.hub_pid,
            "generation": self.generation,
            "table_created": rfc3339(self.created_unix_ns),
            "system": {
                "mode": self.system.mode.as_str(),
                "alarm": self.system.alarm.as_str(),
                "change_count": self.system.change_count,
            },
            "sensors": self.sensors.iter().map(|s| json!({
                "slot": s.slot,
                "name": s.descriptor.name,
                "kind": s.descriptor.kind.as_str(),
                "state": s.reading.state.describe(s.descriptor.kind),
                "active": s.reading.state == vigil_domain::SensorState::Active,
                "fault": s.reading.fault,
                "tamper": s.reading.tamper,
                "bypassed": s.reading.bypassed,
                "change_count": s.reading.change_count,
                "last_change": rfc3339(s.reading.changed_unix_ns),
                "trace_id": s.reading.trace.is_valid().then(|| s.reading.trace.trace_id_hex()),
            })).collect::<Vec<_>>(),
        })
    }

    /// The status as a table for a person (every line ends in a newline).
    pub fn render(&self, now: SystemTime) -> String {
        let mut out = format!(
            "System: {} ({}), hub pid {}, table generation {}\n\n",
            self.system.mode, self.system.alarm, self.hub_pid, self.generation
        );
        out.push_str(&format!(
            "{:<22} {:<7} {:<9} {:<15} {:>7}  {}\n",
            "SENSOR", "KIND", "STATE", "FLAGS", "CHANGES", "LAST CHANGE"
        ));
        for s in &self.sensors {
            let r = &s.reading;
            out.push_str(&format!(
                "{:<22} {:<7} {:<9} {:<15} {:>7}  {}\n",
                s.descriptor.name,
                s.descriptor.kind.as_str(),
                r.state.describe(s.descriptor.kind),
                crate::output::flags(r.fault, r.tamper, r.bypassed),
                r.change_count,
                ago(r.changed_unix_ns, now),
            ));
        }
        out
    }
}

impl crate::output::Render for LocalStatus {
    fn json(&self) -> serde_json::Value {
        self.to_json()
    }

    fn text(&self) -> String {
        self.render(SystemTime::now())
    }
}
