//! `kpr.v1.StatisticsService` over tonic: the public statistics surface for gRPC
//! clients. It serves the same disclosure-controlled tables as the public HTTP listener.

use std::future::Future;
use std::sync::Arc;

use kpr_auth::Role;

use kpr_projection::figures::Figure;
use kpr_wire::pb;
use kpr_wire::pb::statistics_service_server::{StatisticsService, StatisticsServiceServer};
use tonic::{Request, Response, Status};

use crate::access::Access;
use crate::api::{Format, Rendered, Statistics, TableRequest};
use crate::error::{EXACT_ONLY_ADMIN, StatsError};

/// The gRPC face of [`Statistics`].
pub struct StatisticsGrpc {
    stats: Arc<Statistics>,
    access: Access,
}

impl StatisticsGrpc {
    /// A service over `stats`, behind `access`.
    pub fn new(stats: Arc<Statistics>, access: Access) -> StatisticsGrpc {
        StatisticsGrpc { stats, access }
    }

    /// Checks the caller (statistics role, or anonymous where allowed), runs `work`,
    /// and records the call in the audit trail before answering.
    async fn audited<T: prost::Message>(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        method: &str,
        region: &str,
        work: impl Future<Output = Result<T, StatsError>>,
    ) -> Result<Response<T>, Status> {
        let checked = self
            .access
            .check(kpr_net::authorization(metadata), Role::Statistics);
        let (caller, result) = match checked {
            Ok(caller) => (caller, work.await),
            Err(e) => (None, Err(StatsError::Auth(e))),
        };
        let mut entry = crate::access::record(
            caller.as_ref(),
            Role::Statistics,
            "grpc",
            method.to_string(),
        );
        if region.len() == 4 && region.bytes().all(|b| b.is_ascii_digit()) {
            entry.municipality = region.to_string();
        }
        let answer = result.map_err(|e| {
            if let StatsError::Auth(auth) = &e {
                entry.rule = auth.rule().to_string();
            }
            to_status(&e)
        });
        entry.outcome = match &answer {
            Ok(body) => {
                entry.bytes_out = body.encoded_len() as u64;
                "OK".to_string()
            }
            Err(status) => kpr_net::code_name(status.code()).to_string(),
        };
        if let Err(e) = self.access.record(entry).await {
            tracing::error!(error = %e, "cannot write the audit trail");
            return Err(Status::unavailable(
                "the audit trail cannot be written; retry later",
            ));
        }
        answer.map(Response::new)
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> StatisticsServiceServer<Self> {
        StatisticsServiceServer::new(self)
    }
}

/// The one place statistics errors become gRPC statuses.
pub fn to_status(error: &StatsError) -> Status {
    match error {
        StatsError::BadRequest(m) => Status::invalid_argument(m.clone()),
        StatsError::Forbidden(_) => Status::permission_denied(error.to_string()),
        StatsError::Auth(e) if e.is_unauthenticated() => Status::unauthenticated(e.to_string()),
        StatsError::Auth(e) => Status::permission_denied(e.to_string()),
        StatsError::NotFound(m) => Status::not_found(m.clone()),
        StatsError::Conflict(m) => Status::already_exists(m.clone()),
        StatsError::Unavailable(m) => Status::unavailable(m.clone()),
        StatsError::Internal(cause) => {
            tracing::error!(cause = %cause, "internal error in statistics");
            Status::internal("internal error; the operator's log has the cause")
        }
    }
}

fn format_of(value: i32) -> Format {
    if value == pb::TableFormat::Csv as i32 {
        Format::Csv
    } else {
        Format::JsonStat
    }
}

fn response(r: Rendered, release: &str) -> pb::TableResponse {
    pb::TableResponse {
        content_type: r.content_type.to_string(),
        body: r.body,
        log_position: r
            .log_position
            .split(',')
            .filter_map(|pair| pair.split_once(':'))
            .filter_map(|(p, o)| {
                Some(pb::PartitionOffset {
                    partition: p.parse().ok()?,
                    records: o.parse().ok()?,
                })
            })
            .collect(),
        definition_version: r.definition_version,
        population_year: r.population_year.unwrap_or(0),
        exact: r.exact,
        release: release.to_string(),
    }
}

#[tonic::async_trait]
impl StatisticsService for StatisticsGrpc {
    async fn get_table(
        &self,
        request: Request<pb::GetTableRequest>,
    ) -> Result<Response<pb::TableResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let region = r.region.clone();
        let stats = Arc::clone(&self.stats);
        let work = async move { table(stats, r).await };
        self.audited(
            &metadata,
            "/kpr.v1.StatisticsService/GetTable",
            &region,
            work,
        )
        .await
    }

    async fn get_release_table(
        &self,
        request: Request<pb::GetReleaseTableRequest>,
    ) -> Result<Response<pb::TableResponse>, Status> {
        let (metadata, _, r) = request.into_parts();
        let region = if r.region.is_empty() {
            "EAK".to_string()
        } else {
            r.region.clone()
        };
        let stats = Arc::clone(&self.stats);
        let work = async {
            let rendered = stats.releases().and_then(|store| {
                store.table(&r.release, &r.figure, &region, format_of(r.format))
            })?;
            Ok(response(rendered, &r.release))
        };
        self.audited(
            &metadata,
            "/kpr.v1.StatisticsService/GetReleaseTable",
            &region,
            work,
        )
        .await
    }

    async fn list_figures(
        &self,
        request: Request<pb::ListFiguresRequest>,
    ) -> Result<Response<pb::ListFiguresResponse>, Status> {
        let figures = Figure::ALL
            .iter()
            .map(|f| pb::FigureInfo {
                id: f.id(),
                title: f.title().to_string(),
            })
            .collect();
        let work = async { Ok(pb::ListFiguresResponse { figures }) };
        self.audited(
            request.metadata(),
            "/kpr.v1.StatisticsService/ListFigures",
            "",
            work,
        )
        .await
    }
}

/// One public table (the work of `GetTable`).
async fn table(
    stats: Arc<Statistics>,
    r: pb::GetTableRequest,
) -> Result<pb::TableResponse, StatsError> {
    // The fields are values, never query syntax: a field carrying `&` or `=` could
    // smuggle `exact=true` past the public surface.
    for (name, value) in [
        ("figure", &r.figure),
        ("region", &r.region),
        ("date", &r.date),
        ("period", &r.period),
    ] {
        if value.contains(['&', '=', '%']) {
            return Err(StatsError::BadRequest(format!(
                "{name} holds a character that no {name} has"
            )));
        }
    }
    let mut query = vec![format!("region={}", r.region)];
    if r.year != 0 {
        query.push(format!("year={}", r.year));
    }
    if !r.date.is_empty() {
        query.push(format!("date={}", r.date));
    }
    if !r.period.is_empty() {
        query.push(format!("period={}", r.period));
    }
    let mut table_request = TableRequest::parse(&r.figure, &query.join("&"))?;
    // This is the public surface: never exact, never "as known at".
    if table_request.exact || table_request.at.is_some() {
        return Err(StatsError::Forbidden(EXACT_ONLY_ADMIN));
    }
    crate::api::check_public_frame(&table_request.query)?;
    table_request.format = format_of(r.format);
    let rendered = tokio::task::spawn_blocking(move || stats.render(&table_request))
        .await
        .map_err(|e| StatsError::Internal(e.to_string()))??;
    Ok(response(rendered, ""))
}
