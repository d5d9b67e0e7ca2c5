//! The PIN flow: a PIN is checked off the loop (argon2), the lockout is
//! booked when the result comes back, and then the action it was entered
//! for (disarm, or arm where arming needs a PIN) is finished.

use std::sync::Arc;

use tracing::warn;
use vigil_alarm::Actor;
use vigil_alarm::users::{CodeCheck, Found, well_formed};
use vigil_domain::{ArmedMode, EventKind};

use super::effects::{Answer, Effects, PinCheck};
use super::{Cause, Draft, Engine, wording};
use crate::commands::{CommandError, Confirmed, Disarmed, Reply};

/// What a PIN was entered for, finished once it is checked.
#[derive(Debug)]
pub enum PinAction {
    Disarm {
        reply: Reply<Disarmed>,
    },
    Arm {
        mode: ArmedMode,
        force: bool,
        by: Actor,
        reply: Reply<Vec<String>>,
    },
    /// Bypassing a sensor while armed.
    Bypass {
        slot: usize,
        by: Actor,
        reply: Reply<()>,
    },
    /// Confirming a change of users: an admin user's PIN.
    Confirm {
        by: Actor,
        reply: Reply<Confirmed>,
    },
}

impl PinAction {
    /// The refusal of what the PIN was for.
    pub fn refuse(self, e: CommandError) -> Answer {
        match self {
            PinAction::Disarm { reply } => Answer::Disarmed(reply, Err(e)),
            PinAction::Arm { reply, .. } => Answer::Armed(reply, Err(e)),
            PinAction::Bypass { reply, .. } => Answer::Done(reply, Err(e)),
            PinAction::Confirm { reply, .. } => Answer::Confirmed(reply, Err(e)),
        }
    }
}

/// A looked-up PIN, back from its blocking thread.
#[derive(Debug)]
pub struct CheckedPin {
    /// The user it belongs to, if any; `Err` if the lookup itself failed.
    pub found: Result<Option<Found>, CommandError>,
    pub source: String,
    pub then: PinAction,
}

impl Engine {
    /// Checks a PIN: refused at once if it cannot be one (empty, not 4
    /// to 12 digits: never hashed, never counted) or while its source is
    /// locked out; otherwise looked up off the loop
    /// ([`Effects::pin_checks`]).
    pub(super) fn check_pin(
        &mut self,
        fx: &mut Effects,
        pin: String,
        source: String,
        then: PinAction,
    ) {
        if pin.is_empty() {
            fx.answers.push(then.refuse(CommandError::EmptyPin));
            return;
        }
        if !well_formed(&pin) {
            fx.answers.push(then.refuse(CommandError::MalformedPin));
            return;
        }
        if let Some(locked) = self.users.locked(&source, self.clock.now()) {
            self.finish_pin(fx, locked, source, then);
            return;
        }
        fx.pin_checks.push(PinCheck {
            users: Arc::clone(&self.users_snapshot),
            pin,
            source,
            then,
        });
    }

    /// A PIN lookup finished: books it toward the lockout and finishes what
    /// it was entered for.
    pub fn code_checked(&mut self, checked: CheckedPin) -> Effects {
        let mut fx = Effects::default();
        let CheckedPin {
            found,
            source,
            then,
        } = checked;
        match found {
            Ok(mut found) => {
                if let PinAction::Confirm { by, .. } = &then {
                    // Only an admin's PIN confirms a change of users;
                    // anyone else's counts as wrong, exactly like an
                    // unknown one (same answer, same lockout), so the
                    // confirmation is no way to find a valid PIN nor to
                    // reset the lockout's counters with one. A duress
                    // code still raises its silent alarm.
                    let other = found.take_if(|f| f.role != vigil_domain::Role::Admin);
                    if let Some(other) = other.filter(|f| f.duress) {
                        let by = Actor {
                            user: Some(other.user),
                            source: by.source.clone(),
                        };
                        self.raise_duress(&mut fx, &by, "tried to change the users");
                    }
                }
                let check = self.users.record(found, &source, self.clock.now());
                // The lockout's counters changed (a wrong PIN counts, a
                // valid one clears them): saved before the answer.
                fx.save = true;
                self.finish_pin(&mut fx, check, source, then);
            }
            Err(e) => fx.answers.push(then.refuse(e)),
        }
        fx
    }

    pub(super) fn finish_pin(
        &mut self,
        fx: &mut Effects,
        check: CodeCheck,
        source: String,
        then: PinAction,
    ) {
        let anonymous = Actor {
            user: None,
            source: source.clone(),
        };
        match check {
            CodeCheck::Valid { user, duress, role } => match then {
                PinAction::Disarm { reply } => {
                    let by = Actor {
                        user: Some(user.clone()),
                        source,
                    };
                    let events = self.alarm.disarm(by.clone(), duress, self.clock.now());
                    self.siren_test_until = None;
                    self.commit(fx, events, &by, &Cause::default());
                    fx.answers
                        .push(Answer::Disarmed(reply, Ok(Disarmed { user })));
                }
                PinAction::Arm {
                    mode,
                    force,
                    mut by,
                    reply,
                } => {
                    by.user = Some(user);
                    if duress {
                        self.raise_duress(fx, &by, &format!("armed {mode}"));
                    }
                    self.arm(fx, mode, force, by, reply);
                }
                PinAction::Bypass {
                    slot,
                    mut by,
                    reply,
                } => {
                    by.user = Some(user);
                    if duress {
                        let what = format!("bypassed {}", self.sensor_name(slot));
                        self.raise_duress(fx, &by, &what);
                    }
                    self.bypass(fx, slot, true, by, reply);
                }
                PinAction::Confirm { mut by, reply } => {
                    // `code_checked` let only admins' PINs through.
                    debug_assert_eq!(role, vigil_domain::Role::Admin);
                    by.user = Some(user.clone());
                    if duress {
                        self.raise_duress(fx, &by, "changed the users");
                    }
                    let confirmed = Confirmed {
                        admin: user,
                        users: Arc::clone(&self.users_snapshot),
                    };
                    fx.answers.push(Answer::Confirmed(reply, Ok(confirmed)));
                }
            },
            CodeCheck::Wrong { attempts_left } => {
                let message = wording::wrong_pin(&source, attempts_left);
                self.emit(fx, Draft::new(EventKind::CodeRefused, &anonymous, message));
                fx.answers
                    .push(then.refuse(CommandError::WrongPin { attempts_left }));
            }
            CodeCheck::LockedOut {
                retry_after_ms,
                everyone,
                began,
            } => {
                // The lockout is an event and an alert once, when it
                // begins; PINs refused during it are only answered, so a
                // flood of them costs neither the disk nor the owner's
                // phone anything.
                if began {
                    let message = wording::locked_out(&source, everyone, retry_after_ms);
                    self.emit(fx, Draft::new(EventKind::Lockout, &anonymous, message));
                }
                fx.answers.push(then.refuse(CommandError::LockedOut {
                    retry_after_ms,
                    everyone,
                }));
            }
        }
    }

    /// A duress code was used to do `what`: a silent alert and a record in
    /// the private log, never anything in the stream a watcher sees.
    pub(super) fn raise_duress(&mut self, fx: &mut Effects, by: &Actor, what: &str) {
        warn!(
            user = ?by.user,
            source = %by.source,
            "DURESS code used: {what} as asked; silent alert raised"
        );
        let draft = Draft {
            title: Some(wording::DURESS_TITLE.to_owned()),
            ..Draft::new(EventKind::Duress, by, wording::duress(what, by))
        };
        let event = self.event_of(&draft, 0);
        self.alert(fx, &draft, &event);
        fx.hidden.push(event);
        fx.save = true;
    }
}
