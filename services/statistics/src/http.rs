//! HTTP front end: `GET /v1/tables/{figure}?region=…&year=…&date=…&period=…&format=json-stat|csv`.
//! The public listener refuses `exact=true`; the admin listener (loopback by default)
//! serves exact tables, marked as such, "as known at" an earlier log position
//! (`at=partition:records,…`), and publishes releases (`POST /v1/releases/{name}?year=`).
//! Releases are read on both listeners at `/v1/releases/{name}/tables/{figure}`. Every
//! answer carries the log position it reflects and the definition version, in the body
//! and in headers.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Response, StatusCode};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::api::{Format, Rendered, Statistics, TableRequest};
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

fn rendered_response(rendered: Rendered, release: Option<&str>) -> Response<Body> {
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
        ("x-kpr-release", release.unwrap_or_default().to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
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
    if (request.exact || request.at.is_some()) && state.surface == Surface::Public {
        return error_response(&StatsError::Forbidden(crate::error::EXACT_ONLY_ADMIN));
    }
    if request.at.is_some() {
        return match state.stats.render_at(request).await {
            Ok(r) => rendered_response(r, None),
            Err(e) => error_response(&e),
        };
    }
    let stats = Arc::clone(&state.stats);
    match tokio::task::spawn_blocking(move || stats.render(&request)).await {
        Ok(Ok(r)) => rendered_response(r, None),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&StatsError::Internal(e.to_string())),
    }
}

fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

async fn publish(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    if state.surface == Surface::Public {
        return error_response(&StatsError::Forbidden(
            "releases are published (POST /v1/releases/{name}?year=YYYY)",
        ));
    }
    let query = query.unwrap_or_default();
    let Some(year) = query_value(&query, "year").and_then(|y| y.parse::<i32>().ok()) else {
        return error_response(&StatsError::BadRequest("give year=YYYY".into()));
    };
    let stats = Arc::clone(&state.stats);
    let published = tokio::task::spawn_blocking(move || {
        stats
            .releases()
            .and_then(|store| store.publish(&stats, &name, year))
    })
    .await;
    match published {
        Ok(Ok(m)) => {
            let mut response = plain(
                201,
                format!(
                    "release {} of {} at log position {}: {} tables\n",
                    m.name, m.year, m.log_position, m.tables
                ),
            );
            if let Ok(value) = HeaderValue::from_str(&m.log_position) {
                response.headers_mut().insert("x-kpr-log-position", value);
            }
            response
        }
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&StatsError::Internal(e.to_string())),
    }
}

async fn releases(State(state): State<AppState>) -> Response<Body> {
    match state.stats.releases().and_then(|store| store.list()) {
        Ok(list) => plain(
            200,
            list.iter()
                .map(|m| format!("{}\t{}\t{}\t{}\n", m.name, m.year, m.log_position, m.tables))
                .collect(),
        ),
        Err(e) => error_response(&e),
    }
}

async fn release_table(
    State(state): State<AppState>,
    Path((name, figure)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    let query = query.unwrap_or_default();
    let region = query_value(&query, "region").unwrap_or("EAK");
    let format = match query_value(&query, "format").unwrap_or("json-stat") {
        "csv" => Format::Csv,
        "json-stat" | "jsonstat" | "json" => Format::JsonStat,
        other => {
            return error_response(&StatsError::BadRequest(format!(
                "format {other:?}: use json-stat or csv"
            )));
        }
    };
    match state
        .stats
        .releases()
        .and_then(|store| store.table(&name, &figure, region, format))
    {
        Ok(r) => rendered_response(r, Some(&name)),
        Err(e) => error_response(&e),
    }
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
        .route("/v1/releases", get(releases))
        .route("/v1/releases/{name}", post(publish))
        .route("/v1/releases/{name}/tables/{figure}", get(release_table))
        .route("/health", get(|| async { plain(200, "ok\n".into()) }))
        .with_state(AppState { stats, surface })
}

/// Serves one surface on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<kpr_net::Gate>,
    stats: Arc<Statistics>,
    surface: Surface,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    kpr_net::serve_http(listener, gate, router(stats, surface), shutdown).await
}
