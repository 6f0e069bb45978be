//! Errors of the statistics service, and the one place they become HTTP statuses.

/// Why the public surface refuses a reference date other than 31 December or a period
/// other than a calendar year (SPEC 6, "differencing across dates").
pub const PUBLIC_FRAMES_ONLY: &str = "the public surface answers for 31 December and calendar years only (tables for \
     consecutive days or months would give away the persons who entered or left a service \
     between them); other reference dates and periods are for operators on the admin listener";

/// What the public surface refuses when exact numbers are asked for.
pub const EXACT_ONLY_ADMIN: &str =
    "exact numbers (exact=true) and \"as known at\" (at=) are served";

/// Why a statistics request was not answered.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// A malformed or unknown parameter.
    #[error("{0}")]
    BadRequest(String),
    /// Something only operators may do, asked for on the public surface; says what.
    #[error("{0} only on the operator (admin) listener, not on this public one")]
    Forbidden(&'static str),
    /// No valid token (401 / UNAUTHENTICATED) or one without the role (403 /
    /// PERMISSION_DENIED).
    #[error("{0}")]
    Auth(kpr_auth::AuthError),
    /// No such figure, region or release.
    #[error("{0}")]
    NotFound(String),
    /// The thing exists and may not be replaced (a release).
    #[error("{0}")]
    Conflict(String),
    /// The log cannot be read.
    #[error("the log cannot be read: {0}")]
    Unavailable(String),
    /// A bug or a corrupt log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl StatsError {
    /// The HTTP status code of this error.
    pub fn http_status(&self) -> u16 {
        match self {
            StatsError::BadRequest(_) => 400,
            StatsError::Forbidden(_) => 403,
            StatsError::Auth(e) if e.is_unauthenticated() => 401,
            StatsError::Auth(_) => 403,
            StatsError::NotFound(_) => 404,
            StatsError::Conflict(_) => 409,
            StatsError::Unavailable(_) => 503,
            StatsError::Internal(_) => 500,
        }
    }
}
