//! What a sensor's wire means: debouncing and supervision, as pure logic
//! (time is passed in) so every rule is tested without a clock.
//!
//! - Debounce: a new level counts only once it has held for the sensor's
//!   `debounce`; a bounce back before then is forgotten.
//! - Supervision: a sensor with a `supervision` window that shows no edge
//!   for that long is reported as a fault until it shows life again.
//! - Tamper: a tamper loop that opens is both tampered and a fault.
//! - A wireless device (Zigbee) also reports its own health: offline,
//!   unheard (the broker is away), a low battery or its tamper switch,
//!   each a fault until it clears ([`DeviceHealth`]).

use std::time::Instant;

use vigil_config::SensorConfig;
use vigil_domain::{Level, SensorKind, SensorState};

/// What sensord publishes for one sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Report {
    pub state: SensorState,
    pub fault: bool,
    pub tamper: bool,
}

/// Why a report changed, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A debounced level change.
    Level,
    /// The supervision window ran out.
    Silent,
    /// Life after a supervision fault.
    Alive,
    /// A wireless device's own health changed.
    Device,
}

/// What a wireless device says about itself. All false for a wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceHealth {
    /// zigbee2mqtt says the device is offline.
    pub offline: bool,
    /// sensord cannot hear it: the broker is unreachable.
    pub unheard: bool,
    pub battery_low: bool,
    /// The device's tamper switch (its case is open).
    pub tamper: bool,
}

impl DeviceHealth {
    fn is_fault(self) -> bool {
        self.offline || self.unheard || self.battery_low || self.tamper
    }

    /// The first fault, for the log.
    pub fn describe(self) -> &'static str {
        if self.unheard {
            "cannot be heard (the MQTT broker is unreachable)"
        } else if self.offline {
            "is offline in zigbee2mqtt"
        } else if self.tamper {
            "reports its case opened (tamper)"
        } else if self.battery_low {
            "reports a low battery"
        } else {
            "is healthy again"
        }
    }
}

#[derive(Debug)]
pub struct SensorTracker {
    pub config: SensorConfig,
    /// A raw level waiting out the debounce, and since when.
    pending: Option<(Level, Instant)>,
    state: SensorState,
    silent: bool,
    last_activity: Instant,
    device: DeviceHealth,
    /// What the device said since the last poll, applied by the next.
    device_news: Option<DeviceHealth>,
}

impl SensorTracker {
    /// Starts from the level the pin reads now (no debounce at start: the
    /// wire has had all the time in the world to settle).
    pub fn new(config: SensorConfig, level_now: Level, now: Instant) -> SensorTracker {
        let state = state_for(&config, level_now);
        SensorTracker {
            config,
            pending: None,
            state,
            silent: false,
            last_activity: now,
            device: DeviceHealth::default(),
            device_news: None,
        }
    }

    /// A wireless sensor: unknown until its device reports, and unheard
    /// until the broker is reached.
    pub fn new_wireless(config: SensorConfig, now: Instant) -> SensorTracker {
        SensorTracker {
            config,
            pending: None,
            state: SensorState::Unknown,
            silent: false,
            last_activity: now,
            device: DeviceHealth {
                unheard: true,
                ..DeviceHealth::default()
            },
            device_news: None,
        }
    }

    /// The device's health as last told (reported at the next poll).
    pub fn device(&self) -> DeviceHealth {
        self.device_news.unwrap_or(self.device)
    }

    /// Records what a wireless device says about itself; a message is also
    /// a sign of life for supervision.
    pub fn set_device(&mut self, health: DeviceHealth, alive_at: Option<Instant>) {
        if let Some(at) = alive_at {
            self.last_activity = at;
        }
        self.device_news = (health != self.device).then_some(health);
    }

    pub fn report(&self) -> Report {
        let tampered = self.config.kind == SensorKind::Tamper && self.state == SensorState::Active;
        Report {
            state: self.state,
            fault: self.silent || tampered || self.device.is_fault(),
            tamper: tampered || self.device.tamper,
        }
    }

    /// Records a raw edge.
    pub fn edge(&mut self, level: Level, at: Instant) {
        self.level(level, at, true);
    }

    /// Records a level; `alive`: it is also a sign of life now (not a
    /// broker's retained copy of an old message).
    pub fn level(&mut self, level: Level, at: Instant, alive: bool) {
        if alive {
            self.last_activity = at;
        }
        if state_for(&self.config, level) == self.state {
            // Bounced back (or a repeat): nothing pending any more.
            self.pending = None;
        } else if self.pending.is_none_or(|(l, _)| l != level) {
            self.pending = Some((level, at));
        }
    }

    /// When [`SensorTracker::poll`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let debounce = self.pending.map(|(_, since)| since + self.config.debounce);
        let supervision = match (self.config.supervision, self.silent) {
            (Some(window), false) => Some(self.last_activity + window),
            _ => None,
        };
        match (debounce, supervision) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Applies what `now` makes true; returns the new report if it changed.
    pub fn poll(&mut self, now: Instant) -> Option<(Report, Cause)> {
        let before = self.report();
        let mut cause = None;
        if let Some(health) = self.device_news.take() {
            self.device = health;
            cause = Some(Cause::Device);
        }
        if self.silent && self.last_activity_is_recent(now) {
            self.silent = false;
            cause = Some(Cause::Alive);
        }
        if let Some((level, since)) = self.pending
            && now >= since + self.config.debounce
        {
            self.pending = None;
            self.state = state_for(&self.config, level);
            cause = Some(Cause::Level);
        }
        if let Some(window) = self.config.supervision
            && !self.silent
            && now >= self.last_activity + window
        {
            self.silent = true;
            cause = Some(Cause::Silent);
        }
        let after = self.report();
        match cause {
            Some(c) if after != before => Some((after, c)),
            _ => None,
        }
    }

    fn last_activity_is_recent(&self, now: Instant) -> bool {
        self.config
            .supervision
            .is_some_and(|w| now < self.last_activity + w)
    }
}

fn state_for(config: &SensorConfig, level: Level) -> SensorState {
    if level == config.active_level {
        SensorState::Active
    } else {
        SensorState::Inactive
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vigil_domain::Pull;

    use super::*;

    fn config(kind: SensorKind, supervision: Option<u64>) -> SensorConfig {
        SensorConfig {
            name: "s".into(),
            kind,
            pin: 17,
            pull: Pull::Up,
            active_level: Level::High,
            debounce: Duration::from_millis(50),
            modes: Default::default(),
            supervision: supervision.map(Duration::from_secs),
            response: vigil_domain::Response::Instant,
            arm_after_close: false,
            auto_bypass: false,
            double_knock: None,
            trigger_on_fault: false,
            camera: None,
            zigbee: None,
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_bounce_shorter_than_the_debounce_changes_nothing() {
        let t0 = Instant::now();
        let mut s = SensorTracker::new(config(SensorKind::Door, None), Level::Low, t0);
        assert_eq!(s.report().state, SensorState::Inactive);
        s.edge(Level::High, ms(t0, 0));
        s.edge(Level::Low, ms(t0, 20));
        s.edge(Level::High, ms(t0, 30));
        s.edge(Level::Low, ms(t0, 40));
        assert_eq!(s.next_deadline(), None);
        assert_eq!(s.poll(ms(t0, 200)), None);
        assert_eq!(s.report().state, SensorState::Inactive);
    }

    #[test]
    fn a_level_that_holds_is_reported_once_after_the_debounce() {
        let t0 = Instant::now();
        let mut s = SensorTracker::new(config(SensorKind::Door, None), Level::Low, t0);
        s.edge(Level::High, ms(t0, 10));
        s.edge(Level::High, ms(t0, 30)); // a repeat does not restart the clock
        assert_eq!(s.next_deadline(), Some(ms(t0, 60)));
        assert_eq!(s.poll(ms(t0, 59)), None);
        let (report, cause) = s.poll(ms(t0, 60)).expect("changed");
        assert_eq!(report.state, SensorState::Active);
        assert_eq!(cause, Cause::Level);
        assert_eq!(s.poll(ms(t0, 100)), None, "reported once");
    }

    #[test]
    fn a_silent_sensor_faults_and_recovers_on_activity() {
        let t0 = Instant::now();
        let mut s = SensorTracker::new(config(SensorKind::Motion, Some(60)), Level::Low, t0);
        assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(60)));
        let (report, cause) = s.poll(t0 + Duration::from_secs(60)).expect("fault");
        assert!(report.fault);
        assert_eq!(cause, Cause::Silent);
        assert_eq!(s.next_deadline(), None);
        // Motion again: alive, and the motion itself after the debounce.
        let t1 = t0 + Duration::from_secs(61);
        s.edge(Level::High, t1);
        let (report, _) = s.poll(t1).expect("alive");
        assert!(!report.fault);
        let (report, _) = s.poll(t1 + Duration::from_millis(50)).expect("motion");
        assert_eq!(report.state, SensorState::Active);
    }

    #[test]
    fn an_open_tamper_loop_is_tampered_and_a_fault() {
        let t0 = Instant::now();
        let mut s = SensorTracker::new(config(SensorKind::Tamper, None), Level::Low, t0);
        assert_eq!(
            s.report(),
            Report {
                state: SensorState::Inactive,
                fault: false,
                tamper: false
            }
        );
        s.edge(Level::High, t0);
        let (report, _) = s.poll(ms(t0, 50)).expect("tamper");
        assert!(report.tamper && report.fault);
    }

    #[test]
    fn a_wireless_device_is_unknown_then_its_health_is_a_fault_until_it_clears() {
        let t0 = Instant::now();
        let mut s = SensorTracker::new_wireless(config(SensorKind::Door, Some(3600)), t0);
        let report = s.report();
        assert_eq!(report.state, SensorState::Unknown);
        assert!(report.fault, "unheard until the broker is reached");
        // The broker is reached; the device reports, closed.
        s.set_device(DeviceHealth::default(), None);
        let (report, cause) = s.poll(t0).expect("heard");
        assert_eq!(cause, Cause::Device);
        assert!(!report.fault);
        s.edge(Level::Low, ms(t0, 1));
        let (report, _) = s.poll(ms(t0, 51)).expect("closed");
        assert_eq!(report.state, SensorState::Inactive);
        // zigbee2mqtt says offline: a fault, reported once.
        let offline = DeviceHealth {
            offline: true,
            ..DeviceHealth::default()
        };
        s.set_device(offline, None);
        let (report, _) = s.poll(ms(t0, 60)).expect("offline");
        assert!(report.fault && !report.tamper);
        assert_eq!(s.poll(ms(t0, 61)), None);
        // The same news again changes nothing.
        s.set_device(offline, None);
        assert_eq!(s.poll(ms(t0, 62)), None);
        // Its case opened: tampered.
        s.set_device(
            DeviceHealth {
                tamper: true,
                ..DeviceHealth::default()
            },
            Some(ms(t0, 70)),
        );
        let (report, _) = s.poll(ms(t0, 70)).expect("tamper");
        assert!(report.fault && report.tamper);
        // Healthy again; a message is a sign of life for supervision.
        s.set_device(DeviceHealth::default(), Some(ms(t0, 80)));
        let (report, _) = s.poll(ms(t0, 80)).expect("healthy");
        assert!(!report.fault);
        assert_eq!(
            s.next_deadline(),
            Some(ms(t0, 80) + Duration::from_secs(3600))
        );
    }
}
