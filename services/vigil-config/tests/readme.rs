//! README.md's "### Configuration" section is a configuration file that
//! works as written: its ```toml blocks, put together, are read and
//! validated the way every service reads its `--config` file, and they
//! set every key the crate knows, in every table, so that a key added to
//! the crate and not to the README fails here.
//!
//! The keys the crate knows are taken from the crate itself: every table
//! of the file refuses unknown keys, and serde's refusal lists the keys
//! the table has. So a probe table with one unknown key, parsed through
//! [`Config::parse`], names them all.

use std::path::PathBuf;

use vigil_config::{Config, ConfigError, ConfigSource};

const SECTION: &str = "### Configuration";
/// A key no table has, to make a table list its own.
const PROBE: &str = "not_a_key_of_any_table";

/// The ```toml blocks of README.md's Configuration section (up to the next
/// heading), one after the other.
fn readme_example() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines = readme.lines().skip_while(|l| l.trim_end() != SECTION);
    assert!(
        lines.next().is_some(),
        "README.md has no {SECTION:?} heading"
    );
    let (mut example, mut blocks) = (String::new(), 0);
    let mut fence: Option<bool> = None; // inside a fence: is it a toml one?
    for line in lines {
        let trimmed = line.trim_start();
        match fence {
            None if trimmed.starts_with('#') => break, // the next heading
            None if trimmed.starts_with("```") => {
                let toml = trimmed.trim_start_matches('`').trim() == "toml";
                blocks += usize::from(toml);
                fence = Some(toml);
            }
            None => {}
            Some(_) if trimmed.starts_with("```") => fence = None,
            Some(true) => {
                example.push_str(line);
                example.push('\n');
            }
            Some(false) => {}
        }
    }
    assert!(
        fence.is_none(),
        "a code block in {SECTION:?} is never closed"
    );
    assert!(blocks > 0, "{SECTION:?} in README.md has no ```toml block");
    example
}

#[test]
fn readme_configuration_example_is_a_valid_configuration() {
    let example = readme_example();
    // The hub's path for its file: `--config PATH`, read and validated.
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("readme-vigil.toml");
    std::fs::write(&path, &example).expect("write the example");
    let config = match ConfigSource::File(path.clone()).load() {
        Ok(config) => config,
        Err(ConfigError::Invalid { problems, .. }) => panic!(
            "README.md's configuration has {} problem(s):\n{}",
            problems.len(),
            problems
                .iter()
                .map(|p| format!("  - {p}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Err(e) => panic!("README.md's configuration cannot be used: {e}"),
    };
    assert_eq!(config.source, path.display().to_string());
    // The same text through the other public entry point, for good measure.
    assert_eq!(
        Config::parse(&example, &path.display().to_string()).expect("parses"),
        config
    );
    // What a reader of the example would expect of it.
    assert!(config.webhook.is_some(), "the example shows the webhook");
    assert!(config.outputs.siren.is_some() && config.outputs.buzzer.is_some());
    let camera_motion: Vec<&str> = (config.sensors.iter())
        .filter(|s| s.camera.is_some())
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        camera_motion,
        ["porch-motion"],
        "motion = true adds a sensor"
    );
}

/// The keys the table at `path` (in `example`) takes, from the crate's
/// refusal of an unknown one; `None` when the table takes names of its own
/// (`[alarm.modes]`: one table per mode).
fn known_keys(example: &toml::Table, path: &[&str]) -> Option<Vec<String>> {
    let probe = probe(example, path);
    let text = toml::to_string(&probe).expect("serialize the probe");
    let message = match Config::parse(&text, "probe") {
        Err(ConfigError::Syntax { message, .. }) => message,
        other => panic!("the probe of {path:?} was not refused as unknown: {other:?}\n{text}"),
    };
    let refusal = message.find(&format!("unknown field `{PROBE}`"))?;
    let listed = &message[refusal..];
    let listed = &listed[listed.find("expected").unwrap_or(listed.len())..];
    let listed = listed.lines().next().unwrap_or_default();
    let keys = listed.split('`').skip(1).step_by(2).map(str::to_owned);
    Some(keys.collect())
}

/// A file with only the table at `path` (shaped as in `example`: an array
/// of tables stays one), holding the unknown key.
fn probe(example: &toml::Table, path: &[&str]) -> toml::Table {
    let Some((first, rest)) = path.split_first() else {
        return toml::Table::from_iter([(PROBE.to_owned(), toml::Value::Integer(1))]);
    };
    let (inner, array) = match example.get(*first) {
        Some(toml::Value::Table(t)) => (probe(t, rest), false),
        Some(toml::Value::Array(a)) => match a.first() {
            Some(toml::Value::Table(t)) => (probe(t, rest), true),
            _ => panic!("{first} is not a table"),
        },
        _ => panic!("{first} is not in the example"),
    };
    let value = if array {
        toml::Value::Array(vec![toml::Value::Table(inner)])
    } else {
        toml::Value::Table(inner)
    };
    toml::Table::from_iter([((*first).to_owned(), value)])
}

/// Every table of the example at `path`: itself, or each entry of an array.
fn tables(value: &toml::Value) -> Vec<&toml::Table> {
    match value {
        toml::Value::Table(t) => vec![t],
        toml::Value::Array(a) => a.iter().filter_map(toml::Value::as_table).collect(),
        _ => Vec::new(),
    }
}

/// Checks the tables `at` (all at `path`) against what the crate knows
/// there, and the tables under them; gathers every key missing.
fn missing_keys(root: &toml::Table, path: &mut Vec<String>, at: &[&toml::Table]) -> Vec<String> {
    let borrowed: Vec<&str> = path.iter().map(String::as_str).collect();
    let mut missing = Vec::new();
    let keys = match known_keys(root, &borrowed) {
        Some(keys) => {
            assert!(!keys.is_empty(), "no keys listed for {borrowed:?}");
            keys
        }
        // Names of the file's choosing: look under those the example has.
        None => (at.iter())
            .flat_map(|t| t.keys().cloned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    for key in keys {
        let values: Vec<&toml::Value> = at.iter().filter_map(|t| t.get(&key)).collect();
        path.push(key);
        if values.is_empty() {
            missing.push(path.join("."));
        }
        let under: Vec<&toml::Table> = values.into_iter().flat_map(tables).collect();
        if !under.is_empty() {
            missing.extend(missing_keys(root, path, &under));
        }
        path.pop();
    }
    missing
}

#[test]
fn readme_configuration_example_sets_every_key_the_crate_knows() {
    let example: toml::Table = readme_example().parse().expect("the example is TOML");
    let sections = known_keys(&example, &[]).expect("the file's tables are listed");
    for section in [
        "runtime",
        "gpio",
        "sensors",
        "outputs",
        "users",
        "cameras",
        "hooks",
        "alarm",
        "grpc",
        "alerts",
        "events",
        "recording",
        "webhook",
        "telemetry",
    ] {
        assert!(
            sections.iter().any(|s| s == section),
            "the crate's tables, as its refusal lists them ({sections:?}), lack {section}: \
             is the probe still right?"
        );
    }
    let missing = missing_keys(&example, &mut Vec::new(), &[&example]);
    assert!(
        missing.is_empty(),
        "README.md's configuration example leaves out {missing:?}: add each with what it \
         does and its default"
    );
}
