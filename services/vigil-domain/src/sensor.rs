//! Domain types. Each enum has a stable one-byte code because the shared
//! sensor table stores them; codes are part of the table format and must
//! never be renumbered (add new codes instead).

use std::fmt;

/// What a sensor watches. The kind decides whether it is a 24-hour zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SensorKind {
    Door,
    Window,
    Motion,
    Tamper,
    Panic,
    Smoke,
    Water,
}

impl SensorKind {
    pub const ALL: [SensorKind; 7] = [
        SensorKind::Door,
        SensorKind::Window,
        SensorKind::Motion,
        SensorKind::Tamper,
        SensorKind::Panic,
        SensorKind::Smoke,
        SensorKind::Water,
    ];

    /// 24-hour zones trigger in every mode, disarmed included.
    pub fn is_24_hour(self) -> bool {
        matches!(
            self,
            SensorKind::Tamper | SensorKind::Panic | SensorKind::Smoke | SensorKind::Water
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::Door => "door",
            SensorKind::Window => "window",
            SensorKind::Motion => "motion",
            SensorKind::Tamper => "tamper",
            SensorKind::Panic => "panic",
            SensorKind::Smoke => "smoke",
            SensorKind::Water => "water",
        }
    }

    pub fn parse(s: &str) -> Option<SensorKind> {
        SensorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Code stored in the shared table.
    pub fn code(self) -> u8 {
        match self {
            SensorKind::Door => 1,
            SensorKind::Window => 2,
            SensorKind::Motion => 3,
            SensorKind::Tamper => 4,
            SensorKind::Panic => 5,
            SensorKind::Smoke => 6,
            SensorKind::Water => 7,
        }
    }

    pub fn from_code(code: u8) -> Option<SensorKind> {
        SensorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// Words a person reads for the active and inactive state.
    pub fn state_words(self) -> (&'static str, &'static str) {
        match self {
            SensorKind::Door | SensorKind::Window => ("open", "closed"),
            SensorKind::Motion => ("motion", "still"),
            SensorKind::Tamper => ("tampered", "intact"),
            SensorKind::Panic => ("pressed", "released"),
            SensorKind::Smoke => ("smoke", "clear"),
            SensorKind::Water => ("wet", "dry"),
        }
    }
}

impl fmt::Display for SensorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The debounced state of a sensor input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SensorState {
    /// Not reported yet (sensord has not connected since the table was made).
    Unknown,
    /// At rest: door closed, no motion, loop intact.
    Inactive,
    /// Door open, motion seen, tamper loop open, panic pressed, smoke, water.
    Active,
}

impl SensorState {
    pub fn code(self) -> u8 {
        match self {
            SensorState::Unknown => 0,
            SensorState::Inactive => 1,
            SensorState::Active => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<SensorState> {
        match code {
            0 => Some(SensorState::Unknown),
            1 => Some(SensorState::Inactive),
            2 => Some(SensorState::Active),
            _ => None,
        }
    }

    /// The word for this state of a sensor of `kind` ("open", "closed", ...).
    pub fn describe(self, kind: SensorKind) -> &'static str {
        let (active, inactive) = kind.state_words();
        match self {
            SensorState::Unknown => "unknown",
            SensorState::Inactive => inactive,
            SensorState::Active => active,
        }
    }
}

/// The arming mode of the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ArmedMode {
    Disarmed,
    Home,
    Away,
    Night,
    Vacation,
    /// A mode of the homeowner's own: the sensors listing `custom` are armed.
    Custom,
}

impl ArmedMode {
    /// The modes a sensor can be armed in (every mode but disarmed).
    pub const ARMED: [ArmedMode; 5] = [
        ArmedMode::Home,
        ArmedMode::Away,
        ArmedMode::Night,
        ArmedMode::Vacation,
        ArmedMode::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArmedMode::Disarmed => "disarmed",
            ArmedMode::Home => "home",
            ArmedMode::Away => "away",
            ArmedMode::Night => "night",
            ArmedMode::Vacation => "vacation",
            ArmedMode::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<ArmedMode> {
        [ArmedMode::Disarmed]
            .into_iter()
            .chain(ArmedMode::ARMED)
            .find(|m| m.as_str() == s)
    }

    pub fn code(self) -> u8 {
        match self {
            ArmedMode::Disarmed => 0,
            ArmedMode::Home => 1,
            ArmedMode::Away => 2,
            ArmedMode::Night => 3,
            ArmedMode::Vacation => 4,
            ArmedMode::Custom => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<ArmedMode> {
        [ArmedMode::Disarmed]
            .into_iter()
            .chain(ArmedMode::ARMED)
            .find(|m| m.code() == code)
    }
}

impl fmt::Display for ArmedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the alarm is in its cycle, independent of the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlarmState {
    /// Nothing running: disarmed, or armed and quiet.
    Idle,
    /// Exit delay running.
    Arming,
    /// Entry delay running.
    Pending,
    /// Siren on.
    Triggered,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Idle => "idle",
            AlarmState::Arming => "arming",
            AlarmState::Pending => "pending",
            AlarmState::Triggered => "triggered",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            AlarmState::Idle => 0,
            AlarmState::Arming => 1,
            AlarmState::Pending => 2,
            AlarmState::Triggered => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<AlarmState> {
        [
            AlarmState::Idle,
            AlarmState::Arming,
            AlarmState::Pending,
            AlarmState::Triggered,
        ]
        .into_iter()
        .find(|s| s.code() == code)
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An electrical level on a GPIO pin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Low,
    High,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::High => "high",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "low" | "0" => Some(Level::Low),
            "high" | "1" => Some(Level::High),
            _ => None,
        }
    }
}

/// The pin's internal bias resistor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pull {
    Up,
    Down,
    Off,
}

impl Pull {
    pub fn as_str(self) -> &'static str {
        match self {
            Pull::Up => "up",
            Pull::Down => "down",
            Pull::Off => "off",
        }
    }

    pub fn parse(s: &str) -> Option<Pull> {
        match s {
            "up" => Some(Pull::Up),
            "down" => Some(Pull::Down),
            "off" | "none" => Some(Pull::Off),
            _ => None,
        }
    }
}

/// W3C trace context of the span that caused a change. It rides in the
/// shared table next to the change so the reader can continue the trace
/// (a signal carries only one integer). All zero means "no trace".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceContext {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl TraceContext {
    pub fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    /// `00-<trace id>-<span id>-<flags>`, the W3C `traceparent` header.
    pub fn traceparent(&self) -> String {
        let mut s = String::with_capacity(55);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id);
        s.push('-');
        push_hex(&mut s, &self.span_id);
        s.push('-');
        push_hex(&mut s, &[self.flags]);
        s
    }

    /// Reads a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`); `None`
    /// if it is not one, or names the all-zero trace or span.
    pub fn from_traceparent(text: &str) -> Option<TraceContext> {
        let mut parts = text.trim().split('-');
        if parts.next()? != "00" {
            return None;
        }
        fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
            if s.len() != 2 * N {
                return None;
            }
            let mut out = [0u8; N];
            for (i, b) in out.iter_mut().enumerate() {
                *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(out)
        }
        let context = TraceContext {
            trace_id: hex::<16>(parts.next()?)?,
            span_id: hex::<8>(parts.next()?)?,
            flags: hex::<1>(parts.next()?)?[0],
        };
        (parts.next().is_none() && context.is_valid()).then_some(context)
    }

    /// The trace id as 32 lowercase hex digits, as logs and collectors show it.
    pub fn trace_id_hex(&self) -> String {
        let mut s = String::with_capacity(32);
        push_hex(&mut s, &self.trace_id);
        s
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_rejects_garbage() {
        let context = TraceContext {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            flags: 1,
        };
        let text = context.traceparent();
        assert_eq!(TraceContext::from_traceparent(&text), Some(context));
        for bad in ["", "01-abab", &text[..50], &format!("{text}-00"), "00-zz"] {
            assert_eq!(TraceContext::from_traceparent(bad), None, "{bad}");
        }
        let zero = TraceContext::default().traceparent();
        assert_eq!(TraceContext::from_traceparent(&zero), None);
    }

    #[test]
    fn codes_round_trip() {
        for kind in SensorKind::ALL {
            assert_eq!(SensorKind::from_code(kind.code()), Some(kind));
            assert_eq!(SensorKind::parse(kind.as_str()), Some(kind));
        }
        for mode in [ArmedMode::Disarmed].into_iter().chain(ArmedMode::ARMED) {
            assert_eq!(ArmedMode::from_code(mode.code()), Some(mode));
            assert_eq!(ArmedMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(SensorKind::from_code(0), None);
        assert_eq!(SensorState::from_code(9), None);
    }

    #[test]
    fn traceparent_is_w3c_shaped() {
        let ctx = TraceContext {
            trace_id: [0xab; 16],
            span_id: [0x01; 8],
            flags: 1,
        };
        assert_eq!(
            ctx.traceparent(),
            "00-abababababababababababababababab-0101010101010101-01"
        );
        assert!(ctx.is_valid());
        assert!(!TraceContext::default().is_valid());
    }
}
