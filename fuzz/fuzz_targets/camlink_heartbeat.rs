//! The camera port's UDP datagrams: heartbeats (`verify_heartbeat`, as the
//! hub reads them from anyone on the LAN, then `HeartbeatGuard::accept`,
//! which refuses replays) and the hub's discovery beacon (`parse_beacon`,
//! as a camera reads it).
//!
//! libFuzzer cannot forge a MAC, so the input is used twice: as a datagram
//! (nothing may panic, and nothing verifies for a camera without a key),
//! and as a script of signed heartbeats, relinks and replays that the
//! guard must judge as a replay-proof receiver would: a datagram is taken
//! at most once, only on the camera's latest link, numbers strictly rising.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_camlink::{
    HeartbeatGuard, Key, heartbeat, is_v1_heartbeat, parse_beacon, verify_heartbeat,
};

fuzz_target!(|data: &[u8]| {
    let key = Key::new("fuzz-key").expect("a key");
    if let Some(beat) = verify_heartbeat(data, |camera| (camera == "porch").then_some(&key)) {
        assert_eq!(beat.camera, "porch");
    }
    let _ = is_v1_heartbeat(data);
    if let Some(port) = parse_beacon(data) {
        assert_ne!(port, 0);
    }
    script(&key, data);
});

/// Each step is 10 bytes: an op, a link choice, a sequence number (u64).
/// Links are challenge nonces, fresh on every connection: the script's
/// links are all different (`link(n)`), and a heartbeat names one of the
/// links so far or one never made.
fn script(key: &Key, data: &[u8]) {
    fn link(n: usize) -> [u8; 32] {
        let mut l = [0xa5; 32];
        l[..8].copy_from_slice(&(n as u64).to_le_bytes());
        l
    }
    let mut guard = HeartbeatGuard::default();
    let mut links = 0usize;
    let mut last = 0u64;
    let mut sent: Vec<String> = Vec::new();
    let mut taken: Vec<String> = Vec::new();
    for step in data.chunks_exact(10) {
        let seq = u64::from_le_bytes(step[2..10].try_into().expect("8 bytes"));
        let datagram = match step[0] % 3 {
            // The camera (re)connects: a new link.
            0 => {
                links += 1;
                guard.linked(link(links));
                last = 0;
                continue;
            }
            // A heartbeat signed now for a link so far, or one never made.
            1 => heartbeat(key, "porch", &link(usize::from(step[1]) % (links + 2)), seq),
            // A replay of one sent before.
            _ => match sent.get(seq as usize % sent.len().max(1)) {
                Some(d) => d.clone(),
                None => continue,
            },
        };
        let beat = verify_heartbeat(datagram.as_bytes(), |c| (c == "porch").then_some(key))
            .expect("a signed heartbeat verifies");
        let took = guard.accept(&beat).is_ok();
        let should = links > 0 && beat.link == link(links) && beat.seq > last;
        assert_eq!(took, should, "guard judged {datagram:?} wrongly");
        if took {
            assert!(!taken.contains(&datagram), "a datagram was taken twice");
            last = beat.seq;
            taken.push(datagram.clone());
        }
        sent.push(datagram);
    }
}
