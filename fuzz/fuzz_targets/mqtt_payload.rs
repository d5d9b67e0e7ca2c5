//! What anyone who may publish on the broker feeds Vigil: a zigbee2mqtt
//! device message (sensord, for every sensor kind), an availability, a
//! keypad's message and a command on the bridge's `alarm/set`. Each
//! parser returns a typed result; none may panic or read past its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_domain::SensorKind;
use vigil_mqtt::wire::PanelCommand;
use vigil_mqtt::zigbee;

fuzz_target!(|data: &[u8]| {
    for kind in [
        SensorKind::Door,
        SensorKind::Motion,
        SensorKind::Water,
        SensorKind::Smoke,
        SensorKind::Tamper,
        SensorKind::Panic,
    ] {
        let report = zigbee::parse_device(kind, data);
        if data.len() > vigil_mqtt::MAX_INBOUND_PAYLOAD {
            assert!(report.is_err(), "an oversized payload was read");
        }
    }
    let _ = zigbee::parse_availability(data);
    if let Ok(Some(request)) = zigbee::parse_keypad(data) {
        // The answer to it is always JSON zigbee2mqtt can read.
        let answer = zigbee::arm_mode_payload(request.action.confirmation(), request.transaction);
        assert!(answer.starts_with("{\"arm_mode\":"));
    }
    if let Ok(command) = PanelCommand::parse(data) {
        assert!(data.len() <= 1024);
        assert!(command.code.as_deref() != Some("None"));
    }
});
