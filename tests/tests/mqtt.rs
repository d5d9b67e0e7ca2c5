//! Issue 17: Vigil on MQTT. A real Mosquitto (TLS, a password file, a
//! port of its own), the real hub, sensord and bridge (`vigil-mqttd`),
//! and Mosquitto's own clients standing in for Home Assistant and
//! zigbee2mqtt: they publish exactly what those publish, and read what
//! Vigil publishes, as third processes.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};
use vigil_e2e::mqtt::{Broker, Message, Subscriber, User, doc_block};
use vigil_e2e::{RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message, sensor, wait_until};

/// zigbee2mqtt's user on the broker: the devices' messages come from it.
const Z2M: User = User::Zigbee2mqtt;

/// A house on MQTT: the broker, the stack with `[mqtt]` (plus `extra`),
/// hub, sensord and the bridge (paired as `mqtt`, role user) running.
struct House {
    broker: Broker,
    stack: Stack,
    hub: Service,
    sensord: Service,
    bridge: Service,
    hub_id: String,
}

impl House {
    fn start(sensors: &str, extra: &str) -> Result<House> {
        let broker = Broker::start()?;
        let stack = Stack::new(&format!("{sensors}{TEST_ALARM}"), RunAs::Me)?;
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

    fn topic(&self, rest: &str) -> String {
        format!("vigil/{}/{rest}", self.hub_id)
    }

    fn subscribe_all(&self) -> Result<Subscriber> {
        self.broker
            .subscribe(&["vigil/#", "homeassistant/#", "zigbee2mqtt/+/set"])
    }

    /// The latest payload on `topic` once `want` holds for it.
    fn wait_topic(
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

    fn command(&self, payload: Value) -> Result<()> {
        self.broker.publish(
            User::HomeAssistant,
            &self.topic("alarm/set"),
            payload.to_string().as_bytes(),
            false,
        )
    }

    /// The next answer on alarm/result after the first `skip` messages.
    fn result_after(&self, sub: &Subscriber, skip: usize) -> Result<Value> {
        let topic = self.topic("alarm/result");
        Ok(sub
            .wait("a command's answer", skip, |m| m.topic == topic)?
            .json())
    }
}

/// Home Assistant's MQTT discovery schema, for what the bridge uses: the
/// keys each platform requires and the values it accepts (HA 2024.3's
/// `homeassistant/components/mqtt/*.py` and the entity device classes).
fn check_discovery(topic: &str, config: &Value) -> Result<()> {
    let component = topic.split('/').nth(1).context("no component")?;
    let required: &[&str] = match component {
        "alarm_control_panel" => &["state_topic", "command_topic"],
        "binary_sensor" => &["state_topic"],
        "camera" => &["topic"],
        "button" => &["command_topic"],
        "sensor" => &["state_topic"],
        other => anyhow::bail!("a component the bridge should not use: {other}"),
    };
    for key in required
        .iter()
        .chain(&["unique_id", "name", "device", "availability"])
    {
        ensure!(!config[key].is_null(), "{topic}: {key} missing: {config}");
    }
    if let Some(class) = config["device_class"].as_str() {
        let binary_classes = [
            "battery",
            "battery_charging",
            "carbon_monoxide",
            "cold",
            "connectivity",
            "door",
            "garage_door",
            "gas",
            "heat",
            "light",
            "lock",
            "moisture",
            "motion",
            "moving",
            "occupancy",
            "opening",
            "plug",
            "power",
            "presence",
            "problem",
            "running",
            "safety",
            "smoke",
            "sound",
            "tamper",
            "update",
            "vibration",
            "window",
        ];
        ensure!(
            binary_classes.contains(&class),
            "{topic}: device_class {class}"
        );
    }
    if component == "alarm_control_panel" {
        ensure!(config["code"] == "REMOTE_CODE", "{config}");
        let features = [
            "arm_home",
            "arm_away",
            "arm_night",
            "arm_vacation",
            "arm_custom_bypass",
            "trigger",
        ];
        for f in config["supported_features"]
            .as_array()
            .context("supported_features")?
        {
            ensure!(
                features.contains(&f.as_str().unwrap_or("")),
                "unknown feature {f}"
            );
        }
    }
    Ok(())
}

/// Discovery (validated), the panel's state, commands with their
/// answers, events with their numbers, a sensor's state, and a wrong code
/// counted toward the same lockout as a phone's.
#[test]
fn home_assistant_sees_the_hub_and_commands_it_through_the_engine() -> Result<()> {
    let house = House::start(TEST_SENSORS, "")?;
    let sub = house.subscribe_all()?;
    let node = format!("vigil_{}", house.hub_id);
    let panel_topic = format!("homeassistant/alarm_control_panel/{node}/alarm/config");
    let panel = sub.wait("the panel's discovery", 0, |m| m.topic == panel_topic)?;
    ensure!(
        panel.retained || sub.on(&panel_topic)?.len() == 1,
        "{panel:?}"
    );
    house.wait_topic(&sub, "availability", |p| p == "online")?;
    house.wait_topic(&sub, "alarm/state", |p| p == "disarmed")?;
    house.wait_topic(&sub, "sensor/front-door/state", |p| p == "OFF")?;

    // Every entity, as Home Assistant's schema wants it: one device.
    let expect = [
        ("alarm_control_panel", "alarm", None),
        ("binary_sensor", "front-door", Some("door")),
        ("binary_sensor", "hallway-motion", Some("motion")),
        ("binary_sensor", "siren-box-tamper", Some("tamper")),
        ("binary_sensor", "front-door_fault", Some("problem")),
        ("button", "panic", None),
        ("sensor", "last_event", None),
    ];
    for (component, object, class) in expect {
        let topic = format!("homeassistant/{component}/{node}/{object}/config");
        let config = sub.wait(&topic, 0, |m| m.topic == topic)?.json();
        check_discovery(&topic, &config)?;
        ensure!(
            config["device"]["identifiers"][0] == node.as_str(),
            "{config}"
        );
        if let Some(class) = class {
            ensure!(config["device_class"] == class, "{topic}: {config}");
        }
    }

    // A door opens: its binary sensor says so.
    let mark = sub.count()?;
    house.stack.sim("set front-door open")?;
    let topic = house.topic("sensor/front-door/state");
    sub.wait("the door ON", mark, |m| {
        m.topic == topic && m.payload == "ON"
    })?;
    house.stack.sim("set front-door closed")?;
    sub.wait("the door OFF", mark, |m| {
        m.topic == topic && m.payload == "OFF"
    })?;

    // Arm away as Home Assistant's panel sends it (the code is checked by
    // the hub only when arming needs one; here it does not).
    let mark = sub.count()?;
    house.command(json!({"action": "ARM_AWAY", "code": "None"}))?;
    let result = house.result_after(&sub, mark)?;
    ensure!(
        result["ok"] == true && result["action"] == "ARM_AWAY",
        "{result}"
    );
    ensure!(result["state"] == "arming", "{result}");
    let events = house.topic("events");
    let arming = sub.wait("the arming event", mark, |m| {
        m.topic == events && m.json()["kind"] == "arming"
    })?;
    let arming = arming.json();
    ensure!(
        arming["source"] == "grpc:mqtt",
        "attributed to the bridge: {arming}"
    );
    ensure!(arming["seq"].as_u64().is_some_and(|s| s > 0), "{arming}");
    let state = house.topic("alarm/state");
    sub.wait("armed_away", mark, |m| {
        m.topic == state && m.payload == "armed_away"
    })?;
    let armed = house.stack.ctl_json(&["status"])?;
    ensure!(armed["mode"] == "away", "{armed}");

    // Disarm without a code: refused, and why.
    let mark = sub.count()?;
    house.command(json!({"action": "DISARM", "code": ""}))?;
    let result = house.result_after(&sub, mark)?;
    ensure!(
        result["ok"] == false && result["reason"] == "code_required",
        "{result}"
    );

    // Wrong codes: each refused as wrong, the fifth locks this client
    // out (the same lockout as a phone's), the right code then too.
    for _ in 0..5 {
        let mark = sub.count()?;
        house.command(json!({"action": "DISARM", "code": "0000"}))?;
        let result = house.result_after(&sub, mark)?;
        ensure!(result["ok"] == false, "{result}");
        ensure!(
            result["reason"] == "wrong_code" || result["reason"] == "locked_out",
            "{result}"
        );
    }
    let mark = sub.count()?;
    house.command(json!({"action": "DISARM", "code": "2468"}))?;
    let result = house.result_after(&sub, mark)?;
    ensure!(
        result["reason"] == "locked_out",
        "locked out over MQTT: {result}"
    );
    let refused = house
        .stack
        .logged_event_kinds()?
        .into_iter()
        .filter(|k| k == "code_refused")
        .count();
    ensure!(refused >= 4, "the hub logged {refused} refused codes");
    ensure!(
        house.stack.ctl_json(&["status"])?["mode"] == "away",
        "still armed"
    );

    // Every event on the topic in order, numbered without gaps.
    let seqs: Vec<u64> = sub
        .on(&events)?
        .iter()
        .filter_map(|m| m.json()["seq"].as_u64())
        .collect();
    ensure!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gaps or disorder: {seqs:?}"
    );
    let _ = (&house.hub, &house.sensord, &house.bridge);
    Ok(())
}

/// Zigbee sensors beside GPIO ones: a Zigbee door opening while armed
/// starts the entry delay and then the alarm; a device going offline or
/// reporting a low battery is a fault; a keypad arms and disarms with its
/// code and hears `arm_mode` back; bad input is dropped, never blocking.
#[test]
fn zigbee_sensors_and_keypad_work_the_alarm() -> Result<()> {
    // docs/mqtt.md's zigbee2mqtt walk-through: its house and its keypad.
    let house = House::start(&doc_block("zigbee-house")?, &doc_block("keypad")?)?;
    let sub = house.subscribe_all()?;
    let b = &house.broker;
    // sensord hears the broker: the devices are unknown, not unheard.
    house.sensord.wait_log(0, "the subscription", |l| {
        message(l) == "subscribing to the Zigbee sensors"
    })?;
    // zigbee2mqtt's retained availability and the devices' state.
    b.publish(
        Z2M,
        "zigbee2mqtt/garage_contact/availability",
        br#"{"state":"online"}"#,
        true,
    )?;
    b.publish(
        Z2M,
        "zigbee2mqtt/garage_contact",
        br#"{"battery":100,"battery_low":false,"contact":true,"linkquality":134,"tamper":false,"voltage":3000}"#,
        false,
    )?;
    b.publish(
        Z2M,
        "zigbee2mqtt/kitchen_leak",
        br#"{"battery":97,"water_leak":false,"battery_low":false}"#,
        false,
    )?;
    house.stack.wait_status("the Zigbee door closed", |s| {
        sensor(s, "garage-door")["state"] == "closed" && sensor(s, "garage-door")["fault"] == false
    })?;
    house.stack.wait_status("the leak sensor dry", |s| {
        sensor(s, "kitchen-leak")["state"] != "unknown"
    })?;

    // Bad input on the device topics: dropped with a log line.
    b.publish(Z2M, "zigbee2mqtt/garage_contact", b"{not json", false)?;
    b.publish(
        Z2M,
        "zigbee2mqtt/garage_contact",
        &vec![b'{'; 64 * 1024],
        false,
    )?;
    b.publish(Z2M, "zigbee2mqtt/hall_keypad", b"\xff\xfe", false)?;
    house.sensord.wait_log(0, "the dropped message", |l| {
        message(l).contains("dropped a Zigbee message")
    })?;
    // Dropped, not a reason to drop the connection: the sensors stay heard.
    b.publish(
        Z2M,
        "zigbee2mqtt/kitchen_leak",
        br#"{"water_leak":false}"#,
        false,
    )?;
    house
        .stack
        .wait_status("the leak sensor after the bad input", |s| {
            sensor(s, "kitchen-leak")["fault"] == false
        })?;
    ensure!(
        !house
            .sensord
            .log_lines()?
            .iter()
            .any(|l| message(l).contains("MQTT broker unreachable")),
        "bad input cost sensord its connection"
    );

    // The keypad arms away with its code: answered with its transaction.
    let set = "zigbee2mqtt/hall_keypad/set";
    let mark = sub.count()?;
    b.publish(
        Z2M,
        "zigbee2mqtt/hall_keypad",
        br#"{"action":"arm_all_zones","action_code":"2468","action_transaction":12,"battery":90}"#,
        false,
    )?;
    let answer = sub.wait("the keypad's answer", mark, |m| {
        m.topic == set && m.json()["arm_mode"]["transaction"] == 12
    })?;
    ensure!(
        answer.json()["arm_mode"]["mode"] == "arm_all_zones",
        "{answer:?}"
    );
    // ... and the panel's state mirrored: the exit delay, then armed.
    sub.wait("the exit delay on the keypad", mark, |m| {
        m.topic == set && m.json()["arm_mode"]["mode"] == "exit_delay"
    })?;
    sub.wait("armed on the keypad", mark, |m| {
        m.topic == set
            && m.json()["arm_mode"]["mode"] == "arm_all_zones"
            && m.json()["arm_mode"]["transaction"].is_null()
    })?;
    house.stack.wait_alarm("armed away", |s| {
        s["mode"] == "away" && s["state"] == "idle"
    })?;

    // The Zigbee door opens: the entry delay, shown on the keypad, then
    // the alarm.
    let mark = sub.count()?;
    b.publish(
        Z2M,
        "zigbee2mqtt/garage_contact",
        br#"{"battery":100,"battery_low":false,"contact":false,"linkquality":131,"tamper":false,"voltage":3000}"#,
        false,
    )?;
    house
        .stack
        .wait_alarm("the entry delay", |s| s["state"] == "pending")?;
    sub.wait("the entry delay on the keypad", mark, |m| {
        m.topic == set && m.json()["arm_mode"]["mode"] == "entry_delay"
    })?;
    let state = house.topic("alarm/state");
    sub.wait("pending", mark, |m| {
        m.topic == state && m.payload == "pending"
    })?;
    house
        .stack
        .wait_alarm("the alarm", |s| s["state"] == "triggered")?;
    sub.wait("triggered", mark, |m| {
        m.topic == state && m.payload == "triggered"
    })?;
    sub.wait("the alarm on the keypad", mark, |m| {
        m.topic == set && m.json()["arm_mode"]["mode"] == "in_alarm"
    })?;

    // A wrong code at the keypad: invalid_code, with its transaction.
    let mark = sub.count()?;
    b.publish(
        Z2M,
        "zigbee2mqtt/hall_keypad",
        br#"{"action":"disarm","action_code":"1111","action_transaction":13}"#,
        false,
    )?;
    let answer = sub.wait("the wrong code's answer", mark, |m| {
        m.topic == set && m.json()["arm_mode"]["transaction"] == 13
    })?;
    ensure!(
        answer.json()["arm_mode"]["mode"] == "invalid_code",
        "{answer:?}"
    );
    // The right one disarms.
    let mark = sub.count()?;
    b.publish(
        Z2M,
        "zigbee2mqtt/hall_keypad",
        br#"{"action":"disarm","action_code":2468,"action_transaction":14}"#,
        false,
    )?;
    let answer = sub.wait("the disarm's answer", mark, |m| {
        m.topic == set && m.json()["arm_mode"]["transaction"] == 14
    })?;
    ensure!(answer.json()["arm_mode"]["mode"] == "disarm", "{answer:?}");
    house
        .stack
        .wait_alarm("disarmed", |s| s["mode"] == "disarmed")?;

    // zigbee2mqtt says the device is gone: a fault, until it is back.
    b.publish(
        Z2M,
        "zigbee2mqtt/garage_contact/availability",
        br#"{"state":"offline"}"#,
        true,
    )?;
    house.stack.wait_status("the Zigbee door faulted", |s| {
        sensor(s, "garage-door")["fault"] == true
    })?;
    let fault = house.topic("sensor/garage-door/fault");
    sub.wait("the fault on MQTT", 0, |m| {
        m.topic == fault && m.payload == "ON"
    })?;
    b.publish(
        Z2M,
        "zigbee2mqtt/garage_contact/availability",
        b"online",
        true,
    )?;
    house.stack.wait_status("the Zigbee door back", |s| {
        sensor(s, "garage-door")["fault"] == false
    })?;
    // Home Assistant's user (or anyone but zigbee2mqtt) cannot close the
    // open door as far as Vigil knows: the broker's ACL drops it.
    b.publish(
        User::HomeAssistant,
        "zigbee2mqtt/garage_contact",
        br#"{"contact":true}"#,
        false,
    )?;
    // A low battery is a fault too (and, sent after the forgery, shows
    // that sensord has read what came before it).
    b.publish(
        Z2M,
        "zigbee2mqtt/kitchen_leak",
        br#"{"water_leak":false,"battery_low":true}"#,
        false,
    )?;
    let status = house.stack.wait_status("the leak sensor's battery", |s| {
        sensor(s, "kitchen-leak")["fault"] == true
    })?;
    ensure!(
        sensor(&status, "garage-door")["state"] == "open",
        "a forged message closed the door: {status}"
    );
    // Water: a 24-hour zone, an alarm even disarmed.
    b.publish(
        Z2M,
        "zigbee2mqtt/kitchen_leak",
        br#"{"water_leak":true,"battery_low":false}"#,
        false,
    )?;
    house
        .stack
        .wait_alarm("the leak's alarm", |s| s["state"] == "triggered")?;
    // The bridge and sensord are still alive after the bad input.
    ensure!(house.stack.ctl_json(&["system"])?["hub_id"] == house.hub_id.as_str());
    let _ = (&house.hub, &house.bridge);
    Ok(())
}

/// The broker restarts mid-run (losing every retained message): the
/// bridge and sensord reconnect by themselves, the retained state is
/// published again, and no event is missing from the event topic after
/// it. Then the bridge is SIGKILLed: its last will says offline, and the
/// alarm itself carries on.
#[test]
fn the_broker_restarting_or_the_bridge_dying_loses_nothing() -> Result<()> {
    let mut house = House::start(TEST_SENSORS, "")?;
    let sub = house.subscribe_all()?;
    house.wait_topic(&sub, "alarm/state", |p| p == "disarmed")?;
    drop(sub);

    house.broker.stop();
    // Events while the broker is away.
    house.stack.sim("set front-door open")?;
    house.stack.sim("set front-door closed")?;
    house.broker.restart()?;
    let sub = house.subscribe_all()?;
    // Retained state again, from the bridge (the broker kept nothing).
    house.wait_topic(&sub, "availability", |p| p == "online")?;
    house.wait_topic(&sub, "alarm/state", |p| p == "disarmed")?;
    let node = format!("vigil_{}", house.hub_id);
    let panel_topic = format!("homeassistant/alarm_control_panel/{node}/alarm/config");
    sub.wait("the panel's discovery again", 0, |m| m.topic == panel_topic)?;
    let last_seq = |stack: &Stack| -> Result<u64> {
        stack.ctl_json(&["status"])?["last_event_seq"]
            .as_u64()
            .context("status without last_event_seq")
    };
    let after_restart = last_seq(&house.stack)?;

    // Every event after the restart reaches the topic.
    house.stack.ctl_json(&["arm", "home"])?;
    house.stack.sim("set hallway-motion active")?;
    house.stack.sim("set hallway-motion inactive")?;
    house.stack.ctl(&["disarm", "--pin", "2468"])?;
    house
        .stack
        .wait_alarm("disarmed", |s| s["mode"] == "disarmed")?;
    let events = house.topic("events");
    let last = last_seq(&house.stack)?;
    ensure!(
        last >= after_restart + 2,
        "few events: {after_restart}..{last}"
    );
    wait_until("every event on the topic", Duration::from_secs(10), || {
        let seen: Vec<u64> = sub
            .on(&events)?
            .iter()
            .filter_map(|m| m.json()["seq"].as_u64())
            .collect();
        Ok(((after_restart + 1)..=last).all(|s| seen.contains(&s)))
    })?;

    // The bridge dies: the broker publishes its last will.
    let mark = sub.count()?;
    house.bridge.kill9()?;
    let availability = house.topic("availability");
    sub.wait("offline by the last will", mark, |m| {
        m.topic == availability && m.payload == "offline"
    })?;
    // The alarm does not notice.
    house.stack.ctl_json(&["arm", "away"])?;
    house
        .stack
        .wait_alarm("armed away without the bridge", |s| {
            s["mode"] == "away" && s["state"] == "idle"
        })?;
    house.stack.sim("set front-door open")?;
    house
        .stack
        .wait_alarm("the entry delay", |s| s["state"] == "pending")?;
    house.stack.ctl(&["disarm", "--pin", "2468"])?;
    // A new bridge comes back online with the current state.
    let mark = sub.count()?;
    house.bridge = house.stack.start("vigil-mqttd")?;
    sub.wait("online again", mark, |m| {
        m.topic == availability && m.payload == "online"
    })?;
    let state = house.topic("alarm/state");
    sub.wait("the current state", mark, |m| {
        m.topic == state && m.payload == "disarmed"
    })?;
    let _ = (&house.hub, &house.sensord);
    Ok(())
}
