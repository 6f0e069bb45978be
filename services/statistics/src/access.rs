//! Who may read what, and the audit entry of every read.
//!
//! - Published, disclosure-controlled tables (the public listener and the gRPC
//!   `StatisticsService`) need the statistics role, or nothing when the deployment lets
//!   them be read anonymously (the default, as Statistics Norway's API is open).
//! - Everything on the operator (admin) listener — exact tables, "as known at",
//!   publishing releases — needs the operator role.
//! - A token that is sent is always checked, also where none is needed: a bad one is
//!   refused rather than ignored.

use std::sync::Arc;

use kpr_audit::{AuditLog, Record};
use kpr_auth::{AuthError, Authenticator, Caller, Role};

/// The access rules of one statistics service.
#[derive(Clone, Debug)]
pub struct Access {
    /// How callers are identified.
    pub auth: Arc<Authenticator>,
    /// Where calls are recorded (`None`: not recorded, for tools and tests).
    pub audit: Option<Arc<AuditLog>>,
    /// Published tables may be read without a token.
    pub anonymous_public: bool,
    /// Origins whose web pages may read the public listener (CORS, GET only); `*` for
    /// any. Never applies to the operator listener.
    pub cors_origins: Vec<String>,
}

impl Access {
    /// No authentication and no audit trail (offline tools, unit tests).
    pub fn open() -> Access {
        Access {
            auth: Arc::new(Authenticator::Off),
            audit: None,
            anonymous_public: true,
            cors_origins: vec!["*".into()],
        }
    }

    /// The caller of a request needing `role`, given its `authorization` value.
    /// `Ok(None)`: an anonymous reader where that is allowed.
    pub fn check(
        &self,
        authorization: Option<&str>,
        role: Role,
    ) -> Result<Option<Caller>, AuthError> {
        if authorization.is_none() && role == Role::Statistics && self.anonymous_public {
            return Ok(None);
        }
        let caller = self.auth.authenticate(authorization)?;
        caller.require(role)?;
        Ok(Some(caller))
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    pub fn cors_origin(&self, origin: &str) -> Option<String> {
        if self.cors_origins.iter().any(|o| o == "*") {
            Some("*".into())
        } else {
            self.cors_origins
                .iter()
                .any(|o| o == origin)
                .then(|| origin.to_string())
        }
    }

    /// Records one call; `Err` when the trail cannot be written (the call is then
    /// answered 503 / UNAVAILABLE: an unrecorded read is not served).
    pub async fn record(&self, record: Record) -> Result<(), kpr_audit::AuditError> {
        match &self.audit {
            Some(audit) => audit.record(record).await,
            None => Ok(()),
        }
    }
}

/// An audit record of a statistics call (the caller fills in outcome and sizes).
pub fn record(caller: Option<&Caller>, role: Role, channel: &str, method: String) -> Record {
    Record {
        time_unix_ms: now_unix_ms(),
        client: caller.map_or_else(|| "anonymous".to_string(), |c| c.client_id.clone()),
        org: caller
            .and_then(|c| c.org_number.clone())
            .unwrap_or_default(),
        role: role.name().to_string(),
        channel: channel.to_string(),
        method,
        ..Record::default()
    }
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
