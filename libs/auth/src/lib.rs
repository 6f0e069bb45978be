//! Who may call the register, and for which municipality.
//!
//! Callers present an OAuth 2 access token as `authorization: Bearer <JWT>`, in gRPC
//! metadata or an HTTP header, the way Norwegian health APIs take HelseID's machine
//! tokens. [`Verifier`] checks it against the keys of a configured JWKS: asymmetric
//! signatures only (RS256, PS256, ES256), `typ` `at+jwt` or `JWT`, `iss` and `aud`
//! exact, `exp` (required) and `nbf` with a small leeway. The token's scopes give its
//! [`Role`]s, and the organisation number in HelseID's `orgnr_parent` claim binds an
//! ingest caller to one municipality through [`Bindings`].
//!
//! The embedded default needs no identity provider: [`LocalIssuer`] keeps an ES256 key
//! pair in the data directory, the register trusts it, and `kpr auth token` mints tokens
//! from it. All cryptography is jsonwebtoken's and aws-lc's; nothing here signs or
//! verifies by hand.

mod bindings;
mod issuer;
mod verify;

pub use bindings::{BindingError, Bindings};
pub use issuer::{LocalIssuer, MintRequest};
pub use verify::{TokenPolicy, Verifier};

use kpr_domain::municipality::MunicipalityCode;

/// The claim in which HelseID names the organisation a machine client acts for.
pub const ORG_CLAIM: &str = "helseid://claims/client/claims/orgnr_parent";
/// The issuer name of the local issuer.
pub const LOCAL_ISSUER: &str = "urn:kpr:local-issuer";
/// The audience the register expects by default.
pub const DEFAULT_AUDIENCE: &str = "kpr";
/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// What a caller may do; each role is one scope of the token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Append events for the caller's own municipality.
    Ingest,
    /// Read the published, disclosure-controlled tables.
    Statistics,
    /// Exact tables, releases, "as known at", the audit trail, backups.
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Ingest, Role::Statistics, Role::Operator];

    /// The scope that grants this role.
    pub fn scope(self) -> &'static str {
        match self {
            Role::Ingest => "kpr:ingest",
            Role::Statistics => "kpr:statistics",
            Role::Operator => "kpr:operator",
        }
    }

    /// The role's name (as in `kpr auth token --role`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Statistics => "statistics",
            Role::Operator => "operator",
        }
    }

    /// A role by name.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// A caller whose token was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's `client_id` (or `sub`).
    pub client_id: String,
    /// The organisation number the token names, if any.
    pub org_number: Option<String>,
    /// The municipality that organisation number is bound to, if any.
    pub municipality: Option<MunicipalityCode>,
    /// The roles its scopes give.
    pub roles: Vec<Role>,
}

impl Caller {
    /// The caller of a register running without authentication (an explicit flag, on
    /// loopback only): every role, no binding.
    pub fn unauthenticated_local() -> Caller {
        Caller {
            client_id: "unauthenticated-local".into(),
            org_number: None,
            municipality: None,
            roles: Role::ALL.to_vec(),
        }
    }

    /// Whether the caller has `role`. The operator role includes reading the
    /// published tables (statistics); nothing includes ingest.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
            || (role == Role::Statistics && self.roles.contains(&Role::Operator))
    }

    /// The caller itself when it has `role`, else why not.
    pub fn require(&self, role: Role) -> Result<&Caller, AuthError> {
        if self.has(role) {
            Ok(self)
        } else {
            Err(AuthError::MissingRole {
                role,
                client_id: self.client_id.clone(),
            })
        }
    }
}

/// Why a call is not allowed. [`AuthError::is_unauthenticated`] tells the two answers
/// apart: no valid token (`UNAUTHENTICATED`, HTTP 401) or a valid token that does not
/// allow the call (`PERMISSION_DENIED`, HTTP 403).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `authorization: Bearer …`.
    #[error("no access token: send `authorization: Bearer <token>`")]
    Missing,
    /// Not a JWT, or not one this register can read.
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    /// `alg` is not RS256, PS256 or ES256 (`none` and HMAC included).
    #[error("the access token's algorithm {0} is not accepted (RS256, PS256 or ES256 only)")]
    Algorithm(String),
    /// `typ` is not `at+jwt` or `JWT`.
    #[error("the access token's type {0:?} is not at+jwt or JWT")]
    Type(Option<String>),
    /// No key of the trusted JWKS has the token's `kid` and algorithm.
    #[error("the access token is signed by a key this register does not trust ({0})")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the access token's signature does not verify")]
    Signature,
    /// `exp` has passed.
    #[error("the access token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the access token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not the trusted issuer.
    #[error("the access token's issuer is not the one this register trusts")]
    Issuer,
    /// `aud` does not name this register.
    #[error("the access token is not meant for this register (aud)")]
    Audience,
    /// A required claim is missing or of the wrong type.
    #[error("the access token's claims are invalid: {0}")]
    Claims(String),
    /// The trusted keys cannot be read.
    #[error("the register cannot read its trusted keys: {0}")]
    Keys(String),
    /// A valid token without the role the call needs.
    #[error("client {client_id} lacks the {} role (scope {})", role.name(), role.scope())]
    MissingRole {
        /// The role needed.
        role: Role,
        /// Who asked.
        client_id: String,
    },
    /// A valid ingest token whose organisation is bound to no municipality.
    #[error(
        "the token's organisation {org} is bound to no municipality; the operator can add the binding (--auth-bindings)"
    )]
    Unbound {
        /// The organisation number (or "none").
        org: String,
    },
    /// A batch for another municipality than the token's.
    #[error(
        "the token is bound to municipality {bound}, but event {event_index} is for municipality {requested}; nothing was stored"
    )]
    WrongMunicipality {
        /// The token's municipality.
        bound: String,
        /// The event's.
        requested: String,
        /// The first such event.
        event_index: u32,
    },
}

impl AuthError {
    /// `true`: no valid token (401 / UNAUTHENTICATED); `false`: not allowed (403 /
    /// PERMISSION_DENIED).
    pub fn is_unauthenticated(&self) -> bool {
        !matches!(
            self,
            AuthError::MissingRole { .. }
                | AuthError::Unbound { .. }
                | AuthError::WrongMunicipality { .. }
        )
    }

    /// A short rule name for the audit trail and error details.
    pub fn rule(&self) -> &'static str {
        match self {
            AuthError::Missing => "NO_TOKEN",
            AuthError::Malformed(_) => "MALFORMED_TOKEN",
            AuthError::Algorithm(_) => "ALGORITHM_NOT_ACCEPTED",
            AuthError::Type(_) => "TOKEN_TYPE",
            AuthError::UnknownKey(_) => "UNKNOWN_KEY",
            AuthError::Signature => "BAD_SIGNATURE",
            AuthError::Expired => "TOKEN_EXPIRED",
            AuthError::NotYetValid => "TOKEN_NOT_YET_VALID",
            AuthError::Issuer => "WRONG_ISSUER",
            AuthError::Audience => "WRONG_AUDIENCE",
            AuthError::Claims(_) => "BAD_CLAIMS",
            AuthError::Keys(_) => "KEYS_UNAVAILABLE",
            AuthError::MissingRole { .. } => "MISSING_ROLE",
            AuthError::Unbound { .. } => "ORGANISATION_NOT_BOUND",
            AuthError::WrongMunicipality { .. } => "WRONG_MUNICIPALITY",
        }
    }
}

/// The bearer token of an `authorization` header value, if it is one.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// How the register decides who a caller is.
#[derive(Debug)]
pub enum Authenticator {
    /// Tokens are required and verified.
    Tokens(Box<Verifier>),
    /// No authentication (explicit, loopback only): every caller has every role.
    Off,
}

impl Authenticator {
    /// The caller behind an `authorization` header value (`None`: no header).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        match self {
            Authenticator::Off => Ok(Caller::unauthenticated_local()),
            Authenticator::Tokens(verifier) => {
                let header = authorization.ok_or(AuthError::Missing)?;
                let token = bearer(header).ok_or(AuthError::Missing)?;
                verifier.verify(token)
            }
        }
    }

    /// Whether tokens are checked.
    pub fn is_on(&self) -> bool {
        matches!(self, Authenticator::Tokens(_))
    }
}

#[cfg(test)]
mod tests;
