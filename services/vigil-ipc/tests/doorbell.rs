//! The doorbell across a real process boundary: a child process rings this
//! one with pidfd_send_signal, and this process reads the rings from its
//! signalfd on a tokio runtime. Runs without libtest's harness because the
//! signal must be blocked before any thread exists.

use std::process::Command;

use vigil_ipc::doorbell::{
    DoorbellReceiver, DoorbellSender, Ring, SI_QUEUE, SI_USER, block_doorbell_signal,
    doorbell_signal,
};

fn main() {
    if let Ok(target) = std::env::var("DOORBELL_TEST_RING") {
        // Child: ring the parent with 3, 1, u64::MAX.
        let pid: u32 = target.parse().expect("pid");
        let sender = DoorbellSender::new(pid).expect("sender");
        for v in [3u64, 1, u64::MAX] {
            sender.ring(v).expect("ring");
        }
        return;
    }
    block_doorbell_signal().expect("block");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut passed = 0;
    rt.block_on(async {
        let receiver = DoorbellReceiver::new().expect("receiver");

        // 1. Rings from another process arrive in order with their values.
        let me = std::process::id().to_string();
        let mut child = Command::new(std::env::current_exe().expect("exe"))
            .env("DOORBELL_TEST_RING", &me)
            .spawn()
            .expect("spawn child");
        let child_pid = child.id();
        let mut rings: Vec<Ring> = Vec::new();
        while rings.len() < 3 {
            receiver.recv(&mut rings).await.expect("recv");
        }
        assert!(child.wait().expect("wait").success());
        let values: Vec<u64> = rings.iter().map(|r| r.value).collect();
        assert_eq!(values, [3, 1, u64::MAX]);
        assert!(
            rings
                .iter()
                .all(|r| r.code == SI_QUEUE && r.sender_pid == child_pid)
        );
        passed += 1;

        // 2. A forged ring from kill(1) arrives marked as SI_USER, and the
        //    process survives it (the signal is blocked, not fatal).
        let status = Command::new("kill")
            .args(["-s", &format!("{}", doorbell_signal()), &me])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut forged = Vec::new();
        receiver.recv(&mut forged).await.expect("recv");
        assert_eq!(forged.len(), 1);
        assert_eq!(forged[0].code, SI_USER);
        passed += 1;
    });
    println!("doorbell: {passed} passed, 0 failed");
}
