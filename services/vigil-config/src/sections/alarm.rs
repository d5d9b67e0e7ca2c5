//! `[alarm]`: the timing of each armed mode, the chime, double knock and
//! whether arming needs a PIN. The validated type, [`AlarmConfig`], is the
//! alarm's own (vigil-domain).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use vigil_domain::{AlarmConfig, ArmedMode, ModeTiming};

use crate::check::Checker;
use crate::limits::{DOUBLE_KNOCK_SECS, ENTRY_DELAY_SECS, EXIT_DELAY_SECS, TRIGGER_SECS};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmFile {
    chime: Option<bool>,
    double_knock_secs: Option<u64>,
    require_pin_to_arm: Option<bool>,
    #[serde(default)]
    modes: BTreeMap<String, ModeFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeFile {
    exit_delay_secs: Option<u64>,
    entry_delay_secs: Option<u64>,
    trigger_secs: Option<u64>,
}

pub(crate) fn check(c: &mut Checker, a: AlarmFile) -> AlarmConfig {
    let mut modes: BTreeMap<ArmedMode, ModeTiming> = ArmedMode::ARMED
        .into_iter()
        .map(|m| (m, ModeTiming::default_for(m)))
        .collect();
    for (name, m) in a.modes {
        let Some(mode) = ArmedMode::parse(&name).filter(|m| *m != ArmedMode::Disarmed) else {
            c.report(
                format!("alarm.modes.{name}"),
                format!("{name:?} is not an armed mode"),
                "use home, away, night, vacation or custom",
            );
            continue;
        };
        modes.insert(mode, timing(c, &name, mode, m));
    }
    let double_knock_secs = c.bounded(
        "alarm.double_knock_secs",
        a.double_knock_secs,
        &DOUBLE_KNOCK_SECS,
    );
    AlarmConfig {
        modes,
        chime: a.chime.unwrap_or(true),
        double_knock_window: Duration::from_secs(double_knock_secs),
        require_pin_to_arm: a.require_pin_to_arm.unwrap_or(false),
    }
}

/// One mode's timing: its mode's defaults, overridden by what the file sets.
fn timing(c: &mut Checker, name: &str, mode: ArmedMode, m: ModeFile) -> ModeTiming {
    let default = ModeTiming::default_for(mode);
    let mut secs = |field: &str, value: Option<u64>, default: Duration, limit| {
        let value = Some(value.unwrap_or(default.as_secs()));
        Duration::from_secs(c.bounded(&format!("alarm.modes.{name}.{field}"), value, limit))
    };
    ModeTiming {
        exit_delay: secs(
            "exit_delay_secs",
            m.exit_delay_secs,
            default.exit_delay,
            &EXIT_DELAY_SECS,
        ),
        entry_delay: secs(
            "entry_delay_secs",
            m.entry_delay_secs,
            default.entry_delay,
            &ENTRY_DELAY_SECS,
        ),
        trigger_time: secs(
            "trigger_secs",
            m.trigger_secs,
            default.trigger_time,
            &TRIGGER_SECS,
        ),
    }
}
