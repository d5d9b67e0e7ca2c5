//! The NixOS module's defaults are the Rust defaults.
//!
//! `nixos/eval/module-defaults.toml` is what `nixos/modules/vigil.nix`
//! writes when no option is set but those that give every kind of entry
//! (the `defaults` of `nixos/eval/eval-module.nix`); `nixos/eval/run.sh`
//! fails when that file is not what the module writes now. This test drops
//! from it the keys those options set and parses the rest both ways: as
//! the module wrote it, and with every other key left to the Rust side.
//! The two configurations must be equal, so a default changed on one side
//! only fails here (a Rust default) or in run.sh (a Nix default).

use vigil_config::Config;

const MODULE_DEFAULTS: &str = include_str!("../../../nixos/eval/module-defaults.toml");

/// The keys `defaults` in eval-module.nix sets, per table: kept as they
/// are. Every other key in the file is a value the module chose.
const SET: &[(&str, &[&str])] = &[
    ("sensors", &["name", "kind", "pin"]),
    ("outputs.siren", &["pin"]),
    ("cameras", &["name", "key_file", "motion"]),
    ("users", &["name", "pin_hash_file"]),
    // Least privilege (ARCHITECTURE.md, "Users and groups"): where the
    // module puts each service's uid, not defaults (the Rust side has none
    // for these), so kept as the module wrote them.
    ("hooks", &["name", "command", "socket"]),
    ("alerts", &["group"]),
    ("runtime", &["reports_dir"]),
    ("webhook", &["url"]),
];

/// The key set for a table of the file, by the table's path.
fn set_keys(path: &str) -> &'static [&'static str] {
    SET.iter()
        .find(|(table, _)| *table == path)
        .map_or(&[], |(_, keys)| *keys)
}

/// Drops from `table` (at `path`) every key the module chose, keeping what
/// `defaults` set and the tables that hold it; gives the dropped keys.
fn keep_set(path: &str, table: &mut toml::Table) -> Vec<String> {
    let mut dropped = Vec::new();
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let at = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        let keep = match table.get_mut(&key) {
            Some(toml::Value::Table(inner)) => {
                dropped.extend(keep_set(&at, inner));
                !inner.is_empty()
            }
            Some(toml::Value::Array(entries))
                if !entries.is_empty() && entries.iter().all(toml::Value::is_table) =>
            {
                for entry in entries.iter_mut().filter_map(toml::Value::as_table_mut) {
                    dropped.extend(keep_set(&at, entry));
                }
                true
            }
            // A camera that finds the hub by its beacon: `hub = "discover"`
            // was set; any other hub is the module's choice.
            Some(toml::Value::String(hub)) if at == "cameras.hub" => hub == "discover",
            _ => set_keys(path).contains(&key.as_str()),
        };
        if !keep && let Some(value) = table.remove(&key)
            // An emptied table is no value of its own.
            && !value.is_table()
        {
            dropped.push(at);
        }
    }
    dropped
}

#[test]
fn every_value_the_module_chose_is_the_rust_default() {
    let module = Config::parse(MODULE_DEFAULTS, "module-defaults.toml")
        .unwrap_or_else(|e| panic!("the module's defaults are refused: {e}"));
    let mut table: toml::Table = MODULE_DEFAULTS.parse().expect("TOML");
    let mut chosen = keep_set("", &mut table);
    chosen.sort();
    chosen.dedup();
    let bare = toml::to_string(&table).expect("TOML");
    let rust = Config::parse(&bare, "module-defaults.toml")
        .unwrap_or_else(|e| panic!("the set keys alone are refused: {e}\n{bare}"));

    // Not equal by emptiness: the module writes a value for each of these.
    for key in [
        "runtime.state_dir",
        "gpio.backend",
        "sensors.pull",
        "outputs.siren.active",
        "cameras.bitrate_kbps",
        "cameras.hub",
        "cameras.discovery_port",
        "cameras.motion_percent",
        "users.role",
        "recording.slots",
        "events.sync_window_ms",
        "alerts.depth",
        "alerts.msg_size",
        "grpc.listen",
        "webhook.min_priority",
        "telemetry.log_filter",
    ] {
        assert!(chosen.iter().any(|c| c == key), "{key} not in {chosen:?}");
    }

    let differ = format!(
        "a default of nixos/modules/vigil.nix differs from the Rust default; change one \
         to match the other (the module's values compared: {chosen:?})"
    );
    // Table by table, for a message that names the table.
    macro_rules! same {
        ($($table:ident),*) => {$(
            assert_eq!(module.$table, rust.$table, "[{}]: {differ}", stringify!($table));
        )*};
    }
    same!(
        runtime, gpio, sensors, outputs, users, cameras, recording, hooks, alarm, grpc
    );
    same!(alerts, events, webhook, telemetry);
    // Every field, in case a table is added above and not here.
    assert_eq!(module, rust, "{differ}");
}
