//! `[outputs]`: the siren and the buzzer, each a GPIO output.

use serde::Deserialize;
use vigil_domain::Level;

use crate::check::Checker;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutputsFile {
    siren: Option<OutputFile>,
    buzzer: Option<OutputFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputFile {
    pin: Option<i64>,
    active: Option<String>,
}

/// A GPIO output (relay or transistor).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputConfig {
    pub pin: u8,
    pub active_level: Level,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputsConfig {
    pub siren: Option<OutputConfig>,
    pub buzzer: Option<OutputConfig>,
}

pub(crate) fn check(c: &mut Checker, f: OutputsFile) -> OutputsConfig {
    OutputsConfig {
        siren: output(c, "outputs.siren", f.siren),
        buzzer: output(c, "outputs.buzzer", f.buzzer),
    }
}

fn output(c: &mut Checker, key: &str, o: Option<OutputFile>) -> Option<OutputConfig> {
    let o = o?;
    let pin = c.pin(&format!("{key}.pin"), o.pin, key);
    let active_level = c.word(&format!("{key}.active"), o.active.as_deref(), Level::High);
    Some(OutputConfig {
        pin: pin?,
        active_level,
    })
}
