//! Access-token verification against a JWKS file that may be replaced while running.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::{AuthError, Bindings, Caller, Role};

/// What a token must say to be accepted.
#[derive(Clone, Debug)]
pub struct TokenPolicy {
    /// The exact `iss`.
    pub issuer: String,
    /// The `aud` the token must name.
    pub audience: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
}

/// The only algorithms accepted: asymmetric, so that the register holds no secret that
/// could mint tokens, and so that a public key can never be used as an HMAC secret.
const ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::PS256, Algorithm::ES256];
/// How often the JWKS file's modification time is looked at.
const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// How soon an unknown `kid` may force another look (a key rotation in progress).
const RELOAD_ON_UNKNOWN_KID: Duration = Duration::from_secs(1);

struct Key {
    kid: Option<String>,
    /// The algorithm the key is for (from the JWK's `alg`, or its type).
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

struct Loaded {
    keys: Vec<Key>,
    modified: Option<SystemTime>,
    checked: Instant,
    /// Bumped on every reload.
    generation: u64,
}

/// Where the trusted keys come from.
enum Source {
    /// A JWKS file, reread when it changes.
    File(PathBuf),
    /// Keys given at start (the local issuer).
    Fixed,
}

/// Verifies access tokens (see the crate documentation).
pub struct Verifier {
    policy: TokenPolicy,
    bindings: Bindings,
    source: Source,
    loaded: RwLock<Loaded>,
    /// Tokens verified before, by their exact text: an EHR sends the same token for
    /// its whole lifetime, and a signature check costs more than the append it guards.
    cache: Mutex<HashMap<String, Verified>>,
}

/// A token that passed every check, and until when it stays valid.
#[derive(Clone)]
struct Verified {
    caller: Caller,
    /// `exp` and `nbf` (seconds since the epoch) as the token states them.
    exp: u64,
    nbf: Option<u64>,
    /// The key set it was verified against (a reload drops what the old set verified).
    generation: u64,
}

/// Verified tokens kept at most (the cache is emptied when full: simple, and bounded).
const CACHE_TOKENS_MAX: usize = 4096;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("policy", &self.policy)
            .field("bindings", &self.bindings.len())
            .finish_non_exhaustive()
    }
}

/// The claims the register reads; anything else in the token is ignored.
#[derive(Deserialize)]
struct Claims {
    /// Required and type-checked by jsonwebtoken before these claims are read.
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<Scopes>,
    #[serde(default, rename = "helseid://claims/client/claims/orgnr_parent")]
    org: Option<String>,
}

/// `scope` as a space-separated string (RFC 8693, HelseID) or a JSON array.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scopes {
    Text(String),
    List(Vec<String>),
}

impl Scopes {
    fn contains(&self, scope: &str) -> bool {
        match self {
            Scopes::Text(text) => text.split_whitespace().any(|s| s == scope),
            Scopes::List(list) => list.iter().any(|s| s == scope),
        }
    }
}

fn key_algorithms(jwk: &Jwk) -> Vec<Algorithm> {
    let declared = jwk.common.key_algorithm.and_then(|a| match a {
        KeyAlgorithm::RS256 => Some(Algorithm::RS256),
        KeyAlgorithm::PS256 => Some(Algorithm::PS256),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        _ => None,
    });
    match (&jwk.algorithm, declared) {
        (_, Some(alg)) => vec![alg],
        // A key that declares an algorithm we refuse is not used at all.
        (_, None) if jwk.common.key_algorithm.is_some() => Vec::new(),
        (AlgorithmParameters::RSA(_), None) => vec![Algorithm::RS256, Algorithm::PS256],
        (AlgorithmParameters::EllipticCurve(ec), None) if ec.curve == EllipticCurve::P256 => {
            vec![Algorithm::ES256]
        }
        _ => Vec::new(),
    }
}

fn parse_keys(set: &JwkSet) -> Vec<Key> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            // Symmetric ("oct") keys are never trusted, whatever the file says.
            if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
                return None;
            }
            let algorithms = key_algorithms(jwk);
            let key = DecodingKey::from_jwk(jwk).ok()?;
            (!algorithms.is_empty()).then(|| Key {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            })
        })
        .collect()
}

fn read_jwks(path: &Path) -> Result<(Vec<Key>, Option<SystemTime>), AuthError> {
    let shown = path.display();
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .map_err(|e| AuthError::Keys(format!("cannot read {shown}: {e}")))?;
    let set: JwkSet = serde_json::from_str(&text)
        .map_err(|e| AuthError::Keys(format!("{shown} is not a JWKS: {e}")))?;
    let keys = parse_keys(&set);
    if keys.is_empty() {
        return Err(AuthError::Keys(format!(
            "{shown} holds no RS256, PS256 or ES256 key"
        )));
    }
    Ok((keys, modified))
}

impl Verifier {
    /// Trusts the keys of the JWKS file at `path`, rereading it when it changes (key
    /// rotation without a restart).
    pub fn from_jwks_file(
        path: &Path,
        policy: TokenPolicy,
        bindings: Bindings,
    ) -> Result<Verifier, AuthError> {
        let (keys, modified) = read_jwks(path)?;
        Ok(Verifier {
            policy,
            bindings,
            source: Source::File(path.to_path_buf()),
            loaded: RwLock::new(Loaded {
                keys,
                modified,
                checked: Instant::now(),
                generation: 0,
            }),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Trusts exactly the keys of `set` (the local issuer's).
    pub fn from_jwks(
        set: &JwkSet,
        policy: TokenPolicy,
        bindings: Bindings,
    ) -> Result<Verifier, AuthError> {
        let keys = parse_keys(set);
        if keys.is_empty() {
            return Err(AuthError::Keys("no RS256, PS256 or ES256 key".into()));
        }
        Ok(Verifier {
            policy,
            bindings,
            source: Source::Fixed,
            loaded: RwLock::new(Loaded {
                keys,
                modified: None,
                checked: Instant::now(),
                generation: 0,
            }),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The policy tokens are held to.
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// The organisation bindings.
    pub fn bindings(&self) -> &Bindings {
        &self.bindings
    }

    /// Rereads the JWKS file when it changed, at most every `every`.
    fn maybe_reload(&self, every: Duration) {
        let Source::File(path) = &self.source else {
            return;
        };
        let due = self
            .loaded
            .read()
            .map(|l| l.checked.elapsed() >= every)
            .unwrap_or(true);
        if !due {
            return;
        }
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let Ok(mut loaded) = self.loaded.write() else {
            return;
        };
        loaded.checked = Instant::now();
        if modified == loaded.modified {
            return;
        }
        match read_jwks(path) {
            Ok((keys, modified)) => {
                tracing::info!(path = %path.display(), keys = keys.len(), "trusted keys reloaded");
                loaded.keys = keys;
                loaded.modified = modified;
                loaded.generation += 1;
            }
            // A half-written or broken file keeps the keys that worked.
            Err(e) => {
                tracing::warn!(error = %e, "the JWKS file changed but cannot be used; keeping the previous keys")
            }
        }
    }

    /// Verifies `token` and says who the caller is. A token verified before is taken
    /// from the cache while its `exp`/`nbf` hold and the key set is the one that
    /// verified it; anything else is verified in full.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        self.maybe_reload(RELOAD_EVERY);
        let generation = self.loaded.read().map(|l| l.generation).unwrap_or(u64::MAX);
        let now = now_unix();
        let leeway = self.policy.leeway_seconds;
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(token).cloned());
        if let Some(hit) = cached
            && hit.generation == generation
        {
            if now > hit.exp.saturating_add(leeway) {
                return Err(AuthError::Expired);
            }
            if hit.nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
                return Err(AuthError::NotYetValid);
            }
            return Ok(hit.caller);
        }
        let (caller, exp, nbf) = self.verify_in_full(token)?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_TOKENS_MAX {
                cache.clear();
            }
            cache.insert(
                token.to_string(),
                Verified {
                    caller: caller.clone(),
                    exp,
                    nbf,
                    generation,
                },
            );
        }
        Ok(caller)
    }

    fn verify_in_full(&self, token: &str) -> Result<(Caller, u64, Option<u64>), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| {
            // `alg: none` (and names jsonwebtoken does not know) fail to parse: say so.
            let alg = insecure_alg(token);
            if alg != UNREADABLE && !["RS256", "PS256", "ES256"].contains(&alg.as_str()) {
                AuthError::Algorithm(alg)
            } else {
                AuthError::Malformed(e.to_string())
            }
        })?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case("at+jwt")
                || t.eq_ignore_ascii_case("application/at+jwt")
                || t.eq_ignore_ascii_case("JWT")
        });
        if !typ_ok {
            return Err(AuthError::Type(header.typ.clone()));
        }
        if header.crit.is_some() {
            return Err(AuthError::Malformed(
                "critical header parameters are not supported".into(),
            ));
        }
        let mut result = self.verify_with_keys(token, &header);
        if matches!(result, Err(AuthError::UnknownKey(_))) {
            self.maybe_reload(RELOAD_ON_UNKNOWN_KID);
            result = self.verify_with_keys(token, &header);
        }
        let claims = result?;
        let (exp, nbf) = (claims.exp, claims.nbf);
        Ok((self.caller(claims)?, exp, nbf))
    }

    fn verify_with_keys(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<Claims, AuthError> {
        let loaded = self
            .loaded
            .read()
            .map_err(|_| AuthError::Keys("key store lock poisoned".into()))?;
        let candidates: Vec<&Key> = loaded
            .keys
            .iter()
            .filter(|k| k.algorithms.contains(&header.alg))
            .filter(|k| match (&header.kid, &k.kid) {
                (Some(want), Some(have)) => want == have,
                // Without a kid only a set of one usable key is unambiguous.
                (None, _) => true,
                (Some(_), None) => false,
            })
            .collect();
        let key = match (&header.kid, candidates.as_slice()) {
            (_, [one]) => *one,
            (None, []) | (Some(_), []) => {
                return Err(AuthError::UnknownKey(format!(
                    "kid {}, alg {:?}",
                    header.kid.as_deref().unwrap_or("none"),
                    header.alg
                )));
            }
            (_, _) => {
                return Err(AuthError::UnknownKey(
                    "no kid and several trusted keys".into(),
                ));
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.policy.issuer]);
        validation.set_audience(&[&self.policy.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.policy.leeway_seconds;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
                match e.kind() {
                    ErrorKind::InvalidSignature => AuthError::Signature,
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidIssuer => AuthError::Issuer,
                    ErrorKind::InvalidAudience => AuthError::Audience,
                    ErrorKind::InvalidAlgorithm => {
                        AuthError::Algorithm(format!("{:?}", header.alg))
                    }
                    ErrorKind::MissingRequiredClaim(c) => {
                        AuthError::Claims(format!("{c} is missing"))
                    }
                    ErrorKind::InvalidClaimFormat(c) => {
                        AuthError::Claims(format!("{c} has the wrong type"))
                    }
                    _ => AuthError::Malformed(e.to_string()),
                }
            })?;
        Ok(data.claims)
    }

    fn caller(&self, claims: Claims) -> Result<Caller, AuthError> {
        let client_id = claims
            .client_id
            .or(claims.sub)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AuthError::Claims("client_id (or sub) is missing".into()))?;
        if client_id.len() > 200 || client_id.chars().any(char::is_control) {
            return Err(AuthError::Claims("client_id is not a plain name".into()));
        }
        let roles = match &claims.scope {
            Some(scopes) => Role::ALL
                .into_iter()
                .filter(|r| scopes.contains(r.scope()))
                .collect(),
            None => Vec::new(),
        };
        let org_number = claims.org.filter(|o| crate::bindings::valid_org_number(o));
        let municipality = org_number
            .as_deref()
            .and_then(|o| self.bindings.municipality_of(o));
        Ok(Caller {
            client_id,
            org_number,
            municipality,
            roles,
        })
    }
}

const UNREADABLE: &str = "(unreadable)";

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `alg` a token claims, read without trusting it, for the refusal message.
fn insecure_alg(token: &str) -> String {
    use base64_free::decode_url;
    token
        .split('.')
        .next()
        .and_then(decode_url)
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v.get("alg").and_then(|a| a.as_str()).map(str::to_string))
        .map(|alg| {
            alg.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(16)
                .collect()
        })
        .unwrap_or_else(|| UNREADABLE.into())
}

/// Base64url decoding for the one diagnostic above (the header of a refused token),
/// small enough not to add a dependency; verification never uses it.
mod base64_free {
    pub fn decode_url(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let mut buffer = 0u32;
        let mut bits = 0;
        for c in text.bytes() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'-' => 62,
                b'_' => 63,
                b'=' => break,
                _ => return None,
            };
            buffer = (buffer << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        Some(out)
    }
}
