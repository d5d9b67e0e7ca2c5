use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::*;

fn descriptors(n: usize) -> Vec<SlotDescriptor> {
    (0..n)
        .map(|i| SlotDescriptor {
            name: format!("sensor-{i}"),
            kind: SensorKind::ALL[i % SensorKind::ALL.len()],
        })
        .collect()
}

fn update(state: SensorState, span: u8) -> SensorUpdate {
    SensorUpdate {
        state,
        fault: false,
        tamper: false,
        bypassed: false,
        trace: TraceContext {
            trace_id: [span; 16],
            span_id: [span; 8],
            flags: 1,
        },
    }
}

#[test]
fn a_new_table_is_unknown_and_disarmed() {
    let table = SensorTable::create(&descriptors(3), 42).expect("create");
    assert_eq!(table.slot_count(), 3);
    assert_eq!(table.hub_pid(), 42);
    assert_eq!(table.generation(), 0);
    assert_eq!(table.descriptor(2).expect("slot 2"), descriptors(3)[2]);
    let r = table.read_sensor(1).expect("read");
    assert_eq!(r.state, SensorState::Unknown);
    assert_eq!(r.change_count, 0);
    let s = table.read_system().expect("system");
    assert_eq!((s.mode, s.alarm), (ArmedMode::Disarmed, AlarmState::Idle));
}

#[test]
fn writes_are_seen_through_a_second_mapping() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    let other = SensorTable::from_fd(share(&table)).expect("map");
    let before = monotonic_ns();
    let count = table
        .write_sensor(1, &update(SensorState::Active, 7))
        .expect("write");
    assert_eq!(count, 1);
    let r = other.read_sensor(1).expect("read");
    assert_eq!(r.state, SensorState::Active);
    assert_eq!(r.change_count, 1);
    assert!(r.changed_mono_ns >= before);
    assert_eq!(r.trace.trace_id, [7; 16]);
    assert_eq!(other.generation(), 1);
    assert_eq!(other.read_sensor(0).expect("read").change_count, 0);

    other
        .write_system(&SystemUpdate {
            mode: ArmedMode::Away,
            alarm: AlarmState::Arming,
            trace: TraceContext::default(),
        })
        .expect("system");
    let s = table.read_system().expect("read");
    assert_eq!((s.mode, s.alarm), (ArmedMode::Away, AlarmState::Arming));
    assert_eq!(table.generation(), 2);
}

#[test]
fn flags_round_trip() {
    let table = SensorTable::create(&descriptors(1), 1).expect("create");
    let u = SensorUpdate {
        fault: true,
        tamper: true,
        bypassed: true,
        ..update(SensorState::Inactive, 0)
    };
    table.write_sensor(0, &u).expect("write");
    let r = table.read_sensor(0).expect("read");
    assert!(r.fault && r.tamper && r.bypassed);
    assert_eq!(r.state, SensorState::Inactive);
}

#[test]
fn out_of_range_slots_are_errors_not_panics() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    assert!(matches!(
        table.read_sensor(2),
        Err(TableError::NoSuchSlot { slot: 2, count: 2 })
    ));
    assert!(
        table
            .write_sensor(99, &update(SensorState::Active, 0))
            .is_err()
    );
}

#[test]
fn another_format_version_is_a_clear_error() {
    let table = SensorTable::create(&descriptors(1), 1).expect("create");
    // A table made by another release: same bytes, version word 2.
    table
        .header(H_VERSION_AND_COUNT)
        .store(2 | (1 << 32), Ordering::Relaxed);
    let err = SensorTable::from_fd(share(&table)).expect_err("version");
    assert!(matches!(
        err,
        TableError::FormatVersion {
            found: 2,
            expected: 1
        }
    ));
    assert!(err.to_string().contains("same Vigil release"), "{err}");
}

#[test]
fn foreign_regions_are_rejected() {
    let garbage = memfd_for_test(&[0xaa; 4096], true).expect("memfd");
    assert!(matches!(
        SensorTable::from_fd(garbage),
        Err(TableError::BadMagic)
    ));
    let tiny = memfd_for_test(&[0; 16], true).expect("memfd");
    assert!(matches!(
        SensorTable::from_fd(tiny),
        Err(TableError::TooSmall { len: 16 })
    ));
}

/// A second descriptor for the table's memfd, as another process gets it.
fn share(table: &SensorTable) -> OwnedFd {
    table.fd().try_clone_to_owned().expect("dup")
}

/// The table's bytes, read through its memfd (not its mapping).
fn bytes_of(table: &SensorTable) -> Vec<u8> {
    let file = File::from(share(table));
    let mut bytes = vec![0u8; table.len()];
    file.read_exact_at(&mut bytes, 0).expect("read");
    bytes
}

fn seals_of(fd: impl AsFd) -> SealFlag {
    SealFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GET_SEALS).expect("seals"))
}

#[test]
fn a_new_table_is_sealed_against_resizing_and_new_seals() {
    let table = SensorTable::create(&descriptors(3), 1).expect("create");
    let seals = seals_of(table.fd());
    assert!(
        seals.contains(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL),
        "{seals:?}"
    );
    // Writers map it writable: it must not be sealed against writes.
    assert!(!seals.intersects(WRITE_SEALS), "{seals:?}");
    let len = File::from(share(&table)).metadata().expect("stat").len();
    assert_eq!(len, region_len(3) as u64);
}

/// What the finding's attacker does with the descriptor (any holder can
/// reopen it through /proc): every way to change its size, or its seals,
/// is refused, and the table stays readable and writable.
#[test]
fn truncating_or_growing_the_table_is_refused() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    let file = File::from(share(&table));
    for size in [
        0,
        16,
        region_len(2) as u64 - 1,
        region_len(2) as u64 + 1,
        1 << 20,
    ] {
        let err = file.set_len(size).expect_err("resize");
        assert_eq!(err.raw_os_error(), Some(libc::EPERM), "ftruncate to {size}");
    }
    // Writing past the end would grow it.
    let err = file
        .write_all_at(b"x", region_len(2) as u64)
        .expect_err("grow by write");
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    // Nor can anyone add a seal that would stop the writers.
    let err =
        fcntl(&file, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_FUTURE_WRITE)).expect_err("add a seal");
    assert_eq!(err, nix::errno::Errno::EPERM);
    assert_eq!(file.metadata().expect("stat").len(), region_len(2) as u64);
    table
        .write_sensor(1, &update(SensorState::Active, 1))
        .expect("still writable");
    let other = SensorTable::from_fd(share(&table)).expect("still maps");
    assert_eq!(
        other.read_sensor(1).expect("read").state,
        SensorState::Active
    );
}

#[test]
fn a_table_without_seals_is_refused_before_it_is_mapped() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    let bytes = bytes_of(&table);
    // The same valid bytes in a memfd nobody sealed (as ipc-channel makes
    // them): a holder could truncate it under us.
    let unsealed = memfd_for_test(&bytes, false).expect("memfd");
    let err = SensorTable::from_fd(unsealed).expect_err("unsealed");
    assert!(matches!(err, TableError::BadSeals { .. }), "{err:?}");
    assert!(err.to_string().contains("SIGBUS"), "{err}");
    // Not a memfd at all (a pipe has no seals to read).
    let (pipe, _writer) = nix::unistd::pipe().expect("pipe");
    let err = SensorTable::from_fd(pipe).expect_err("pipe");
    assert!(matches!(err, TableError::NotSealable(_)), "{err:?}");
    // Sealed against writes: no writer could use it.
    let file = File::from(memfd_for_test(&bytes, false).expect("memfd"));
    fcntl(
        &file,
        FcntlArg::F_ADD_SEALS(REQUIRED_SEALS | SealFlag::F_SEAL_WRITE),
    )
    .expect("seal");
    let err = SensorTable::from_fd(OwnedFd::from(file)).expect_err("write-sealed");
    assert!(matches!(err, TableError::BadSeals { .. }), "{err:?}");
}

#[test]
fn a_table_of_the_wrong_size_is_refused_before_it_is_mapped() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    let mut bytes = bytes_of(&table);
    // Longer than its two slots take (a page more).
    let mut longer = bytes.clone();
    longer.resize(bytes.len() + 4096, 0);
    let err =
        SensorTable::from_fd(memfd_for_test(&longer, true).expect("memfd")).expect_err("longer");
    assert!(
        matches!(
            err,
            TableError::WrongSize {
                count: 2,
                expected,
                ..
            } if expected == region_len(2)
        ),
        "{err:?}"
    );
    // Shorter: the header claims a slot the memfd has no room for.
    bytes.truncate(region_len(1));
    let err =
        SensorTable::from_fd(memfd_for_test(&bytes, true).expect("memfd")).expect_err("shorter");
    assert!(matches!(err, TableError::WrongSize { .. }), "{err:?}");
    // The exact size maps.
    let exact = memfd_for_test(&bytes_of(&table), true).expect("memfd");
    assert_eq!(SensorTable::from_fd(exact).expect("map").slot_count(), 2);
}

#[test]
fn long_names_and_too_many_slots_are_refused() {
    let long = [SlotDescriptor {
        name: "x".repeat(40),
        kind: SensorKind::Door,
    }];
    assert!(matches!(
        SensorTable::create(&long, 1),
        Err(TableError::NameTooLong { .. })
    ));
    assert!(matches!(
        SensorTable::create(&descriptors(MAX_SLOTS + 1), 1),
        Err(TableError::TooManySlots { .. })
    ));
}

/// Two writers hammer one slot while readers check that every read is one
/// complete write: the trace id bytes and span id bytes always agree.
#[test]
fn readers_never_see_a_torn_slot() {
    let table = Arc::new(SensorTable::create(&descriptors(1), 1).expect("create"));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u8)
        .map(|w| {
            let table = Arc::clone(&table);
            std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    let tag = (i as u8).wrapping_mul(2).wrapping_add(w);
                    table
                        .write_sensor(0, &update(SensorState::Active, tag))
                        .expect("write");
                }
            })
        })
        .collect();
    let reader = {
        let (table, stop) = (Arc::clone(&table), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut last_count = 0;
            while !stop.load(Ordering::Relaxed) {
                // Two writers hammering one slot can starve a reader past
                // READ_GIVE_UP on a loaded machine: that is the reader
                // refusing to wait, not a torn read, so it just tries again.
                let r = match table.read_sensor(0) {
                    Ok(r) => r,
                    Err(TableError::Torn { .. }) => continue,
                    Err(e) => panic!("read: {e}"),
                };
                let tag = r.trace.span_id[0];
                assert!(r.trace.trace_id.iter().all(|&b| b == tag), "torn: {r:?}");
                assert!(r.trace.span_id.iter().all(|&b| b == tag), "torn: {r:?}");
                assert!(r.change_count >= last_count, "went back in time");
                last_count = r.change_count;
                reads += 1;
            }
            reads
        })
    };
    for w in writers {
        w.join().expect("writer");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().expect("reader") > 0);
    assert_eq!(table.read_sensor(0).expect("read").change_count, 40_000);
    assert_eq!(table.generation(), 40_000);
}

#[test]
fn repair_releases_a_lock_held_by_a_dead_writer_and_fixes_odd_slots() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    // Simulate a writer that died mid-write: lock taken, slot 1 odd.
    std::mem::forget(table.lock_writer().expect("lock"));
    table
        .word(sensor_slot_offset(1), S_SEQ)
        .store(5, Ordering::Relaxed);
    assert!(matches!(
        table.read_sensor(1),
        Err(TableError::Torn { slot: 1 })
    ));
    assert!(matches!(
        table.write_sensor(0, &update(SensorState::Active, 1)),
        Err(TableError::WriterLockTimeout)
    ));

    let repair = table.repair_after_writer_death().expect("repair");
    assert!(repair.broke_writer_lock);
    assert_eq!(repair.torn_slots, vec![1]);
    table
        .write_sensor(1, &update(SensorState::Inactive, 2))
        .expect("write after repair");
    assert_eq!(
        table.read_sensor(1).expect("read").state,
        SensorState::Inactive
    );
    // A healthy table needs no repair.
    assert_eq!(
        table.repair_after_writer_death().expect("repair"),
        Repair::default()
    );
}

#[test]
fn try_write_never_waits_and_lands_once_the_lock_is_free() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    let other = SensorTable::from_fd(share(&table)).expect("map");
    let held = other.hold_writer_lock_for_test().expect("lock");
    assert_eq!(
        table
            .try_write_sensor(0, &update(SensorState::Active, 3))
            .expect("try"),
        None,
        "a held lock is reported, not waited for"
    );
    assert_eq!(table.read_sensor(0).expect("read").change_count, 0);
    drop(held);
    assert_eq!(
        table
            .try_write_sensor(0, &update(SensorState::Active, 3))
            .expect("try"),
        Some(1)
    );
    assert_eq!(
        other.read_sensor(0).expect("read").state,
        SensorState::Active
    );
    assert!(
        table
            .try_write_sensor(5, &update(SensorState::Active, 3))
            .is_err()
    );
}

#[test]
fn a_slot_left_odd_is_repaired_and_then_readable() {
    let table = SensorTable::create(&descriptors(2), 1).expect("create");
    table
        .write_sensor(1, &update(SensorState::Active, 4))
        .expect("write");
    table.abandon_write_for_test(1).expect("abandon");
    assert!(matches!(
        table.read_sensor(1),
        Err(TableError::Torn { slot: 1 })
    ));
    let generation = table.generation();
    let count = table.change_count(1).expect("count");

    assert!(table.repair_torn_slot(1).expect("repair"), "it was odd");
    let r = table.read_sensor(1).expect("readable after the repair");
    assert_eq!(r.state, SensorState::Active);
    assert!(r.change_count > count, "watchers must see the slot move");
    assert!(table.generation() > generation, "readers must rescan");
    // An even slot is left alone, and the lock was given back.
    assert!(!table.repair_torn_slot(1).expect("repair"));
    assert!(!table.repair_torn_slot(0).expect("repair"));
    table
        .write_sensor(1, &update(SensorState::Inactive, 5))
        .expect("write after the repair");
    assert!(table.repair_torn_slot(9).is_err());
}

#[test]
fn repairing_a_slot_waits_for_a_live_writer_instead_of_racing_it() {
    let table = SensorTable::create(&descriptors(1), 1).expect("create");
    table.abandon_write_for_test(0).expect("abandon");
    // While someone holds the lock the slot may be a live write: no repair.
    let held = table.hold_writer_lock_for_test().expect("lock");
    assert!(matches!(
        table.repair_torn_slot(0),
        Err(TableError::WriterLockTimeout)
    ));
    assert!(table.read_sensor(0).is_err(), "still odd");
    drop(held);
    assert!(table.repair_torn_slot(0).expect("repair"));
}

#[test]
fn the_next_write_completes_a_slot_left_odd() {
    let table = SensorTable::create(&descriptors(1), 1).expect("create");
    table.abandon_write_for_test(0).expect("abandon");
    assert!(table.read_sensor(0).is_err(), "torn");
    table
        .write_sensor(0, &update(SensorState::Active, 6))
        .expect("write");
    assert_eq!(
        table.read_sensor(0).expect("a write heals it").state,
        SensorState::Active
    );
    table
        .write_sensor(0, &update(SensorState::Inactive, 7))
        .expect("write");
    assert_eq!(
        table.read_sensor(0).expect("and it stays healed").state,
        SensorState::Inactive
    );
}
