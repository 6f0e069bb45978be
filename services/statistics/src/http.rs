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
use axum::body::{Body, HttpBody};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, Method, Response, StatusCode};
use axum::middleware::Next;
use axum::routing::{get, post};
use kpr_auth::{AuthError, Role};
use tokio::net::TcpListener;

use crate::access::Access;
use crate::api::{Format, Rendered, Statistics, TableRequest};
use crate::catalogue::{self, DataRequest};
use crate::error::StatsError;
use crate::labels::Lang;

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
    access: Access,
}

/// Renders the process's metrics in Prometheus' text format (set by the binary, which
/// owns the recorder).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

static METRICS: std::sync::OnceLock<MetricsRender> = std::sync::OnceLock::new();

/// Sets what `/metrics` on the operator listener serves (once per process).
pub fn set_metrics(render: MetricsRender) {
    let _ = METRICS.set(render);
}

async fn metrics_page(State(state): State<AppState>) -> Response<Body> {
    match (state.surface, METRICS.get()) {
        (Surface::Admin, Some(render)) => {
            let mut response = plain(200, render());
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (Surface::Admin, None) => plain(404, "no metrics recorder in this process\n".into()),
        (Surface::Public, _) => error_response(&StatsError::Forbidden("metrics are served")),
    }
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
    let mut response = plain(error.http_status(), format!("{error}\n"));
    if let StatsError::Auth(auth) = error {
        // RFC 6750 section 3: no error code when no token was sent.
        let challenge = match auth {
            AuthError::Missing => r#"Bearer realm="kpr""#.to_string(),
            AuthError::MissingRole { role, .. } => format!(
                r#"Bearer realm="kpr", error="insufficient_scope", scope="{}""#,
                role.scope()
            ),
            e if e.is_unauthenticated() => format!(
                r#"Bearer realm="kpr", error="invalid_token", error_description="{}""#,
                e.to_string().replace(['"', '\\'], "'")
            ),
            _ => r#"Bearer realm="kpr", error="insufficient_scope""#.to_string(),
        };
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert("www-authenticate", value);
        }
    }
    response
}

/// The role a request needs on a surface: every route of the operator listener needs
/// the operator role; the public listener serves published tables only.
fn needed_role(surface: Surface) -> Role {
    match surface {
        Surface::Admin => Role::Operator,
        Surface::Public => Role::Statistics,
    }
}

/// Longest route recorded in the audit trail (with its query), in bytes.
const ROUTE_BYTES_MAX: usize = 300;

/// Checks the caller of every request and records it in the audit trail (all routes
/// but `/health`, which load balancers poll and which reveals nothing).
async fn guard(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: Next,
) -> Response<Body> {
    let path = request.uri().path().to_string();
    if path == "/health" || path.starts_with("/health/") {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed_origin = match (state.surface, &origin) {
        (Surface::Public, Some(origin)) => state.access.cors_origin(origin),
        _ => None,
    };
    // A CORS preflight for a public GET: answered here, nothing to record.
    if request.method() == Method::OPTIONS && state.surface == Surface::Public {
        let mut response = plain(204, String::new());
        if let Some(allowed) = &allowed_origin {
            cors_headers(&mut response, allowed);
            let headers = response.headers_mut();
            headers.insert(
                "access-control-allow-methods",
                HeaderValue::from_static("GET"),
            );
            headers.insert(
                "access-control-allow-headers",
                HeaderValue::from_static("authorization"),
            );
            headers.insert("access-control-max-age", HeaderValue::from_static("600"));
        }
        return response;
    }
    let query = request.uri().query().unwrap_or_default().to_string();
    let method = request.method().clone();
    let role = needed_role(state.surface);
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let checked = state.access.check(authorization, role);
    let mut route = format!("{method} {path}");
    if !query.is_empty() {
        route.push('?');
        route.push_str(&query);
    }
    let mut cut = route.len().min(ROUTE_BYTES_MAX);
    while !route.is_char_boundary(cut) {
        cut -= 1;
    }
    route.truncate(cut);
    let bytes_in = request.body().size_hint().exact().unwrap_or(0);
    let (caller, response, rule) = match checked {
        Ok(caller) => (caller, next.run(request).await, String::new()),
        Err(e) => (
            None,
            error_response(&StatsError::Auth(e.clone())),
            e.rule().to_string(),
        ),
    };
    let mut entry = crate::access::record(caller.as_ref(), role, "http", route);
    entry.municipality = query_value(&query, "region")
        .filter(|r| r.len() == 4 && r.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_default()
        .to_string();
    entry.outcome = response.status().as_u16().to_string();
    entry.rule = rule;
    entry.bytes_in = bytes_in;
    entry.bytes_out = response.body().size_hint().exact().unwrap_or(0);
    if method == Method::POST && response.status().is_success() {
        entry.positions = response
            .headers()
            .get("x-kpr-log-position")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
    }
    if let Err(e) = state.access.record(entry).await {
        tracing::error!(error = %e, "cannot write the audit trail");
        return plain(
            503,
            "the audit trail cannot be written; retry later\n".into(),
        );
    }
    let mut response = response;
    if let Some(allowed) = &allowed_origin
        && method == Method::GET
    {
        cors_headers(&mut response, allowed);
    }
    response
}

/// CORS headers of a public answer: the allowed origin, and the headers a page may read
/// (the log position and the other facts of an answer).
fn cors_headers(response: &mut Response<Body>, allowed: &str) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(allowed) {
        headers.insert("access-control-allow-origin", value);
    }
    headers.insert("vary", HeaderValue::from_static("Origin"));
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static(
            "x-kpr-log-position, x-kpr-definition-version, x-kpr-exact, x-kpr-population-year, x-kpr-release",
        ),
    );
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
    if state.surface == Surface::Public
        && let Err(e) = crate::api::check_public_frame(&request.query)
    {
        return error_response(&e);
    }
    if request.at.is_some() {
        return match state.stats.render_at(request).await {
            Ok(r) => rendered_response(r, None),
            Err(e) => error_response(&e),
        };
    }
    let stats = Arc::clone(&state.stats);
    let started = std::time::Instant::now();
    let figure_label = request.query.figure.id();
    let rendered = tokio::task::spawn_blocking(move || stats.render(&request)).await;
    metrics::histogram!("kpr_query_seconds", "figure" => figure_label)
        .record(started.elapsed().as_secs_f64());
    match rendered {
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

/// `GET /v1/releases/{name}/audit` (admin): the release re-derived from the log at its
/// position and compared byte for byte with what is stored, then audited as linked
/// tables. 200 when it is reproduced and gives nothing away, 409 when not; the body
/// says what was found either way.
async fn release_audit(State(state): State<AppState>, Path(name): Path<String>) -> Response<Body> {
    if state.surface == Surface::Public {
        return error_response(&StatsError::Forbidden(
            "releases are audited on the admin listener (GET /v1/releases/{name}/audit)",
        ));
    }
    let stats = Arc::clone(&state.stats);
    let manifest = match stats.releases().and_then(|store| store.manifest(&name)) {
        Ok(m) => m,
        Err(e) => return error_response(&e),
    };
    let at = match crate::api::parse_position(&manifest.log_position) {
        Ok(at) => at,
        Err(e) => return error_response(&e),
    };
    let model = match stats.model_at(&at).await {
        Ok(model) => model,
        Err(e) => return error_response(&e),
    };
    let audited = tokio::task::spawn_blocking(move || {
        stats
            .releases()
            .and_then(|store| store.audit(&stats, &model, &name))
    })
    .await;
    match audited {
        Ok(Ok(audit)) => {
            let m = &audit.manifest;
            let mut body = format!(
                "release {} of {} at log position {}: {} of {} tables reproduced byte for byte\n",
                m.name, m.year, m.log_position, audit.identical, m.tables
            );
            for table in &audit.differing.0 {
                body.push_str(&format!("differs: {table}\n"));
            }
            for line in audit.summary.lines() {
                body.push_str(&format!("audit: {line}\n"));
            }
            for line in &audit.summary.revealed {
                body.push_str(&format!("revealed: {line}\n"));
            }
            plain(if audit.holds() { 200 } else { 409 }, body)
        }
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&StatsError::Internal(e.to_string())),
    }
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
    let audit = query_value(&query, "audit").is_some_and(|v| v == "true");
    let stats = Arc::clone(&state.stats);
    let published = tokio::task::spawn_blocking(move || {
        stats
            .releases()
            .and_then(|store| store.publish(&stats, &name, year, audit))
    })
    .await;
    match published {
        Ok(Ok((m, summary))) => {
            let mut body = format!(
                "release {} of {} at log position {}: {} tables\n",
                m.name, m.year, m.log_position, m.tables
            );
            for line in summary.iter().flat_map(|s| s.lines()) {
                body.push_str("audit: ");
                body.push_str(&line);
                body.push('\n');
            }
            // What gives a suppressed count away, cell by cell (none when it holds).
            for line in summary.iter().flat_map(|s| &s.revealed) {
                body.push_str("revealed: ");
                body.push_str(line);
                body.push('\n');
            }
            let mut response = plain(201, body);
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

fn lang_of(query: &str) -> Result<Lang, StatsError> {
    query_value(query, "lang").map_or(Ok(Lang::No), Lang::parse)
}

fn json_response(body: String) -> Response<Body> {
    let mut response = plain(200, body);
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// `GET /v1/tables`: the catalogue.
async fn catalogue_list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    let query = query.unwrap_or_default();
    let stats = Arc::clone(&state.stats);
    let listed =
        tokio::task::spawn_blocking(move || catalogue::list(&stats, lang_of(&query)?)).await;
    match listed {
        Ok(Ok(body)) => json_response(body),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&StatsError::Internal(e.to_string())),
    }
}

/// `GET /v1/tables/{id}/metadata`: JSON-stat 2.0 without values.
async fn table_metadata(
    State(state): State<AppState>,
    Path(figure): Path<String>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    let query = query.unwrap_or_default();
    let stats = Arc::clone(&state.stats);
    let described =
        tokio::task::spawn_blocking(move || catalogue::metadata(&stats, &figure, lang_of(&query)?))
            .await;
    match described {
        Ok(Ok(body)) => json_response(body),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&StatsError::Internal(e.to_string())),
    }
}

/// `GET /v1/tables/{id}/data`: many regions and years in one answer.
async fn table_data(
    State(state): State<AppState>,
    Path(figure): Path<String>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    let request = match DataRequest::parse(&figure, query.as_deref().unwrap_or("")) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    if request.exact && state.surface == Surface::Public {
        return error_response(&StatsError::Forbidden(crate::error::EXACT_ONLY_ADMIN));
    }
    let stats = Arc::clone(&state.stats);
    let started = std::time::Instant::now();
    let figure_label = request.figure.id();
    let answered = tokio::task::spawn_blocking(move || catalogue::data(&stats, &request)).await;
    metrics::histogram!("kpr_query_seconds", "figure" => figure_label)
        .record(started.elapsed().as_secs_f64());
    match answered {
        Ok(Ok(r)) => rendered_response(r, None),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&StatsError::Internal(e.to_string())),
    }
}

/// `GET /health/ready` (and `/health`): 200 when the node should get traffic, 503
/// with the reason while it catches up, stops, or its log cannot take writes.
/// `/health/live` answers 200 whenever the process answers at all.
async fn ready(State(state): State<AppState>) -> Response<Body> {
    match state.stats.not_ready() {
        None => plain(200, "ok\n".into()),
        Some(reason) => plain(503, format!("not ready: {reason}\n")),
    }
}

/// `GET /v1`: where everything is.
async fn index() -> Response<Body> {
    json_response(
        serde_json::json!({
            "tables": "/v1/tables",
            "metadata": "/v1/tables/{id}/metadata",
            "data": "/v1/tables/{id}/data?valueCodes[Region]=0301,4601&valueCodes[Tid]=top(3)&outputFormat=json-stat2|csv&lang=no|en",
            "table": "/v1/tables/{id}?region=0301&year=2024&format=json-stat|csv",
            "releases": "/v1/releases",
            "page": "/",
        })
        .to_string(),
    )
}

/// `GET /`: the statistics page (one self-contained HTML file, no network access but
/// this register's own API).
async fn page() -> Response<Body> {
    let mut response = Response::new(Body::from(PAGE));
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        ),
    );
    response
}

/// The page `GET /` serves.
const PAGE: &str = include_str!("page.html");

async fn figures() -> Response<Body> {
    let list: String = kpr_projection::figures::Figure::ALL
        .iter()
        .map(|f| format!("{}\t{}\n", f.id(), f.title()))
        .collect();
    plain(200, list)
}

/// The router of one surface, behind `access`.
pub fn router(stats: Arc<Statistics>, surface: Surface, access: Access) -> Router {
    let state = AppState {
        stats,
        surface,
        access,
    };
    Router::new()
        .route("/", get(page))
        .route("/v1", get(index))
        .route("/v1/tables", get(catalogue_list))
        .route("/v1/tables/{figure}", get(table))
        .route("/v1/tables/{figure}/metadata", get(table_metadata))
        .route("/v1/tables/{figure}/data", get(table_data))
        .route("/v1/figures", get(figures))
        .route("/v1/releases", get(releases))
        .route("/v1/releases/{name}", post(publish))
        .route("/v1/releases/{name}/tables/{figure}", get(release_table))
        .route("/v1/releases/{name}/audit", get(release_audit))
        .route("/health", get(ready))
        .route("/health/ready", get(ready))
        .route(
            "/health/live",
            get(|| async { plain(200, "alive\n".into()) }),
        )
        .route("/metrics", get(metrics_page))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves one surface on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    gate: Arc<kpr_net::Gate>,
    stats: Arc<Statistics>,
    surface: Surface,
    access: Access,
    tls: Option<kpr_net::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    kpr_net::serve_http(
        listener,
        gate,
        tls,
        router(stats, surface, access),
        shutdown,
    )
    .await
}
