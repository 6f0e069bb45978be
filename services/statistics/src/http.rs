//! HTTP front end: `GET /v1/tables/{figure}?region=…&year=…&date=…&period=…&format=json-stat|csv`.
//! The public listener refuses `exact=true`; the admin listener (loopback by default)
//! serves exact tables, marked as such. Every answer carries the log position it
//! reflects and the definition version, in the body and in headers.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::api::{Statistics, TableRequest};
use crate::error::StatsError;

/// Which surface a listener is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surface {
    /// Statisticians: disclosure-controlled only.
    Public,
    /// Operators: exact numbers on request.
    Admin,
}

#[derive(Clone)]
struct AppState {
    stats: Arc<Statistics>,
    surface: Surface,
}

fn plain(status: u16, text: String) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The one place statistics errors become HTTP responses.
fn error_response(error: &StatsError) -> Response<Body> {
    if let StatsError::Internal(cause) = error {
        tracing::error!(cause = %cause, "internal error in statistics");
        return plain(
            500,
            "internal error; the operator's log has the cause\n".into(),
        );
    }
    plain(error.http_status(), format!("{error}\n"))
}

async fn table(
    State(state): State<AppState>,
    Path(figure): Path<String>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    let request = match TableRequest::parse(&figure, query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if request.exact && state.surface == Surface::Public {
        return error_response(&StatsError::Forbidden);
    }
    let stats = Arc::clone(&state.stats);
    let rendered = match tokio::task::spawn_blocking(move || stats.render(&request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return error_response(&e),
        Err(e) => return error_response(&StatsError::Internal(e.to_string())),
    };
    let mut response = Response::new(Body::from(rendered.body));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static(rendered.content_type),
    );
    for (name, value) in [
        ("x-kpr-log-position", rendered.log_position),
        (
            "x-kpr-definition-version",
            rendered.definition_version.to_string(),
        ),
        ("x-kpr-exact", rendered.exact.to_string()),
        (
            "x-kpr-population-year",
            rendered
                .population_year
                .map(|y| y.to_string())
                .unwrap_or_default(),
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

async fn figures() -> Response<Body> {
    let list: String = kpr_projection::figures::Figure::ALL
        .iter()
        .map(|f| format!("{}\t{}\n", f.id(), f.title()))
        .collect();
    plain(200, list)
}

/// The router of one surface.
pub fn router(stats: Arc<Statistics>, surface: Surface) -> Router {
    Router::new()
        .route("/v1/tables/{figure}", get(table))
        .route("/v1/figures", get(figures))
        .route("/health", get(|| async { plain(200, "ok\n".into()) }))
        .with_state(AppState { stats, surface })
}

/// Serves one surface on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    stats: Arc<Statistics>,
    surface: Surface,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(stats, surface))
        .with_graceful_shutdown(shutdown)
        .await
}
