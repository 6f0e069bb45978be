//! Trust for every process of the binary: TLS on the listeners, who may call (tokens
//! from a configured issuer, or the local issuer of the embedded default), the audit
//! trail; and the client side of the same (TLS to `https://`, a CA file, tokens).
//!
//! Decisions (ARCHITECTURE.md, "Trust"):
//! - Authentication is on by default. Running without it takes `--no-auth` and is
//!   refused when any listener is on a non-loopback address.
//! - Plaintext is allowed on loopback only; a non-loopback listener without
//!   `--tls-cert` is refused unless `--allow-plaintext` says that TLS ends in front of
//!   the register (a service mesh or a load balancer).
//! - Without `--auth-jwks` the register trusts its local issuer: an ES256 key pair in
//!   `DATA/auth/` created on first start; `kpr auth token` mints from it.
//! - Published, disclosure-controlled tables may be read without a token unless
//!   `--tables-need-token`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use kpr_audit::{AuditLog, AuditOptions};
use kpr_auth::{Authenticator, Bindings, LocalIssuer, MintRequest, Role, TokenPolicy, Verifier};

/// How callers are identified.
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// The local issuer in `DATA/auth/` (the embedded default).
    Local,
    /// A configured issuer: its JWKS file, `iss` and `aud`.
    Jwks {
        /// The JWKS file (reread when it changes).
        path: PathBuf,
        /// The exact `iss`.
        issuer: String,
        /// The `aud` tokens must name.
        audience: String,
    },
    /// No authentication (loopback only).
    Off,
}

/// The trust settings of a server process.
#[derive(Clone, Debug)]
pub struct TrustConfig {
    /// Certificate files; `None`: plaintext.
    pub tls: Option<kpr_net::TlsFiles>,
    /// How callers are identified.
    pub auth: AuthMode,
    /// Extra organisation → municipality bindings.
    pub bindings_file: Option<PathBuf>,
    /// Published tables may be read without a token.
    pub anonymous_public: bool,
    /// Days the audit trail is kept (0: forever).
    pub audit_retention_days: u32,
    /// Plaintext on a non-loopback address (TLS ends in front of the register).
    pub allow_plaintext: bool,
    /// Origins whose pages may read the public listener (CORS); `*` for any.
    pub cors_origins: Vec<String>,
}

impl TrustConfig {
    /// The embedded default: local issuer, plaintext on loopback, anonymous published
    /// tables, the audit trail kept ten years.
    pub fn local() -> TrustConfig {
        TrustConfig {
            tls: None,
            auth: AuthMode::Local,
            bindings_file: None,
            anonymous_public: true,
            audit_retention_days: 3653,
            allow_plaintext: false,
            cors_origins: vec!["*".into()],
        }
    }
}

/// The trust of a running server process.
#[derive(Clone, Debug)]
pub struct Trust {
    /// TLS for the listeners, if on.
    pub tls: Option<kpr_net::Tls>,
    /// How callers are identified.
    pub auth: Arc<Authenticator>,
    /// The audit trail.
    pub audit: Arc<AuditLog>,
    /// Published tables may be read without a token.
    pub anonymous_public: bool,
    /// Origins allowed by CORS on the public listener.
    pub cors_origins: Vec<String>,
}

impl Trust {
    /// The access rules of the statistics services.
    pub fn access(&self) -> kpr_statistics::access::Access {
        kpr_statistics::access::Access {
            auth: Arc::clone(&self.auth),
            audit: Some(Arc::clone(&self.audit)),
            anonymous_public: self.anonymous_public,
            cors_origins: self.cors_origins.clone(),
        }
    }

    /// The HTTP listeners' TLS acceptor, if on.
    pub fn http_tls(&self) -> Option<kpr_net::TlsAcceptor> {
        self.tls.as_ref().map(|t| t.http.clone())
    }
}

/// The local issuer's directory inside a data directory.
pub fn issuer_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("auth")
}

/// The audit trail's directory inside a data directory.
pub fn audit_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("audit")
}

/// The policy tokens of the local issuer are held to.
pub fn local_policy() -> TokenPolicy {
    TokenPolicy {
        issuer: kpr_auth::LOCAL_ISSUER.into(),
        audience: kpr_auth::DEFAULT_AUDIENCE.into(),
        leeway_seconds: kpr_auth::LEEWAY_SECONDS,
    }
}

/// Organisation bindings: the shipped ones plus the deployment's file.
pub fn bindings(file: Option<&Path>) -> anyhow::Result<Bindings> {
    let embedded = Bindings::embedded();
    Ok(match file {
        Some(path) => embedded.with_file(path)?,
        None => embedded,
    })
}

/// Checks the settings against the addresses listened on, loads certificates and keys,
/// and opens the audit trail.
pub fn open(
    config: &TrustConfig,
    data_dir: &Path,
    addresses: &[SocketAddr],
    limits: kpr_net::Limits,
) -> anyhow::Result<Trust> {
    let exposed: Vec<&SocketAddr> = addresses.iter().filter(|a| !a.ip().is_loopback()).collect();
    if matches!(config.auth, AuthMode::Off)
        && let Some(address) = exposed.first()
    {
        bail!(
            "--no-auth is allowed on loopback addresses only, and {address} is not one; anyone who can reach it could write any municipality's events"
        );
    }
    if config.tls.is_none()
        && !config.allow_plaintext
        && let Some(address) = exposed.first()
    {
        bail!(
            "{address} is not a loopback address and no --tls-cert is given: tokens and health events would cross the network in plaintext; give --tls-cert/--tls-key, or --allow-plaintext when TLS ends in front of the register"
        );
    }
    let tls = match &config.tls {
        Some(files) => Some(files.load(limits).context("cannot set up TLS")?),
        None => None,
    };
    let bindings = bindings(config.bindings_file.as_deref())?;
    let auth = match &config.auth {
        AuthMode::Off => {
            tracing::warn!("authentication is OFF (--no-auth): every local caller may do anything");
            Authenticator::Off
        }
        AuthMode::Jwks {
            path,
            issuer,
            audience,
        } => {
            let policy = TokenPolicy {
                issuer: issuer.clone(),
                audience: audience.clone(),
                leeway_seconds: kpr_auth::LEEWAY_SECONDS,
            };
            tracing::info!(jwks = %path.display(), issuer, audience, bindings = bindings.len(), "trusting the configured token issuer");
            Authenticator::Tokens(Box::new(Verifier::from_jwks_file(path, policy, bindings)?))
        }
        AuthMode::Local => {
            crate::serve::private_dir(data_dir)?;
            let dir = issuer_dir(data_dir);
            let (issuer, created) = LocalIssuer::load_or_create(&dir)?;
            if created {
                tracing::info!(dir = %dir.display(), "created the local token issuer (ES256, key mode 0600); mint tokens with `kpr auth token`");
            }
            Authenticator::Tokens(Box::new(Verifier::from_jwks(
                &issuer.jwks(),
                local_policy(),
                bindings,
            )?))
        }
    };
    let audit = AuditLog::open(
        &audit_dir(data_dir),
        AuditOptions {
            retention_days: config.audit_retention_days,
            sync: true,
        },
    )
    .context("cannot open the audit trail")?;
    Ok(Trust {
        tls,
        auth: Arc::new(auth),
        audit,
        anonymous_public: config.anonymous_public,
        cors_origins: config.cors_origins.clone(),
    })
}

/// How a client of the binary reaches a register: TLS material and tokens.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    /// CA certificates (PEM) to trust for `https://` (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    pub cert: Option<PathBuf>,
    /// Its key (PEM).
    pub key: Option<PathBuf>,
    /// A token to send as it is.
    pub token: Option<String>,
    /// A data directory whose local issuer mints the tokens needed (the demo, and
    /// operator commands on the register's own machine).
    pub issuer_data: Option<PathBuf>,
    /// The name the server's certificate must carry, when it is not the endpoint's
    /// host (a probe inside the pod dials 127.0.0.1; the certificate names the service).
    pub server_name: Option<String>,
    /// Extra organisation bindings for tokens minted here (the server's
    /// `--auth-bindings` file), e.g. for Haram 1580, which refdata has no number for.
    pub bindings_file: Option<PathBuf>,
}

/// Where tokens come from.
#[derive(Debug)]
pub enum Tokens {
    /// None are sent.
    None,
    /// One given token.
    Fixed(String),
    /// Minted as needed by the local issuer.
    Local(Box<LocalIssuer>, Bindings),
}

/// How long a client waits for a starting register's local issuer.
const ISSUER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Lifetime of tokens the clients mint for themselves.
const CLIENT_TOKEN_TTL_SECONDS: u64 = 3600;

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Mints a token from the local issuer in `data_dir` (`kpr auth token`).
pub fn mint(
    data_dir: &Path,
    client_id: &str,
    roles: &[Role],
    org_number: Option<String>,
    ttl_seconds: u64,
) -> anyhow::Result<String> {
    let issuer = LocalIssuer::load(&issuer_dir(data_dir)).with_context(|| {
        format!(
            "no local issuer in {} (start `kpr serve --data {}` once, or give the token of your identity provider)",
            issuer_dir(data_dir).display(),
            data_dir.display()
        )
    })?;
    Ok(issuer.mint(&MintRequest {
        client_id: client_id.to_string(),
        roles: roles.to_vec(),
        org_number,
        audience: kpr_auth::DEFAULT_AUDIENCE.into(),
        ttl_seconds,
        now_unix: now_unix(),
    })?)
}

impl Tokens {
    /// The tokens a client configuration gives.
    pub fn from_config(config: &ClientConfig) -> anyhow::Result<Tokens> {
        if let Some(token) = &config.token {
            return Ok(Tokens::Fixed(token.trim().to_string()));
        }
        let Some(data) = &config.issuer_data else {
            return Ok(Tokens::None);
        };
        // A register started a moment ago may still be creating its issuer.
        let deadline = std::time::Instant::now() + ISSUER_WAIT;
        let issuer = loop {
            match LocalIssuer::load(&issuer_dir(data)) {
                Ok(issuer) => break issuer,
                Err(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(100))
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)).with_context(|| {
                        format!("no local issuer in {}", issuer_dir(data).display())
                    });
                }
            }
        };
        Ok(Tokens::Local(
            Box::new(issuer),
            bindings(config.bindings_file.as_deref())?,
        ))
    }

    /// An ingest token for `municipality` (one per municipality, as HelseID's
    /// multi-tenant clients hold).
    pub fn for_municipality(&self, municipality: &str) -> anyhow::Result<Option<String>> {
        match self {
            Tokens::None => Ok(None),
            Tokens::Fixed(token) => Ok(Some(token.clone())),
            Tokens::Local(issuer, bindings) => {
                let org = bindings.org_number_of(municipality).with_context(|| {
                    format!("no organisation number is bound to municipality {municipality} (refdata has none for Haram 1580): give the server and this command --auth-bindings FILE with a line `ORGNR,{municipality}`")
                })?;
                Ok(Some(issuer.mint(&MintRequest {
                    client_id: format!("kpr-demo-{municipality}"),
                    roles: vec![Role::Ingest],
                    org_number: Some(org.to_string()),
                    audience: kpr_auth::DEFAULT_AUDIENCE.into(),
                    ttl_seconds: CLIENT_TOKEN_TTL_SECONDS,
                    now_unix: now_unix(),
                })?))
            }
        }
    }

    /// A token with `role` (statistics or operator reads, publishing).
    pub fn for_role(&self, role: Role) -> anyhow::Result<Option<String>> {
        match self {
            Tokens::None => Ok(None),
            Tokens::Fixed(token) => Ok(Some(token.clone())),
            Tokens::Local(issuer, _) => Ok(Some(issuer.mint(&MintRequest {
                client_id: format!("kpr-cli-{}", role.name()),
                roles: vec![role],
                org_number: None,
                audience: kpr_auth::DEFAULT_AUDIENCE.into(),
                ttl_seconds: CLIENT_TOKEN_TTL_SECONDS,
                now_unix: now_unix(),
            })?)),
        }
    }
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// A gRPC channel to `endpoint`: TLS for `https://` (never plaintext), plaintext for
/// `http://`; retried while the server starts, up to `wait`.
pub async fn channel(
    endpoint: &str,
    config: &ClientConfig,
    wait: std::time::Duration,
) -> anyhow::Result<tonic::transport::Channel> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut target = Endpoint::from_shared(endpoint.to_string())
        .with_context(|| format!("{endpoint} is not an endpoint URL"))?;
    if endpoint.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        tls = match &config.ca_file {
            Some(path) => tls.ca_certificate(Certificate::from_pem(read(path, "CA file")?)),
            None => tls.with_native_roots(),
        };
        if let Some(name) = &config.server_name {
            tls = tls.domain_name(name.clone());
        }
        if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
            tls = tls.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        target = target
            .tls_config(tls)
            .context("cannot set up TLS for the endpoint")?;
    } else if !endpoint.starts_with("http://") {
        bail!("{endpoint}: the endpoint must start with https:// (TLS) or http:// (loopback)");
    }
    let deadline = std::time::Instant::now() + wait;
    loop {
        match target.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if std::time::Instant::now() >= deadline => {
                return Err(anyhow::Error::new(e))
                    .with_context(|| format!("cannot reach the register at {endpoint}"));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
}

/// The HTTP client of a configuration (TLS for `https://` URLs).
pub fn http_client(
    config: &ClientConfig,
    token: Option<String>,
) -> anyhow::Result<crate::http_client::Client> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_slice_iter(&read(path, "CA file")?) {
                roots.add(cert.with_context(|| format!("{} is not PEM", path.display()))?)?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let tls = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(&read(cert, "client certificate")?)
                    .collect::<Result<_, _>>()
                    .with_context(|| format!("{} is not PEM", cert.display()))?;
            let key = PrivateKeyDer::from_pem_slice(&read(key, "client key")?)
                .with_context(|| format!("{} is not a PEM key", key.display()))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(crate::http_client::Client {
        tls: Some(Arc::new(tls)),
        token,
        server_name: config.server_name.clone(),
        timeout: None,
    })
}

/// Records an operator command of the CLI (`kpr rebuild`, `kpr auth token`, …) in the
/// audit trail of `data_dir`, beside what the server records. The client is the local
/// user id: the CLI runs on the register's machine with access to its data directory.
pub fn record_cli(
    data_dir: &Path,
    method: String,
    municipality: &str,
    org: Option<String>,
    outcome: &anyhow::Result<()>,
) -> anyhow::Result<()> {
    let record = kpr_audit::Record {
        time_unix_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
        client: format!("cli:uid-{}", rustix::process::getuid().as_raw()),
        org: org.unwrap_or_default(),
        role: Role::Operator.name().into(),
        channel: "cli".into(),
        method,
        municipality: municipality.to_string(),
        outcome: if outcome.is_ok() { "OK" } else { "FAILED" }.into(),
        rule: match outcome {
            Ok(()) => String::new(),
            Err(e) => e.to_string().chars().take(200).collect(),
        },
        ..kpr_audit::Record::default()
    };
    kpr_audit::record_blocking(
        &audit_dir(data_dir),
        AuditOptions {
            retention_days: 0,
            sync: true,
        },
        record,
    )
    .context("cannot write the audit trail")
}
