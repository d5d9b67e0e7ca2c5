use super::*;

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, "test.toml") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

#[test]
fn demo_config_is_valid() {
    let config = Config::demo(Path::new("/tmp/vigil-demo"));
    assert_eq!(config.gpio.backend, GpioBackendKind::Simulated);
    assert_eq!(config.sensors.len(), 8);
    assert_eq!(
        config.runtime.runtime_dir,
        PathBuf::from("/tmp/vigil-demo/run")
    );
    let (slot, door) = config.sensor("front-door").expect("front door");
    assert_eq!(slot, 0);
    assert_eq!(door.pull, Pull::Up);
    assert_eq!(door.active_level, Level::High);
    assert_eq!(door.modes.len(), 5);
    let (_, motion) = config.sensor("hallway-motion").expect("motion");
    assert_eq!(motion.modes, [ArmedMode::Away, ArmedMode::Vacation].into());
}

#[test]
fn empty_file_is_a_valid_config_with_defaults() {
    let config = Config::parse("", "empty.toml").expect("valid");
    assert_eq!(config.runtime.runtime_dir, PathBuf::from("/run/vigil"));
    assert_eq!(config.runtime.state_dir, PathBuf::from("/var/lib/vigil"));
    assert_eq!(config.gpio.backend, GpioBackendKind::Rppal);
}

#[test]
fn unknown_kind_names_the_key_and_the_choices() {
    let p = problems("[[sensors]]\nname = \"garage\"\nkind = \"doorr\"\npin = 4\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "sensors[0].kind");
    assert!(p[0].problem.contains("\"doorr\""), "{}", p[0]);
    assert!(p[0].fix.contains("door, window, motion"), "{}", p[0]);
}

#[test]
fn duplicate_pin_names_both_keys() {
    let p = problems(
        "[[sensors]]\nname = \"a\"\nkind = \"door\"\npin = 4\n\
         [[sensors]]\nname = \"b\"\nkind = \"window\"\npin = 4\n",
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "sensors[1].pin");
    assert!(p[0].problem.contains("sensors[0].pin (a)"), "{}", p[0]);
}

#[test]
fn output_on_a_sensor_pin_is_a_duplicate() {
    let p = problems(
        "[[sensors]]\nname = \"a\"\nkind = \"door\"\npin = 23\n[outputs]\nsiren = { pin = 23 }\n",
    );
    assert_eq!(p[0].key, "outputs.siren.pin");
}

#[test]
fn missing_fields_are_named_and_all_reported() {
    let p = problems("[[sensors]]\nname = \"a\"\n[[sensors]]\nkind = \"door\"\npin = 5\n");
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["sensors[0].kind", "sensors[0].pin", "sensors[1].name"]
    );
    assert!(p.iter().all(|p| p.problem == "missing"));
    let message = ConfigError::Invalid {
        source_name: "test.toml".into(),
        problems: p,
    }
    .to_string();
    assert!(
        message.starts_with("test.toml has 3 problem(s):"),
        "{message}"
    );
    assert!(
        message.contains("sensors[0].pin: missing; fix: set `pin`"),
        "{message}"
    );
}

#[test]
fn out_of_range_pin_bad_name_and_modes_on_24h_zone() {
    let p = problems(
        "[[sensors]]\nname = \"Front Door\"\nkind = \"smoke\"\npin = 40\nmodes = [\"away\"]\n",
    );
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["sensors[0].name", "sensors[0].pin", "sensors[0].modes"]
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_syntax_errors() {
    for text in [
        "[[sensors]]\nnmae = \"x\"\n",
        "[[sensors]]\npin = \"seventeen\"\n",
    ] {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Syntax { message, .. }) => assert!(!message.is_empty()),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn missing_file_says_how_to_fix() {
    let err = Config::load(Path::new("/nonexistent/vigil.toml")).expect_err("missing");
    assert!(err.to_string().contains("--config"), "{err}");
}
