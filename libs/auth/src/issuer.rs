//! The local issuer of the embedded default: an ES256 key pair in the data directory
//! that the register trusts, so that one command runs it with real, signed tokens.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::{AuthError, LOCAL_ISSUER, ORG_CLAIM, Role};

/// The private key file (PKCS#8 DER, mode 0600).
const KEY_FILE: &str = "issuer-es256.p8";
/// The public key set, for other processes that verify the local issuer's tokens.
const JWKS_FILE: &str = "jwks.json";

/// A token to mint.
#[derive(Clone, Debug)]
pub struct MintRequest {
    /// `client_id` and `sub`.
    pub client_id: String,
    /// Scopes: one per role.
    pub roles: Vec<Role>,
    /// HelseID's organisation claim (binds an ingest token to a municipality).
    pub org_number: Option<String>,
    /// `aud`.
    pub audience: String,
    /// Lifetime in seconds.
    pub ttl_seconds: u64,
    /// Issue time, seconds since the epoch.
    pub now_unix: u64,
}

#[derive(Serialize)]
struct MintedClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    client_id: &'a str,
    scope: String,
    #[serde(
        rename = "helseid://claims/client/claims/orgnr_parent",
        skip_serializing_if = "Option::is_none"
    )]
    org: Option<&'a str>,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

/// The local issuer (see the module documentation).
pub struct LocalIssuer {
    key: EncodingKey,
    jwk: Jwk,
    kid: String,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("kid", &self.kid)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Keys(format!("{}: {e}", path.display()))
}

impl LocalIssuer {
    /// The issuer whose key is in `dir`, creating the key pair on first use. The
    /// second value says whether it was created now.
    pub fn load_or_create(dir: &Path) -> Result<(LocalIssuer, bool), AuthError> {
        let path = dir.join(KEY_FILE);
        if path.exists() {
            return LocalIssuer::load(dir).map(|i| (i, false));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map_err(|_| AuthError::Keys("cannot generate an ES256 key pair".into()))?;
        // create_new: two processes starting at once cannot both write a key; the one
        // that loses the race uses the winner's key once it is complete.
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return LocalIssuer::load_created_elsewhere(dir).map(|i| (i, false));
            }
            Err(e) => return Err(io_error(&path, e)),
        };
        file.write_all(pkcs8.as_ref())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&path, e))?;
        let issuer = LocalIssuer::from_pkcs8(pkcs8.as_ref(), dir)?;
        issuer.write_jwks()?;
        Ok((issuer, true))
    }

    /// The key another process is creating right now: retried for a moment, until its
    /// writer has finished.
    fn load_created_elsewhere(dir: &Path) -> Result<LocalIssuer, AuthError> {
        let mut last = None;
        for _ in 0..20 {
            match LocalIssuer::load(dir) {
                Ok(issuer) => return Ok(issuer),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(last.unwrap_or_else(|| AuthError::Keys("the local issuer key is unreadable".into())))
    }

    /// The issuer whose key is in `dir` (it must exist and be private).
    pub fn load(dir: &Path) -> Result<LocalIssuer, AuthError> {
        let path = dir.join(KEY_FILE);
        let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(AuthError::Keys(format!(
                "{} is readable by others (mode {:03o}); make it 0600",
                path.display(),
                meta.permissions().mode() & 0o777
            )));
        }
        let der = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
        let issuer = LocalIssuer::from_pkcs8(&der, dir)?;
        if !dir.join(JWKS_FILE).exists() {
            issuer.write_jwks()?;
        }
        Ok(issuer)
    }

    fn from_pkcs8(der: &[u8], dir: &Path) -> Result<LocalIssuer, AuthError> {
        let key = EncodingKey::from_ec_der(der);
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .map_err(|e| AuthError::Keys(format!("the local issuer key is unusable: {e}")))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|e| AuthError::Keys(format!("cannot fingerprint the local key: {e}")))?;
        jwk.common.key_id = Some(kid.clone());
        Ok(LocalIssuer {
            key,
            jwk,
            kid,
            dir: dir.to_path_buf(),
        })
    }

    fn write_jwks(&self) -> Result<(), AuthError> {
        let path = self.dir.join(JWKS_FILE);
        let text = serde_json::to_string_pretty(&self.jwks())
            .map_err(|e| AuthError::Keys(e.to_string()))?;
        std::fs::write(&path, text + "\n").map_err(|e| io_error(&path, e))
    }

    /// The public key set to trust.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk.clone()],
        }
    }

    /// The key id tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A signed access token (typ `at+jwt`).
    pub fn mint(&self, request: &MintRequest) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(self.kid.clone());
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti)
            .map_err(|_| AuthError::Keys("no randomness for a token id".into()))?;
        let claims = MintedClaims {
            iss: LOCAL_ISSUER,
            aud: &request.audience,
            sub: &request.client_id,
            client_id: &request.client_id,
            scope: request
                .roles
                .iter()
                .map(|r| r.scope())
                .collect::<Vec<_>>()
                .join(" "),
            org: request.org_number.as_deref(),
            iat: request.now_unix,
            nbf: request.now_unix,
            exp: request.now_unix + request.ttl_seconds,
            jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        };
        debug_assert_eq!(ORG_CLAIM, "helseid://claims/client/claims/orgnr_parent");
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| AuthError::Keys(format!("cannot sign: {e}")))
    }
}
