//! The mobile API (issue 15), from a phone app's side: raw tonic stubs over
//! TLS against a real hub, with only what `proto/` documents. Each test is
//! one part of the contract: who a client is (another hub's certificate,
//! WhoAmI, Renew, RevokeSelf, the user a client belongs to), where the
//! numbers come from (hub and log identities, `after_seq` beyond the end),
//! what the system is (GetSystem, TestSiren), and events as data.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use vigil_e2e::{Service, Stack, alarm_stack};
use vigil_proto::v1 as pb;
use vigil_proto::v1::admin_service_client::AdminServiceClient;
use vigil_proto::v1::alarm_service_client::AlarmServiceClient;

/// The hub's address and CA, as this stack's pairing stored them.
struct Hub {
    addr: String,
    ca_pem: String,
    runtime: tokio::runtime::Runtime,
}

impl Hub {
    fn of(stack: &Stack) -> Result<Hub> {
        let creds = stack.credentials_dir();
        Ok(Hub {
            addr: std::fs::read_to_string(creds.join("hub"))?
                .trim()
                .to_owned(),
            ca_pem: std::fs::read_to_string(creds.join("ca.pem"))?,
            runtime: tokio::runtime::Runtime::new()?,
        })
    }

    /// A channel presenting `cert_pem` and `key_pem` (any CA's).
    fn channel(&self, cert_pem: &str, key_pem: &str) -> Result<Channel> {
        let tls = ClientTlsConfig::new()
            .domain_name("vigil-hub")
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(cert_pem, key_pem));
        let endpoint = Channel::from_shared(format!("https://{}", self.addr))?
            .tls_config(tls)?
            .connect_timeout(Duration::from_secs(5));
        Ok(self.runtime.block_on(endpoint.connect())?)
    }

    fn anonymous(&self) -> Result<Channel> {
        let tls = ClientTlsConfig::new()
            .domain_name("vigil-hub")
            .ca_certificate(Certificate::from_pem(&self.ca_pem));
        let endpoint = Channel::from_shared(format!("https://{}", self.addr))?.tls_config(tls)?;
        Ok(self.runtime.block_on(endpoint.connect())?)
    }

    /// GetStatus over `channel`.
    fn status(&self, channel: &Channel) -> Result<pb::Status, tonic::Status> {
        self.runtime
            .block_on(AlarmServiceClient::new(channel.clone()).get_status(pb::GetStatusRequest {}))
            .map(|r| r.into_inner().status.unwrap_or_default())
    }

    /// This stack's own paired client (vigilctl's credentials).
    fn paired(&self, stack: &Stack) -> Result<Channel> {
        let creds = stack.credentials_dir();
        self.channel(
            &std::fs::read_to_string(creds.join("client.pem"))?,
            &std::fs::read_to_string(creds.join("client.key"))?,
        )
    }

    /// Pairs a new client named `name` with a code an admin made for
    /// `role` and `user`; returns its channel and key.
    fn pair(
        &self,
        admin: &Channel,
        name: &str,
        role: pb::Role,
        user: &str,
    ) -> Result<(Channel, pb::PairResponse, rcgen::KeyPair)> {
        let code = self
            .runtime
            .block_on(AdminServiceClient::new(admin.clone()).create_pairing_code(
                pb::CreatePairingCodeRequest {
                    role: role as i32,
                    user: user.into(),
                },
            ))?
            .into_inner();
        let key = rcgen::KeyPair::generate()?;
        let paired = self
            .runtime
            .block_on(
                AdminServiceClient::new(self.anonymous()?).pair(pb::PairRequest {
                    code: code.code,
                    client_name: name.into(),
                    csr_pem: csr(&key)?,
                }),
            )?
            .into_inner();
        let channel = self.channel(&paired.certificate_pem, &key.serialize_pem())?;
        Ok((channel, paired, key))
    }
}

/// Polls `found` every 100 ms for 20 s until it finds something.
fn wait_for<T>(what: &str, mut found: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(it) = found()? {
            return Ok(it);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no {what} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn csr(key: &rcgen::KeyPair) -> Result<String> {
    Ok(rcgen::CertificateParams::new(Vec::<String>::new())?
        .serialize_request(key)?
        .pem()?)
}

fn admin_stack() -> Result<(Stack, Service, Service, Hub)> {
    let (stack, hub, sensord) = alarm_stack("admin")?;
    let api = Hub::of(&stack)?;
    Ok((stack, hub, sensord, api))
}

#[test]
fn a_certificate_from_another_ca_is_unauthenticated_and_says_so() -> Result<()> {
    let (_stack, _hub, _sensord, api) = admin_stack()?;
    // Another "hub": a CA of its own and a client certificate it signed,
    // with a key the client holds (the handshake proves it).
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer)?;
    drop(ca);

    let channel = api.channel(&cert.pem(), &key.serialize_pem())?;
    let err = api.status(&channel).expect_err("a stranger's certificate");
    ensure!(err.code() == Code::Unauthenticated, "{err:?}");
    ensure!(
        err.message().contains("not issued by this hub's CA"),
        "the message says why: {}",
        err.message()
    );
    Ok(())
}

#[test]
fn a_client_knows_itself_renews_and_signs_out() -> Result<()> {
    let (stack, _hub, _sensord, api) = admin_stack()?;
    let admin = api.paired(&stack)?;
    let (phone, paired, _key) = api.pair(&admin, "alice-phone", pb::Role::User, "alice")?;
    ensure!(paired.user == "alice", "{paired:?}");
    let year = 365 * 24 * 3600 * 1000;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis(),
    )?;
    ensure!(
        (paired.expires_unix_ms - now - year).abs() < 120_000,
        "a year's certificate: {paired:?}"
    );

    let mut admin_api = AdminServiceClient::new(phone.clone());
    let me = api
        .runtime
        .block_on(admin_api.who_am_i(pb::WhoAmIRequest {}))?
        .into_inner()
        .client
        .context("no client")?;
    ensure!(
        me.name == "alice-phone" && me.role == pb::Role::User as i32 && me.user == "alice",
        "{me:?}"
    );
    ensure!(me.expires_unix_ms == paired.expires_unix_ms, "{me:?}");

    // What the phone does without a PIN is the user's.
    let mut alarm = AlarmServiceClient::new(phone.clone());
    api.runtime.block_on(alarm.arm(pb::ArmRequest {
        mode: pb::Mode::Home as i32,
        force: true,
        pin: String::new(),
    }))?;
    let armed = last_event_of(&api, &phone, "armed")?;
    ensure!(
        armed.user == "alice" && armed.source == "grpc:alice-phone",
        "attributed to the phone's user: {armed:?}"
    );

    // Renew: a new key, the same client; the old certificate still works
    // for the grace, the new one at once.
    let new_key = rcgen::KeyPair::generate()?;
    let renewed = api
        .runtime
        .block_on(admin_api.renew(pb::RenewRequest {
            csr_pem: csr(&new_key)?,
        }))?
        .into_inner();
    ensure!(
        renewed.expires_unix_ms >= paired.expires_unix_ms,
        "{renewed:?}"
    );
    let fresh = api.channel(&renewed.certificate_pem, &new_key.serialize_pem())?;
    let me_again = api
        .runtime
        .block_on(AdminServiceClient::new(fresh.clone()).who_am_i(pb::WhoAmIRequest {}))?
        .into_inner()
        .client
        .context("no client")?;
    ensure!(
        me_again.name == "alice-phone" && me_again.certificate_sha256 != me.certificate_sha256,
        "{me_again:?}"
    );
    api.runtime
        .block_on(admin_api.who_am_i(pb::WhoAmIRequest {}))
        .context("the old certificate, within its grace")?;
    let listed = api
        .runtime
        .block_on(AdminServiceClient::new(admin.clone()).list_clients(pb::ListClientsRequest {}))?
        .into_inner()
        .clients;
    let phones: Vec<_> = listed.iter().filter(|c| c.name == "alice-phone").collect();
    ensure!(
        phones.len() == 1 && phones[0].certificate_sha256 == me_again.certificate_sha256,
        "one client, its new certificate: {listed:?}"
    );

    // RevokeSelf: both certificates stop working at once.
    api.runtime
        .block_on(AdminServiceClient::new(fresh.clone()).revoke_self(pb::RevokeSelfRequest {}))?;
    for channel in [fresh, phone] {
        let err = api.status(&channel).expect_err("signed out");
        ensure!(err.code() == Code::Unauthenticated, "{err:?}");
    }
    Ok(())
}

/// The newest event of `kind` in the hub's ring, read by replaying it.
fn last_event_of(api: &Hub, channel: &Channel, kind: &str) -> Result<pb::Event> {
    let mut alarm = AlarmServiceClient::new(channel.clone());
    let found = wait_for(&format!("a {kind} event"), || {
        let events = api.runtime.block_on(async {
            let mut stream = alarm
                .watch_events(pb::WatchEventsRequest { after_seq: Some(0) })
                .await?
                .into_inner();
            let mut seen = Vec::new();
            // The replay comes at once; stop at the first pause.
            while let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(300), stream.next()).await
            {
                seen.push(event?);
            }
            anyhow::Ok(seen)
        })?;
        Ok(events.into_iter().rev().find(|e| e.kind == kind))
    })?;
    Ok(found)
}

#[test]
fn identities_come_with_the_status_and_every_stream() -> Result<()> {
    let (stack, hub, sensord, api) = admin_stack()?;
    let channel = api.paired(&stack)?;
    let mut alarm = AlarmServiceClient::new(channel.clone());
    let status = api.status(&channel)?;
    let hex32 = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    ensure!(
        hex32(&status.hub_id) && hex32(&status.log_id) && status.hub_id != status.log_id,
        "{status:?}"
    );

    // Every stream starts with them, before any event.
    let response = api
        .runtime
        .block_on(alarm.watch_events(pb::WatchEventsRequest { after_seq: None }))?;
    let header = |name: &str| {
        response
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    ensure!(
        header("vigil-hub-id").as_deref() == Some(status.hub_id.as_str())
            && header("vigil-log-id").as_deref() == Some(status.log_id.as_str())
            && header("vigil-last-seq").is_some(),
        "{:?}",
        response.metadata()
    );
    drop(response);

    // Resuming from beyond the end: OUT_OF_RANGE that says so, on the
    // stream and in the history.
    let beyond = status.last_event_seq + 1000;
    let err = api
        .runtime
        .block_on(alarm.watch_events(pb::WatchEventsRequest {
            after_seq: Some(beyond),
        }))
        .expect_err("beyond the last event");
    ensure!(
        err.code() == Code::OutOfRange && err.message().contains("beyond the last event"),
        "{err:?}"
    );

    // A sensor's change carries its state as data.
    stack.sim("set front-door open")?;
    let opened = last_event_of(&api, &channel, "sensor")?;
    ensure!(
        opened.sensor == "front-door"
            && opened.sensor_state == pb::SensorState::Active as i32
            && opened.camera.is_empty(),
        "{opened:?}"
    );
    stack.sim("set front-door closed")?;

    // A restart keeps both identities.
    drop((hub, sensord, alarm, channel));
    let _hub = stack.start("vigil-hub")?;
    let again = wait_for("the restarted hub's status", || {
        let Ok(channel) = api.paired(&stack) else {
            return Ok(None);
        };
        Ok(api.status(&channel).ok())
    })?;
    ensure!(
        again.hub_id == status.hub_id && again.log_id == status.log_id,
        "kept across a restart: {again:?} vs {status:?}"
    );
    Ok(())
}

#[test]
fn get_system_explains_the_setup_and_test_siren_is_for_admins_while_disarmed() -> Result<()> {
    let (stack, _hub, _sensord, api) = admin_stack()?;
    let admin = api.paired(&stack)?;
    let system = api
        .runtime
        .block_on(AlarmServiceClient::new(admin.clone()).get_system(pb::GetSystemRequest {}))?
        .into_inner();
    ensure!(
        system.version == env!("CARGO_PKG_VERSION") && system.api == "vigil.v1",
        "{system:?}"
    );
    let away = system
        .modes
        .iter()
        .find(|m| m.mode == pb::Mode::Away as i32)
        .context("away's timing")?;
    // TEST_ALARM: away has a 1 s exit and 2 s entry delay, 120 s siren.
    ensure!(
        (away.exit_delay_s, away.entry_delay_s, away.siren_s) == (1, 2, 120),
        "{away:?}"
    );
    ensure!(
        system.modes.len() == 5,
        "every armed mode: {:?}",
        system.modes
    );
    let tamper = system
        .sensors
        .iter()
        .find(|s| s.name == "siren-box-tamper")
        .context("the tamper sensor")?;
    ensure!(
        tamper.twenty_four_hour && tamper.modes.is_empty(),
        "{tamper:?}"
    );
    let door = system
        .sensors
        .iter()
        .find(|s| s.name == "front-door")
        .context("the door")?;
    ensure!(!door.modes.is_empty() && !door.twenty_four_hour, "{door:?}");
    // A hub without cameras has no clips: an empty list, not an error an
    // app would take for a name of nothing.
    let clips = api
        .runtime
        .block_on(
            vigil_proto::v1::camera_service_client::CameraServiceClient::new(admin.clone())
                .list_clips(pb::ListClipsRequest {}),
        )?
        .into_inner();
    ensure!(
        clips.clips.is_empty() && system.cameras.is_empty(),
        "{clips:?}"
    );

    // A user may not test the siren; an admin may, while disarmed only.
    let (user, _, _) = api.pair(&admin, "kid-phone", pb::Role::User, "")?;
    let err = api
        .runtime
        .block_on(AlarmServiceClient::new(user).test_siren(pb::TestSirenRequest {}))
        .expect_err("a user");
    ensure!(err.code() == Code::PermissionDenied, "{err:?}");
    let mut alarm = AlarmServiceClient::new(admin.clone());
    api.runtime
        .block_on(alarm.test_siren(pb::TestSirenRequest {}))?;
    let tested = last_event_of(&api, &admin, "siren_test")?;
    ensure!(tested.source.starts_with("grpc:"), "{tested:?}");
    api.runtime.block_on(alarm.arm(pb::ArmRequest {
        mode: pb::Mode::Home as i32,
        force: true,
        pin: String::new(),
    }))?;
    let err = api
        .runtime
        .block_on(alarm.test_siren(pb::TestSirenRequest {}))
        .expect_err("armed");
    ensure!(
        err.code() == Code::FailedPrecondition && err.message().contains("disarmed"),
        "{err:?}"
    );
    Ok(())
}

#[test]
fn pairing_errors_follow_the_table_and_a_refused_name_keeps_the_code() -> Result<()> {
    let (stack, _hub, _sensord, api) = admin_stack()?;
    let admin = api.paired(&stack)?;
    let mut admin_api = AdminServiceClient::new(admin.clone());
    let err = api
        .runtime
        .block_on(admin_api.create_pairing_code(pb::CreatePairingCodeRequest {
            role: pb::Role::User as i32,
            user: "mallory".into(),
        }))
        .expect_err("no such user");
    ensure!(err.code() == Code::NotFound, "{err:?}");
    let code = api
        .runtime
        .block_on(admin_api.create_pairing_code(pb::CreatePairingCodeRequest {
            role: pb::Role::Guest as i32,
            user: String::new(),
        }))?
        .into_inner()
        .code;
    let mut anonymous = AdminServiceClient::new(api.anonymous()?);
    let key = rcgen::KeyPair::generate()?;
    let pair = |name: &str, csr_pem: String| pb::PairRequest {
        code: code.clone(),
        client_name: name.into(),
        csr_pem,
    };
    for (request, want) in [
        // vigilctl's own client is "e2e".
        (pair("e2e", csr(&key)?), Code::AlreadyExists),
        (pair("No Spaces", csr(&key)?), Code::InvalidArgument),
        (pair("tablet", "not a CSR".into()), Code::InvalidArgument),
    ] {
        let err = api
            .runtime
            .block_on(anonymous.pair(request))
            .expect_err("refused");
        ensure!(err.code() == want, "{want:?}: {err:?}");
    }
    // None of those used the code up.
    api.runtime
        .block_on(anonymous.pair(pair("tablet", csr(&key)?)))
        .context("the code still works")?;
    let err = api
        .runtime
        .block_on(anonymous.pair(pair("tablet-2", csr(&key)?)))
        .expect_err("used");
    ensure!(err.code() == Code::PermissionDenied, "{err:?}");
    Ok(())
}

/// GetStatus right after an event arrived on a stream is never older than
/// that event (the status is published before the events it follows from).
#[test]
fn the_status_is_never_older_than_an_event_already_streamed() -> Result<()> {
    let (stack, _hub, _sensord, api) = admin_stack()?;
    let channel = api.paired(&stack)?;
    let mut alarm = AlarmServiceClient::new(channel.clone());
    let mut stream = api
        .runtime
        .block_on(alarm.watch_events(pb::WatchEventsRequest { after_seq: None }))?
        .into_inner();
    let mut checked = 0;
    for round in 0..25 {
        let state = if round % 2 == 0 { "open" } else { "closed" };
        // Arming and the door give events of several kinds, entry delays
        // included, each checked the moment it arrives.
        stack.sim(&format!("set back-door {state}"))?;
        // Every event up to this round's sensor event (a chime may come
        // with it), each checked the moment it arrives.
        loop {
            let event = api
                .runtime
                .block_on(async {
                    tokio::time::timeout(Duration::from_secs(5), stream.message()).await
                })
                .context("an event within 5 s")??
                .context("the stream ended")?;
            let status = api.status(&channel)?;
            ensure!(
                status.last_event_seq >= event.seq,
                "round {round}: status at {} after event {} ({})",
                status.last_event_seq,
                event.seq,
                event.kind
            );
            let want = if state == "open" {
                pb::SensorState::Active
            } else {
                pb::SensorState::Inactive
            };
            if event.kind == "sensor" && event.sensor_state == want as i32 {
                if status.last_event_seq == event.seq {
                    let open = status.open.iter().any(|s| s == "back-door");
                    ensure!(open == (state == "open"), "round {round}: {status:?}");
                }
                break;
            }
        }
        checked += 1;
    }
    ensure!(checked == 25);
    Ok(())
}

/// A revoked client's connections close at once and give their places in
/// the pool of paired connections back (else eight revoked phones with 16
/// connections each would fill its 128 places and shut every paired
/// client out).
#[test]
fn a_revoked_clients_connections_close_at_once() -> Result<()> {
    let (stack, hub, _sensord, api) = admin_stack()?;
    let admin = api.paired(&stack)?;
    let (_, paired, key) = api.pair(&admin, "old-phone", pb::Role::Guest, "")?;
    let sockets = || -> Result<usize> {
        Ok(std::fs::read_dir(format!("/proc/{}/fd", hub.pid()))?
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().starts_with("socket:"))
            .count())
    };
    let before = sockets()?;
    let mut channels = Vec::new();
    for _ in 0..8 {
        let channel = api.channel(&paired.certificate_pem, &key.serialize_pem())?;
        api.status(&channel)?;
        channels.push(channel);
    }
    let open = sockets()?;
    ensure!(open > before + 5, "eight connections: {before} -> {open}");
    api.runtime
        .block_on(
            AdminServiceClient::new(admin).revoke_client(pb::RevokeClientRequest {
                name: "old-phone".into(),
            }),
        )?;
    wait_for("the revoked client's connections to close", || {
        Ok((sockets()? <= before).then_some(()))
    })?;
    Ok(())
}
