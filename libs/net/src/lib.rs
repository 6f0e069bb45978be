//! Listeners that hostile or careless clients cannot exhaust.
//!
//! Every connection any listener of the process accepts passes one [`Gate`]:
//! - at most [`Limits::connections_max`] are open at once (derived from the file limit),
//!   and when that many are open the one that has sent nothing for longest is closed to
//!   make room, so idle connections cannot lock new clients out;
//! - a connection that sends nothing within [`Limits::handshake_timeout`], or nothing
//!   for [`Limits::idle_timeout`], is closed;
//! - an accept that fails for want of file descriptors closes the longest-idle
//!   connection and retries instead of spinning;
//! - each limit that is hit is logged (at most one line per limit every few seconds).
//!
//! HTTP listeners are served by [`serve_http`] with a header-read timeout (slowloris);
//! gRPC listeners by tonic with [`Gate::incoming`] and [`Limits::streams_max`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// The bounds every listener of a process keeps.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once, over all listeners.
    pub connections_max: usize,
    /// A connection that has sent no byte by then is closed.
    pub handshake_timeout: Duration,
    /// A connection that has sent no byte for this long is closed (gRPC clients answer
    /// the server's keep-alive pings, so a live one is never idle this long).
    pub idle_timeout: Duration,
    /// An HTTP/1 request's headers must arrive within this time (slowloris).
    pub header_read_timeout: Duration,
    /// Concurrent HTTP/2 streams per connection (gRPC).
    pub streams_max: u32,
    /// Interval of the server's HTTP/2 keep-alive pings (gRPC).
    pub keepalive_interval: Duration,
    /// A ping not answered in this time closes the connection.
    pub keepalive_timeout: Duration,
}

/// File descriptors kept back from connections: the log, the stores, the blocking
/// pool's files, the listeners and a margin.
pub const RESERVED_FDS: u64 = 128;
/// The fewest connections the gate allows, whatever the file limit.
pub const CONNECTIONS_MIN: usize = 32;

impl Limits {
    /// Limits for this process: the soft file limit is raised to the hard one, and the
    /// connections are what it leaves after [`RESERVED_FDS`].
    pub fn for_this_process() -> Limits {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let mut soft = limit.current.unwrap_or(u64::MAX);
        if let (Some(current), hard) = (limit.current, limit.maximum) {
            let wanted = hard.unwrap_or(current.max(65_536)).min(1 << 20);
            if wanted > current {
                let raised = rustix::process::Rlimit {
                    current: Some(wanted),
                    maximum: limit.maximum,
                };
                if setrlimit(Resource::Nofile, raised).is_ok() {
                    soft = wanted;
                }
            }
        }
        let connections = soft.saturating_sub(RESERVED_FDS).min(1 << 16) as usize;
        Limits {
            connections_max: connections.max(CONNECTIONS_MIN),
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            connections_max: 4096,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(5),
            streams_max: 256,
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Why the gate closed a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Reason {
    Full,
    Handshake,
    Idle,
    NoFileDescriptors,
}

impl Reason {
    fn text(self) -> &'static str {
        match self {
            Reason::Full => {
                "connection limit reached: closed the connections that had been silent longest"
            }
            Reason::Handshake => {
                "closed connections that sent nothing within the handshake timeout"
            }
            Reason::Idle => "closed connections that sent nothing within the idle timeout",
            Reason::NoFileDescriptors => {
                "out of file descriptors on accept: closed the connections that had been silent longest"
            }
        }
    }
}

/// One open connection as the gate sees it.
#[derive(Debug)]
struct Conn {
    peer: Option<SocketAddr>,
    opened_ms: u64,
    last_read_ms: AtomicU64,
    bytes_read: AtomicU64,
    closed: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Conn {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let waker = self.waker.lock().map(|mut w| w.take()).unwrap_or(None);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    closed: HashMap<Reason, u64>,
    logged_at: HashMap<Reason, u64>,
}

/// The connection gate of a process (see the crate documentation).
#[derive(Debug)]
pub struct Gate {
    limits: Limits,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    counts: Mutex<Counts>,
}

/// How often a limit's log line may repeat.
const LOG_EVERY_MS: u64 = 5_000;
/// How often the gate looks for timed-out connections.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

impl Gate {
    /// A gate with these limits; its sweeper runs on the current tokio runtime until
    /// the last handle is dropped.
    pub fn new(limits: Limits) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            limits,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            counts: Mutex::new(Counts::default()),
        });
        let weak = Arc::downgrade(&gate);
        tokio::spawn(sweep(weak));
        gate
    }

    /// The limits the gate keeps.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.lock().map(|open| open.len()).unwrap_or(0)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Takes an accepted connection in, closing the longest-silent one if the gate is
    /// full.
    pub fn admit<S>(self: &Arc<Gate>, io: S, peer: Option<SocketAddr>) -> Guarded<S> {
        let now = self.now_ms();
        let conn = Arc::new(Conn {
            peer,
            opened_ms: now,
            last_read_ms: AtomicU64::new(now),
            bytes_read: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let evicted = match self.open.lock() {
            Ok(mut open) => {
                let mut evicted = Vec::new();
                while open.len() >= self.limits.connections_max {
                    match take_most_silent(&mut open) {
                        Some(c) => evicted.push(c),
                        None => break,
                    }
                }
                open.insert(id, Arc::clone(&conn));
                evicted
            }
            Err(_) => Vec::new(),
        };
        self.closed(Reason::Full, &evicted);
        Guarded {
            io,
            conn,
            id,
            gate: Arc::clone(self),
        }
    }

    /// Closes the longest-silent connection (to free a file descriptor).
    fn evict_one(&self, reason: Reason) {
        let evicted = match self.open.lock() {
            Ok(mut open) => take_most_silent(&mut open).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        self.closed(reason, &evicted);
    }

    fn closed(&self, reason: Reason, conns: &[Arc<Conn>]) {
        if conns.is_empty() {
            return;
        }
        for conn in conns {
            conn.close();
        }
        let now = self.now_ms();
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        *counts.closed.entry(reason).or_default() += conns.len() as u64;
        let last = counts.logged_at.get(&reason).copied();
        if last.is_none_or(|at| now.saturating_sub(at) >= LOG_EVERY_MS) {
            counts.logged_at.insert(reason, now);
            let closed = counts.closed.remove(&reason).unwrap_or(0);
            tracing::warn!(
                closed,
                open = self.open_connections(),
                connections_max = self.limits.connections_max,
                last_peer = ?conns.last().and_then(|c| c.peer),
                "{}",
                reason.text()
            );
        }
    }

    fn sweep_once(&self) {
        let now = self.now_ms();
        let handshake = self.limits.handshake_timeout.as_millis() as u64;
        let idle = self.limits.idle_timeout.as_millis() as u64;
        let mut silent = Vec::new();
        let mut idle_out = Vec::new();
        if let Ok(mut open) = self.open.lock() {
            open.retain(|_, conn| {
                let read = conn.bytes_read.load(Ordering::Relaxed);
                let last = conn.last_read_ms.load(Ordering::Relaxed);
                if read == 0 && now.saturating_sub(conn.opened_ms) >= handshake {
                    silent.push(Arc::clone(conn));
                    false
                } else if now.saturating_sub(last) >= idle {
                    idle_out.push(Arc::clone(conn));
                    false
                } else {
                    true
                }
            });
        }
        self.closed(Reason::Handshake, &silent);
        self.closed(Reason::Idle, &idle_out);
    }

    /// The connections `listener` accepts, through the gate, with Nagle's algorithm
    /// off (an answer is written in several small frames, and with Nagle on a frame can
    /// wait for the client's delayed ACK). For tonic's `serve_with_incoming`.
    pub fn incoming(self: &Arc<Gate>, listener: TcpListener) -> Incoming {
        Incoming {
            listener,
            gate: Arc::clone(self),
            pause: None,
        }
    }
}

/// How long an accept waits after running out of file descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(20);

fn out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error() || code == rustix::io::Errno::NFILE.raw_os_error())
}

fn take_most_silent(open: &mut HashMap<u64, Arc<Conn>>) -> Option<Arc<Conn>> {
    let id = open
        .iter()
        .min_by_key(|(id, conn)| (conn.last_read_ms.load(Ordering::Relaxed), **id))
        .map(|(id, _)| *id)?;
    open.remove(&id)
}

async fn sweep(gate: Weak<Gate>) {
    let mut ticks = tokio::time::interval(SWEEP_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match gate.upgrade() {
            Some(gate) => gate.sweep_once(),
            None => return,
        }
    }
}

/// A connection inside the gate: reads and writes fail once the gate closes it.
#[derive(Debug)]
pub struct Guarded<S> {
    io: S,
    conn: Arc<Conn>,
    id: u64,
    gate: Arc<Gate>,
}

impl<S> Guarded<S> {
    fn check(&self, cx: &Context<'_>) -> io::Result<()> {
        if self.conn.closed.load(Ordering::Acquire) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the connection gate",
            ));
        }
        if let Ok(mut waker) = self.conn.waker.lock()
            && !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
        {
            *waker = Some(cx.waker().clone());
        }
        Ok(())
    }
}

impl<S> Drop for Guarded<S> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.gate.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.check(cx)?;
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            let now = self.gate.now_ms();
            self.conn.last_read_ms.store(now, Ordering::Relaxed);
            self.conn
                .bytes_read
                .fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Guarded<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::Connected::connect_info(&self.io)
    }
}

/// The gated connections of one listener, as a stream for tonic.
#[derive(Debug)]
pub struct Incoming {
    listener: TcpListener,
    gate: Arc<Gate>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Guarded<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(pause) = self.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
            }
            match self.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, peer))) => {
                    let _ = stream.set_nodelay(true);
                    return Poll::Ready(Some(Ok(self.gate.admit(stream, Some(peer)))));
                }
                Poll::Ready(Err(e)) if out_of_descriptors(&e) => {
                    self.gate.evict_one(Reason::NoFileDescriptors);
                    self.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE)));
                }
                // A connection reset before it was accepted, and the like: the next one.
                Poll::Ready(Err(e)) => tracing::debug!(error = %e, "accept failed"),
            }
        }
    }
}

/// A tonic server builder with the gate's HTTP/2 bounds: concurrent streams per
/// connection and keep-alive pings (which also find dead peers), and TLS when given.
pub fn grpc_server(
    limits: Limits,
    tls: Option<&Tls>,
) -> Result<tonic::transport::Server, tonic::transport::Error> {
    let server = tonic::transport::Server::builder()
        .max_concurrent_streams(limits.streams_max)
        .http2_keepalive_interval(Some(limits.keepalive_interval))
        .http2_keepalive_timeout(Some(limits.keepalive_timeout));
    match tls {
        Some(tls) => server.tls_config(tls.grpc.clone()),
        None => Ok(server),
    }
}

/// Serves `router` over HTTP/1 on `listener`, every connection through `gate` (and
/// through TLS when `tls` is given), until `shutdown` resolves; then lets requests in
/// flight finish.
pub async fn serve_http(
    listener: TcpListener,
    gate: Arc<Gate>,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let limits = gate.limits();
    let mut incoming = gate.incoming(listener);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            next = tokio_stream::StreamExt::next(&mut incoming) => match next {
                Some(Ok(stream)) => stream,
                // The stream yields connections only; it never ends or fails.
                Some(Err(_)) | None => continue,
            },
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            // The handshake runs in the connection's task, bounded like every other
            // wait of a connection, so a slow one holds up nobody else.
            let stream = match tls {
                None => MaybeTls::Plain(stream),
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(stream)) => MaybeTls::Tls(Box::new(stream)),
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "HTTP connection ended with an error");
                    }
                }
                _ = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    // Stop accepting (closes the listening socket) before draining.
    drop(incoming);
    let _ = stop_tx.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// A gRPC status code by its canonical name (`PERMISSION_DENIED`), as the audit trail
/// and logs record it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `authorization` value of a gRPC request's metadata, if it is readable text.
pub fn authorization(metadata: &tonic::metadata::MetadataMap) -> Option<&str> {
    metadata.get("authorization").and_then(|v| v.to_str().ok())
}

/// The TLS acceptor of an HTTP listener.
pub type TlsAcceptor = tokio_rustls::TlsAcceptor;

/// A connection of an HTTP listener, with or without TLS.
enum MaybeTls {
    Plain(Guarded<TcpStream>),
    Tls(Box<tokio_rustls::server::TlsStream<Guarded<TcpStream>>>),
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The certificate files of a listener: PEM chain and key, and for mutual TLS the CA
/// that client certificates must chain to.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// Certificate chain (PEM), leaf first.
    pub cert: std::path::PathBuf,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// CA certificates (PEM) client certificates must chain to; `None`: no client
    /// certificates asked for.
    pub client_ca: Option<std::path::PathBuf>,
}

/// TLS for every listener of a process, loaded once from [`TlsFiles`].
#[derive(Clone)]
pub struct Tls {
    /// For tonic (gRPC).
    pub grpc: tonic::transport::ServerTlsConfig,
    /// For the HTTP listeners.
    pub http: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

fn read_file(path: &std::path::Path, what: &str) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot read the {what} {}: {e}", path.display()),
        )
    })
}

fn invalid(text: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, text)
}

impl TlsFiles {
    /// Reads and checks the files.
    pub fn load(&self, limits: Limits) -> io::Result<Tls> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let cert_pem = read_file(&self.cert, "TLS certificate")?;
        let key_pem = read_file(&self.key, "TLS key")?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(format!("{}: {e}", self.cert.display())))?;
        if certs.is_empty() {
            return Err(invalid(format!(
                "{} holds no certificate",
                self.cert.display()
            )));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| invalid(format!("{}: {e}", self.key.display())))?;
        let builder = rustls::ServerConfig::builder();
        let mut grpc = tonic::transport::ServerTlsConfig::new()
            .identity(tonic::transport::Identity::from_pem(&cert_pem, &key_pem))
            .timeout(limits.handshake_timeout);
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let ca_pem = read_file(path, "client CA")?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                    let cert = cert.map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
                grpc = grpc.client_ca_root(tonic::transport::Certificate::from_pem(&ca_pem));
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(certs, key).map_err(|e| {
            invalid(format!(
                "{} and {}: {e}",
                self.cert.display(),
                self.key.display()
            ))
        })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            grpc,
            http: TlsAcceptor::from(Arc::new(config)),
        })
    }
}
