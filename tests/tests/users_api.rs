//! User management over the API (issue 15), across a real hub over TLS:
//! an admin client adds, changes and removes keypad users, confirmed by an
//! admin user's PIN that counts toward the lockout; the users survive a
//! restart, their PINs are stored only as hashes and never logged; a
//! removed user's phones are revoked with them.

use std::io::Write;
use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use tonic::Code;
use vigil_e2e::{RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message};
use vigil_proto::v1 as pb;
use vigil_proto::v1::admin_service_client::AdminServiceClient;
use vigil_proto::v1::alarm_service_client::AlarmServiceClient;

/// The owner's PIN: an admin user of the config file.
const OWNER_PIN: &str = "8642";
/// alice's PIN (TEST_ALARM): a user, not an admin.
const ALICE_PIN: &str = "2468";

/// `vigilctl hash-pin` of `pin`, as the README says to make one.
fn hash(pin: &str) -> Result<String> {
    let mut child = std::process::Command::new(vigil_e2e::bin_dir()?.join("vigilctl"))
        .arg("hash-pin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    writeln!(child.stdin.take().context("stdin")?, "{pin}")?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "hash-pin failed");
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

struct Setup {
    stack: Stack,
    hub: Service,
    _sensord: Service,
    runtime: tokio::runtime::Runtime,
}

impl Setup {
    fn start() -> Result<Setup> {
        let owner = format!(
            "\n[[users]]\nname = \"owner\"\nrole = \"admin\"\npin_hash = \"{}\"\n",
            hash(OWNER_PIN)?
        );
        let stack = Stack::new(&format!("{TEST_SENSORS}{TEST_ALARM}{owner}"), RunAs::Me)?;
        let hub = stack.start("vigil-hub")?;
        let sensord = stack.start("vigil-sensord")?;
        hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
        stack.pair_here("admin")?;
        Ok(Setup {
            stack,
            hub,
            _sensord: sensord,
            runtime: tokio::runtime::Runtime::new()?,
        })
    }

    fn channel(&self) -> Result<tonic::transport::Channel> {
        let creds = vigilctl::remote::Credentials {
            dir: self.stack.credentials_dir(),
        };
        Ok(self
            .runtime
            .block_on(vigilctl::remote::connect(&creds, None))?
            .0)
    }

    fn admin(&self) -> Result<AdminServiceClient<tonic::transport::Channel>> {
        Ok(AdminServiceClient::new(self.channel()?))
    }

    fn add(
        &self,
        name: &str,
        pin: &str,
        admin_pin: &str,
    ) -> Result<pb::AddUserResponse, tonic::Status> {
        let mut admin = self
            .admin()
            .map_err(|e| tonic::Status::unknown(e.to_string()))?;
        self.runtime
            .block_on(admin.add_user(pb::AddUserRequest {
                name: name.into(),
                role: pb::Role::User as i32,
                pin: pin.into(),
                duress_pin: String::new(),
                admin_pin: admin_pin.into(),
            }))
            .map(tonic::Response::into_inner)
    }

    /// Arms (home, forced) and disarms with `pin`: the user the hub names.
    fn disarm_with(&self, pin: &str) -> Result<Result<String, tonic::Status>> {
        let mut alarm = AlarmServiceClient::new(self.channel()?);
        self.runtime.block_on(alarm.arm(pb::ArmRequest {
            mode: pb::Mode::Home as i32,
            force: true,
            pin: String::new(),
        }))?;
        let answer = self
            .runtime
            .block_on(alarm.disarm(pb::DisarmRequest { pin: pin.into() }))
            .map(|r| r.into_inner().user);
        if answer.is_err() {
            self.runtime.block_on(alarm.disarm(pb::DisarmRequest {
                pin: OWNER_PIN.into(),
            }))?;
        }
        Ok(answer)
    }

    fn users(&self) -> Result<Vec<pb::User>> {
        let mut admin = self.admin()?;
        Ok(self
            .runtime
            .block_on(admin.list_users(pb::ListUsersRequest {}))?
            .into_inner()
            .users)
    }
}

#[test]
fn an_admin_adds_changes_and_removes_users_confirmed_by_an_admin_pin() -> Result<()> {
    let setup = Setup::start()?;

    // Confirmation: a user's valid PIN is not an admin's, and is answered
    // exactly as a wrong one (counted, the same words): the confirmation
    // tells no valid PIN from a wrong one.
    let err = setup
        .add("bob", "1111", ALICE_PIN)
        .expect_err("alice is no admin");
    ensure!(
        err.code() == Code::PermissionDenied && err.message().contains("4 attempts left"),
        "{err:?}"
    );
    let err = setup.add("bob", "1111", "0000").expect_err("a wrong PIN");
    ensure!(
        err.code() == Code::PermissionDenied && err.message().contains("3 attempts left"),
        "{err:?}"
    );
    // Checked before any PIN: the form, the config's users, PINs in use.
    let err = setup
        .add("Bob!", "1111", OWNER_PIN)
        .expect_err("a bad name");
    ensure!(err.code() == Code::InvalidArgument, "{err:?}");
    let err = setup
        .add("carol", "12", OWNER_PIN)
        .expect_err("a short PIN");
    ensure!(err.code() == Code::InvalidArgument, "{err:?}");
    let err = setup
        .add("alice", "1111", OWNER_PIN)
        .expect_err("in the config");
    ensure!(err.code() == Code::FailedPrecondition, "{err:?}");
    // A PIN someone has is refused, and costs an attempt like a wrong PIN
    // (the owner's valid PIN had reset the counter).
    let err = setup
        .add("carol", ALICE_PIN, OWNER_PIN)
        .expect_err("alice's PIN");
    ensure!(
        err.code() == Code::AlreadyExists && err.message().contains("4 attempts left"),
        "{err:?}"
    );

    let added = setup.add("bob", "1111", OWNER_PIN)?;
    let bob = added.user.context("the user")?;
    ensure!(bob.name == "bob" && bob.source == "api", "{bob:?}");
    let listed = setup.users()?;
    ensure!(
        listed
            .iter()
            .any(|u| u.name == "owner" && u.source == "config")
            && listed.iter().any(|u| u.name == "bob" && u.source == "api"),
        "{listed:?}"
    );
    ensure!(
        setup.disarm_with("1111")?.ok().as_deref() == Some("bob"),
        "bob disarms"
    );

    // Two admins at once, the same new PIN for two users: changes are made
    // one at a time, so the second sees the first's PIN as taken.
    let request = |name: &str| pb::AddUserRequest {
        name: name.into(),
        role: pb::Role::Guest as i32,
        pin: "4444".into(),
        duress_pin: String::new(),
        admin_pin: OWNER_PIN.into(),
    };
    let (mut first, mut second) = (setup.admin()?, setup.admin()?);
    let (dave, erin) = setup.runtime.block_on(async {
        tokio::join!(
            first.add_user(request("dave")),
            second.add_user(request("erin"))
        )
    });
    let codes = [&dave, &erin].map(|r| r.as_ref().map_or_else(|e| e.code(), |_| Code::Ok));
    ensure!(
        codes.contains(&Code::Ok) && codes.contains(&Code::AlreadyExists),
        "one of two racing users gets the PIN: {dave:?} {erin:?}"
    );
    let listed = setup.users()?;
    ensure!(
        listed
            .iter()
            .filter(|u| u.name == "dave" || u.name == "erin")
            .count()
            == 1,
        "{listed:?}"
    );

    // A user-role client may not manage users, whatever PIN it has.
    let viewer = setup.stack.state_dir().join("user-credentials");
    let viewer = viewer.display().to_string();
    let (code, _, err) = setup.stack.ctl(&[
        "--credentials",
        &viewer,
        "pair",
        "--here",
        "kid",
        "--role",
        "user",
    ])?;
    ensure!(code == 0, "{err}");
    let mut kid = setup
        .stack
        .ctl_command(&["--credentials", &viewer, "user-add", "eve"]);
    let out = run_with_stdin(&mut kid, &format!("{OWNER_PIN}\n5555\n"))?;
    ensure!(
        out.status.code() == Some(5),
        "a user client is denied (exit 5): {out:?}"
    );

    // Through vigilctl, PINs on standard input: a new PIN for bob.
    let mut pin = setup.stack.ctl_command(&["--json", "user-pin", "bob"]);
    let out = run_with_stdin(&mut pin, &format!("{OWNER_PIN}\n2222\n"))?;
    ensure!(out.status.success(), "user-pin: {out:?}");
    ensure!(
        setup.disarm_with("1111")?.is_err(),
        "the old PIN no longer works"
    );
    ensure!(
        setup.disarm_with("2222")?.ok().as_deref() == Some("bob"),
        "the new one does"
    );
    // A duress PIN equal to the user's own PIN would make every disarm a
    // silent alarm: refused.
    let mut duress = setup.stack.ctl_command(&["user-pin", "bob", "--duress"]);
    let out = run_with_stdin(&mut duress, &format!("{OWNER_PIN}\n2222\n"))?;
    ensure!(
        out.status.code() == Some(7),
        "bob's own PIN as his duress PIN: {out:?}"
    );

    // Kept across a restart, as hashes only, in a private file; never in
    // the hub's log.
    let Setup {
        stack,
        hub,
        _sensord,
        runtime,
    } = setup;
    let log = std::fs::read_to_string(&hub.log)?;
    drop(hub);
    let hub = stack.start("vigil-hub")?;
    hub.wait_log(0, "the hub", |l| message(l) == "hub ready")?;
    let setup = Setup {
        stack,
        hub,
        _sensord,
        runtime,
    };
    let stored = setup.stack.state_dir().join("users.json");
    let text = std::fs::read_to_string(&stored)?;
    use std::os::unix::fs::PermissionsExt;
    ensure!(
        std::fs::metadata(&stored)?.permissions().mode() & 0o777 == 0o600,
        "users.json is private"
    );
    ensure!(
        text.contains("$argon2id$") && !text.contains("2222"),
        "{text}"
    );
    ensure!(
        !log.contains("2222") && !log.contains("1111") && !log.contains(OWNER_PIN),
        "a PIN reached the log"
    );
    ensure!(
        setup.disarm_with("2222")?.ok().as_deref() == Some("bob"),
        "bob's PIN after a restart"
    );

    // A pairing code for nobody's user is refused on the hub machine too.
    let (status, _, err) = setup.stack.ctl(&["pair", "--user", "nobody"])?;
    ensure!(
        status == 7 && err.contains("no user"),
        "exit 7: {status} {err}"
    );

    // A phone of bob's is revoked with him.
    let mut admin = setup.admin()?;
    let code = setup
        .runtime
        .block_on(admin.create_pairing_code(pb::CreatePairingCodeRequest {
            role: pb::Role::User as i32,
            user: "bob".into(),
        }))?
        .into_inner();
    let token = format!(
        "vigil-pair:1:{}:{}:{}",
        std::fs::read_to_string(setup.stack.credentials_dir().join("hub"))?.trim(),
        code.code,
        code.ca_sha256
    );
    let phone = setup.stack.state_dir().join("bob-phone");
    let phone = phone.display().to_string();
    let (status, _, err) = setup.stack.ctl(&[
        "--credentials",
        &phone,
        "pair",
        "--name",
        "bob-phone",
        "--token",
        &token,
    ])?;
    ensure!(status == 0, "pairing bob's phone: {err}");
    let (status, out, _) = setup
        .stack
        .ctl(&["--credentials", &phone, "--json", "whoami"])?;
    ensure!(status == 0 && out.contains("\"user\":\"bob\""), "{out}");
    let mut remove = setup.stack.ctl_command(&["--json", "user-remove", "bob"]);
    let out = run_with_stdin(&mut remove, &format!("{OWNER_PIN}\n"))?;
    ensure!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("bob-phone"),
        "user-remove: {out:?}"
    );
    let (status, _, _) = setup.stack.ctl(&["--credentials", &phone, "status"])?;
    ensure!(
        status == 4,
        "bob's phone is no longer paired (exit 4): {status}"
    );
    ensure!(setup.disarm_with("2222")?.is_err(), "bob's PIN is gone");

    // The changes are events, attributed to the admin who made them (from
    // the log: the restart emptied the hub's memory of events).
    let (_, out, _) = setup.stack.ctl(&["--json", "events", "--after", "1"])?;
    let kinds: Vec<(String, String)> = vigil_e2e::json_lines(&out)
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["user"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    for kind in ["user_added", "user_pin_changed", "user_removed"] {
        ensure!(
            kinds.iter().any(|(k, u)| k == kind && u == "owner"),
            "{kind} by owner: {kinds:?}"
        );
    }
    Ok(())
}

fn run_with_stdin(
    command: &mut std::process::Command,
    input: &str,
) -> Result<std::process::Output> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    Ok(child.wait_with_output()?)
}
