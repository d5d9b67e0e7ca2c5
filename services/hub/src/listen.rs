//! What every peer-facing listener of the hub keeps to (the gRPC port, the
//! camera port, `hub.sock`): a deadline on the handshake, a cap on the
//! connections of one peer and of all peers together, nothing allocated for
//! a peer beyond what it has proven, and an accept loop that backs off when
//! accepting fails (EMFILE) instead of spinning and flooding the log.
//!
//! Owns: the caps ([`Limits`] and the constants below, which size the
//! hub's descriptors: [`PEER_DESCRIPTORS`]), the [`Pool`] that enforces
//! them, the accept loops' [`AcceptBackoff`], the rate limit on what they
//! log ([`LogBudget`]), and the gRPC server's own incoming stream: TCP
//! accepted here, the TLS handshake done here under its deadline
//! (tokio-rustls), and the connection then counted as paired (by its client
//! certificate) or not.
//!
//! Must never: let a peer that has proven nothing hold a descriptor past
//! its deadline, or keep a newer handshake waiting for an older idle one
//! (when a pool of strangers is full, its oldest member goes); log once per
//! connection of a flood; sleep in an accept loop for anything but the
//! listener's own failure.
//!
//! The pools, by listener (see also `docs/security.md`):
//!
//! | listener | pool | total | per peer | deadline | when full |
//! |---|---|---|---|---|---|
//! | gRPC | TLS handshakes | 64 | 8 per address | 5 s | the oldest goes |
//! | gRPC | no paired certificate (Pair, health) | 32 | 4 per address | 60 s lifetime | the oldest goes |
//! | gRPC | paired | 128 | 16 per client | while its certificate is honoured (+1 s), HTTP/2 keepalive | refused (per client: its oldest goes) |
//! | cameras | before the key is proven | 32 | 4 per address | 5 s | the oldest goes |
//! | `hub.sock` | not yet admitted | 32 | 4 per pid | 2 s first line, 5 s hello | the oldest goes |
//!
//! An IPv6 peer is its /64: one host can take many addresses of its prefix.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::danger::ClientCertVerifier;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, info, warn};

/// What a pool does with a newcomer when it is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// The oldest member goes (the peer's own oldest, when the peer is the
    /// one at its cap): for strangers, whose legitimate handshakes take
    /// milliseconds while an idle flood's take the whole deadline.
    DropOldest,
    /// The newcomer is refused when the pool is full in all; a peer at its
    /// own cap loses its oldest member. For authenticated peers.
    Refuse,
}

/// The caps of one kind of connection.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// What the pool holds, for the log.
    pub what: &'static str,
    pub total: usize,
    pub per_peer: usize,
    pub when_full: WhenFull,
}

impl Limits {
    /// At most `total` connections, `per_peer` from one peer; `when_full`
    /// says what a newcomer past either cap meets.
    pub const fn new(
        what: &'static str,
        total: usize,
        per_peer: usize,
        when_full: WhenFull,
    ) -> Limits {
        Limits {
            what,
            total,
            per_peer,
            when_full,
        }
    }
}

/// The longest a gRPC client may take to finish its TLS handshake.
pub const GRPC_HANDSHAKE: Duration = Duration::from_secs(5);
pub const GRPC_HANDSHAKES: Limits = Limits::new(
    "gRPC connections in their TLS handshake",
    64,
    8,
    WhenFull::DropOldest,
);
/// How long a connection without a paired certificate may live: long
/// enough to pair or ask for health, not to camp.
pub const GRPC_UNPAIRED_LIFETIME: Duration = Duration::from_secs(60);
pub const GRPC_UNPAIRED: Limits = Limits::new(
    "gRPC connections without a paired certificate",
    32,
    4,
    WhenFull::DropOldest,
);
/// Paired connections, counted per client (its certificate's name).
pub const GRPC_PAIRED: Limits = Limits::new("paired gRPC connections", 128, 16, WhenFull::Refuse);
/// An HTTP/2 ping this often on an idle connection; no answer within
/// [`GRPC_KEEPALIVE_TIMEOUT`] closes it: a vanished client's connection
/// is gone within 30 s.
pub const GRPC_KEEPALIVE: Duration = Duration::from_secs(20);
pub const GRPC_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams at once on one gRPC connection.
pub const GRPC_STREAMS_PER_CONNECTION: u32 = 32;

/// Camera connections that have not proven the key yet (a proven camera's
/// connection replaces its previous one: at most one per configured
/// camera).
pub const CAMERA_HANDSHAKES: Limits = Limits::new(
    "camera connections before their key is proven",
    32,
    4,
    WhenFull::DropOldest,
);

/// `hub.sock` clients that have not been admitted yet, per pid.
pub const BOOTSTRAP_JOINS: Limits = Limits::new(
    "hub.sock clients not yet admitted",
    32,
    4,
    WhenFull::DropOldest,
);

/// Every descriptor the peer-facing pools may hold at once (besides one
/// connection per configured camera and one per admitted service).
pub const PEER_DESCRIPTORS: usize = GRPC_HANDSHAKES.total
    + GRPC_UNPAIRED.total
    + GRPC_PAIRED.total
    + CAMERA_HANDSHAKES.total
    + BOOTSTRAP_JOINS.total;
/// What the hub keeps for everything else: the event log's segments,
/// sessions, clips being written (GStreamer), reports (SQLite), the FIFO,
/// the alert queue, the runtime.
pub const OTHER_DESCRIPTORS: usize = 768;
/// The descriptor limit the hub asks for (the NixOS unit's `LimitNOFILE`):
/// the pools and the rest fit with room to spare.
pub const DESCRIPTORS: u64 = 2048;
// The caps fit, with room for a few dozen cameras and services.
const _: () = assert!((PEER_DESCRIPTORS + OTHER_DESCRIPTORS) as u64 + 256 <= DESCRIPTORS);

/// Raises the soft descriptor limit towards [`DESCRIPTORS`] (as far as the
/// hard limit allows) and says so if even then the pools and the rest
/// would not fit.
pub fn reserve_descriptors(cameras: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let need = (PEER_DESCRIPTORS + 2 * cameras + OTHER_DESCRIPTORS) as u64;
    let want = DESCRIPTORS.max(need);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let mut now = soft;
    if soft < want && hard > soft {
        let raised = want.min(hard);
        if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
            now = raised;
        }
    }
    if now < need {
        warn!(
            limit = now,
            need,
            "the descriptor limit is below what the listeners' caps and the rest of the hub \
             may use: raise LimitNOFILE (ulimit -n) to {DESCRIPTORS}"
        );
    } else {
        debug!(
            limit = now,
            peers = PEER_DESCRIPTORS,
            "descriptors: the listeners' caps fit"
        );
    }
}

/// The peer a connection is counted against: its address, or for IPv6 its
/// /64 (an IPv4-mapped address is its IPv4 address).
pub fn peer_of(addr: SocketAddr) -> IpAddr {
    match addr.ip() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

pub use vigil_telemetry::LogBudget;

/// Connections of one kind, capped in all and per peer.
#[derive(Debug)]
pub struct Pool<K> {
    limits: Limits,
    state: Mutex<PoolState<K>>,
    log: LogBudget,
}

#[derive(Debug)]
struct PoolState<K> {
    next: u64,
    /// By admission order: the first is the oldest.
    members: BTreeMap<u64, Member<K>>,
    per_peer: HashMap<K, usize>,
}

#[derive(Debug)]
struct Member<K> {
    peer: K,
    stop: watch::Sender<bool>,
}

/// A place in a pool; dropping it (the connection ends) gives it back.
#[derive(Debug)]
pub struct Ticket<K: Hash + Eq + Clone + Debug + Send + 'static> {
    pool: Arc<Pool<K>>,
    id: u64,
    stop: watch::Receiver<bool>,
}

impl<K: Hash + Eq + Clone + Debug + Send + 'static> Ticket<K> {
    /// Resolves when the pool made room with this connection: it must end.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            // An error is the member gone, which only its ticket's drop does.
            let _ = stop.wait_for(|s| *s).await;
        }
    }
}

impl<K: Hash + Eq + Clone + Debug + Send + 'static> Drop for Ticket<K> {
    fn drop(&mut self) {
        self.pool.remove(self.id);
    }
}

impl<K: Hash + Eq + Clone + Debug + Send + 'static> Pool<K> {
    pub fn new(limits: Limits) -> Arc<Pool<K>> {
        Arc::new(Pool {
            limits,
            state: Mutex::new(PoolState {
                next: 1,
                members: BTreeMap::new(),
                per_peer: HashMap::new(),
            }),
            log: LogBudget::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections held now.
    pub fn len(&self) -> usize {
        self.lock().members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A place for a connection of `peer`, making room as the pool's
    /// [`WhenFull`] says; `None` if it is refused.
    pub fn admit(self: &Arc<Self>, peer: K) -> Option<Ticket<K>> {
        let limits = self.limits;
        let mut state = self.lock();
        let mine = state.per_peer.get(&peer).copied().unwrap_or(0);
        let dropped = if mine >= limits.per_peer {
            // The peer only crowds itself: its own oldest goes.
            let oldest = state
                .members
                .iter()
                .find(|(_, m)| m.peer == peer)
                .map(|(id, _)| *id);
            oldest.and_then(|id| Self::evict(&mut state, id))
        } else if state.members.len() >= limits.total {
            match limits.when_full {
                WhenFull::DropOldest => {
                    let oldest = state.members.keys().next().copied();
                    oldest.and_then(|id| Self::evict(&mut state, id))
                }
                WhenFull::Refuse => {
                    drop(state);
                    if let Some(suppressed) = self.log.allow() {
                        warn!(
                            pool = limits.what,
                            ?peer,
                            total = limits.total,
                            suppressed,
                            "refused a connection: the pool is full"
                        );
                    }
                    return None;
                }
            }
        } else {
            None
        };
        let id = state.next;
        state.next += 1;
        let (stop, stop_rx) = watch::channel(false);
        state.members.insert(
            id,
            Member {
                peer: peer.clone(),
                stop,
            },
        );
        *state.per_peer.entry(peer.clone()).or_insert(0) += 1;
        drop(state);
        if let Some(gone) = dropped
            && let Some(suppressed) = self.log.allow()
        {
            info!(
                pool = limits.what,
                peer = ?gone,
                newcomer = ?peer,
                total = limits.total,
                per_peer = limits.per_peer,
                suppressed,
                "dropped the oldest connection to make room"
            );
        }
        Some(Ticket {
            pool: Arc::clone(self),
            id,
            stop: stop_rx,
        })
    }

    /// Removes member `id` and tells its connection to end; returns its
    /// peer.
    fn evict(state: &mut PoolState<K>, id: u64) -> Option<K> {
        let member = Self::take(state, id)?;
        let _ = member.stop.send(true);
        Some(member.peer)
    }

    fn take(state: &mut PoolState<K>, id: u64) -> Option<Member<K>> {
        let member = state.members.remove(&id)?;
        if let Some(n) = state.per_peer.get_mut(&member.peer) {
            *n -= 1;
            if *n == 0 {
                state.per_peer.remove(&member.peer);
            }
        }
        Some(member)
    }

    fn remove(&self, id: u64) {
        let mut state = self.lock();
        let _ = Self::take(&mut state, id);
    }
}

/// How long an accept loop waits after its listener failed, at first and
/// at most.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// An accept loop's answer to a failed accept: a failure of one connection
/// (reset before it was accepted) is skipped; the listener's own (no
/// descriptor left: EMFILE, ENFILE; no memory) is waited out, doubling up to
/// a second, and logged a few times a minute at most.
#[derive(Debug)]
pub struct AcceptBackoff {
    what: &'static str,
    delay: Duration,
    log: LogBudget,
}

impl AcceptBackoff {
    pub fn new(what: &'static str) -> AcceptBackoff {
        AcceptBackoff {
            what,
            delay: BACKOFF_FIRST,
            log: LogBudget::new(),
        }
    }

    /// The next accepted connection: `accept` is tried until it succeeds,
    /// each failure waited out as [`AcceptBackoff::failed`] says.
    pub async fn next<T, F>(&mut self, mut accept: impl FnMut() -> F) -> T
    where
        F: Future<Output = io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(accepted) => {
                    self.delay = BACKOFF_FIRST;
                    return accepted;
                }
                Err(e) => self.failed(&e).await,
            }
        }
    }

    /// An accept failed with `error`.
    async fn failed(&mut self, error: &io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
                | io::ErrorKind::WouldBlock
        ) {
            debug!(listener = self.what, "accept: {error}");
            return;
        }
        let wait = self.delay;
        if let Some(suppressed) = self.log.allow() {
            warn!(
                listener = self.what,
                suppressed,
                retry_in_ms = wait.as_millis() as u64,
                "cannot accept connections: {error}; backing off"
            );
        }
        tokio::time::sleep(wait).await;
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
    }
}

/// Every accepted peer connection's socket options. TCP keepalive: a peer
/// that vanished (power cut, cable pulled) is found within about a minute
/// even if nothing is being sent. No Nagle: a reply and a stream's next
/// message are separate small writes on one connection, and with Nagle the
/// second waits for the peer's delayed ACK of the first (40 ms on gRPC
/// here, docs/benchmarks.md "MQTT"; video frames on the camera link).
pub fn tune_accepted(stream: &TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!("no TCP_NODELAY: {e}");
    }
    let params = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&params) {
        debug!("no TCP keepalive: {e}");
    }
}

type Stop = Pin<Box<dyn Future<Output = ()> + Send>>;

fn stop_future(stopped: impl Future<Output = ()> + Send + 'static, life: Option<Duration>) -> Stop {
    Box::pin(async move {
        match life {
            Some(life) => {
                tokio::select! {
                    () = stopped => {}
                    () = tokio::time::sleep(life) => {}
                }
            }
            None => stopped.await,
        }
    })
}

/// An accepted TCP connection that holds its place in a pool: it fails
/// every read and write once the pool has made room with it or its
/// lifetime is over, so whatever serves it (the TLS handshake, hyper) ends
/// it. For tonic it is a TCP connection ([`TcpConnectInfo`]), so a TLS
/// stream over it gives `Request::peer_certs()` as tonic's own would.
pub struct Guarded {
    io: TcpStream,
    info: TcpConnectInfo,
    /// The pool ticket (any pool's).
    held: Box<dyn std::any::Any + Send>,
    stop: Option<Stop>,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded")
            .field("peer", &self.info.remote_addr)
            .field("stopped", &self.stop.is_none())
            .finish()
    }
}

impl Guarded {
    /// `io` from `remote`, in the pool of `ticket`, for at most `life`.
    pub fn new<K: Hash + Eq + Clone + Debug + Send + 'static>(
        io: TcpStream,
        remote: SocketAddr,
        ticket: Ticket<K>,
        life: Option<Duration>,
    ) -> Guarded {
        let info = TcpConnectInfo {
            local_addr: io.local_addr().ok(),
            remote_addr: Some(remote),
        };
        let stop = Some(stop_future(ticket.stopped(), life));
        Guarded {
            io,
            info,
            held: Box::new(ticket),
            stop,
        }
    }

    /// Moves the connection to another pool (its place in the first is
    /// given back), for at most `life` from now.
    pub fn hold<K: Hash + Eq + Clone + Debug + Send + 'static>(
        &mut self,
        ticket: Ticket<K>,
        life: Option<Duration>,
    ) {
        self.stop = Some(stop_future(ticket.stopped(), life));
        self.held = Box::new(ticket);
    }

    /// Moves the connection to another pool for as long as `until` has not
    /// ended (nor the pool made room with it: `until` must include the
    /// ticket's own [`Ticket::stopped`]).
    pub fn hold_until<K: Hash + Eq + Clone + Debug + Send + 'static>(
        &mut self,
        ticket: Ticket<K>,
        until: impl Future<Output = ()> + Send + 'static,
    ) {
        self.stop = Some(Box::pin(until));
        self.held = Box::new(ticket);
    }

    /// Whether the connection must end now (polling registers the waker).
    fn stopped(&mut self, cx: &mut Context<'_>) -> bool {
        match self.stop.as_mut() {
            None => true,
            Some(stop) => {
                if stop.as_mut().poll(cx).is_ready() {
                    self.stop = None;
                    true
                } else {
                    false
                }
            }
        }
    }
}

fn ended() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection was ended by the listener's limits",
    )
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.stopped(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.stopped(cx) {
            return Poll::Ready(Err(ended()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Connected for Guarded {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

/// A TLS connection of the gRPC server.
pub type TlsIo = tokio_rustls::server::TlsStream<Guarded>;

/// Accepted connections, on their way to tonic.
const HANDOVER: usize = 16;

/// A verifier of client certificates against the hub's CA (`ca_pem`);
/// a client may present none (Pair, health, reflection).
pub fn ca_verifier(ca_pem: &str) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.map_err(|e| rustls::Error::General(format!("the CA certificate: {e}")))?)?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))
}

/// The TLS layer's check of a client certificate: the peer must prove it
/// holds the key of the certificate it presents (the handshake's
/// signature, checked as the CA's verifier checks it), and nothing more.
/// Whose certificate it is, and whether it is still honoured, is the
/// client registry's question (the hub's `Pki::identify`, a layer up): a
/// certificate of another hub's then gets UNAUTHENTICATED saying so,
/// instead of a failed handshake that an app cannot tell from "hub
/// offline".
#[derive(Debug)]
struct ProvenKeyOnly(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for ProvenKeyOnly {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The gRPC server's TLS configuration: the hub's chain and key, HTTP/2,
/// and client certificates asked for (not required) and checked only for
/// the proof of their key ([`ProvenKeyOnly`]).
pub fn tls_config(
    chain_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |what: &str, e: rustls::pki_types::pem::Error| {
        rustls::Error::General(format!("{what}: {e}"))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ProvenKeyOnly(ca_verifier(ca_pem)?));
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("the server certificate", e))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad("the server key", e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// What ends a paired connection (its certificate no longer honoured).
pub type Ends = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Who a client certificate (DER) belongs to, if it is paired, and what
/// ends its connection.
pub type Identify = Arc<dyn Fn(&[u8]) -> Option<(String, Ends)> + Send + Sync>;

/// The gRPC server's incoming TLS connections from `listener`: accepted
/// under [`GRPC_HANDSHAKES`], handshaken within [`GRPC_HANDSHAKE`], then
/// counted as paired ([`GRPC_PAIRED`], per client) or not
/// ([`GRPC_UNPAIRED`], for [`GRPC_UNPAIRED_LIFETIME`] at most). Accepting
/// stops when the stream is dropped.
pub fn grpc_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    identify: Identify,
) -> impl Stream<Item = Result<TlsIo, io::Error>> {
    let (tx, rx) = mpsc::channel(HANDOVER);
    tokio::spawn(accept_tls(listener, config, identify, tx));
    tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok)
}

async fn accept_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    identify: Identify,
    tx: mpsc::Sender<TlsIo>,
) {
    let handshakes = Pool::new(GRPC_HANDSHAKES);
    let unpaired = Pool::new(GRPC_UNPAIRED);
    let paired = Pool::new(GRPC_PAIRED);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let mut backoff = AcceptBackoff::new("gRPC");
    loop {
        let (stream, addr) = tokio::select! {
            () = tx.closed() => return,
            accepted = backoff.next(|| listener.accept()) => accepted,
        };
        let peer = peer_of(addr);
        let Some(ticket) = handshakes.admit(peer) else {
            continue;
        };
        tune_accepted(&stream);
        let io = Guarded::new(stream, addr, ticket, Some(GRPC_HANDSHAKE));
        let acceptor = acceptor.clone();
        let identify = Arc::clone(&identify);
        let (unpaired, paired, tx) = (Arc::clone(&unpaired), Arc::clone(&paired), tx.clone());
        tokio::spawn(async move {
            let mut tls = match tokio::time::timeout(GRPC_HANDSHAKE, acceptor.accept(io)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(%addr, "gRPC: no TLS session: {e}");
                    return;
                }
                Err(_) => {
                    debug!(%addr, "gRPC: no TLS handshake within {GRPC_HANDSHAKE:?}");
                    return;
                }
            };
            let (io, session) = tls.get_mut();
            let client = session
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|der| identify(der.as_ref()));
            match client {
                Some((name, ends)) => match paired.admit(name) {
                    Some(ticket) => {
                        let stopped = ticket.stopped();
                        io.hold_until(ticket, async move {
                            tokio::select! {
                                () = stopped => {}
                                () = ends => {}
                            }
                        });
                    }
                    None => return,
                },
                None => match unpaired.admit(peer) {
                    Some(ticket) => io.hold(ticket, Some(GRPC_UNPAIRED_LIFETIME)),
                    None => return,
                },
            }
            let _ = tx.send(tls).await;
        });
    }
}

/// Plaintext connections (the benchmark's open server only), capped as
/// paired ones per address.
pub fn grpc_plain(listener: TcpListener) -> impl Stream<Item = Result<Guarded, io::Error>> {
    let (tx, rx) = mpsc::channel(HANDOVER);
    tokio::spawn(async move {
        let pool = Pool::new(GRPC_PAIRED);
        let mut backoff = AcceptBackoff::new("gRPC");
        loop {
            let (stream, addr) = tokio::select! {
                () = tx.closed() => return,
                accepted = backoff.next(|| listener.accept()) => accepted,
            };
            let Some(ticket) = pool.admit(peer_of(addr)) else {
                continue;
            };
            tune_accepted(&stream);
            if tx
                .send(Guarded::new(stream, addr, ticket, None))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    tokio_stream::StreamExt::map(ReceiverStream::new(rx), Ok)
}

/// The gRPC server with its keepalive and per-connection limits.
pub fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(GRPC_KEEPALIVE))
        .http2_keepalive_timeout(Some(GRPC_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(Some(GRPC_STREAMS_PER_CONNECTION))
        .concurrency_limit_per_connection(GRPC_STREAMS_PER_CONNECTION as usize)
        .http2_max_header_list_size(Some(16 << 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits::new("test", 3, 2, WhenFull::DropOldest);

    fn stopped<K: Hash + Eq + Clone + Debug + Send + 'static>(t: &Ticket<K>) -> bool {
        *t.stop.borrow()
    }

    #[test]
    fn a_peer_at_its_cap_loses_its_own_oldest() {
        let pool = Pool::new(SMALL);
        let a1 = pool.admit("a").expect("a1");
        let b1 = pool.admit("b").expect("b1");
        let a2 = pool.admit("a").expect("a2");
        let a3 = pool.admit("a").expect("a3");
        assert!(stopped(&a1), "a's oldest made room");
        assert!(!stopped(&b1) && !stopped(&a2) && !stopped(&a3));
        assert_eq!(pool.len(), 3);
        drop(a1);
        assert_eq!(pool.len(), 3, "an evicted ticket was already given back");
        drop((b1, a2, a3));
        assert!(pool.is_empty());
    }

    #[test]
    fn a_full_pool_drops_its_oldest_or_refuses() {
        let pool = Pool::new(SMALL);
        let tickets: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|p| pool.admit(p).expect("room"))
            .collect();
        let d = pool.admit("d").expect("the oldest goes");
        assert!(stopped(&tickets[0]) && !stopped(&tickets[1]) && !stopped(&d));
        assert_eq!(pool.len(), 3);

        let strict = Pool::new(Limits {
            when_full: WhenFull::Refuse,
            ..SMALL
        });
        let _held: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|p| strict.admit(p).expect("room"))
            .collect();
        assert!(strict.admit("d").is_none(), "refused when full");
        assert_eq!(strict.len(), 3);
    }

    #[tokio::test]
    async fn a_dropped_ticket_ends_its_connection() {
        let pool = Pool::new(SMALL);
        let first = pool.admit("a").expect("room");
        let stop = first.stopped();
        let _second = pool.admit("a").expect("room");
        let _third = pool.admit("a").expect("room");
        tokio::time::timeout(Duration::from_secs(1), stop)
            .await
            .expect("the oldest is told to end");
    }

    #[test]
    fn an_ipv6_peer_is_its_64() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:1".parse().expect("addr");
        let b: SocketAddr = "[2001:db8:1:2:bbbb::2]:2".parse().expect("addr");
        let c: SocketAddr = "[2001:db8:1:3::1]:3".parse().expect("addr");
        assert_eq!(peer_of(a), peer_of(b));
        assert_ne!(peer_of(a), peer_of(c));
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:4".parse().expect("addr");
        assert_eq!(peer_of(mapped), "192.0.2.7".parse::<IpAddr>().expect("ip"));
    }
}
