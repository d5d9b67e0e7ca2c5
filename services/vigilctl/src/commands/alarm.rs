//! The commands that change the alarm: `arm`, `disarm`, `panic` and
//! `bypass`. Each answers with the status after the change.

use clap::ValueEnum;
use vigil_proto::v1 as pb;

use super::{Ask, Context, Run, read_secret};
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render};

/// Arm in MODE.
#[derive(Debug, clap::Args)]
pub struct Arm {
    #[arg(value_enum)]
    pub mode: ModeArg,
    /// Bypass open sensors instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// A PIN, where the hub requires one to arm.
    #[arg(long)]
    pub pin: Option<String>,
}

/// The armed modes, as `arm` takes them.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Home,
    Away,
    Night,
    Vacation,
    Custom,
}

impl From<ModeArg> for pb::Mode {
    fn from(mode: ModeArg) -> pb::Mode {
        match mode {
            ModeArg::Home => pb::Mode::Home,
            ModeArg::Away => pb::Mode::Away,
            ModeArg::Night => pb::Mode::Night,
            ModeArg::Vacation => pb::Mode::Vacation,
            ModeArg::Custom => pb::Mode::Custom,
        }
    }
}

impl Ask for Arm {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let request = pb::ArmRequest {
            mode: pb::Mode::from(self.mode).into(),
            force: self.force,
            pin: self.pin.clone().unwrap_or_default(),
        };
        let armed = hub.answer(hub.alarm().arm(request).await)?;
        let bypassed = armed.bypassed.join(", ");
        let note = (!bypassed.is_empty()).then(|| format!("bypassed: {bypassed}"));
        out.show(&Changed::new(
            armed.status,
            "bypassed",
            armed.bypassed,
            note,
        ));
        Ok(())
    }
}

/// Disarm (and silence the siren) with a PIN.
#[derive(Debug, clap::Args)]
pub struct Disarm {
    /// The PIN; `-` reads it from standard input.
    #[arg(long)]
    pub pin: String,
}

impl Run for Disarm {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        // Read before connecting: a person typing it should not hold a
        // connection open, or time out on it.
        let pin = if self.pin == "-" {
            read_secret("PIN")?
        } else {
            self.pin.clone()
        };
        let hub = ctx.connect().await?;
        let disarmed = hub.answer(hub.alarm().disarm(pb::DisarmRequest { pin }).await)?;
        let note = format!("disarmed by {}", disarmed.user);
        ctx.out.show(&Changed::new(
            disarmed.status,
            "user",
            disarmed.user,
            Some(note),
        ));
        Ok(())
    }
}

/// The status after arming or disarming, with what the hub said besides:
/// one more JSON field beside `status`, and a line above the status text.
struct Changed {
    status: pb::Status,
    key: &'static str,
    value: serde_json::Value,
    note: Option<String>,
}

impl Changed {
    fn new(
        status: Option<pb::Status>,
        key: &'static str,
        value: impl Into<serde_json::Value>,
        note: Option<String>,
    ) -> Changed {
        Changed {
            status: status.unwrap_or_default(),
            key,
            value: value.into(),
            note,
        }
    }
}

impl Render for Changed {
    fn json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        object.insert("status".to_owned(), self.status.json());
        object.insert(self.key.to_owned(), self.value.clone());
        serde_json::Value::Object(object)
    }

    fn text(&self) -> String {
        let status = self.status.text();
        match &self.note {
            Some(note) => format!("{note}\n{status}"),
            None => status,
        }
    }
}

/// Sound the siren now.
#[derive(Debug, clap::Args)]
pub struct Panic {}

impl Ask for Panic {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let answer = hub.answer(hub.alarm().panic(pb::PanicRequest {}).await)?;
        out.show(&answer.status.unwrap_or_default());
        Ok(())
    }
}

/// Bypass a sensor until the next disarm (or restore it with --off).
/// While the system is armed, bypassing needs a PIN.
#[derive(Debug, clap::Args)]
pub struct Bypass {
    pub sensor: String,
    #[arg(long)]
    pub off: bool,
    /// A user's PIN: needed to bypass while armed.
    #[arg(long)]
    pub pin: Option<String>,
}

impl Ask for Bypass {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let request = pb::BypassRequest {
            sensor: self.sensor.clone(),
            bypass: !self.off,
            pin: self.pin.clone().unwrap_or_default(),
        };
        let answer = hub.answer(hub.alarm().bypass(request).await)?;
        out.show(&answer.status.unwrap_or_default());
        Ok(())
    }
}
