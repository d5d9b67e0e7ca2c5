//! The files the hub reads back at start from its state directory, which
//! whoever writes the disk controls (a failing SD card, a card edited
//! while the hub was off): the alarm state (`alarm-state.json`: loaded,
//! and what loads saves and loads back the same), the client registry
//! (`clients.json`, beside a real CA), and the alert message as the queue
//! and the journal carry it (`AlertMessage::decode`: what decodes encodes
//! and decodes back the same).
//!
//! The first byte picks the file.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vigil_alerts::AlertMessage;
use vigil_hub::persist::StateStore;

/// The house the alarm state belongs to (its sensors name the state's).
fn setup() -> &'static vigil_alarm::AlarmSetup {
    static SETUP: OnceLock<vigil_alarm::AlarmSetup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config = vigil_config::Config::parse(
            "[[sensors]]\nname = \"front-door\"\nkind = \"door\"\npin = 17\n\
             [[sensors]]\nname = \"hall\"\nkind = \"motion\"\npin = 27\n\
             [[sensors]]\nname = \"panic\"\nkind = \"panic\"\npin = 22\n",
            "fuzz house",
        )
        .expect("the fuzz house");
        vigil_hub::alarm_setup(&config)
    })
}

/// A state directory with a real CA, made once; each run writes its own
/// `clients.json` there.
fn pki_dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a directory");
        vigil_hub::pki::Pki::load_or_create(dir.path(), &[]).expect("a CA");
        dir
    })
    .path()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            let dir = tempfile::tempdir().expect("a directory");
            std::fs::write(dir.path().join("alarm-state.json"), bytes).expect("write");
            let store = StateStore::new(dir.path());
            if let Ok(state) = store.load(setup()) {
                store.save(setup(), &state).expect("a loaded state saves");
                let again = store.load(setup()).expect("a saved state loads");
                assert_eq!(again, state, "the state changed on its way to disk and back");
            }
        }
        1 => {
            std::fs::write(pki_dir().join("clients.json"), bytes).expect("write");
            let _ = vigil_hub::pki::Pki::load_or_create(pki_dir(), &[]);
        }
        _ => {
            if let Ok(alert) = AlertMessage::decode(bytes) {
                let encoded = alert.encode(1 << 20).expect("a decoded alert encodes");
                let back = AlertMessage::decode(&encoded).expect("an encoded alert decodes");
                assert_eq!(back, alert, "the alert changed on its way through the queue");
            }
        }
    }
});
