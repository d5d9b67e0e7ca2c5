//! Turns doorbells into observed sensor changes.
//!
//! A ring is only a hint. The table's change counters are the truth: for
//! each ring the named slot is read first (the fast path), then, whenever
//! the table's generation moved further than the hub has accounted for, every
//! slot whose counter moved is read (the rescan). So coalesced, lost, forged
//! and out-of-range rings lose nothing and break nothing.

use vigil_ipc::doorbell::{Ring, SI_QUEUE};
use vigil_ipc::table::{SensorReading, SensorTable, TableError};

/// One slot that changed since the hub last looked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub slot: usize,
    pub reading: SensorReading,
}

/// A ring that did not come from a writer of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Suspicious {
    /// Sent with kill(2) rather than sigqueue: no value at all.
    NotQueued { ring: Ring },
    /// A value that names no slot.
    NoSuchSlot { ring: Ring, slot_count: usize },
}

/// What the hub has seen of the table.
#[derive(Debug)]
pub struct TableWatcher {
    /// Last change counter seen per slot.
    seen: Vec<u64>,
    /// The table generation when the hub last rescanned.
    seen_generation: u64,
}

impl TableWatcher {
    /// Starts with nothing seen, so the first scan reports every slot that
    /// has ever been written.
    pub fn new(slot_count: usize) -> TableWatcher {
        TableWatcher {
            seen: vec![0; slot_count],
            seen_generation: u64::MAX,
        }
    }

    /// Handles a batch of rings; returns the changes, in the order found,
    /// and the rings that were not genuine.
    pub fn on_rings(
        &mut self,
        table: &SensorTable,
        rings: &[Ring],
    ) -> (Vec<Observed>, Vec<Suspicious>) {
        let mut observed = Vec::new();
        let mut suspicious = Vec::new();
        for ring in rings {
            if ring.code != SI_QUEUE {
                suspicious.push(Suspicious::NotQueued { ring: *ring });
                continue;
            }
            match usize::try_from(ring.value) {
                Ok(slot) if slot < self.seen.len() => {
                    if let Some(o) = self.check_slot(table, slot) {
                        observed.push(o);
                    }
                }
                _ => suspicious.push(Suspicious::NoSuchSlot {
                    ring: *ring,
                    slot_count: self.seen.len(),
                }),
            }
        }
        observed.extend(self.rescan(table));
        (observed, suspicious)
    }

    /// Reads every slot whose counter moved, if the generation says any did.
    pub fn rescan(&mut self, table: &SensorTable) -> Vec<Observed> {
        // Read the generation first: a write that lands during the scan
        // leaves it ahead of what we record, so the next rescan looks again.
        let generation = table.generation();
        if generation == self.seen_generation {
            return Vec::new();
        }
        let found = (0..self.seen.len())
            .filter_map(|slot| self.check_slot(table, slot))
            .collect();
        self.seen_generation = generation;
        found
    }

    fn check_slot(&mut self, table: &SensorTable, slot: usize) -> Option<Observed> {
        match table.change_count(slot) {
            Ok(count) if count == self.seen[slot] => return None,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(slot, "cannot read the sensor table: {e}");
                return None;
            }
        }
        let reading = match table.read_sensor(slot) {
            Err(e @ TableError::Torn { .. }) => {
                tracing::warn!("{e}");
                // Without a repair the slot would stay unreadable for good:
                // only the writer that died could have finished its write.
                match table.repair_torn_slot(slot) {
                    Ok(true) => tracing::warn!(
                        slot,
                        "repaired the sensor table: slot {slot} was left mid-write by a \
                         writer that died; it holds what was there until sensord writes it again"
                    ),
                    Ok(false) => {}
                    // A lock that stays held is a writer stuck or dead
                    // holding it; the session repair breaks it when sensord
                    // goes, and the next rescan tries this slot again.
                    Err(e) => {
                        tracing::error!(slot, "cannot repair the torn sensor slot: {e}");
                        return None;
                    }
                }
                table.read_sensor(slot)
            }
            other => other,
        };
        match reading {
            Ok(reading) => {
                self.seen[slot] = reading.change_count;
                Some(Observed { slot, reading })
            }
            Err(e) => {
                tracing::error!(slot, "cannot read the sensor table: {e}");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_domain::{SensorKind, SensorState, TraceContext};
    use vigil_ipc::doorbell::SI_USER;
    use vigil_ipc::table::{SensorUpdate, SlotDescriptor};

    use super::*;

    fn table(n: usize) -> SensorTable {
        let slots: Vec<SlotDescriptor> = (0..n)
            .map(|i| SlotDescriptor {
                name: format!("s{i}"),
                kind: SensorKind::Door,
            })
            .collect();
        SensorTable::create(&slots, 1).expect("table")
    }

    /// A table of `slots` doors and a watcher that has seen it once.
    fn watched(slots: usize) -> (SensorTable, TableWatcher) {
        let t = table(slots);
        let mut w = TableWatcher::new(slots);
        assert!(w.rescan(&t).is_empty(), "a new table has no changes");
        (t, w)
    }

    fn write(table: &SensorTable, slot: usize, state: SensorState) {
        let update = SensorUpdate {
            state,
            fault: false,
            tamper: false,
            bypassed: false,
            trace: TraceContext::default(),
        };
        table.write_sensor(slot, &update).expect("write");
    }

    fn ring(value: u64) -> Ring {
        Ring {
            value,
            sender_pid: 1,
            sender_uid: 0,
            code: SI_QUEUE,
        }
    }

    #[test]
    fn a_ring_reports_its_slot_once() {
        let (t, mut w) = watched(3);
        write(&t, 1, SensorState::Active);
        let (observed, suspicious) = w.on_rings(&t, &[ring(1)]);
        assert!(suspicious.is_empty());
        assert_eq!(observed.len(), 1);
        assert_eq!(observed[0].slot, 1);
        assert_eq!(observed[0].reading.state, SensorState::Active);
        // A duplicate ring for the same write reports nothing.
        assert!(w.on_rings(&t, &[ring(1)]).0.is_empty());
    }

    #[test]
    fn coalesced_rings_lose_nothing() {
        let (t, mut w) = watched(4);
        // Three slots change, but only one ring arrives.
        for slot in [0, 2, 3] {
            write(&t, slot, SensorState::Active);
        }
        let (observed, _) = w.on_rings(&t, &[ring(2)]);
        let mut slots: Vec<usize> = observed.iter().map(|o| o.slot).collect();
        assert_eq!(slots.remove(0), 2, "the rung slot comes first");
        slots.sort_unstable();
        assert_eq!(slots, [0, 3]);
    }

    #[test]
    fn forged_and_out_of_range_rings_are_flagged_and_still_rescan() {
        let (t, mut w) = watched(2);
        write(&t, 0, SensorState::Active);
        let forged = Ring {
            code: SI_USER,
            value: 0,
            ..ring(0)
        };
        let (observed, suspicious) = w.on_rings(&t, &[forged, ring(99), ring(u64::MAX)]);
        assert_eq!(suspicious.len(), 3);
        assert!(matches!(suspicious[0], Suspicious::NotQueued { .. }));
        assert!(matches!(
            suspicious[1],
            Suspicious::NoSuchSlot { slot_count: 2, .. }
        ));
        // The real change is still found by the rescan.
        assert_eq!(observed.len(), 1);
        assert_eq!(observed[0].slot, 0);
    }

    #[test]
    fn a_slot_left_mid_write_is_repaired_and_reported() {
        let (t, mut w) = watched(2);
        write(&t, 1, SensorState::Active);
        // The writer died mid-write: the slot's sequence stays odd.
        t.abandon_write_for_test(1).expect("abandon");
        let (observed, _) = w.on_rings(&t, &[ring(1)]);
        assert_eq!(observed.len(), 1, "{observed:?}");
        assert_eq!(observed[0].slot, 1);
        assert_eq!(observed[0].reading.state, SensorState::Active);
        // Repaired for good: the next write is seen as usual.
        write(&t, 1, SensorState::Inactive);
        let (observed, _) = w.on_rings(&t, &[ring(1)]);
        assert_eq!(observed.len(), 1);
        assert_eq!(observed[0].reading.state, SensorState::Inactive);
    }

    #[test]
    fn a_new_watcher_reports_slots_written_before_it_existed() {
        let t = table(2);
        write(&t, 1, SensorState::Inactive);
        let mut w = TableWatcher::new(2);
        let found = w.rescan(&t);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].slot, 1);
    }
}
