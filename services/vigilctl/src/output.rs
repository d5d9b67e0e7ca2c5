//! The one place that reads `--json`: a command hands over a value and
//! [`Output`] prints its text or its JSON. Also the words vigilctl uses for
//! the API's enums and times, shared by every command's text and JSON.

use std::convert::Infallible;
use std::time::{Duration, UNIX_EPOCH};

use vigil_proto::v1 as pb;

/// A value a command prints, in both forms.
pub trait Render {
    /// The JSON form for scripts: printed on one line; its field names are a
    /// stable interface.
    fn json(&self) -> serde_json::Value;
    /// The text form for a person: every line ends in a newline.
    fn text(&self) -> String;
}

/// Rows borrowed from the answer they came in render as themselves.
impl<T: Render> Render for &T {
    fn json(&self) -> serde_json::Value {
        (**self).json()
    }

    fn text(&self) -> String {
        (**self).text()
    }
}

/// Where a command's answer goes, in the form the flags asked for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Output {
        Output { json }
    }

    /// Prints `value` in the asked-for form.
    pub(crate) fn show(self, value: &impl Render) {
        let Ok(()) =
            self.either::<Infallible>(|| Ok(value.json().to_string()), || Ok(value.text()));
    }

    /// Prints each of `values`: one JSON object a line, or each one's text.
    pub(crate) fn rows<T: Render>(self, values: impl IntoIterator<Item = T>) {
        for value in values {
            self.show(&value);
        }
    }

    /// Prints a line that has one form only, whatever `--json` says: a
    /// confirmation that a file was written, a hash for a config file.
    pub(crate) fn say(self, line: impl std::fmt::Display) {
        emit(format_args!("{line}\n"));
    }

    /// Prints the asked-for form, made only when asked for: for an answer
    /// whose JSON is the hub's own text and whose text has to be parsed
    /// from it (a report), so either may fail. `json` is one line without
    /// its newline; `text` ends in one.
    pub(crate) fn either<E>(
        self,
        json: impl FnOnce() -> Result<String, E>,
        text: impl FnOnce() -> Result<String, E>,
    ) -> Result<(), E> {
        if self.json {
            emit(format_args!("{}\n", json()?));
        } else {
            emit(format_args!("{}", text()?));
        }
        Ok(())
    }
}

/// Writes to standard output. A reader that has gone (`vigilctl events
/// --follow | head -1`) ends vigilctl at once and quietly, as SIGPIPE ends
/// a C program (println! would panic); any other failure to write is said
/// on stderr, exit 1.
fn emit(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("vigilctl: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// A mode as a person reads it ("armed away", "disarmed").
pub(crate) fn mode_name(mode: i32) -> &'static str {
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

/// A mode as one word, as JSON and lists of modes give it ("away").
pub(crate) fn mode_word(mode: i32) -> &'static str {
    mode_name(mode).trim_start_matches("armed ")
}

pub(crate) fn state_name(state: i32) -> &'static str {
    match pb::AlarmState::try_from(state) {
        Ok(pb::AlarmState::Idle) => "idle",
        Ok(pb::AlarmState::Arming) => "arming",
        Ok(pb::AlarmState::Pending) => "pending",
        Ok(pb::AlarmState::Triggered) => "triggered",
        _ => "unknown",
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

/// A sensor's flags as one column: "fault,bypassed", or "-" for none.
pub(crate) fn flags(fault: bool, tamper: bool, bypassed: bool) -> String {
    let on: Vec<&str> = [(fault, "fault"), (tamper, "tamper"), (bypassed, "bypassed")]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
    if on.is_empty() {
        "-".to_owned()
    } else {
        on.join(",")
    }
}

/// A time in Unix milliseconds as RFC 3339 to the second (times before
/// 1970, which no hub sends, show as 1970).
pub(crate) fn time_text(unix_ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_as_a_column() {
        assert_eq!(flags(false, false, false), "-");
        assert_eq!(flags(true, false, true), "fault,bypassed");
    }

    #[test]
    fn times_before_1970_show_as_1970() {
        assert_eq!(time_text(-5), "1970-01-01T00:00:00Z");
        assert_eq!(time_text(86_400_000), "1970-01-02T00:00:00Z");
    }
}
