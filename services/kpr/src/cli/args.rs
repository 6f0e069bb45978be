//! Flags shared by several commands: the trust of a server process and how a client
//! reaches a register.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// TLS, authentication and the audit trail of a server process.
#[derive(Debug, Args)]
pub struct TrustArgs {
    /// TLS certificate chain (PEM) for every listener.
    #[arg(long, env = "KPR_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "KPR_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that client certificates must chain to: mutual TLS on every listener.
    #[arg(long, env = "KPR_TLS_CLIENT_CA", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// JWKS file of the trusted token issuer (reread when it changes); default: the
    /// local issuer in DATA/auth.
    #[arg(long, env = "KPR_AUTH_JWKS", requires = "auth_issuer")]
    auth_jwks: Option<PathBuf>,
    /// The exact `iss` of tokens (with --auth-jwks).
    #[arg(long, env = "KPR_AUTH_ISSUER")]
    auth_issuer: Option<String>,
    /// The `aud` tokens must name.
    #[arg(long, env = "KPR_AUTH_AUDIENCE", default_value = "kpr")]
    auth_audience: String,
    /// Extra bindings, lines `organisation number,municipality code` (e.g. Haram 1580).
    #[arg(long, env = "KPR_AUTH_BINDINGS")]
    auth_bindings: Option<PathBuf>,
    /// Run without authentication (refused on a non-loopback address).
    #[arg(long, env = "KPR_NO_AUTH", conflicts_with = "auth_jwks")]
    no_auth: bool,
    /// Published tables need a statistics token too (default: anonymous reads allowed).
    #[arg(long, env = "KPR_TABLES_NEED_TOKEN")]
    tables_need_token: bool,
    /// Days the audit trail is kept (0: forever).
    #[arg(long, env = "KPR_AUDIT_RETENTION_DAYS", default_value_t = 3653)]
    audit_retention_days: u32,
    /// Plaintext on a non-loopback address, because TLS ends in front of the register.
    #[arg(long, env = "KPR_ALLOW_PLAINTEXT")]
    allow_plaintext: bool,
    /// An origin whose web pages may read the public tables (CORS, GET), repeatable;
    /// `*` for any, `none` for no CORS.
    #[arg(long = "cors-origin", value_name = "ORIGIN", default_value = "*")]
    cors_origins: Vec<String>,
}

impl TrustArgs {
    pub fn config(&self) -> kpr::trust::TrustConfig {
        let auth = match (&self.auth_jwks, self.no_auth) {
            (_, true) => kpr::trust::AuthMode::Off,
            (Some(path), false) => kpr::trust::AuthMode::Jwks {
                path: path.clone(),
                issuer: self.auth_issuer.clone().unwrap_or_default(),
                audience: self.auth_audience.clone(),
            },
            (None, false) => kpr::trust::AuthMode::Local,
        };
        kpr::trust::TrustConfig {
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(kpr_net::TlsFiles {
                    cert: cert.clone(),
                    key: key.clone(),
                    client_ca: self.tls_client_ca.clone(),
                }),
                _ => None,
            },
            auth,
            bindings_file: self.auth_bindings.clone(),
            anonymous_public: !self.tables_need_token,
            audit_retention_days: self.audit_retention_days,
            allow_plaintext: self.allow_plaintext,
            cors_origins: self
                .cors_origins
                .iter()
                .filter(|o| o.as_str() != "none")
                .cloned()
                .collect(),
        }
    }
}

/// How a client command reaches the register: TLS for https:// endpoints and a token.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// CA certificates (PEM) to trust for https:// endpoints (default: the system's).
    #[arg(long, env = "KPR_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, env = "KPR_CLIENT_CERT", requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, env = "KPR_CLIENT_KEY", requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Access token to send (`authorization: Bearer`).
    #[arg(long, env = "KPR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the access token.
    #[arg(long, env = "KPR_TOKEN_FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Mint the tokens needed from the local issuer of this data directory (on the
    /// register's own machine).
    #[arg(long, env = "KPR_ISSUER_DATA")]
    issuer_data: Option<PathBuf>,
    /// The name the server certificate must carry, when not the endpoint's host.
    #[arg(long, env = "KPR_TLS_SERVER_NAME")]
    tls_server_name: Option<String>,
    /// The server's extra organisation bindings, for tokens minted with --issuer-data.
    #[arg(long, env = "KPR_AUTH_BINDINGS", requires = "issuer_data")]
    auth_bindings: Option<PathBuf>,
}

impl ClientArgs {
    pub fn config(&self) -> anyhow::Result<kpr::trust::ClientConfig> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(kpr::trust::ClientConfig {
            ca_file: self.ca_file.clone(),
            cert: self.client_cert.clone(),
            key: self.client_key.clone(),
            token,
            issuer_data: self.issuer_data.clone(),
            server_name: self.tls_server_name.clone(),
            bindings_file: self.auth_bindings.clone(),
        })
    }
}
