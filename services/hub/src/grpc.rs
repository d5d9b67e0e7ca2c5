//! The gRPC API (`proto/vigil/v1`): AlarmService and AdminService over TLS,
//! plus the standard health and reflection services.
//!
//! Every call but `Pair`, health and reflection needs a client certificate
//! that the hub issued at pairing; the client's role (guest < user < admin)
//! decides what it may do. Handlers convert between proto and domain types
//! here and nowhere else, and never touch the alarm directly: they ask the
//! engine ([`HubHandle`]) or read its status snapshot.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use vigil_alarm::{Actor, AlarmSetup};
use vigil_domain::Role;
use vigil_domain::SensorState;
use vigil_ipc::table::SensorTable;
use vigil_proto::v1 as pb;
use vigil_proto::v1::admin_service_server::{AdminService, AdminServiceServer};
use vigil_proto::v1::alarm_service_server::{AlarmService, AlarmServiceServer};
use vigil_proto::v1::camera_service_server::CameraServiceServer;
use vigil_proto::v1::report_service_server::ReportServiceServer;

use crate::clock::now_ms;
use crate::commands::{Command, CommandError, HubHandle, HubRequest, Reply};
use crate::convert::{
    from_pb_mode, from_pb_role, ms_i64, to_pb_event, to_pb_mode, to_pb_role, to_pb_status,
};
use crate::identity::HubInfo;
use crate::pki::{ClientIdentity, Pki, PkiError};

/// Ends a client's stream the moment the client is revoked: a lost phone
/// stops watching the house at once, not at its next reconnection.
#[derive(Debug)]
pub(crate) struct RevocationGuard {
    pki: Arc<Pki>,
    fingerprint: String,
}

/// The largest request message any call takes, health and reflection
/// included (tonic's default is 4 MiB): the biggest real one, a Pair with
/// its CSR, is a few KiB, and a peer that has proven nothing (Pair, health
/// and reflection are open to any TLS client) must not make the hub
/// buffer more. A larger one is refused before it is decoded: with
/// RESOURCE_EXHAUSTED for every vigil.v1 call (unary or server-streaming:
/// tonic answers in the headers, which [`tidy_error_headers`]
/// rewrites); reflection, a client stream, gets tonic's OUT_OF_RANGE in
/// its trailers (a standard service, outside the API's table).
pub(crate) const MAX_REQUEST: usize = 64 << 10;

/// How long a paired connection lives on once its certificate is no
/// longer honoured: the answer that revoked it gets out first.
const CLOSE_AFTER_REVOCATION: std::time::Duration = std::time::Duration::from_secs(1);

/// What every gRPC method answers.
pub(crate) type RpcResult<T> = Result<Response<T>, Status>;

/// A stream of a gRPC response.
pub(crate) type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl RevocationGuard {
    /// `stream`, ended with UNAUTHENTICATED when the client's certificate
    /// is no longer honoured (revoked, expired, or past its grace after a
    /// renewal; tonic ends a stream at its first error), and ended when
    /// `stream` ends (a clip sent whole); unguarded without a client
    /// certificate (the benchmark's open server). A client revoked before
    /// the guard was made is refused at the first item: the registry is
    /// read at once, not only at its next change.
    pub(crate) fn guard<T: Send + 'static>(
        guard: Option<RevocationGuard>,
        stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> Streamed<T> {
        let Some(RevocationGuard { pki, fingerprint }) = guard else {
            return Box::pin(stream);
        };
        // The stream ends the moment its certificate is no longer
        // honoured; the watcher stops with the stream.
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            tokio::select! {
                () = tx.closed() => {}
                () = pki.until_dishonoured(fingerprint) => {
                    let ended = Status::unauthenticated(
                        "this client's certificate is no longer honoured (revoked, expired, or \
                         replaced by a renewal): pair it again, or use the renewed one",
                    );
                    let _ = tx.send(Some(Err(ended))).await;
                }
            }
        });
        let revoked = tokio_stream::wrappers::ReceiverStream::new(rx);
        // `merge` ends only when both sides have: the data's end is an
        // item of its own (None) that ends the merged stream.
        let data = stream.map(Some).chain(tokio_stream::once(None));
        Box::pin(data.merge(revoked).map_while(std::convert::identity))
    }
}

/// What the API reads besides the engine; replaced on a config reload.
#[derive(Debug)]
pub struct ApiView {
    pub table: Arc<SensorTable>,
    pub setup: AlarmSetup,
    /// (name, role, has a duress code) of every keypad user.
    pub users: Vec<(String, Role, bool)>,
    /// The event log, for watchers resuming from before the ring.
    pub events_dir: Option<std::path::PathBuf>,
    /// reportd's index of the log (opened read-only per request).
    pub reports_db: Option<std::path::PathBuf>,
    /// The configured cameras, for the reports' uptime table.
    pub cameras: Vec<String>,
}

/// How callers are authenticated.
#[derive(Clone, Debug)]
pub enum Auth {
    /// By the client certificate issued at pairing (the hub, always).
    Certificates(Arc<Pki>),
    /// Nobody is checked and everyone is admin: only for the plaintext
    /// baseline of the benchmark, never in the hub.
    OpenForBenchmarks,
}

#[derive(Clone, Debug)]
pub struct Api {
    pub(crate) engine: HubHandle,
    pub(crate) view: watch::Receiver<Arc<ApiView>>,
    auth: Auth,
    /// The camera server, when cameras are configured.
    pub(crate) cameras: Option<Arc<crate::cameras::CameraHub>>,
    /// The hub's identities, version and start.
    info: Arc<HubInfo>,
    /// The users added over the API; none on the benchmark's server.
    pub(crate) user_store: Option<Arc<crate::users::UserStore>>,
}

impl Api {
    pub fn new(
        engine: HubHandle,
        view: watch::Receiver<Arc<ApiView>>,
        auth: Auth,
        info: HubInfo,
    ) -> Api {
        Api {
            engine,
            view,
            auth,
            cameras: None,
            info: Arc::new(info),
            user_store: None,
        }
    }

    /// Manages users in `store`.
    pub fn with_user_store(mut self, store: Arc<crate::users::UserStore>) -> Api {
        self.user_store = Some(store);
        self
    }

    /// Serves CameraService from `cameras`.
    pub fn with_cameras(mut self, cameras: Arc<crate::cameras::CameraHub>) -> Api {
        self.cameras = Some(cameras);
        self
    }

    pub(crate) fn authorize<T>(
        &self,
        request: &Request<T>,
        need: Role,
    ) -> Result<ClientIdentity, Status> {
        let pki = match &self.auth {
            Auth::OpenForBenchmarks => {
                return Ok(ClientIdentity {
                    name: "benchmark".into(),
                    role: Role::Admin,
                    user: None,
                    fingerprint: String::new(),
                    expires_unix_ms: None,
                });
            }
            Auth::Certificates(pki) => pki,
        };
        let certs = request.peer_certs().ok_or_else(|| {
            Status::unauthenticated(
                "no client certificate: pair this client first (run `vigilctl pair` on the hub \
                 for a code, then `vigilctl pair --token ...` here)",
            )
        })?;
        let der = certs
            .first()
            .ok_or_else(|| Status::unauthenticated("empty client certificate chain"))?;
        let id = pki
            .identify(der, now_ms())
            .map_err(|why| Status::unauthenticated(why.explain()))?;
        if id.role < need {
            return Err(Status::permission_denied(format!(
                "client {} is a {} client; this needs the {} role",
                id.name,
                id.role.as_str(),
                need.as_str()
            )));
        }
        Ok(id)
    }

    /// What ends a stream of the client of `request` when it is revoked.
    pub(crate) fn revocation_guard<T>(&self, request: &Request<T>) -> Option<RevocationGuard> {
        let pki = self.pki()?;
        let certs = request.peer_certs()?;
        let der = certs.first()?;
        Some(RevocationGuard {
            pki: Arc::clone(pki),
            fingerprint: crate::pki::sha256_hex(der),
        })
    }

    /// The request's message, once its caller has the `need` role.
    pub(crate) fn message_for<T>(&self, request: Request<T>, need: Role) -> Result<T, Status> {
        self.authorize(&request, need)?;
        Ok(request.into_inner())
    }

    /// A request for the `need` role, authorized: who sent it, as the
    /// actor of what it asks (the client's user, until a PIN says who),
    /// and its message.
    pub(crate) fn by_client<T>(
        &self,
        request: Request<T>,
        need: Role,
    ) -> Result<(Actor, T), Status> {
        let id = self.authorize(&request, need)?;
        let by = Actor {
            user: id.user,
            source: format!("{}{}", vigil_domain::source::GRPC_PREFIX, id.name),
        };
        Ok((by, request.into_inner()))
    }

    fn by_user<T>(&self, request: Request<T>) -> Result<(Actor, T), Status> {
        self.by_client(request, Role::User)
    }

    /// Asks the engine for `command` (made around its reply channel);
    /// returns the answer and the status after the command, as responses
    /// carry it.
    async fn command<T>(
        &self,
        command: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<(T, Option<pb::Status>), Status> {
        let answer = self.engine.ask(command).await?;
        Ok((answer, Some(self.status())))
    }

    fn status(&self) -> pb::Status {
        to_pb_status(&self.engine.status(), &self.info)
    }

    /// The view as it is now (a config reload replaces it).
    fn view(&self) -> Arc<ApiView> {
        Arc::clone(&self.view.borrow())
    }

    /// The view, for a caller with `need`.
    fn view_for<T>(&self, request: &Request<T>, need: Role) -> Result<Arc<ApiView>, Status> {
        self.authorize(request, need)?;
        Ok(self.view())
    }

    /// The hub's CA and client registry; the benchmark's open server has
    /// none.
    pub(crate) fn pki(&self) -> Option<&Arc<Pki>> {
        match &self.auth {
            Auth::Certificates(pki) => Some(pki),
            Auth::OpenForBenchmarks => None,
        }
    }

    /// The client registry, for an admin; `None` on the benchmark's open
    /// server.
    fn registry_for<T>(&self, request: &Request<T>) -> Result<Option<&Arc<Pki>>, Status> {
        self.authorize(request, Role::Admin)?;
        Ok(self.pki())
    }

    /// The CA, for pairing.
    fn pairing(&self) -> Result<&Arc<Pki>, Status> {
        self.pki()
            .ok_or_else(|| Status::unimplemented("pairing needs the TLS server"))
    }
}

impl From<CommandError> for Status {
    fn from(e: CommandError) -> Status {
        let message = e.to_string();
        match e {
            CommandError::WrongPin { .. }
            | CommandError::PinRequired
            | CommandError::PinRequiredToBypass => Status::permission_denied(message),
            CommandError::EmptyPin | CommandError::MalformedPin => {
                Status::invalid_argument(message)
            }
            CommandError::LockedOut { .. } => Status::resource_exhausted(message),
            CommandError::Arm(_) | CommandError::Bypass(_) => Status::failed_precondition(message),
            CommandError::NoSuchSensor(_) => Status::not_found(message),
            CommandError::ResumeTooOld { .. } | CommandError::ResumeBeyondLast { .. } => {
                Status::out_of_range(message)
            }
            CommandError::SirenTestWhileArmed => Status::failed_precondition(message),
            CommandError::PinCheckFailed => Status::internal(message),
            CommandError::Busy | CommandError::Stopped => Status::unavailable(message),
        }
    }
}

type EventStream = Streamed<pb::Event>;

#[tonic::async_trait]
impl AlarmService for Api {
    type WatchEventsStream = EventStream;

    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> RpcResult<pb::GetStatusResponse> {
        self.authorize(&request, Role::Guest)?;
        Ok(Response::new(pb::GetStatusResponse {
            status: Some(self.status()),
        }))
    }

    async fn arm(&self, request: Request<pb::ArmRequest>) -> RpcResult<pb::ArmResponse> {
        let (by, req) = self.by_user(request)?;
        let mode = from_pb_mode(req.mode)?;
        let pin = (!req.pin.is_empty()).then_some(req.pin);
        let (bypassed, status) = self
            .command(|reply| Command::Arm {
                mode,
                force: req.force,
                pin,
                by,
                reply,
            })
            .await?;
        Ok(Response::new(pb::ArmResponse { status, bypassed }))
    }

    async fn disarm(&self, request: Request<pb::DisarmRequest>) -> RpcResult<pb::DisarmResponse> {
        let (by, req) = self.by_user(request)?;
        let (done, status) = self
            .command(|reply| Command::Disarm {
                pin: req.pin,
                source: by.source,
                reply,
            })
            .await?;
        Ok(Response::new(pb::DisarmResponse {
            status,
            user: done.user,
        }))
    }

    async fn panic(&self, request: Request<pb::PanicRequest>) -> RpcResult<pb::PanicResponse> {
        let (by, _) = self.by_user(request)?;
        let ((), status) = self.command(|reply| Command::Panic { by, reply }).await?;
        Ok(Response::new(pb::PanicResponse { status }))
    }

    async fn bypass(&self, request: Request<pb::BypassRequest>) -> RpcResult<pb::BypassResponse> {
        let (by, req) = self.by_user(request)?;
        let ((), status) = self
            .command(|reply| Command::Bypass {
                sensor: req.sensor,
                on: req.bypass,
                pin: (!req.pin.is_empty()).then_some(req.pin),
                by,
                reply,
            })
            .await?;
        Ok(Response::new(pb::BypassResponse { status }))
    }

    async fn list_sensors(
        &self,
        request: Request<pb::ListSensorsRequest>,
    ) -> RpcResult<pb::ListSensorsResponse> {
        let view = self.view_for(&request, Role::Guest)?;
        let status = self.engine.status();
        let mut sensors = Vec::with_capacity(view.table.slot_count());
        for (slot, setup) in view.setup.sensors.iter().enumerate() {
            let reading = view
                .table
                .read_sensor(slot)
                .map_err(|e| Status::internal(format!("sensor table: {e}")))?;
            sensors.push(pb::Sensor {
                name: setup.name.clone(),
                kind: setup.kind.as_str().to_owned(),
                state: reading.state.describe(setup.kind).to_owned(),
                active: reading.state == SensorState::Active,
                fault: reading.fault,
                tamper: reading.tamper,
                bypassed: status.bypassed.contains(&setup.name),
                modes: setup.modes.iter().map(|m| to_pb_mode(*m) as i32).collect(),
                twenty_four_hour: setup.kind.is_24_hour(),
                change_count: reading.change_count,
                last_change_unix_ms: ms_i64(reading.changed_unix_ns / 1_000_000),
            });
        }
        Ok(Response::new(pb::ListSensorsResponse { sensors }))
    }

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> RpcResult<Self::WatchEventsStream> {
        let guard = self.revocation_guard(&request);
        let mut after_seq = self.message_for(request, Role::Guest)?.after_seq;
        // Older than the ring: replay from the event log, then subscribe
        // from where the replay ended.
        let mut replayed = Vec::new();
        let subscription = loop {
            match self
                .engine
                .ask(|reply| HubRequest::Subscribe { after_seq, reply })
                .await
            {
                Ok(s) => break s,
                Err(CommandError::ResumeTooOld { oldest }) if replayed.is_empty() => {
                    let view = self.view();
                    let Some(dir) = &view.events_dir else {
                        return Err(CommandError::ResumeTooOld { oldest }.into());
                    };
                    let from = after_seq.unwrap_or(0);
                    replayed = crate::eventlog::replay(dir, from, oldest - 1)
                        .map_err(|e| Status::internal(format!("event log: {e}")))?
                        .iter()
                        .map(to_pb_event)
                        .collect();
                    after_seq = Some(oldest - 1);
                }
                Err(e) => return Err(e.into()),
            }
        };
        // The backlog, then the live broadcast, converted as they go; no
        // task or channel per watcher. Falling behind the broadcast ends
        // the stream with ABORTED and the after_seq to resume from (tonic
        // ends a stream at its first error).
        let resume_from = after_seq.unwrap_or(0);
        let backlog_last = subscription.backlog.last().map_or(resume_from, |e| e.seq);
        let backlog = tokio_stream::iter(replayed)
            .map(Ok)
            .chain(tokio_stream::iter(subscription.backlog).map(|e| Ok(to_pb_event(&e))));
        let mut last = backlog_last;
        let live = BroadcastStream::new(subscription.live).map(move |item| match item {
            Ok(event) => {
                last = event.seq;
                Ok(to_pb_event(&event))
            }
            Err(BroadcastStreamRecvError::Lagged(n)) => Err(Status::aborted(format!(
                "this watcher fell {n} events behind; resume with after_seq={last}"
            ))),
        });
        let mut response = Response::new(RevocationGuard::guard(guard, backlog.chain(live)));
        let headers = response.metadata_mut();
        for (key, value) in [
            ("vigil-hub-id", self.info.hub_id.clone()),
            ("vigil-log-id", self.info.log_id.clone()),
            ("vigil-last-seq", self.engine.status().last_seq.to_string()),
        ] {
            if let Ok(value) = value.parse() {
                headers.insert(key, value);
            }
        }
        Ok(response)
    }

    async fn get_system(
        &self,
        request: Request<pb::GetSystemRequest>,
    ) -> RpcResult<pb::GetSystemResponse> {
        let view = self.view_for(&request, Role::Guest)?;
        let offline: Vec<String> = self.cameras.as_ref().map_or_else(Vec::new, |cameras| {
            cameras
                .list()
                .into_iter()
                .filter(|c| !c.online)
                .map(|c| c.name)
                .collect()
        });
        Ok(Response::new(crate::convert::to_pb_system(
            &self.info,
            &view.setup,
            &view.cameras,
            &self.engine.status(),
            &offline,
        )))
    }

    async fn test_siren(
        &self,
        request: Request<pb::TestSirenRequest>,
    ) -> RpcResult<pb::TestSirenResponse> {
        let (by, _) = self.by_client(request, Role::Admin)?;
        let ((), status) = self
            .command(|reply| Command::SirenTest { by, reply })
            .await?;
        Ok(Response::new(pb::TestSirenResponse { status }))
    }
}

/// Runs `change` to its end on a task of its own, whether or not the
/// client waits for the answer (a request dropped midway would otherwise
/// stop a change between its steps).
pub(crate) async fn whole<T: Send + 'static>(
    change: impl Future<Output = Result<T, Status>> + Send + 'static,
) -> RpcResult<T> {
    tokio::spawn(change)
        .await
        .map_err(|e| Status::internal(format!("the change failed: {e}")))?
        .map(Response::new)
}

/// A client's record as the API shows it.
fn to_pb_client(c: crate::pki::ClientRecord) -> pb::Client {
    pb::Client {
        name: c.name,
        role: Role::parse(&c.role).map_or(pb::Role::Unspecified, to_pb_role) as i32,
        certificate_sha256: c.certificate_sha256,
        paired_unix_ms: ms_i64(c.paired_unix_ms),
        user: c.user.unwrap_or_default(),
        expires_unix_ms: c.expires_unix_ms.map_or(0, ms_i64),
    }
}

/// What pairing and renewal errors are on the wire.
fn pki_status(e: PkiError) -> Status {
    let message = e.to_string();
    match e {
        PkiError::BadCode => Status::permission_denied(message),
        PkiError::NameTaken(_) => Status::already_exists(message),
        PkiError::BadCsr(_) | PkiError::BadName(_) => Status::invalid_argument(message),
        PkiError::Gone => Status::unauthenticated(message),
        PkiError::TooSoon { .. } => Status::resource_exhausted(message),
        PkiError::Io(_) | PkiError::Cert(_) | PkiError::Registry { .. } => {
            Status::internal(message)
        }
    }
}

#[tonic::async_trait]
impl AdminService for Api {
    async fn pair(&self, request: Request<pb::PairRequest>) -> RpcResult<pb::PairResponse> {
        let pki = self.pairing()?;
        let req = request.into_inner();
        let paired = pki
            .pair(&req.code, &req.client_name, &req.csr_pem, now_ms())
            .map_err(pki_status)?;
        tracing::info!(
            client = %req.client_name,
            role = paired.role.as_str(),
            user = paired.user.as_deref().unwrap_or(""),
            "client paired"
        );
        Ok(Response::new(pb::PairResponse {
            certificate_pem: paired.certificate_pem,
            ca_certificate_pem: pki.server_tls().ca_pem.clone(),
            role: to_pb_role(paired.role) as i32,
            expires_unix_ms: ms_i64(paired.expires_unix_ms),
            user: paired.user.unwrap_or_default(),
        }))
    }

    async fn create_pairing_code(
        &self,
        request: Request<pb::CreatePairingCodeRequest>,
    ) -> RpcResult<pb::CreatePairingCodeResponse> {
        let view = self.view_for(&request, Role::Admin)?;
        let pki = self.pairing()?;
        let req = request.into_inner();
        let role = from_pb_role(req.role)
            .ok_or_else(|| Status::invalid_argument("role must be guest, user or admin"))?;
        let user = match req.user.as_str() {
            "" => None,
            name if self.users(&view).iter().any(|u| u.name == name) => Some(req.user),
            name => {
                return Err(Status::not_found(format!(
                    "no user named {}: see ListUsers",
                    vigil_domain::text::excerpt(name)
                )));
            }
        };
        let (code, expires) = pki.create_code(role, user, now_ms());
        Ok(Response::new(pb::CreatePairingCodeResponse {
            code,
            expires_unix_ms: ms_i64(expires),
            ca_sha256: pki.ca_sha256().to_owned(),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> RpcResult<pb::ListClientsResponse> {
        let Some(pki) = self.registry_for(&request)? else {
            return Ok(Response::new(pb::ListClientsResponse::default()));
        };
        let clients = pki.clients().into_iter().map(to_pb_client).collect();
        Ok(Response::new(pb::ListClientsResponse { clients }))
    }

    async fn revoke_client(
        &self,
        request: Request<pb::RevokeClientRequest>,
    ) -> RpcResult<pb::RevokeClientResponse> {
        let pki = self
            .registry_for(&request)?
            .ok_or_else(|| Status::unimplemented("no client registry"))?;
        let name = request.into_inner().name;
        match pki.revoke(&name) {
            Ok(true) => Ok(Response::new(pb::RevokeClientResponse {})),
            Ok(false) => Err(Status::not_found(format!(
                "no client named {}",
                vigil_domain::text::excerpt(&name)
            ))),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> RpcResult<pb::ListUsersResponse> {
        let view = self.view_for(&request, Role::Admin)?;
        Ok(Response::new(pb::ListUsersResponse {
            users: self.users(&view),
        }))
    }

    async fn add_user(
        &self,
        request: Request<pb::AddUserRequest>,
    ) -> RpcResult<pb::AddUserResponse> {
        let (by, req) = self.by_client(request, Role::Admin)?;
        let view = self.view();
        let api = self.clone();
        whole(async move { api.add_user(by, view, req).await }).await
    }

    async fn remove_user(
        &self,
        request: Request<pb::RemoveUserRequest>,
    ) -> RpcResult<pb::RemoveUserResponse> {
        let (by, req) = self.by_client(request, Role::Admin)?;
        let view = self.view();
        let api = self.clone();
        whole(async move { api.remove_user(by, view, req).await }).await
    }

    async fn set_pin(&self, request: Request<pb::SetPinRequest>) -> RpcResult<pb::SetPinResponse> {
        let (by, req) = self.by_client(request, Role::Admin)?;
        let view = self.view();
        let api = self.clone();
        whole(async move { api.set_pin(by, view, req).await }).await
    }

    async fn who_am_i(&self, request: Request<pb::WhoAmIRequest>) -> RpcResult<pb::WhoAmIResponse> {
        let id = self.authorize(&request, Role::Guest)?;
        let client = self
            .pki()
            .and_then(|pki| pki.record(&id.fingerprint))
            .map(to_pb_client)
            .unwrap_or_else(|| pb::Client {
                name: id.name.clone(),
                role: to_pb_role(id.role) as i32,
                user: id.user.clone().unwrap_or_default(),
                certificate_sha256: id.fingerprint.clone(),
                expires_unix_ms: id.expires_unix_ms.map_or(0, ms_i64),
                paired_unix_ms: 0,
            });
        Ok(Response::new(pb::WhoAmIResponse {
            client: Some(client),
        }))
    }

    async fn revoke_self(
        &self,
        request: Request<pb::RevokeSelfRequest>,
    ) -> RpcResult<pb::RevokeSelfResponse> {
        let id = self.authorize(&request, Role::Guest)?;
        let pki = self.pairing()?;
        pki.revoke(&id.name)
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(client = %id.name, "client revoked itself");
        Ok(Response::new(pb::RevokeSelfResponse {}))
    }

    async fn renew(&self, request: Request<pb::RenewRequest>) -> RpcResult<pb::RenewResponse> {
        let id = self.authorize(&request, Role::Guest)?;
        let pki = self.pairing()?;
        let csr_pem = request.into_inner().csr_pem;
        let (certificate_pem, expires) = pki
            .renew(&id.fingerprint, &csr_pem, now_ms())
            .map_err(pki_status)?;
        tracing::info!(client = %id.name, "client renewed its certificate");
        Ok(Response::new(pb::RenewResponse {
            certificate_pem,
            expires_unix_ms: ms_i64(expires),
        }))
    }
}

type HttpResponse = tonic::codegen::http::Response<tonic::body::Body>;

/// The answer to a request over [`MAX_REQUEST`], as the API's error table
/// has it: RESOURCE_EXHAUSTED (a limit; send less), as gRPC's own servers
/// answer, where tonic says OUT_OF_RANGE, which the table keeps for
/// positions outside the event log. tonic refuses such a request before
/// any handler runs, with a trailers-only response whose status is in
/// the headers: that is where it is rewritten.
///
/// It also writes every error message in the headers with the escaping
/// the gRPC protocol asks (only `%` and bytes outside printable ASCII):
/// tonic escapes more (a space, `?`, `#`, a quote), which gRPC's own
/// clients undo but grpc-js, whose `decodeURI` leaves `%3F` and `%23` as
/// they are, shows to its people as written.
pub(crate) fn tidy_error_headers(mut response: HttpResponse) -> HttpResponse {
    use tonic::codegen::http::HeaderValue;
    let headers = response.headers_mut();
    if let Some(tidy) = headers
        .get("grpc-message")
        .filter(|m| m.as_bytes().contains(&b'%'))
        .and_then(|m| minimally_escaped(m.as_bytes()))
    {
        headers.insert("grpc-message", tidy);
    }
    let oversized = headers.get("grpc-status").is_some_and(|v| v == "11")
        && headers.get("grpc-message").is_some_and(|m| {
            // tonic's words, percent-encoded or not.
            [
                &b"message%20length%20too%20large"[..],
                b"message length too large",
            ]
            .iter()
            .any(|words| m.as_bytes().windows(words.len()).any(|w| w == *words))
        });
    if oversized {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("the request message is larger than the 64 KiB the hub takes"),
        );
    }
    response
}

/// A percent-encoded `grpc-message`, decoded and escaped again as the gRPC
/// protocol has it: `%` and bytes outside 0x20 to 0x7E only.
fn minimally_escaped(encoded: &[u8]) -> Option<tonic::codegen::http::HeaderValue> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut raw = Vec::with_capacity(encoded.len());
    let mut at = 0;
    while at < encoded.len() {
        match encoded[at..] {
            [b'%', high, low, ..] if hex(high).is_some() && hex(low).is_some() => {
                raw.push(u8::try_from(hex(high)? * 16 + hex(low)?).ok()?);
                at += 3;
            }
            [byte, ..] => {
                raw.push(byte);
                at += 1;
            }
            [] => break,
        }
    }
    let mut out = String::with_capacity(raw.len());
    for byte in raw {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    tonic::codegen::http::HeaderValue::from_str(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::minimally_escaped;

    #[test]
    fn error_messages_are_escaped_as_grpc_asks_and_no_more() {
        let tidy = |s: &str| {
            minimally_escaped(s.as_bytes())
                .map(|v| v.to_str().expect("ascii").to_owned())
                .expect("a header")
        };
        assert_eq!(
            tidy("no%20client%20named%20%22Bad/Name%3F%22"),
            "no client named \"Bad/Name?\""
        );
        // What must stay escaped does: a newline, a percent, UTF-8.
        assert_eq!(tidy("a%0Ab%25c%C3%A9"), "a%0Ab%25c%C3%A9");
        assert_eq!(tidy("50%"), "50%25");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error(
        "cannot listen for gRPC on {addr}: {source}; is another hub running, or is grpc.listen wrong?"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("the gRPC server's TLS configuration: {0}")]
    Tls(String),
}

/// Binds the API's listener.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, GrpcError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GrpcError::Bind { addr, source })
}

/// Serves the API on `listener` until `shutdown` resolves. With
/// [`Auth::Certificates`] the server speaks TLS and asks for (but does not
/// require, so that `Pair` works) a client certificate from the hub's CA.
/// Connections are accepted, handshaken and capped by [`crate::listen`]
/// (a deadline on the TLS handshake, caps per peer and in all, paired
/// clients apart), and kept alive by HTTP/2 pings.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GrpcError> {
    let addr = listener
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AlarmServiceServer<Api>>().await;
    health.set_serving::<AdminServiceServer<Api>>().await;
    health.set_serving::<ReportServiceServer<Api>>().await;
    health.set_serving::<CameraServiceServer<Api>>().await;
    // Both versions of reflection: v1alpha is what many tools and
    // language libraries still speak (grpcurl before 1.9, grpcio's).
    let reflection_error = |e: tonic_reflection::server::Error| GrpcError::Bind {
        addr,
        source: std::io::Error::other(e.to_string()),
    };
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(vigil_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_error)?;
    let pki = api.pki().cloned();
    let router = crate::listen::grpc_server()
        .layer(tower::util::MapResponseLayer::new(
            tidy_error_headers as fn(HttpResponse) -> HttpResponse,
        ))
        .add_service(health_service.max_decoding_message_size(MAX_REQUEST))
        .add_service(reflection_v1.max_decoding_message_size(MAX_REQUEST))
        .add_service(reflection_v1alpha.max_decoding_message_size(MAX_REQUEST))
        .add_service(AlarmServiceServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST))
        .add_service(AdminServiceServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST))
        .add_service(ReportServiceServer::new(api.clone()).max_decoding_message_size(MAX_REQUEST))
        .add_service(CameraServiceServer::new(api).max_decoding_message_size(MAX_REQUEST));
    match pki {
        Some(pki) => {
            let tls = pki.server_tls();
            let config = crate::listen::tls_config(&tls.chain_pem, &tls.key_pem, &tls.ca_pem)
                .map_err(|e| GrpcError::Tls(e.to_string()))?;
            // A paired connection lasts as long as its certificate is
            // honoured, and a moment more (the answer to the RevokeSelf or
            // RevokeClient that ended it is on its way): a revoked
            // client's connections close and give their places in the
            // pool back. Its streams end at once (`RevocationGuard`).
            let identify: crate::listen::Identify = Arc::new(move |der: &[u8]| {
                let id = pki.identify(der, now_ms()).ok()?;
                let dishonoured = Arc::clone(&pki).until_dishonoured(id.fingerprint);
                let ends = async move {
                    dishonoured.await;
                    tokio::time::sleep(CLOSE_AFTER_REVOCATION).await;
                };
                Some((id.name, Box::pin(ends) as crate::listen::Ends))
            });
            let incoming = crate::listen::grpc_tls(listener, config, identify);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
        None => {
            let incoming = crate::listen::grpc_plain(listener);
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    Ok(())
}
